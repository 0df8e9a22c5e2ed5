"""Issuer authentication: RFC 9421 HTTP Message Signatures on every write.

An issuer signs each write request with an Ed25519 key listed under ``authentication`` in
its DID document. What a request must carry (see :mod:`anchor.signing_client` for the client
side)::

    Content-Digest:  sha-256=:<base64 of SHA-256(body)>:            (RFC 9530)
    Signature-Input: sig1=("@method" "@target-uri" "content-digest");created=<unix time>;
                     keyid="<DID URL of the key>";alg="ed25519";nonce="<random>"
    Signature:       sig1=:<base64 of the 64-byte Ed25519 signature>:

Policy (each failure is one :class:`~anchor.errors.Unauthorized` with its own detail and a
machine-readable ``reason`` member, or a :class:`~anchor.errors.Forbidden`):

* exactly one signature; covered components ``@method`` and ``@target-uri``, plus
  ``content-digest`` whenever the request has a body or a ``Content-Digest`` field;
* ``Content-Digest`` recomputed from the body and compared (``sha-256`` and ``sha-512``
  understood; other algorithms ignored; at least one understood digest required);
* parameters ``created`` (within :data:`MAX_CLOCK_SKEW_SECONDS` of now, either way),
  ``keyid`` (a DID URL ``did:...#fragment``), ``nonce`` (required, single use) and, when
  present, ``alg`` (must be ``ed25519``), ``expires`` (must not have passed) and ``tag``;
* the keyid's DID must be a registered, active issuer (injected :data:`RegistryCheck`, a
  local look-up), else 403: checked before anything costly, so an unregistered signer
  causes no DID resolution (no did:web fetch) and no nonce row (no fsync). Whether a DID is
  registered is thus visible to anyone; registered issuers are public anyway (they are the
  submitters named in the log's entries);
* the key is found by the injected :data:`KeyResolver`, which returns it only when the DID
  document lists it under ``authentication``; the signature must verify with it;
* the nonce is remembered durably (SQLite, table ``auth_nonces``) until the signature could
  no longer be accepted anyway, so a replay is refused even after a restart; it is consumed
  only once the signature verifies (nobody can burn another issuer's nonces).

The signature base (RFC 9421 §2.5) is built and checked by the ``http-message-signatures``
package: this module adapts the aiohttp request to the package's message interface (method,
target URI, header field lines), gives its verifier the one key the resolver returned, and
applies the policy above, which the package leaves to the application, itself. The
``@target-uri`` is built from the configured public base URL when the service runs behind a
proxy, else from the request as received.

aiohttp wiring: store the :class:`Authenticator` under :data:`AUTHENTICATOR_KEY` in the
application, then protect handlers with :func:`require_signature`. The verified
:class:`Principal` is in ``request[PRINCIPAL_KEY]`` (or :func:`principal_of`). A failure becomes an
``application/problem+json`` response made by the error's own :meth:`problem`, with
``WWW-Authenticate`` and ``Accept-Signature`` (RFC 9421 §5.1) on a 401.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import http_sf
import nacl.bindings
import nacl.exceptions
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from multidict import CIMultiDict
from yarl import URL

from anchor.appkeys import AUTHENTICATOR_KEY
from anchor.db.api import Connection
from anchor.errors import AnchorError, ConfigError, Forbidden, Unauthorized
from anchor.grouping import GroupCall
from anchor.store import LogStore

# -- policy constants ---------------------------------------------------------------------

MAX_CLOCK_SKEW_SECONDS: Final = 300
"""How far ``created`` may be from the server's clock, into the past or the future."""

SIGNATURE_ALGORITHM: Final = "ed25519"
"""The only accepted ``alg`` (RFC 9421 §3.3.6)."""

ED25519_SIGNATURE_SIZE: Final = 64
ED25519_PUBLIC_KEY_SIZE: Final = 32

REQUIRED_COMPONENTS: Final = ("@method", "@target-uri")
"""Components every signature must cover."""

CONTENT_DIGEST_COMPONENT: Final = "content-digest"
"""Also required when the request has a body or a ``Content-Digest`` field."""

ALLOWED_PARAMETERS: Final = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
"""RFC 9421 §2.3 signature parameters; anything else is refused."""

SIGNATURE_LABEL: Final = "sig1"
"""The label clients use (any single label is accepted)."""

CONTENT_DIGEST_ALGORITHMS: Final = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
"""RFC 9530 algorithms that are checked; other keys of ``Content-Digest`` are ignored."""

MIN_NONCE_CHARS: Final = 16
"""Shortest nonce (a 128-bit random value is 22 base64url characters)."""
MAX_NONCE_CHARS: Final = 128
MAX_KEYID_CHARS: Final = 2048

NONCE_PURGE_INTERVAL_SECONDS: Final = 60.0
"""Expired nonces are deleted at most this often, by the next write after the interval."""

AUTH_REALM: Final = "ler-anchor"

ACCEPT_SIGNATURE: Final = (
    f'{SIGNATURE_LABEL}=("@method" "@target-uri" "{CONTENT_DIGEST_COMPONENT}")'
    f';created;alg="{SIGNATURE_ALGORITHM}"'
)
"""``Accept-Signature`` (RFC 9421 §5.1) sent with every 401: what to sign."""

SIGNING_HINT: Final = (
    "sign the request with an RFC 9421 HTTP Message Signature: Content-Digest (sha-256), "
    f'Signature-Input {SIGNATURE_LABEL}=("@method" "@target-uri" "content-digest");'
    'created=<unix time>;keyid="<DID URL of a key under authentication>";'
    'alg="ed25519";nonce="<fresh random value>", and Signature'
)

_DID_RE: Final = re.compile(
    r"did:[a-z0-9]+:(?:(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})*:)*(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+"
)
_FRAGMENT_RE: Final = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})+")
_NONCE_RE: Final = re.compile(r"[A-Za-z0-9._~+/=-]+")

# -- injected look-ups --------------------------------------------------------------------

KeyResolver = Callable[[str], Awaitable[bytes | None]]
"""``await resolve(keyid)``: the raw 32-byte Ed25519 public key of the DID URL ``keyid``,
only if the DID document lists that key under ``authentication``; else ``None``."""

RegistryCheck = Callable[[str], Awaitable[bool]]
"""``await is_registered(did)``: whether the operator registered this issuer DID."""


class AuthFailure(StrEnum):
    """The ``reason`` member of an authentication problem document."""

    UNSIGNED = "unsigned"
    MALFORMED_SIGNATURE_INPUT = "malformed-signature-input"
    MALFORMED_SIGNATURE = "malformed-signature"
    MISSING_COMPONENT = "missing-component"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    INVALID_KEYID = "invalid-keyid"
    INVALID_NONCE = "invalid-nonce"
    STALE = "stale"
    FROM_THE_FUTURE = "from-the-future"
    EXPIRED = "expired"
    MISSING_CONTENT_DIGEST = "missing-content-digest"
    MALFORMED_CONTENT_DIGEST = "malformed-content-digest"
    CONTENT_DIGEST_MISMATCH = "content-digest-mismatch"
    UNKNOWN_KEY = "unknown-key"
    BAD_SIGNATURE = "bad-signature"
    REPLAYED_NONCE = "replayed-nonce"
    UNREGISTERED_ISSUER = "unregistered-issuer"


def _unauthorized(reason: AuthFailure, detail: str, hint: str = SIGNING_HINT) -> Unauthorized:
    return Unauthorized(detail, hint=hint, reason=reason.value)


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated issuer of a request."""

    did: str
    keyid: str
    created: int
    nonce: str


@dataclass(frozen=True, slots=True)
class SignatureInput:
    """The one signature a ``Signature-Input`` field declares, parsed and type-checked."""

    label: str
    components: tuple[str, ...]
    """Component names in order (their parameters, if any, are left to the verifier)."""
    created: int
    keyid: str
    nonce: str
    alg: str | None = None
    expires: int | None = None
    tag: str | None = None

    @property
    def did(self) -> str:
        return self.keyid.partition("#")[0]


# -- parsers ------------------------------------------------------------------------------


def _reject_duplicate(field: str) -> Callable[[str, str], None]:
    def reject(key: str, context: str) -> None:
        raise ValueError(f'{field} repeats the key "{key}" ({context})')

    return reject


_SF_KEY = r"[a-z*][a-z0-9_\-.*]*"
_SF_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'  # no escapes: " and \ excluded
_SF_INTEGER = r"-?[0-9]{1,15}"
_SF_PARAM = re.compile(rf";({_SF_KEY})=({_SF_INTEGER}|{_SF_STRING})")
_FAST_INNER_LIST_MEMBER = re.compile(
    rf"({_SF_KEY})=\(((?:{_SF_STRING})(?: {_SF_STRING})*)?\)"
    rf"((?:;{_SF_KEY}=(?:{_SF_INTEGER}|{_SF_STRING}))*)"
)
_FAST_ITEM = re.compile(_SF_STRING)
_FAST_BYTESEQ_MEMBER = re.compile(rf"({_SF_KEY})=:([A-Za-z0-9+/]*={{0,2}}):")


def _fast_dictionary(value: str) -> dict[str, Any] | None:
    """The common shapes of the three signature fields, parsed without the general RFC 8941
    parser: one member that is either an inner list of plain strings with integer or plain
    string parameters (``Signature-Input``), or a canonical base64 byte sequence without
    parameters (``Signature``, ``Content-Digest``). The result is exactly what
    :func:`http_sf.parse` returns for the same text (a property test checks it); for any
    other text, ``None``, and the caller takes the general parser."""
    match = _FAST_INNER_LIST_MEMBER.fullmatch(value)
    if match is not None:
        label, items, param_text = match.groups()
        params: dict[str, Any] = {}
        for param in _SF_PARAM.finditer(param_text):
            name, raw = param.groups()
            if name in params:
                return None  # the general parser explains the duplicate
            params[name] = raw[1:-1] if raw.startswith('"') else int(raw)
        inner: list[tuple[str, dict[str, Any]]] = [
            (item[1:-1], {}) for item in _FAST_ITEM.findall(items or "")
        ]
        return {label: (inner, params)}
    match = _FAST_BYTESEQ_MEMBER.fullmatch(value)
    if match is not None:
        label, text = match.groups()
        try:
            raw_bytes = base64.b64decode(text, validate=True)
        except binascii.Error:
            return None
        if base64.b64encode(raw_bytes).decode("ascii") != text:
            return None  # not canonical: the general parser decides
        return {label: (raw_bytes, {})}
    return None


def _parse_dictionary(value: str, field: str, reason: AuthFailure) -> dict[str, Any]:
    fast = _fast_dictionary(value.strip(" "))
    if fast is not None:
        return fast
    try:
        parsed = http_sf.parse(
            value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate(field)
        )
    except (ValueError, TypeError) as exc:
        raise _unauthorized(
            reason, f"{field} is not a structured-field dictionary (RFC 8941): {exc}"
        ) from exc
    if not isinstance(parsed, dict):  # pragma: no cover - parse() returns the asked type
        raise _unauthorized(reason, f"{field} is not a structured-field dictionary")
    return parsed


def _string_param(params: dict[str, Any], name: str) -> str | None:
    if name not in params:
        return None
    value = params[name]
    if type(value) is not str:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f'the "{name}" signature parameter must be a quoted string, got {value!r}',
        )
    return value


def _integer_param(params: dict[str, Any], name: str) -> int | None:
    if name not in params:
        return None
    value = params[name]
    if type(value) is not int:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f'the "{name}" signature parameter must be an integer (unix time), got {value!r}',
        )
    return value


def _missing_parameter(name: str) -> Unauthorized:
    return _unauthorized(
        AuthFailure.MALFORMED_SIGNATURE_INPUT, f'Signature-Input has no "{name}" parameter'
    )


def parse_signature_input(value: str) -> SignatureInput:
    """Parse a ``Signature-Input`` field that declares exactly one signature."""
    members = _parse_dictionary(value, "Signature-Input", AuthFailure.MALFORMED_SIGNATURE_INPUT)
    if not members:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT, "Signature-Input declares no signature"
        )
    if len(members) > 1:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f"Signature-Input declares {len(members)} signatures ({', '.join(members)}); "
            "send exactly one",
        )
    ((label, (inner, params)),) = members.items()
    if not isinstance(inner, list):
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f'Signature-Input member "{label}" is not an inner list of covered components',
        )
    components: list[str] = []
    for item, _item_params in inner:
        if type(item) is not str:
            raise _unauthorized(
                AuthFailure.MALFORMED_SIGNATURE_INPUT,
                f"covered component {item!r} is not a quoted string",
            )
        if item != item.lower():
            raise _unauthorized(
                AuthFailure.MALFORMED_SIGNATURE_INPUT,
                f'covered component "{item}" must be lowercase',
            )
        components.append(item)
    unknown = sorted(set(params) - ALLOWED_PARAMETERS)
    if unknown:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f"unknown signature parameter(s) {', '.join(unknown)}",
        )
    created = _integer_param(params, "created")
    if created is None:
        raise _missing_parameter("created")
    keyid = _string_param(params, "keyid")
    if keyid is None:
        raise _missing_parameter("keyid")
    nonce = _string_param(params, "nonce")
    if nonce is None:
        raise _missing_parameter("nonce")
    expires = _integer_param(params, "expires")
    if expires is not None and expires < created:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f"the signature expires ({expires}) before it was created ({created})",
        )
    return SignatureInput(
        label=label,
        components=tuple(components),
        created=created,
        keyid=keyid,
        nonce=nonce,
        alg=_string_param(params, "alg"),
        expires=expires,
        tag=_string_param(params, "tag"),
    )


def parse_signature(value: str, label: str) -> bytes:
    """The signature bytes under ``label`` in a ``Signature`` field (the only member)."""
    members = _parse_dictionary(value, "Signature", AuthFailure.MALFORMED_SIGNATURE)
    if set(members) != {label}:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE,
            f"Signature has the label(s) {', '.join(members) or '(none)'} "
            f'but Signature-Input declares "{label}"',
        )
    signature = members[label][0]
    if not isinstance(signature, bytes):
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE,
            f'Signature member "{label}" is not a byte sequence (:base64:)',
        )
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise _unauthorized(
            AuthFailure.MALFORMED_SIGNATURE,
            f"the signature is {len(signature)} bytes; an Ed25519 signature is "
            f"{ED25519_SIGNATURE_SIZE}",
        )
    return signature


def parse_content_digest(value: str) -> dict[str, bytes]:
    """The understood digests (``sha-256``, ``sha-512``) of an RFC 9530 ``Content-Digest``."""
    members = _parse_dictionary(value, "Content-Digest", AuthFailure.MALFORMED_CONTENT_DIGEST)
    if not members:
        raise _unauthorized(AuthFailure.MALFORMED_CONTENT_DIGEST, "Content-Digest is empty")
    digests: dict[str, bytes] = {}
    for algorithm, (digest, _params) in members.items():
        if not isinstance(digest, bytes):
            raise _unauthorized(
                AuthFailure.MALFORMED_CONTENT_DIGEST,
                f'Content-Digest member "{algorithm}" is not a byte sequence (:base64:)',
            )
        hasher = CONTENT_DIGEST_ALGORITHMS.get(algorithm)
        if hasher is None:
            continue
        if len(digest) != hasher().digest_size:
            raise _unauthorized(
                AuthFailure.MALFORMED_CONTENT_DIGEST,
                f"the {algorithm} Content-Digest is {len(digest)} bytes, "
                f"expected {hasher().digest_size}",
            )
        digests[algorithm] = digest
    if not digests:
        raise _unauthorized(
            AuthFailure.MALFORMED_CONTENT_DIGEST,
            f"Content-Digest has no {' or '.join(CONTENT_DIGEST_ALGORITHMS)} digest "
            f"(only {', '.join(members)})",
        )
    return digests


def check_content_digest(value: str, body: bytes) -> None:
    """Raise unless every understood digest in ``value`` is the digest of ``body``."""
    for algorithm, digest in parse_content_digest(value).items():
        actual = CONTENT_DIGEST_ALGORITHMS[algorithm](body).digest()
        if not hmac.compare_digest(digest, actual):
            raise _unauthorized(
                AuthFailure.CONTENT_DIGEST_MISMATCH,
                f"the {algorithm} Content-Digest does not match the body "
                f"({len(body)} bytes received)",
                hint="compute Content-Digest over the exact bytes sent, then sign",
            )


def check_keyid(keyid: str) -> str:
    """Check that ``keyid`` is a DID URL ``did:<method>:<id>#<fragment>``; return the DID."""
    if len(keyid) > MAX_KEYID_CHARS:
        raise _unauthorized(
            AuthFailure.INVALID_KEYID, f"keyid is longer than {MAX_KEYID_CHARS} characters"
        )
    did, sep, fragment = keyid.partition("#")
    if not sep or not fragment:
        raise _unauthorized(
            AuthFailure.INVALID_KEYID,
            f"keyid {keyid!r} has no #fragment; it must be the DID URL of a verification method",
            hint="use the verification method id from your DID document, e.g. did:key:z...#z...",
        )
    if not _DID_RE.fullmatch(did):
        raise _unauthorized(AuthFailure.INVALID_KEYID, f"keyid {keyid!r} does not start with a DID")
    if not _FRAGMENT_RE.fullmatch(fragment):
        raise _unauthorized(AuthFailure.INVALID_KEYID, f"keyid {keyid!r} has an invalid fragment")
    return did


def check_nonce(nonce: str) -> None:
    """Check the nonce's length and characters."""
    if not MIN_NONCE_CHARS <= len(nonce) <= MAX_NONCE_CHARS:
        raise _unauthorized(
            AuthFailure.INVALID_NONCE,
            f"the nonce has {len(nonce)} characters; between {MIN_NONCE_CHARS} and "
            f"{MAX_NONCE_CHARS} are required",
            hint="use a fresh 128-bit random value in base64url (22 characters)",
        )
    if not _NONCE_RE.fullmatch(nonce):
        raise _unauthorized(
            AuthFailure.INVALID_NONCE,
            "the nonce may only use the characters A-Z a-z 0-9 . _ ~ + / = -",
        )


def check_times(sig: SignatureInput, now: float) -> None:
    """``created`` within ±:data:`MAX_CLOCK_SKEW_SECONDS` of ``now``; ``expires`` not past."""
    if sig.created - now > MAX_CLOCK_SKEW_SECONDS:
        raise _unauthorized(
            AuthFailure.FROM_THE_FUTURE,
            f"the signature was created {sig.created - now:.0f} s in the future; at most "
            f"{MAX_CLOCK_SKEW_SECONDS} s of clock skew is accepted",
            hint="synchronise the client's clock (NTP) and sign again",
        )
    if now - sig.created > MAX_CLOCK_SKEW_SECONDS:
        raise _unauthorized(
            AuthFailure.STALE,
            f"the signature is stale: created {now - sig.created:.0f} s ago, more than "
            f"{MAX_CLOCK_SKEW_SECONDS} s",
            hint="sign each request just before sending it (and check the client's clock)",
        )
    if sig.expires is not None and sig.expires <= now:
        raise _unauthorized(
            AuthFailure.EXPIRED,
            f"the signature expired {now - sig.expires:.0f} s ago",
            hint="sign the request again",
        )


# -- durable nonces -----------------------------------------------------------------------

NONCE_TABLE: Final = "auth_nonces"


def ensure_schema(store: LogStore) -> None:
    """Create the nonce table (idempotent)."""
    with store.transaction() as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {NONCE_TABLE} ("
            "keyid TEXT NOT NULL, nonce TEXT NOT NULL, expires INTEGER NOT NULL, "
            "PRIMARY KEY (keyid, nonce)) WITHOUT ROWID"
        )
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {NONCE_TABLE}_by_expiry ON {NONCE_TABLE} (expires)"
        )


class NonceStore:
    """Nonces already used, per key, kept in the service's SQLite database until they
    expire (after which the signature carrying them is stale anyway)."""

    def __init__(
        self, store: LogStore, *, purge_interval: float = NONCE_PURGE_INTERVAL_SECONDS
    ) -> None:
        ensure_schema(store)
        self._store = store
        self._purge_interval = purge_interval
        self._next_purge = 0.0

    def remember(self, keyid: str, nonce: str, *, expires: int, now: float) -> bool:
        """Record ``nonce`` for ``keyid`` until ``expires``; ``False`` if it is already
        recorded and has not expired (a replay). Also purges expired nonces from time to
        time. Durable once it returns (the store commits with ``synchronous=FULL``)."""
        cutoff = int(now)
        with self._store.transaction() as conn:
            if now >= self._next_purge:
                self._purge(conn, cutoff)
                self._next_purge = now + self._purge_interval
            cursor = conn.execute(
                f"INSERT INTO {NONCE_TABLE} (keyid, nonce, expires) VALUES (?, ?, ?) "  # noqa: S608
                "ON CONFLICT (keyid, nonce) DO UPDATE SET expires = excluded.expires "
                f"WHERE {NONCE_TABLE}.expires < ?",
                (keyid, nonce, expires, cutoff),
            )
            return cursor.rowcount == 1

    def remember_many(self, items: Sequence[tuple[str, str, int]], *, now: float) -> list[bool]:
        """:meth:`remember` for ``(keyid, nonce, expires)`` items in one transaction (one
        fsync for all); a nonce repeated within ``items`` is a replay the second time."""
        cutoff = int(now)
        results: list[bool] = []
        with self._store.transaction() as conn:
            if now >= self._next_purge:
                self._purge(conn, cutoff)
                self._next_purge = now + self._purge_interval
            for keyid, nonce, expires in items:
                cursor = conn.execute(
                    f"INSERT INTO {NONCE_TABLE} (keyid, nonce, expires) VALUES (?, ?, ?) "  # noqa: S608
                    "ON CONFLICT (keyid, nonce) DO UPDATE SET expires = excluded.expires "
                    f"WHERE {NONCE_TABLE}.expires < ?",
                    (keyid, nonce, expires, cutoff),
                )
                results.append(cursor.rowcount == 1)
        return results

    def seen(self, keyid: str, nonce: str, *, now: float) -> bool:
        """Whether ``nonce`` is recorded for ``keyid`` and not expired."""
        row = (
            self._store.reader()
            .execute(
                f"SELECT 1 FROM {NONCE_TABLE} WHERE keyid = ? AND nonce = ? AND expires >= ?",  # noqa: S608
                (keyid, nonce, int(now)),
            )
            .fetchone()
        )
        return row is not None

    def purge(self, *, now: float) -> int:
        """Delete expired nonces; return how many."""
        with self._store.transaction() as conn:
            return self._purge(conn, int(now))

    @staticmethod
    def _purge(conn: Connection, cutoff: int) -> int:
        return conn.execute(
            f"DELETE FROM {NONCE_TABLE} WHERE expires < ?",  # noqa: S608
            (cutoff,),
        ).rowcount


# -- the http-message-signatures adapter --------------------------------------------------


_CANONICAL_WITH_DIGEST: Final = '("@method" "@target-uri" "content-digest");'
_CANONICAL_COMPONENT_LISTS: Final = (_CANONICAL_WITH_DIGEST, '("@method" "@target-uri");')
"""Component lists the fast verification path builds signature bases for."""


@dataclass(frozen=True, slots=True)
class _MessageView:
    """An aiohttp request as ``http_message_signatures`` reads a request: upper-case method,
    absolute target URI, header field lines (names ASCII, values Latin-1, wire order)."""

    method: str
    url: str
    headers: CIMultiDict[str]
    request_target: str


class _Verifier(HTTPMessageVerifier):
    """The package's verifier without its own clock checks: :class:`Authenticator` has
    already applied the ``created`` / ``expires`` policy with its own clock and tolerance
    (the package would re-read the wall clock with a 5-second tolerance)."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


def _field(request: web.BaseRequest, name: str) -> str | None:
    values = request.headers.getall(name, [])
    return ", ".join(values) if values else None


# -- the authenticator --------------------------------------------------------------------


class Authenticator:
    """Verifies signed requests (see the module docstring for the policy).

    ``public_base_url`` (e.g. ``https://anchor.example``, optionally with a path prefix) is
    the service's address as clients see it: behind a proxy the ``@target-uri`` is that
    base followed by the request's path and query, instead of the Host the proxy sent.
    Without it the request's own scheme, Host and target are used.
    """

    def __init__(
        self,
        *,
        resolve_key: KeyResolver,
        is_registered: RegistryCheck,
        nonces: NonceStore,
        public_base_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._resolve_key = resolve_key
        self._is_registered = is_registered
        self._nonces = nonces
        self._nonce_commit: GroupCall[tuple[str, str, int], bool] = GroupCall(
            lambda items: nonces.remember_many(items, now=self._clock())
        )
        self._base = None if public_base_url is None else _check_base_url(public_base_url)
        self._clock = clock

    def target_uri(self, request: web.BaseRequest) -> str:
        """The ``@target-uri`` the client must have signed."""
        path = request.rel_url.raw_path_qs
        if self._base is not None:
            return self._base + path
        return f"{request.scheme}://{request.host}{path}"

    async def authenticate(self, request: web.BaseRequest, body: bytes) -> Principal:
        """The :class:`Principal` of a correctly signed ``request`` whose body is ``body``;
        raises :class:`Unauthorized` (401) or :class:`Forbidden` (403)."""
        input_field = _field(request, "Signature-Input")
        signature_field = _field(request, "Signature")
        if input_field is None and signature_field is None:
            raise _unauthorized(AuthFailure.UNSIGNED, "the request is not signed")
        if input_field is None:
            raise _unauthorized(
                AuthFailure.MALFORMED_SIGNATURE_INPUT,
                "the request has a Signature field but no Signature-Input",
            )
        if signature_field is None:
            raise _unauthorized(
                AuthFailure.MALFORMED_SIGNATURE,
                "the request has a Signature-Input field but no Signature",
            )
        sig = parse_signature_input(input_field)
        signature = parse_signature(signature_field, sig.label)

        digest_field = _field(request, "Content-Digest")
        required = list(REQUIRED_COMPONENTS)
        if body or digest_field is not None:
            required.append(CONTENT_DIGEST_COMPONENT)
        for component in required:
            if component not in sig.components:
                raise _unauthorized(
                    AuthFailure.MISSING_COMPONENT,
                    f'the signature does not cover the required component "{component}"',
                )
        if sig.alg is not None and sig.alg != SIGNATURE_ALGORITHM:
            raise _unauthorized(
                AuthFailure.UNSUPPORTED_ALGORITHM,
                f'signature algorithm "{sig.alg}" is not accepted; use "{SIGNATURE_ALGORITHM}"',
            )
        did = check_keyid(sig.keyid)
        check_nonce(sig.nonce)
        now = self._clock()
        check_times(sig, now)
        if body and digest_field is None:
            raise _unauthorized(
                AuthFailure.MISSING_CONTENT_DIGEST,
                "the request has a body but no Content-Digest field",
            )
        if digest_field is not None:
            check_content_digest(digest_field, body)
        # Cheap things first: the registry is a local look-up, so a signer the operator did
        # not register costs no DID resolution (a did:web fetch) and no nonce row (an fsync).
        if not await self._is_registered(did):
            raise Forbidden(
                f"{did} is not a registered issuer",
                hint="ask the operator of this service to register the issuer DID",
                reason=AuthFailure.UNREGISTERED_ISSUER.value,
            )

        public_key = await self._resolve_key(sig.keyid)
        if public_key is None or len(public_key) != ED25519_PUBLIC_KEY_SIZE:
            raise _unauthorized(
                AuthFailure.UNKNOWN_KEY,
                f"{sig.keyid} is not an Ed25519 key listed under authentication "
                f"in the DID document of {did}",
                hint="sign with a key your DID document lists under authentication, "
                "and use its verification method id as keyid",
            )
        if not self._verify_canonical(request, input_field, sig, signature, public_key):
            self._verify(request, body, sig, public_key)

        expires = sig.created + MAX_CLOCK_SKEW_SECONDS
        fresh = await self._nonce_commit((sig.keyid, sig.nonce, expires))
        if not fresh:
            raise _unauthorized(
                AuthFailure.REPLAYED_NONCE,
                "this nonce was already used with this key: the request is a replay",
                hint="use a fresh random nonce for every request",
            )
        return Principal(did=did, keyid=sig.keyid, created=sig.created, nonce=sig.nonce)

    def _verify_canonical(
        self,
        request: web.BaseRequest,
        input_field: str,
        sig: SignatureInput,
        signature: bytes,
        public_key: bytes,
    ) -> bool:
        """The fast path for what :mod:`anchor.signing_client` (and any RFC 9421 signer that
        serialises canonically) sends: covered components exactly ``@method``,
        ``@target-uri`` and, when present, ``content-digest``. The signature base (RFC 9421
        §2.5) is built directly, its ``@signature-params`` line being the received member
        itself. True only if the signature verifies; anything else (another component list,
        non-canonical serialisation, a bad signature) returns False and the request takes
        the complete path through ``http-message-signatures``, which decides and explains."""
        label, eq, params = input_field.strip().partition("=")
        if not eq or label != sig.label or not params.startswith(_CANONICAL_COMPONENT_LISTS):
            return False
        lines = [f'"@method": {request.method}', f'"@target-uri": {self.target_uri(request)}']
        if params.startswith(_CANONICAL_WITH_DIGEST):
            digests = request.headers.getall("Content-Digest", [])
            lines.append('"content-digest": ' + ", ".join(v.strip() for v in digests))
        lines.append(f'"@signature-params": {params}')
        base = "\n".join(lines)
        if not base.isascii():
            return False
        try:  # libsodium: twice as fast here, and no laxer than the general path's OpenSSL
            nacl.bindings.crypto_sign_open(signature + base.encode("ascii"), public_key)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True

    def _verify(
        self, request: web.BaseRequest, body: bytes, sig: SignatureInput, public_key: bytes
    ) -> None:
        """Build the RFC 9421 signature base with http-message-signatures and verify it."""
        view = _MessageView(
            method=request.method,
            url=self.target_uri(request),
            headers=CIMultiDict(
                (name.decode("ascii"), value.decode("latin-1"))
                for name, value in request.raw_headers
            ),
            request_target=request.raw_path,
        )
        try:
            verification_key = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise _unauthorized(
                AuthFailure.UNKNOWN_KEY, f"{sig.keyid} is not a valid Ed25519 public key"
            ) from exc
        keys = MappingKeyResolver(public_keys={sig.keyid: verification_key}, private_keys={})
        verifier = _Verifier(signature_algorithm=algorithms.ED25519, key_resolver=keys)
        try:
            verifier.verify(view, max_age=None, require_components=REQUIRED_COMPONENTS, body=body)
        except InvalidSignature as exc:
            if isinstance(exc.__cause__, CryptoInvalidSignature):
                raise _unauthorized(
                    AuthFailure.BAD_SIGNATURE,
                    f"the signature does not verify with {sig.keyid}: the method, target URI "
                    f"(here {view.method} {view.url}), a covered field or a signature "
                    "parameter differs from what was signed",
                    hint="sign exactly the method, URL, fields and body that are sent",
                ) from exc
            raise _unauthorized(
                AuthFailure.BAD_SIGNATURE, f"the signature cannot be verified: {exc}"
            ) from exc
        except HTTPMessageSignaturesException as exc:
            raise _unauthorized(
                AuthFailure.MALFORMED_SIGNATURE_INPUT, f"the signature cannot be checked: {exc}"
            ) from exc


def _check_base_url(base: str) -> str:
    url = URL(base)
    if (
        not url.absolute
        or url.scheme not in {"http", "https"}
        or not url.host
        or url.query_string
        or url.fragment
        or url.user is not None
    ):
        raise ConfigError(
            f"public base URL {base!r} must be http(s)://host[:port][/prefix] "
            "without query, fragment or credentials"
        )
    return str(url).rstrip("/")


# -- aiohttp wiring -----------------------------------------------------------------------

PRINCIPAL_KEY: Final = web.RequestKey("anchor.auth.principal", Principal)
"""Where a verified request carries its :class:`Principal`."""


def principal_of(request: web.Request) -> Principal:
    """The verified principal of a request that went through signature checking."""
    if PRINCIPAL_KEY not in request:
        raise Unauthorized(
            "this handler requires a signed request but signature checking did not run",
            hint="protect the route with require_signature",
        )
    return request[PRINCIPAL_KEY]


def challenge_headers(error: Unauthorized) -> dict[str, str]:
    """``WWW-Authenticate`` and ``Accept-Signature`` for a 401, so the client learns how to
    sign (and why this request failed)."""
    reason = str(error.extra.get("reason", AuthFailure.UNSIGNED.value))
    return {
        "WWW-Authenticate": (
            f'Signature realm="{AUTH_REALM}", alg="{SIGNATURE_ALGORITHM}", error="{reason}"'
        ),
        "Accept-Signature": ACCEPT_SIGNATURE,
    }


def problem_response(error: AnchorError, request: web.BaseRequest) -> web.Response:
    """``error`` as ``application/problem+json``; a 401 also carries
    :func:`challenge_headers`. (The service maps errors in its own middleware with the same
    headers; this serves applications that use only this module.)"""
    headers = challenge_headers(error) if isinstance(error, Unauthorized) else {}
    return web.json_response(
        error.problem(instance=request.path),
        status=error.status,
        headers=headers,
        content_type="application/problem+json",
    )


async def _check(request: web.Request) -> web.Response | None:
    """Authenticate ``request``; store its principal, or return the failure response."""
    authenticator = request.config_dict.get(AUTHENTICATOR_KEY)
    if authenticator is None:
        raise ConfigError(
            "signature checking is enabled but the application has no Authenticator",
            hint="set app[AUTHENTICATOR_KEY] when building the application",
        )
    body = await request.read()  # cached: the handler can read it again
    try:
        request[PRINCIPAL_KEY] = await authenticator.authenticate(request, body)
    except (Unauthorized, Forbidden) as error:
        return problem_response(error, request)
    return None


def require_signature(handler: Handler) -> Handler:
    """Decorate a handler so that it runs only for a correctly signed request from a
    registered issuer, with ``request[PRINCIPAL_KEY]`` set."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        failure = await _check(request)
        if failure is not None:
            return failure
        return await handler(request)

    return checked


__all__ = [
    "ACCEPT_SIGNATURE",
    "AUTHENTICATOR_KEY",
    "MAX_CLOCK_SKEW_SECONDS",
    "PRINCIPAL_KEY",
    "SIGNATURE_ALGORITHM",
    "AuthFailure",
    "Authenticator",
    "KeyResolver",
    "NonceStore",
    "Principal",
    "RegistryCheck",
    "SignatureInput",
    "challenge_headers",
    "check_content_digest",
    "check_keyid",
    "check_nonce",
    "check_times",
    "ensure_schema",
    "parse_content_digest",
    "parse_signature",
    "parse_signature_input",
    "principal_of",
    "problem_response",
    "require_signature",
]
