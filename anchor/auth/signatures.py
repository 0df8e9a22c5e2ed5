"""RFC 9421 HTTP Message Signatures and RFC 9530 ``Content-Digest``, as the service reads
them: the structured fields (RFC 8941) parsed and type-checked, the signature base built and
the Ed25519 signature verified.

What a signed request carries (see :mod:`anchor.client.signing` for the client side)::

    Content-Digest:  sha-256=:<base64 of SHA-256(body)>:            (RFC 9530)
    Signature-Input: sig1=("@method" "@target-uri" "content-digest");created=<unix time>;
                     keyid="<DID URL of the key>";alg="ed25519";nonce="<random>"
    Signature:       sig1=:<base64 of the 64-byte Ed25519 signature>:

Every failure is one :class:`~anchor.errors.Unauthorized` with its own detail and a
machine-readable ``reason`` member (an :class:`AuthFailure`). The policy that decides which
signatures are acceptable (times, nonces, key ids) is :mod:`anchor.auth.policy`.

A request is seen as a :class:`SignedMessage` (method, target URI, header fields), so nothing
here knows aiohttp: :mod:`anchor.auth.middleware` builds the message from a request. The
signature base (RFC 9421 §2.5) is built and checked by the ``http-message-signatures``
package (:func:`verify_with_package`); what :mod:`anchor.client.signing` sends, the canonical
serialisation, takes a direct path first (:func:`verify_canonical`).

Pure: no I/O, no clock. Cost: parsing three short fields (a regular expression for the usual
shapes) and one Ed25519 verification (about 50 µs with libsodium on the direct path).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import http_sf
import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from multidict import CIMultiDict, MultiMapping

from anchor.errors import Unauthorized

# -- what a signature must look like ------------------------------------------------------

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


def unauthorized(reason: AuthFailure, detail: str, hint: str = SIGNING_HINT) -> Unauthorized:
    """The 401 for ``reason``, with ``detail`` and (by default) how to sign."""
    return Unauthorized(detail, hint=hint, reason=reason.value)


# -- the signature input --------------------------------------------------------------------


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
        raise unauthorized(
            reason, f"{field} is not a structured-field dictionary (RFC 8941): {exc}"
        ) from exc
    if not isinstance(parsed, dict):  # pragma: no cover - parse() returns the asked type
        raise unauthorized(reason, f"{field} is not a structured-field dictionary")
    return parsed


def _string_param(params: dict[str, Any], name: str) -> str | None:
    if name not in params:
        return None
    value = params[name]
    if type(value) is not str:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f'the "{name}" signature parameter must be a quoted string, got {value!r}',
        )
    return value


def _integer_param(params: dict[str, Any], name: str) -> int | None:
    if name not in params:
        return None
    value = params[name]
    if type(value) is not int:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f'the "{name}" signature parameter must be an integer (unix time), got {value!r}',
        )
    return value


def _missing_parameter(name: str) -> Unauthorized:
    return unauthorized(
        AuthFailure.MALFORMED_SIGNATURE_INPUT, f'Signature-Input has no "{name}" parameter'
    )


def parse_signature_input(value: str) -> SignatureInput:
    """Parse a ``Signature-Input`` field that declares exactly one signature."""
    members = _parse_dictionary(value, "Signature-Input", AuthFailure.MALFORMED_SIGNATURE_INPUT)
    if not members:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT, "Signature-Input declares no signature"
        )
    if len(members) > 1:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f"Signature-Input declares {len(members)} signatures ({', '.join(members)}); "
            "send exactly one",
        )
    ((label, (inner, params)),) = members.items()
    if not isinstance(inner, list):
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            f'Signature-Input member "{label}" is not an inner list of covered components',
        )
    components: list[str] = []
    for item, _item_params in inner:
        if type(item) is not str:
            raise unauthorized(
                AuthFailure.MALFORMED_SIGNATURE_INPUT,
                f"covered component {item!r} is not a quoted string",
            )
        if item != item.lower():
            raise unauthorized(
                AuthFailure.MALFORMED_SIGNATURE_INPUT,
                f'covered component "{item}" must be lowercase',
            )
        components.append(item)
    unknown = sorted(set(params) - ALLOWED_PARAMETERS)
    if unknown:
        raise unauthorized(
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
        raise unauthorized(
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
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE,
            f"Signature has the label(s) {', '.join(members) or '(none)'} "
            f'but Signature-Input declares "{label}"',
        )
    signature = members[label][0]
    if not isinstance(signature, bytes):
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE,
            f'Signature member "{label}" is not a byte sequence (:base64:)',
        )
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE,
            f"the signature is {len(signature)} bytes; an Ed25519 signature is "
            f"{ED25519_SIGNATURE_SIZE}",
        )
    return signature


def parse_content_digest(value: str) -> dict[str, bytes]:
    """The understood digests (``sha-256``, ``sha-512``) of an RFC 9530 ``Content-Digest``."""
    members = _parse_dictionary(value, "Content-Digest", AuthFailure.MALFORMED_CONTENT_DIGEST)
    if not members:
        raise unauthorized(AuthFailure.MALFORMED_CONTENT_DIGEST, "Content-Digest is empty")
    digests: dict[str, bytes] = {}
    for algorithm, (digest, _params) in members.items():
        if not isinstance(digest, bytes):
            raise unauthorized(
                AuthFailure.MALFORMED_CONTENT_DIGEST,
                f'Content-Digest member "{algorithm}" is not a byte sequence (:base64:)',
            )
        hasher = CONTENT_DIGEST_ALGORITHMS.get(algorithm)
        if hasher is None:
            continue
        if len(digest) != hasher().digest_size:
            raise unauthorized(
                AuthFailure.MALFORMED_CONTENT_DIGEST,
                f"the {algorithm} Content-Digest is {len(digest)} bytes, "
                f"expected {hasher().digest_size}",
            )
        digests[algorithm] = digest
    if not digests:
        raise unauthorized(
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
            raise unauthorized(
                AuthFailure.CONTENT_DIGEST_MISMATCH,
                f"the {algorithm} Content-Digest does not match the body "
                f"({len(body)} bytes received)",
                hint="compute Content-Digest over the exact bytes sent, then sign",
            )


# -- the message and its signature base ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """A request as the signature covers it: nothing of a web framework, only values."""

    method: str
    """As received (``@method`` is case-sensitive)."""
    target_uri: str
    """The absolute ``@target-uri`` the client must have signed."""
    request_target: str
    """The request target as received (path and query)."""
    headers: MultiMapping[str]
    """Header field values as the server decoded them, case-insensitive names."""
    raw_headers: tuple[tuple[bytes, bytes], ...]
    """Header field lines as received, in wire order (what the package's verifier reads)."""

    def field(self, name: str) -> str | None:
        """The combined value of every ``name`` field line (RFC 9110 §5.3), or None."""
        values = self.headers.getall(name, [])
        return ", ".join(values) if values else None


_CANONICAL_WITH_DIGEST: Final = '("@method" "@target-uri" "content-digest");'
_CANONICAL_COMPONENT_LISTS: Final = (_CANONICAL_WITH_DIGEST, '("@method" "@target-uri");')
"""Component lists the direct verification path builds signature bases for."""


@dataclass(frozen=True, slots=True)
class _MessageView:
    """A request as ``http_message_signatures`` reads a request: upper-case method,
    absolute target URI, header field lines (names ASCII, values Latin-1, wire order)."""

    method: str
    url: str
    headers: CIMultiDict[str]
    request_target: str


class _Verifier(HTTPMessageVerifier):
    """The package's verifier without its own clock checks: :mod:`anchor.auth.policy` has
    already applied the ``created`` / ``expires`` policy with its own clock and tolerance
    (the package would re-read the wall clock with a 5-second tolerance)."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


def verify_canonical(
    message: SignedMessage,
    input_field: str,
    sig: SignatureInput,
    signature: bytes,
    public_key: bytes,
) -> bool:
    """The direct path for what :mod:`anchor.client.signing` (and any RFC 9421 signer that
    serialises canonically) sends: covered components exactly ``@method``,
    ``@target-uri`` and, when present, ``content-digest``. The signature base (RFC 9421
    §2.5) is built directly, its ``@signature-params`` line being the received member
    itself. True only if the signature verifies; anything else (another component list,
    non-canonical serialisation, a bad signature) returns False and the caller takes
    :func:`verify_with_package`, which decides and explains (:func:`verify_signature`)."""
    label, eq, params = input_field.strip().partition("=")
    if not eq or label != sig.label or not params.startswith(_CANONICAL_COMPONENT_LISTS):
        return False
    lines = [f'"@method": {message.method}', f'"@target-uri": {message.target_uri}']
    if params.startswith(_CANONICAL_WITH_DIGEST):
        digests = message.headers.getall("Content-Digest", [])
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


def verify_with_package(
    message: SignedMessage, body: bytes, sig: SignatureInput, public_key: bytes
) -> None:
    """Build the RFC 9421 signature base with http-message-signatures and verify it;
    raise :class:`~anchor.errors.Unauthorized` unless the signature verifies."""
    view = _MessageView(
        method=message.method,
        url=message.target_uri,
        headers=CIMultiDict(
            (name.decode("ascii"), value.decode("latin-1")) for name, value in message.raw_headers
        ),
        request_target=message.request_target,
    )
    try:
        verification_key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise unauthorized(
            AuthFailure.UNKNOWN_KEY, f"{sig.keyid} is not a valid Ed25519 public key"
        ) from exc
    keys = MappingKeyResolver(public_keys={sig.keyid: verification_key}, private_keys={})
    verifier = _Verifier(signature_algorithm=algorithms.ED25519, key_resolver=keys)
    try:
        verifier.verify(view, max_age=None, require_components=REQUIRED_COMPONENTS, body=body)
    except InvalidSignature as exc:
        if isinstance(exc.__cause__, CryptoInvalidSignature):
            raise unauthorized(
                AuthFailure.BAD_SIGNATURE,
                f"the signature does not verify with {sig.keyid}: the method, target URI "
                f"(here {view.method} {view.url}), a covered field or a signature "
                "parameter differs from what was signed",
                hint="sign exactly the method, URL, fields and body that are sent",
            ) from exc
        raise unauthorized(
            AuthFailure.BAD_SIGNATURE, f"the signature cannot be verified: {exc}"
        ) from exc
    except HTTPMessageSignaturesException as exc:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT, f"the signature cannot be checked: {exc}"
        ) from exc


def verify_signature(
    message: SignedMessage,
    body: bytes,
    input_field: str,
    sig: SignatureInput,
    signature: bytes,
    public_key: bytes,
) -> None:
    """Raise :class:`~anchor.errors.Unauthorized` unless ``signature`` (declared by
    ``sig``, the parsed ``input_field``) is ``public_key``'s signature of ``message``."""
    if not verify_canonical(message, input_field, sig, signature, public_key):
        verify_with_package(message, body, sig, public_key)
