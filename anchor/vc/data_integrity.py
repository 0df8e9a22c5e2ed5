"""W3C Data Integrity proofs with the ``eddsa-jcs-2022`` cryptosuite, pure.

Data Integrity EdDSA Cryptosuites v1.0 (Recommendation, 15 May 2025), §3.3
https://www.w3.org/TR/vc-di-eddsa/#eddsa-jcs-2022 on top of Verifiable Credential Data
Integrity 1.0 (https://www.w3.org/TR/vc-data-integrity/):

* Transformation (§3.3.3): RFC 8785 (JCS) canonical JSON of the document without ``proof``.
* Proof configuration (§3.3.5): the proof options (``type`` ``DataIntegrityProof``,
  ``cryptosuite`` ``eddsa-jcs-2022``, ``created``, ``verificationMethod``,
  ``proofPurpose``, and the document's ``@context`` when it has one, §3.3.1 step 2), in JCS.
* Hashing (§3.3.4): ``hashData = SHA-256(canonicalProofConfig) || SHA-256(canonicalDocument)``
  (proof configuration hash *first*), 64 bytes.
* Serialization (§3.3.6): a pure Ed25519 (RFC 8032) signature over ``hashData``, stored as
  ``proofValue`` in Multibase base58btc (prefix ``z``).
* Verification (§3.3.2): the same, after checking that the document's ``@context`` starts
  with the proof's ``@context`` and hashing the document with the proof's ``@context``.

Keys are raw bytes: a 32-byte Ed25519 seed to sign, a 32-byte public key to verify. Mapping a
``verificationMethod`` to a key (DID resolution) is the caller's job. Every verification
failure raises :class:`~anchor.errors.VerificationError` whose ``what`` names the check:
``proof``, ``type``, ``cryptosuite``, ``verificationMethod``, ``proofPurpose``, ``created``,
``@context``, ``proofValue`` (encoding), ``signature-length`` and ``signature``.

Proof sets (an array of ``proof``) are supported: :func:`create_proof` adds to an existing
proof, and :func:`verify_proof` checks the one whose ``verificationMethod`` is asked for.
Each proof of a set covers the document without any proof. Proof chains (``previousProof``)
are not supported and are refused.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import base58
import rfc8785
from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import SigningKey, VerifyKey

from anchor.errors import EncodingError, InvalidInput, VerificationError

PROOF_TYPE: Final = "DataIntegrityProof"
"""The ``type`` of every Data Integrity proof."""

CRYPTOSUITE: Final = "eddsa-jcs-2022"
"""The only cryptosuite this module creates and verifies."""

ED25519_KEY_LENGTH: Final = 32
"""Bytes in an Ed25519 public key and in an Ed25519 private key seed (RFC 8032 §5.1.5)."""

ED25519_SIGNATURE_LENGTH: Final = 64
"""Bytes in an Ed25519 signature (§3.3.6: ``proofBytes`` is exactly 64 bytes)."""

MULTIBASE_BASE58BTC: Final = "z"
"""Multibase prefix of base58btc, the encoding of ``proofValue``."""

MAX_PROOF_VALUE_CHARS: Final = 128
"""Longest ``proofValue`` decoded (a 64-byte signature is at most 88 base58 characters);
longer values are refused before base58 decoding, which is quadratic in the length."""

ED25519_PUB_MULTICODEC: Final = b"\xed\x01"
"""Multicodec prefix (varint 0xed) of an Ed25519 public key in ``publicKeyMultibase``."""


# Data Integrity §2.1: created is an XML Schema 1.1 dateTimeStamp (time zone required).
_DATETIME_STAMP_RE = re.compile(
    r"-?(?:[1-9][0-9]{3,}|0[0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?|24:00:00(?:\.0+)?)"
    r"(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


@dataclass(frozen=True)
class Proof:
    """A verified (or just created) ``eddsa-jcs-2022`` proof.

    ``options`` is the proof object without ``proofValue``, exactly as it was hashed.
    """

    verification_method: str
    proof_purpose: str
    proof_value: str
    created: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    type: str = PROOF_TYPE
    cryptosuite: str = CRYPTOSUITE

    def to_json(self) -> dict[str, Any]:
        """The proof object as it appears in a secured document."""
        return {**copy.deepcopy(dict(self.options)), "proofValue": self.proof_value}


# --- canonical JSON and hashing --------------------------------------------------------------


def canonicalize(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON bytes of ``value``.

    Raises :class:`~anchor.errors.EncodingError` for what JCS cannot represent (NaN,
    infinities, integers outside the I-JSON range, non-string keys, non-JSON types).
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise EncodingError(
            f"the document cannot be canonicalized with RFC 8785: {exc}",
            hint="use only JSON values: no NaN or infinity, integers within ±(2**53 - 1)",
        ) from None
    except (TypeError, ValueError) as exc:
        raise EncodingError(f"the document is not JSON: {exc}") from None


def canonical_digest(document: Mapping[str, Any]) -> bytes:
    """SHA-256 of the RFC 8785 canonical JSON of ``document``, exactly as given.

    This is a credential's digest as LER Anchor logs it; a ``proof`` in the document is
    part of what is hashed (strip it first for the digest of the unsecured document).
    """
    return hashlib.sha256(canonicalize(document)).digest()


def hash_data(canonical_proof_config: bytes, canonical_document: bytes) -> bytes:
    """§3.3.4: ``SHA-256(canonicalProofConfig) || SHA-256(transformedDocument)``."""
    return (
        hashlib.sha256(canonical_proof_config).digest()
        + hashlib.sha256(canonical_document).digest()
    )


def transform(unsecured_document: Mapping[str, Any], options: Mapping[str, Any]) -> bytes:
    """§3.3.3 Transformation: JCS of the document (which must not hold ``proof``)."""
    if options.get("type") != PROOF_TYPE or options.get("cryptosuite") != CRYPTOSUITE:
        raise VerificationError(
            f"the proof is not a {PROOF_TYPE} with cryptosuite {CRYPTOSUITE}",
            what="cryptosuite" if options.get("type") == PROOF_TYPE else "type",
            expected=f"{PROOF_TYPE}/{CRYPTOSUITE}",
            actual=f"{options.get('type')}/{options.get('cryptosuite')}",
        )
    return canonicalize(unsecured_document)


def proof_configuration(options: Mapping[str, Any]) -> bytes:
    """§3.3.5 Proof Configuration: check ``type``, ``cryptosuite`` and ``created`` of the
    proof options (which carry the document's ``@context`` when it has one) and return
    them in JCS."""
    if options.get("type") != PROOF_TYPE:
        raise VerificationError(
            f"the proof type must be {PROOF_TYPE}",
            what="type",
            expected=PROOF_TYPE,
            actual=repr(options.get("type")),
        )
    if options.get("cryptosuite") != CRYPTOSUITE:
        raise VerificationError(
            f"the proof cryptosuite must be {CRYPTOSUITE}",
            what="cryptosuite",
            expected=CRYPTOSUITE,
            actual=repr(options.get("cryptosuite")),
        )
    created = options.get("created")
    if created is not None and not is_datetime_stamp(created):
        raise VerificationError(
            "the proof's created is not an XML Schema dateTimeStamp",
            what="created",
            actual=repr(created),
        )
    return canonicalize(dict(options))


def is_datetime_stamp(value: object) -> bool:
    """Whether ``value`` is an XML Schema 1.1 ``dateTimeStamp`` string (with time zone)."""
    if not isinstance(value, str) or not _DATETIME_STAMP_RE.fullmatch(value):
        return False
    if value[4] == "-" and not value.startswith("-"):  # calendar check for 4-digit years
        try:
            datetime(int(value[0:4]), int(value[5:7]), int(value[8:10]))
        except ValueError:
            return False
    return True


# --- keys ----------------------------------------------------------------------------------


def _check_key(key: object, name: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != ED25519_KEY_LENGTH:
        raise InvalidInput(
            f"the Ed25519 {name} must be {ED25519_KEY_LENGTH} raw bytes",
            hint="pass the raw key, not its multibase or hex text",
        )
    return key


def ed25519_public_key_to_multibase(public_key: bytes) -> str:
    """``publicKeyMultibase`` (``z6Mk...``) of a raw Ed25519 public key."""
    key = _check_key(public_key, "public key")
    return MULTIBASE_BASE58BTC + base58.b58encode(ED25519_PUB_MULTICODEC + key).decode("ascii")


# --- create --------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_proof(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "proof"}


def create_proof(
    document: Mapping[str, Any],
    private_key: bytes,
    verification_method: str,
    proof_purpose: str = "assertionMethod",
    created: str | None = None,
) -> dict[str, Any]:
    """Sign ``document`` with an ``eddsa-jcs-2022`` proof (§3.3.1); return a new document.

    ``private_key`` is the 32-byte Ed25519 seed of ``verification_method``; ``created``
    (an XML Schema dateTimeStamp) defaults to the current UTC time to the second. The
    input is not modified. If it already has a ``proof``, the new one joins it in a proof
    set (``proof`` becomes an array), signing the document without its proofs.
    """
    if not isinstance(document, Mapping):
        raise InvalidInput("the document to sign must be a JSON object")
    seed = _check_key(private_key, "private key seed")
    if not isinstance(verification_method, str) or not verification_method:
        raise InvalidInput("verification_method must be a non-empty string (a DID URL)")
    if not isinstance(proof_purpose, str) or not proof_purpose:
        raise InvalidInput("proof_purpose must be a non-empty string")
    when = _now() if created is None else created
    if not is_datetime_stamp(when):
        raise InvalidInput(
            f"created must be an XML Schema dateTimeStamp, got {created!r}",
            hint="for example 2025-01-31T12:00:00Z",
        )
    unsecured = copy.deepcopy(_without_proof(document))
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": when,
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
    }
    if "@context" in unsecured:  # §3.3.1 step 2
        proof["@context"] = copy.deepcopy(unsecured["@context"])
    try:
        config = proof_configuration(proof)
        data = hash_data(config, transform(unsecured, proof))
    except VerificationError as exc:  # pragma: no cover - the options are built above
        raise InvalidInput(exc.detail) from None
    signature = SigningKey(seed).sign(data).signature
    proof["proofValue"] = MULTIBASE_BASE58BTC + base58.b58encode(signature).decode("ascii")
    secured = dict(unsecured)
    existing = document.get("proof")
    if existing is None:
        secured["proof"] = proof
    else:
        others = existing if isinstance(existing, list) else [existing]
        secured["proof"] = [*copy.deepcopy(others), proof]
    return secured


# --- verify --------------------------------------------------------------------------------


def _select_proof(document: Mapping[str, Any], verification_method: str | None) -> dict[str, Any]:
    proof = document.get("proof")
    if proof is None:
        raise VerificationError("the document has no proof", what="proof")
    candidates = proof if isinstance(proof, list) else [proof]
    if not all(isinstance(p, Mapping) for p in candidates) or not candidates:
        raise VerificationError("proof must be an object or an array of objects", what="proof")
    if verification_method is not None:
        candidates = [p for p in candidates if p.get("verificationMethod") == verification_method]
        if not candidates:
            raise VerificationError(
                f"no proof by {verification_method}",
                what="verificationMethod",
                expected=verification_method,
            )
    else:
        candidates = [p for p in candidates if p.get("cryptosuite") == CRYPTOSUITE] or candidates
    if len(candidates) != 1:
        raise VerificationError(
            f"{len(candidates)} proofs match; say which verificationMethod to verify",
            what="proof",
        )
    return dict(candidates[0])


def _decode_proof_value(value: object) -> bytes:
    if not isinstance(value, str) or not value.startswith(MULTIBASE_BASE58BTC):
        raise VerificationError(
            "proofValue must be a multibase base58btc string (prefix 'z')", what="proofValue"
        )
    if len(value) > MAX_PROOF_VALUE_CHARS:
        raise VerificationError(
            f"proofValue is longer than {MAX_PROOF_VALUE_CHARS} characters", what="proofValue"
        )
    try:
        raw = base58.b58decode(value[1:])
    except ValueError:
        raise VerificationError("proofValue is not valid base58btc", what="proofValue") from None
    if base58.b58encode(raw).decode("ascii") != value[1:]:
        raise VerificationError("proofValue is not canonical base58btc", what="proofValue")
    if len(raw) != ED25519_SIGNATURE_LENGTH:
        raise VerificationError(
            "an Ed25519 signature is 64 bytes",
            what="signature-length",
            expected=str(ED25519_SIGNATURE_LENGTH),
            actual=str(len(raw)),
        )
    return raw


def _context_values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def verify_proof(
    document_with_proof: Mapping[str, Any],
    public_key: bytes,
    *,
    verification_method: str | None = None,
    expected_proof_purpose: str | None = None,
) -> Proof:
    """Verify an ``eddsa-jcs-2022`` proof (§3.3.2) with a 32-byte Ed25519 public key.

    With a proof set, ``verification_method`` picks the proof to check (required when
    several ``eddsa-jcs-2022`` proofs are present). ``expected_proof_purpose``, when given,
    must equal the proof's ``proofPurpose`` (Data Integrity §4.4). Returns the verified
    :class:`Proof`; raises :class:`~anchor.errors.VerificationError` otherwise.
    """
    if not isinstance(document_with_proof, Mapping):
        raise VerificationError("the secured document must be a JSON object", what="proof")
    key = _check_key(public_key, "public key")
    proof = _select_proof(document_with_proof, verification_method)
    if "previousProof" in proof:
        raise VerificationError("proof chains (previousProof) are not supported", what="proof")
    options = {k: v for k, v in proof.items() if k != "proofValue"}
    # Data Integrity §4.4: type, verificationMethod and proofPurpose must be present.
    for name in ("type", "verificationMethod", "proofPurpose"):
        if not isinstance(options.get(name), str) or not options[name]:
            raise VerificationError(f"the proof has no {name}", what=name)
    if expected_proof_purpose is not None and options["proofPurpose"] != expected_proof_purpose:
        raise VerificationError(
            "the proof was made for another purpose",
            what="proofPurpose",
            expected=expected_proof_purpose,
            actual=options["proofPurpose"],
        )
    config = proof_configuration(options)  # step 6 (checks type, cryptosuite, created)
    unsecured = _without_proof(document_with_proof)  # step 1
    if "@context" in options:  # step 4
        proof_ctx = _context_values(options["@context"])
        doc_ctx = _context_values(unsecured.get("@context"))
        if "@context" not in unsecured or doc_ctx[: len(proof_ctx)] != proof_ctx:
            raise VerificationError(
                "the document's @context does not start with the proof's @context",
                what="@context",
                expected=repr(proof_ctx),
                actual=repr(unsecured.get("@context")),
            )
        unsecured["@context"] = options["@context"]
    transformed = transform(unsecured, options)  # step 5
    signature = _decode_proof_value(proof.get("proofValue"))  # step 3
    data = hash_data(config, transformed)  # step 7
    try:  # step 8
        VerifyKey(key).verify(data, signature)
    except (BadSignatureError, NaclValueError):
        raise VerificationError(
            "the Ed25519 signature does not verify",
            what="signature",
            hint="the document or its proof was altered, or the key is not the signer's",
        ) from None
    return Proof(
        verification_method=options["verificationMethod"],
        proof_purpose=options["proofPurpose"],
        proof_value=proof["proofValue"],
        created=options.get("created"),
        options=options,
    )
