"""Query-parameter (and JSON number) parsing shared by the routes: every bad value is an
InvalidInput.

Pure (reads only the request's query); constant cost per parameter. The bounds given here
are the ones the OpenAPI document states (:func:`anchor.http.openapi.int_query`), so a value the
document allows is accepted and any other one is refused with a 400.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection

from aiohttp import web

from anchor.errors import InvalidInput

MAX_INT64 = 2**63 - 1

FLAG_VALUES = ("0", "1", "true", "false")
"""The values a boolean query parameter takes (documented as this enum)."""


def int_param(
    request: web.Request,
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_INT64,
) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise InvalidInput(f"query parameter {name!r} is required")
        return default
    if not raw.isascii() or not raw.isdigit() or (len(raw) > 1 and raw[0] == "0"):
        raise InvalidInput(f"query parameter {name!r} must be a non-negative integer, got {raw!r}")
    if len(raw) > len(str(MAX_INT64)):
        raise InvalidInput(f"query parameter {name!r} must be between {minimum} and {maximum}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"query parameter {name!r} must be between {minimum} and {maximum}")
    return value


def optional_int_param(
    request: web.Request, name: str, *, minimum: int = 0, maximum: int = MAX_INT64
) -> int | None:
    if name not in request.query:
        return None
    return int_param(request, name, minimum=minimum, maximum=maximum)


def flag_param(request: web.Request, name: str) -> bool:
    """A boolean query parameter: absent, ``0``/``false`` or ``1``/``true``; anything else
    is refused (the document lists exactly these values)."""
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw not in FLAG_VALUES:
        raise InvalidInput(
            f"query parameter {name!r} must be one of {', '.join(FLAG_VALUES)}, got {raw!r}"
        )
    return raw in ("1", "true")


def reject_unknown(request: web.Request, known: Collection[str]) -> None:
    """Refuse query parameters the operation does not document (for operations whose
    parameters the document closes with ``additionalProperties: false``)."""
    unknown = sorted(set(request.query) - set(known))
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s) {', '.join(map(repr, unknown))}",
            hint="known: " + ", ".join(sorted(known)),
        )


def did_from_path(request: web.Request, prefix: str) -> str:
    """The DID that follows ``prefix`` in the request's path, decoded at most once, as the
    DID Resolution HTTP(S) binding has it: a DID is appended to the URL as written
    (``/1.0/identifiers/did:web:host%3A8443``: its own percent-escapes are part of it and
    kept), or URL-encoded (``did%3Aweb%3Ahost%253A8443``: each escape decoded once).
    aiohttp's decoded ``match_info`` would turn the first into ``did:web:host:8443``.

    In the encoded form an escape is decoded only when it gives a character a DID can
    hold (letters, digits, ``. - _ :``, and ``%`` when two hex digits follow): any other one
    (``%20``, ``%C3``) could only make the DID invalid, so it is the DID's own escape, sent
    by a client that encoded the colons alone, and is kept."""
    raw = request.rel_url.raw_path
    if not raw.startswith(prefix):  # the route matched: only a differently escaped prefix
        raise InvalidInput(f"the path must start with {prefix}")
    # '~' and '%7E' are the same URI (RFC 3986 §6.2.2.2; clients normalise one to the
    # other), and a DID holds no '~': it is the DID's escape %7E
    text = raw[len(prefix) :].replace("~", "%7E")
    if text.startswith("did:"):
        return text
    return _ESCAPE_RE.sub(_decode_did_char, text)


_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_HEX2_RE = re.compile(r"[0-9A-Fa-f]{2}")
_DID_CHARS = frozenset(string.ascii_letters + string.digits + "._-:%")


def _decode_did_char(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    if char == "%":  # the start of one of the DID's escapes only when two hex digits follow
        following = match.string[match.end() : match.end() + 2]
        return char if _HEX2_RE.fullmatch(following) else match[0]
    return char if char in _DID_CHARS else match[0]


def json_integer(value: object) -> object:
    """``value``, with a JSON number of integral value written as a float (``2.0``) made the
    int it is (JSON and JSON Schema make no difference between them)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT64:
        return int(value)
    return value
