"""DID and DID URL syntax (W3C DID Core §3.1 and §3.2), pure.

The grammar implemented, in the ABNF of DID Core (RFC 3986 rules for the URL parts)::

    did                = "did:" method-name ":" method-specific-id
    method-name        = 1*method-char
    method-char        = %x61-7A / DIGIT
    method-specific-id = *( *idchar ":" ) 1*idchar
    idchar             = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded
    pct-encoded        = "%" HEXDIG HEXDIG
    did-url            = did path-abempty [ "?" query ] [ "#" fragment ]

The scheme ``did`` and the method name are lowercase (DID Core §3.1). A method-specific id
may contain empty segments (``did:x:a::b``) but cannot end with ``:``. A parse failure
raises :class:`DidSyntaxError` whose message says which part is wrong and how.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

MAX_DID_URL_LENGTH = 4096
"""Longest DID URL accepted, in characters. Bounds the work any input can cause; the
longest DID this package produces (a P-521 did:key) is about 100 characters."""

_IDCHAR = r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})"
_PCHAR = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
# Possessive quantifiers (Python 3.11+) keep matching linear on hostile input.
_DID = rf"did:(?P<method>[a-z0-9]++):(?P<msid>(?:{_IDCHAR}*+:)*+{_IDCHAR}++)"
_DID_RE = re.compile(_DID)
_DID_URL_RE = re.compile(
    rf"{_DID}(?P<path>(?:/{_PCHAR}*+)*+)"
    rf"(?:\?(?P<query>(?:{_PCHAR}|[/?])*+))?"
    rf"(?:#(?P<fragment>(?:{_PCHAR}|[/?])*+))?"
)
_IDCHAR_ONLY_RE = re.compile(r"[A-Za-z0-9._%:-]*")
_PCT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class DidSyntaxError(ValueError):
    """The text is not a DID (or not a DID URL); the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedDid:
    """A syntactically valid DID or DID URL, split into its parts.

    ``did`` is always the bare DID (``did:method:id``); ``did_url`` is the whole input.
    ``path`` is ``""`` when absent; ``query`` and ``fragment`` are ``None`` when absent
    (and ``""`` when present but empty).
    """

    did: str
    method: str
    method_specific_id: str
    did_url: str
    path: str = ""
    query: str | None = None
    fragment: str | None = None

    @property
    def is_url(self) -> bool:
        """True when the input had a path, query or fragment (it is a DID URL)."""
        return bool(self.path) or self.query is not None or self.fragment is not None

    @property
    def params(self) -> dict[str, str]:
        """The query's DID parameters (percent-decoded; the last value of a repeated name)."""
        if not self.query:
            return {}
        return dict(parse_qsl(self.query, keep_blank_values=True))


def _diagnose(text: str, *, url: bool) -> str:
    """Why ``text`` does not match the grammar: one sentence for a person."""
    what = "DID URL" if url else "DID"
    if not text.startswith("did:"):
        if text[:4].lower() == "did:":
            return f"{text!r} is not a {what}: the scheme 'did' must be lowercase"
        return f"{text!r} is not a {what}: it must start with 'did:'"
    rest = text[4:]
    method, sep, msid = rest.partition(":")
    if not sep:
        return f"{text!r} is not a {what}: expected 'did:<method>:<method-specific-id>'"
    if not method:
        return f"{text!r} is not a {what}: the method name is empty"
    if not re.fullmatch(r"[a-z0-9]+", method):
        return (
            f"{text!r} is not a {what}: the method name {method!r} may only contain "
            "lowercase letters and digits"
        )
    # Cut off the URL parts to look at the method-specific id alone.
    end = len(msid)
    for stop in ("/", "?", "#"):
        pos = msid.find(stop)
        if pos != -1:
            end = min(end, pos)
    ident, tail = msid[:end], msid[end:]
    if tail and not url:
        return (
            f"{text!r} is a DID URL, not a DID: remove the path, query or fragment "
            f"{tail!r} to get the DID"
        )
    if not ident:
        return f"{text!r} is not a {what}: the method-specific id is empty"
    if ident.endswith(":"):
        return f"{text!r} is not a {what}: the method-specific id must not end with ':'"
    bad = _IDCHAR_ONLY_RE.match(ident)
    if bad is not None and bad.end() < len(ident):
        char = ident[bad.end()]
        return (
            f"{text!r} is not a {what}: character {char!r} is not allowed in the "
            "method-specific id (letters, digits, '.', '-', '_', ':' and %XX escapes only)"
        )
    if _PCT_RE.search(ident):
        return f"{text!r} is not a {what}: a '%' must be followed by two hexadecimal digits"
    return f"{text!r} is not a {what}: the path, query or fragment has a character not allowed"


def _check_length(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise DidSyntaxError(f"a {what} must be a string, not {type(text).__name__}")
    if len(text) > MAX_DID_URL_LENGTH:
        raise DidSyntaxError(
            f"the {what} is {len(text)} characters long; at most {MAX_DID_URL_LENGTH} are accepted"
        )
    return text


def parse_did(text: str) -> ParsedDid:
    """Parse a bare DID (no path, query or fragment). Raises :class:`DidSyntaxError`."""
    text = _check_length(text, "DID")
    match = _DID_RE.fullmatch(text)
    if match is None:
        raise DidSyntaxError(_diagnose(text, url=False))
    return ParsedDid(
        did=text,
        method=match["method"],
        method_specific_id=match["msid"],
        did_url=text,
    )


def parse_did_url(text: str) -> ParsedDid:
    """Parse a DID URL (a bare DID is a DID URL too). Raises :class:`DidSyntaxError`."""
    text = _check_length(text, "DID URL")
    match = _DID_URL_RE.fullmatch(text)
    if match is None:
        raise DidSyntaxError(_diagnose(text, url=True))
    method, msid = match["method"], match["msid"]
    return ParsedDid(
        did=f"did:{method}:{msid}",
        method=method,
        method_specific_id=msid,
        did_url=text,
        path=match["path"],
        query=match["query"],
        fragment=match["fragment"],
    )


def is_did(text: object) -> bool:
    """True when ``text`` is a bare DID."""
    return (
        isinstance(text, str)
        and len(text) <= MAX_DID_URL_LENGTH
        and _DID_RE.fullmatch(text) is not None
    )


def is_did_url(text: object) -> bool:
    """True when ``text`` is a DID URL (bare DIDs included)."""
    return (
        isinstance(text, str)
        and len(text) <= MAX_DID_URL_LENGTH
        and _DID_URL_RE.fullmatch(text) is not None
    )
