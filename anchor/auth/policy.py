"""Which signed requests the service accepts: the stateless half of issuer authentication.

Policy (each failure is one :class:`~anchor.errors.Unauthorized` with its own detail and a
machine-readable ``reason`` member, an :class:`~anchor.auth.signatures.AuthFailure`):

* exactly one signature; covered components ``@method`` and ``@target-uri``, plus
  ``content-digest`` whenever the request has a body or a ``Content-Digest`` field;
* ``Content-Digest`` recomputed from the body and compared (``sha-256`` and ``sha-512``
  understood; other algorithms ignored; at least one understood digest required);
* parameters ``created`` (within :data:`MAX_CLOCK_SKEW_SECONDS` of now, either way),
  ``keyid`` (a DID URL ``did:...#fragment``), ``nonce`` (required, single use) and, when
  present, ``alg`` (must be ``ed25519``), ``expires`` (must not have passed) and ``tag``.

:func:`check_request` applies all of it to a :class:`~anchor.auth.signatures.SignedMessage`
and its body at a given time. What needs state is left to
:class:`~anchor.auth.middleware.Authenticator`, in this order: the keyid's DID must be a
registered, active issuer (else 403), the key must be listed under ``authentication`` in
the DID document and the signature must verify with it, and only then is the nonce consumed
(:mod:`anchor.auth.nonces`), so nobody can burn another issuer's nonces.

Pure: no I/O; the time is a parameter. Cost: a few regular expressions, the field parsing of
:mod:`anchor.auth.signatures` and one SHA-256 of the body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from anchor.auth.signatures import (
    CONTENT_DIGEST_COMPONENT,
    REQUIRED_COMPONENTS,
    SIGNATURE_ALGORITHM,
    AuthFailure,
    SignatureInput,
    SignedMessage,
    check_content_digest,
    parse_signature,
    parse_signature_input,
    unauthorized,
)

MAX_CLOCK_SKEW_SECONDS: Final = 300
"""How far ``created`` may be from the server's clock, into the past or the future."""

MIN_NONCE_CHARS: Final = 16
"""Shortest nonce (a 128-bit random value is 22 base64url characters)."""
MAX_NONCE_CHARS: Final = 128
MAX_KEYID_CHARS: Final = 2048

_DID_RE: Final = re.compile(
    r"did:[a-z0-9]+:(?:(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})*:)*(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+"
)
_FRAGMENT_RE: Final = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})+")
_NONCE_RE: Final = re.compile(r"[A-Za-z0-9._~+/=-]+")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated issuer of a request."""

    did: str
    keyid: str
    created: int
    nonce: str


def check_keyid(keyid: str) -> str:
    """Check that ``keyid`` is a DID URL ``did:<method>:<id>#<fragment>``; return the DID."""
    if len(keyid) > MAX_KEYID_CHARS:
        raise unauthorized(
            AuthFailure.INVALID_KEYID, f"keyid is longer than {MAX_KEYID_CHARS} characters"
        )
    did, sep, fragment = keyid.partition("#")
    if not sep or not fragment:
        raise unauthorized(
            AuthFailure.INVALID_KEYID,
            f"keyid {keyid!r} has no #fragment; it must be the DID URL of a verification method",
            hint="use the verification method id from your DID document, e.g. did:key:z...#z...",
        )
    if not _DID_RE.fullmatch(did):
        raise unauthorized(AuthFailure.INVALID_KEYID, f"keyid {keyid!r} does not start with a DID")
    if not _FRAGMENT_RE.fullmatch(fragment):
        raise unauthorized(AuthFailure.INVALID_KEYID, f"keyid {keyid!r} has an invalid fragment")
    return did


def check_nonce(nonce: str) -> None:
    """Check the nonce's length and characters."""
    if not MIN_NONCE_CHARS <= len(nonce) <= MAX_NONCE_CHARS:
        raise unauthorized(
            AuthFailure.INVALID_NONCE,
            f"the nonce has {len(nonce)} characters; between {MIN_NONCE_CHARS} and "
            f"{MAX_NONCE_CHARS} are required",
            hint="use a fresh 128-bit random value in base64url (22 characters)",
        )
    if not _NONCE_RE.fullmatch(nonce):
        raise unauthorized(
            AuthFailure.INVALID_NONCE,
            "the nonce may only use the characters A-Z a-z 0-9 . _ ~ + / = -",
        )


def check_times(sig: SignatureInput, now: float) -> None:
    """``created`` within ±:data:`MAX_CLOCK_SKEW_SECONDS` of ``now``; ``expires`` not past."""
    if sig.created - now > MAX_CLOCK_SKEW_SECONDS:
        raise unauthorized(
            AuthFailure.FROM_THE_FUTURE,
            f"the signature was created {sig.created - now:.0f} s in the future; at most "
            f"{MAX_CLOCK_SKEW_SECONDS} s of clock skew is accepted",
            hint="synchronise the client's clock (NTP) and sign again",
        )
    if now - sig.created > MAX_CLOCK_SKEW_SECONDS:
        raise unauthorized(
            AuthFailure.STALE,
            f"the signature is stale: created {now - sig.created:.0f} s ago, more than "
            f"{MAX_CLOCK_SKEW_SECONDS} s",
            hint="sign each request just before sending it (and check the client's clock)",
        )
    if sig.expires is not None and sig.expires <= now:
        raise unauthorized(
            AuthFailure.EXPIRED,
            f"the signature expired {now - sig.expires:.0f} s ago",
            hint="sign the request again",
        )


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """A request that passed every stateless check: what the stateful checks need."""

    input_field: str
    """The ``Signature-Input`` field as received (the direct verification path reuses it)."""
    sig: SignatureInput
    signature: bytes
    did: str
    """The DID of ``sig.keyid``."""


def check_request(message: SignedMessage, body: bytes, now: float) -> CheckedRequest:
    """Apply the policy above to ``message`` and its ``body`` at time ``now`` (everything but
    the issuer registry, the key, the signature itself and the nonce's single use)."""
    input_field = message.field("Signature-Input")
    signature_field = message.field("Signature")
    if input_field is None and signature_field is None:
        raise unauthorized(AuthFailure.UNSIGNED, "the request is not signed")
    if input_field is None:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE_INPUT,
            "the request has a Signature field but no Signature-Input",
        )
    if signature_field is None:
        raise unauthorized(
            AuthFailure.MALFORMED_SIGNATURE,
            "the request has a Signature-Input field but no Signature",
        )
    sig = parse_signature_input(input_field)
    signature = parse_signature(signature_field, sig.label)

    digest_field = message.field("Content-Digest")
    required = list(REQUIRED_COMPONENTS)
    if body or digest_field is not None:
        required.append(CONTENT_DIGEST_COMPONENT)
    for component in required:
        if component not in sig.components:
            raise unauthorized(
                AuthFailure.MISSING_COMPONENT,
                f'the signature does not cover the required component "{component}"',
            )
    if sig.alg is not None and sig.alg != SIGNATURE_ALGORITHM:
        raise unauthorized(
            AuthFailure.UNSUPPORTED_ALGORITHM,
            f'signature algorithm "{sig.alg}" is not accepted; use "{SIGNATURE_ALGORITHM}"',
        )
    did = check_keyid(sig.keyid)
    check_nonce(sig.nonce)
    check_times(sig, now)
    if body and digest_field is None:
        raise unauthorized(
            AuthFailure.MISSING_CONTENT_DIGEST,
            "the request has a body but no Content-Digest field",
        )
    if digest_field is not None:
        check_content_digest(digest_field, body)
    return CheckedRequest(input_field=input_field, sig=sig, signature=signature, did=did)
