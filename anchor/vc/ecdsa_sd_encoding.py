"""``ecdsa-sd-2023`` bytes: base64url, P-256 multikeys, ``r || s`` signatures, proof values.

The encodings of Data Integrity ECDSA Cryptosuites v1.0 (https://www.w3.org/TR/vc-di-ecdsa/)
that :mod:`anchor.vc.ecdsa_sd` builds on: the CBOR ``proofValue`` of a base proof
(:class:`BaseProofValue`, header ``0xd9 0x5d 0x00``) and of a derived proof
(:class:`DerivedProofValue`, header ``0xd9 0x5d 0x01``), their parsers (§3.5.2
parseBaseProofValue, §3.5.7 parseDerivedProofValue), the 35-byte P-256 multikey of the
per-proof key, and IEEE P1363 (``r || s``) ECDSA P-256 / SHA-256 signatures. A parser or a
check raises :class:`~anchor.errors.VerificationError` (``what`` names the part); a
``proofValue`` longer than :data:`MAX_PROOF_VALUE` characters is refused before decoding.

Pure (no I/O, no JSON-LD). Cost: linear in the proof value's size; one ECDSA signature or
verification (~30-60 µs) per :func:`sign_p256` / :func:`verify_p256`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any, Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from anchor.errors import VerificationError

BASE_HEADER: Final = b"\xd9\x5d\x00"
DERIVED_HEADER: Final = b"\xd9\x5d\x01"
P256_MULTIKEY_PREFIX: Final = b"\x80\x24"
"""Multicodec ``p256-pub`` (0x1200) as an unsigned varint."""
MAX_PROOF_VALUE: Final = 1 << 20
"""Largest accepted ``proofValue`` string (characters)."""


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url` (padding optional); raises ``ValueError``."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def p256_multikey(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The 35-byte multikey form (``0x80 0x24`` + SEC1 compressed point) of a P-256 key."""
    point = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return P256_MULTIKEY_PREFIX + point


def p256_from_multikey(data: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its 35-byte multikey bytes; raises ``VerificationError``."""
    if len(data) != 35 or not data.startswith(P256_MULTIKEY_PREFIX):
        raise VerificationError(
            "proof public key is not a P-256 multikey", what="proofValue", actual=data.hex()
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data[2:])
    except ValueError as exc:
        raise VerificationError(
            "proof public key is not a point on P-256", what="proofValue"
        ) from exc


def sign_p256(key: ec.EllipticCurvePrivateKey, data: bytes, *, deterministic: bool) -> bytes:
    """ECDSA P-256 / SHA-256 signature as ``r || s`` (64 bytes); RFC 6979 if deterministic."""
    der = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=deterministic))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_p256(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, what: str) -> None:
    """Check an ``r || s`` P-256 signature; raises ``VerificationError(what=what)``."""
    if len(signature) != 64:
        raise VerificationError(
            f"{what} is {len(signature)} bytes, not 64", what=what, actual=str(len(signature))
        )
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError(f"{what} does not verify", what=what) from exc


@dataclass(frozen=True)
class BaseProofValue:
    base_signature: bytes
    public_key: bytes
    hmac_key: bytes
    signatures: tuple[bytes, ...]
    mandatory_pointers: tuple[str, ...]

    def encode(self) -> str:
        body = cbor2.dumps(
            [
                self.base_signature,
                self.public_key,
                self.hmac_key,
                list(self.signatures),
                list(self.mandatory_pointers),
            ]
        )
        return "u" + b64url(BASE_HEADER + body)


@dataclass(frozen=True)
class DerivedProofValue:
    base_signature: bytes
    public_key: bytes
    signatures: tuple[bytes, ...]
    label_map: tuple[tuple[int, bytes], ...]
    """(N of ``c14nN``, HMAC digest) pairs."""
    mandatory_indexes: tuple[int, ...]

    def encode(self) -> str:
        body = cbor2.dumps(
            [
                self.base_signature,
                self.public_key,
                list(self.signatures),
                dict(self.label_map),
                list(self.mandatory_indexes),
            ]
        )
        return "u" + b64url(DERIVED_HEADER + body)

    def labels(self) -> dict[str, str]:
        """The decompressed label map: ``c14nN`` -> ``u`` + base64url(digest)."""
        return {f"c14n{k}": "u" + b64url(v) for k, v in self.label_map}


def _decode_proof_value(proof_value: Any) -> tuple[bytes, Any]:
    if not isinstance(proof_value, str) or not proof_value.startswith("u"):
        raise VerificationError(
            "proofValue must be a base64url multibase string ('u' prefix)", what="proofValue"
        )
    if len(proof_value) > MAX_PROOF_VALUE:
        raise VerificationError(f"proofValue longer than {MAX_PROOF_VALUE}", what="proofValue")
    try:
        raw = b64url_decode(proof_value[1:])
    except ValueError as exc:
        raise VerificationError("proofValue is not base64url", what="proofValue") from exc
    header, body = raw[:3], raw[3:]
    try:
        value = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise VerificationError("proofValue is not valid CBOR", what="proofValue") from exc
    return header, value


def _bytes_list(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise VerificationError(f"{what} must be an array of byte strings", what="proofValue")
    return tuple(value)


def parse_base_proof_value(proof_value: Any) -> BaseProofValue:
    """parseBaseProofValue; raises ``VerificationError(what='proofValue')``."""
    header, value = _decode_proof_value(proof_value)
    if header != BASE_HEADER:
        raise VerificationError(
            "proofValue is not an ecdsa-sd-2023 base proof",
            what="proofValue",
            expected=BASE_HEADER.hex(),
            actual=header.hex(),
        )
    if not isinstance(value, list) or len(value) != 5:
        raise VerificationError("base proofValue must hold 5 components", what="proofValue")
    base_sig, public_key, hmac_key, sigs, pointers = value
    if not all(isinstance(v, bytes) for v in (base_sig, public_key, hmac_key)):
        raise VerificationError("base proofValue components have wrong types", what="proofValue")
    if not isinstance(pointers, list) or not all(isinstance(p, str) for p in pointers):
        raise VerificationError("mandatoryPointers must be strings", what="proofValue")
    return BaseProofValue(
        base_sig, public_key, hmac_key, _bytes_list(sigs, "signatures"), tuple(pointers)
    )


def parse_derived_proof_value(proof_value: Any) -> DerivedProofValue:
    """parseDerivedProofValue; raises ``VerificationError(what='proofValue')``."""
    header, value = _decode_proof_value(proof_value)
    if header != DERIVED_HEADER:
        raise VerificationError(
            "proofValue is not an ecdsa-sd-2023 derived proof",
            what="proofValue",
            expected=DERIVED_HEADER.hex(),
            actual=header.hex(),
        )
    if not isinstance(value, list) or len(value) != 5:
        raise VerificationError("derived proofValue must hold 5 components", what="proofValue")
    base_sig, public_key, sigs, label_map, indexes = value
    if not (isinstance(base_sig, bytes) and isinstance(public_key, bytes)):
        raise VerificationError("derived proofValue components have wrong types", what="proofValue")
    if not isinstance(label_map, dict) or not all(
        isinstance(k, int) and k >= 0 and isinstance(v, bytes) for k, v in label_map.items()
    ):
        raise VerificationError("label map must map integers to bytes", what="proofValue")
    if not isinstance(indexes, list) or not all(isinstance(i, int) and i >= 0 for i in indexes):
        raise VerificationError("mandatoryIndexes must be integers", what="proofValue")
    return DerivedProofValue(
        base_sig,
        public_key,
        _bytes_list(sigs, "signatures"),
        tuple(sorted(label_map.items())),
        tuple(indexes),
    )
