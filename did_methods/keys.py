"""Public keys of verification methods: validation, JWK and raw bytes, pure (no I/O).

Raw key bytes, the form every function here returns, are: 32 bytes for Ed25519 and X25519;
the SEC1 *compressed* point for secp256k1, P-256, P-384 and P-521 (33, 33, 49, 67 bytes).

:func:`public_key_bytes` reads a verification method in any of the forms found in DID
documents: ``publicKeyMultibase`` (``Multikey``, ``Ed25519VerificationKey2020``,
``X25519KeyAgreementKey2020``), ``publicKeyJwk`` (OKP Ed25519/X25519, EC secp256k1 and
P-256/384/521) and, for the legacy types that name their key type, ``publicKeyBase58``.

Ed25519 -> X25519 (:func:`ed25519_to_x25519`) is the birational map of RFC 7748 §4.1,
``u = (1 + y) / (1 - y) mod p``. It gives the same bytes as libsodium's
``crypto_sign_ed25519_pk_to_curve25519`` (the tests check that against pynacl) at a fraction
of its cost: libsodium also proves the point lies in the prime-order subgroup with a scalar
multiplication (about 80 µs), which made 10,000 did:key resolutions take over a second.
Here the point is checked to be canonical, on the curve (libsodium's point decoding, via
pynacl's ``crypto_core_ed25519_add``) and not of small order; a mixed-order point passes
these checks, and signature verification rejects it later.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_core_ed25519_add
from nacl.exceptions import CryptoError

from did_methods.multikey import (
    CODEC_BY_KEY_TYPE,
    KeyType,
    MultikeyError,
    b58decode,
    decode_multikey,
)

_P = 2**255 - 19
"""The field prime of Curve25519 / Ed25519."""
_Y_ORDER_8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
"""The y coordinate of the Ed25519 points of order 8 (with ``_P - _Y_ORDER_8``): 2P has
y = 0, i.e. y² = -x², which on -x² + y² = 1 + d·x²·y² gives x² = (1 ± √(1+d)) / d."""
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y_ORDER_8, _P - _Y_ORDER_8})
"""y coordinates of the eight small-order Ed25519 points (orders 1, 2, 4 and 8)."""

_EC_CURVES: Mapping[KeyType, ec.EllipticCurve] = {
    KeyType.SECP256K1: ec.SECP256K1(),
    KeyType.P256: ec.SECP256R1(),
    KeyType.P384: ec.SECP384R1(),
    KeyType.P521: ec.SECP521R1(),
}
_COORDINATE_BYTES: Mapping[KeyType, int] = {
    KeyType.SECP256K1: 32,
    KeyType.P256: 32,
    KeyType.P384: 48,
    KeyType.P521: 66,
}
_OKP_TYPES = {KeyType.ED25519.value: KeyType.ED25519, KeyType.X25519.value: KeyType.X25519}
_EC_TYPES = {key_type.value: key_type for key_type in _EC_CURVES}
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]*")

MULTIBASE_TYPES: Mapping[str, KeyType | None] = {
    "Multikey": None,
    "Ed25519VerificationKey2020": KeyType.ED25519,
    "X25519KeyAgreementKey2020": KeyType.X25519,
}
"""Verification method types read from ``publicKeyMultibase``, with the key type each one
requires (``None``: any, the multicodec header says which)."""
BASE58_TYPES: Mapping[str, KeyType] = {
    "Ed25519VerificationKey2018": KeyType.ED25519,
    "X25519KeyAgreementKey2019": KeyType.X25519,
    "EcdsaSecp256k1VerificationKey2019": KeyType.SECP256K1,
}
"""Legacy verification method types read from ``publicKeyBase58`` (not self-describing, so
the type must say what the key is)."""
_KEY_PROPERTIES = ("publicKeyMultibase", "publicKeyJwk", "publicKeyBase58")


class PublicKeyError(ValueError):
    """A verification method's public key cannot be read."""


class InvalidPublicKeyError(PublicKeyError):
    """The bytes are not a valid public key of their type (e.g. not a point on the curve)."""


class UnsupportedPublicKeyError(PublicKeyError):
    """The verification method type or key type is not supported here."""


def _ed25519_y(raw: bytes) -> int:
    """The y coordinate of an Ed25519 point encoding, checked canonical and of large order."""
    if len(raw) != 32:
        raise InvalidPublicKeyError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _P:
        raise InvalidPublicKeyError("the Ed25519 public key is not canonically encoded")
    if y in _SMALL_ORDER_Y:
        raise InvalidPublicKeyError("the Ed25519 public key is a point of small order")
    try:
        # Decodes both operands (rejecting points off the curve); the sum is not needed.
        crypto_core_ed25519_add(raw, raw)
    except (CryptoError, RuntimeError):
        raise InvalidPublicKeyError("the Ed25519 public key is not a point on the curve") from None
    return y


def ed25519_to_x25519(raw: bytes) -> bytes:
    """The X25519 public key of an Ed25519 public key (RFC 7748 §4.1 birational map).

    Raises :class:`InvalidPublicKeyError` when ``raw`` is not a valid Ed25519 public key.
    """
    y = _ed25519_y(raw)
    u = (1 + y) * pow(1 - y, -1, _P) % _P
    return u.to_bytes(32, "little")


def validate_public_key(key_type: KeyType, raw: bytes) -> None:
    """Check that ``raw`` is a valid public key of ``key_type`` (length, point on curve).

    Raises :class:`InvalidPublicKeyError`.
    """
    if key_type is KeyType.ED25519:
        _ed25519_y(raw)
        return
    if key_type is KeyType.X25519:
        if len(raw) != 32:
            raise InvalidPublicKeyError(f"an X25519 public key is 32 bytes, not {len(raw)}")
        return
    _ec_public_key(key_type, raw)


def _ec_public_key(key_type: KeyType, raw: bytes) -> ec.EllipticCurvePublicKey:
    expected = CODEC_BY_KEY_TYPE[key_type].length
    if len(raw) != expected:
        raise InvalidPublicKeyError(
            f"a compressed {key_type.value} public key is {expected} bytes, not {len(raw)}"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[key_type], raw)
    except ValueError:
        raise InvalidPublicKeyError(
            f"the {key_type.value} public key is not a valid point on the curve"
        ) from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: object, name: str) -> bytes:
    if not isinstance(text, str) or _BASE64URL_RE.fullmatch(text) is None:
        raise PublicKeyError(f"JWK member {name!r} must be an unpadded base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise PublicKeyError(f"JWK member {name!r} is not valid base64url: {exc}") from None


def public_key_to_jwk(key_type: KeyType, raw: bytes) -> dict[str, str]:
    """The public JWK (RFC 7517/8037) of a raw public key (validated first)."""
    validate_public_key(key_type, raw)
    if key_type in (KeyType.ED25519, KeyType.X25519):
        return {"kty": "OKP", "crv": key_type.value, "x": _b64url(raw)}
    numbers = _ec_public_key(key_type, raw).public_numbers()
    size = _COORDINATE_BYTES[key_type]
    return {
        "kty": "EC",
        "crv": key_type.value,
        "x": _b64url(numbers.x.to_bytes(size, "big")),
        "y": _b64url(numbers.y.to_bytes(size, "big")),
    }


def public_key_from_jwk(jwk: Mapping[str, Any]) -> tuple[KeyType, bytes]:
    """Key type and raw bytes (EC keys compressed) of a public JWK; validated.

    Raises :class:`PublicKeyError` (including for a JWK carrying private key material).
    """
    if not isinstance(jwk, Mapping):
        raise PublicKeyError("publicKeyJwk must be a JSON object")
    if "d" in jwk:
        raise PublicKeyError("publicKeyJwk contains private key material ('d'); refusing it")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "OKP" and isinstance(crv, str) and crv in _OKP_TYPES:
        key_type = _OKP_TYPES[crv]
        raw = _b64url_decode(jwk.get("x"), "x")
        validate_public_key(key_type, raw)
        return key_type, raw
    if kty == "EC" and isinstance(crv, str) and crv in _EC_TYPES:
        key_type = _EC_TYPES[crv]
        size = _COORDINATE_BYTES[key_type]
        x = _b64url_decode(jwk.get("x"), "x")
        y = _b64url_decode(jwk.get("y"), "y")
        if len(x) != size or len(y) != size:
            raise InvalidPublicKeyError(
                f"{crv} JWK coordinates are {size} bytes each, not {len(x)} and {len(y)}"
            )
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), _EC_CURVES[key_type]
        )
        try:
            key = numbers.public_key()
        except ValueError:
            raise InvalidPublicKeyError(f"the {crv} JWK is not a point on the curve") from None
        return key_type, key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    raise UnsupportedPublicKeyError(
        f"JWK kty={kty!r} crv={crv!r} is not supported; supported: OKP Ed25519/X25519, "
        "EC secp256k1/P-256/P-384/P-521"
    )


def _compress_secp256k1(raw: bytes) -> bytes:
    if len(raw) == 65 and raw[0] == 4:
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
        except ValueError:
            raise InvalidPublicKeyError("the secp256k1 key is not a point on the curve") from None
        return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    return raw


def public_key_bytes(vm: Mapping[str, Any]) -> tuple[KeyType, bytes]:
    """Key type and raw public key bytes of a verification method; validated.

    Exactly one of ``publicKeyMultibase``, ``publicKeyJwk`` and ``publicKeyBase58`` must be
    present. A self-describing encoding (Multikey, JWK) is accepted under any ``type``
    unless the type names another key type (``Ed25519VerificationKey2020`` must hold an
    Ed25519 key). Raises :class:`PublicKeyError`.
    """
    if not isinstance(vm, Mapping):
        raise PublicKeyError("a verification method must be a JSON object")
    present = [name for name in _KEY_PROPERTIES if name in vm]
    if len(present) != 1:
        raise PublicKeyError(
            "a verification method needs exactly one of "
            + ", ".join(_KEY_PROPERTIES)
            + (f"; it has {', '.join(present)}" if present else "; it has none")
        )
    vm_type = vm.get("type")
    prop = present[0]
    if prop == "publicKeyJwk":
        return public_key_from_jwk(vm["publicKeyJwk"])
    value = vm[prop]
    if not isinstance(value, str):
        raise PublicKeyError(f"{prop} must be a string")
    if prop == "publicKeyMultibase":
        try:
            key = decode_multikey(value)
        except MultikeyError as exc:
            raise PublicKeyError(f"publicKeyMultibase: {exc}") from exc
        required = MULTIBASE_TYPES.get(vm_type) if isinstance(vm_type, str) else None
        if required is not None and key.key_type is not required:
            raise PublicKeyError(
                f"a {vm_type} must hold a {required.value} key, not {key.key_type.value}"
            )
        validate_public_key(key.key_type, key.raw)
        return key.key_type, key.raw
    # publicKeyBase58: the type has to say what the key is.
    key_type = BASE58_TYPES.get(vm_type) if isinstance(vm_type, str) else None
    if key_type is None:
        raise UnsupportedPublicKeyError(
            f"publicKeyBase58 is only read for the types {', '.join(BASE58_TYPES)}, not {vm_type!r}"
        )
    try:
        raw = b58decode(value)
    except MultikeyError as exc:
        raise PublicKeyError(f"publicKeyBase58: {exc}") from exc
    if key_type is KeyType.SECP256K1:
        raw = _compress_secp256k1(raw)
    validate_public_key(key_type, raw)
    return key_type, raw
