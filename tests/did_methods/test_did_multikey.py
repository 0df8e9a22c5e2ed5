"""Multikey encoding (multibase base58btc + multicodec varint) and public key decoding."""

from __future__ import annotations

import base64

import base58
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519, crypto_sign_seed_keypair

from did_methods.keys import (
    InvalidPublicKeyError,
    PublicKeyError,
    UnsupportedPublicKeyError,
    ed25519_to_x25519,
    public_key_bytes,
    public_key_from_jwk,
    public_key_to_jwk,
    validate_public_key,
)
from did_methods.multikey import (
    KEY_CODECS,
    Base58Error,
    KeyLengthError,
    KeyType,
    MultibasePrefixError,
    UnknownCodecError,
    UnsupportedKeyCodecError,
    VarintError,
    b58decode,
    b58encode,
    decode_multikey,
    decode_multikey_bytes,
    encode_multikey,
    multibase_decode,
    varint_decode,
    varint_encode,
)

_P = 2**255 - 19
_CURVES = {
    KeyType.SECP256K1: ec.SECP256K1(),
    KeyType.P256: ec.SECP256R1(),
    KeyType.P384: ec.SECP384R1(),
    KeyType.P521: ec.SECP521R1(),
}


def _raw_key(key_type: KeyType) -> bytes:
    """A fresh public key of ``key_type``, made with cryptography (independent code)."""
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    if key_type is KeyType.X25519:
        return x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    private = ec.generate_private_key(_CURVES[key_type])
    return private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


# -- base58 and varint -----------------------------------------------------------------


@given(st.binary(min_size=1, max_size=80))
def test_base58_matches_the_reference_library(data: bytes) -> None:
    encoded = b58encode(data)
    assert encoded == base58.b58encode(data).decode("ascii")
    assert b58decode(encoded) == data


def test_base58_leading_zeros_and_errors() -> None:
    assert b58encode(b"\0\0\x01") == "112"
    assert b58decode("112") == b"\0\0\x01"
    with pytest.raises(Base58Error, match="'0' at position 2"):
        b58decode("ab0c")
    with pytest.raises(Base58Error, match="empty"):
        b58decode("")


@given(st.integers(min_value=0, max_value=2**63 - 1), st.binary(max_size=4))
def test_varint_round_trip(value: int, tail: bytes) -> None:
    encoded = varint_encode(value)
    assert varint_decode(encoded + tail) == (value, len(encoded))


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (0x7F, b"\x7f"), (0xED, b"\xed\x01"), (0x1200, b"\x80\x24")],
)
def test_varint_known_encodings(value: int, encoded: bytes) -> None:
    assert varint_encode(value) == encoded


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\xed", "truncated"),
        (b"\xed\x80", "truncated"),
        (b"\x80\x00", "not minimally encoded"),
        (b"\xed\x81\x00", "not minimally encoded"),
        (b"\xff" * 9 + b"\x01", "longer than 9 bytes"),
    ],
)
def test_varint_errors(data: bytes, message: str) -> None:
    with pytest.raises(VarintError, match=message):
        varint_decode(data)


def test_varint_encode_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        varint_encode(-1)
    with pytest.raises(ValueError, match="out of range"):
        varint_encode(2**63)


# -- multikey ----------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_multikey_round_trip_and_prefixes(key_type: KeyType) -> None:
    raw = _raw_key(key_type)
    encoded = encode_multikey(key_type, raw)
    expected_prefix = {
        KeyType.ED25519: "z6Mk",
        KeyType.X25519: "z6LS",
        KeyType.SECP256K1: "zQ3s",
        KeyType.P256: "zDna",
        KeyType.P384: "z82L",
        KeyType.P521: "z2J9",
    }[key_type]
    assert encoded.startswith(expected_prefix)
    decoded = decode_multikey(encoded)
    assert decoded.key_type is key_type
    assert decoded.raw == raw
    # Independent check of the layout: varint header then raw key, base58btc.
    payload = base58.b58decode(encoded[1:])
    assert payload == varint_encode(decoded.codec.code) + raw


def test_codec_table() -> None:
    lengths = {codec.code: (codec.key_type, codec.length) for codec in KEY_CODECS.values()}
    assert lengths == {
        0xED: (KeyType.ED25519, 32),
        0xEC: (KeyType.X25519, 32),
        0xE7: (KeyType.SECP256K1, 33),
        0x1200: (KeyType.P256, 33),
        0x1201: (KeyType.P384, 49),
        0x1202: (KeyType.P521, 67),
    }


def test_multikey_errors_each_have_their_own_class() -> None:
    good = encode_multikey(KeyType.ED25519, _raw_key(KeyType.ED25519))
    with pytest.raises(MultibasePrefixError, match="only base58btc"):
        decode_multikey("u" + good[1:])
    with pytest.raises(MultibasePrefixError, match="starts with nothing"):
        multibase_decode("")
    with pytest.raises(Base58Error, match="not a base58btc character"):
        decode_multikey(good[:10] + "0" + good[11:])
    with pytest.raises(VarintError):
        decode_multikey_bytes(b"\xed")
    with pytest.raises(UnknownCodecError, match="0x12 is not a known public key type") as unknown:
        decode_multikey_bytes(b"\x12\x20" + bytes(32))  # sha2-256 multihash, not a key
    assert unknown.value.code == 0x12
    with pytest.raises(UnsupportedKeyCodecError, match="rsa-pub") as unsupported:
        decode_multikey_bytes(varint_encode(0x1205) + bytes(270))
    assert (unsupported.value.code, unsupported.value.name) == (0x1205, "rsa-pub")
    with pytest.raises(KeyLengthError, match="32 bytes, not 31") as short:
        decode_multikey_bytes(b"\xed\x01" + bytes(31))
    assert short.value.actual == 31
    with pytest.raises(KeyLengthError, match="33 bytes, not 65"):
        encode_multikey(KeyType.P256, bytes(65))


# -- key validation and conversion -------------------------------------------------------


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32))
def test_ed25519_to_x25519_matches_libsodium(seed: bytes) -> None:
    public, _ = crypto_sign_seed_keypair(seed)
    assert ed25519_to_x25519(public) == crypto_sign_ed25519_pk_to_curve25519(public)


def test_small_order_and_off_curve_ed25519_keys_are_refused() -> None:
    y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
    small_order = [0, 1, _P - 1, y8, _P - y8]
    for y in small_order:
        for sign in (0, 1 << 255):
            encoded = (y | sign).to_bytes(32, "little")
            # libsodium refuses them too: the blocklist is not an invention.
            with pytest.raises(RuntimeError):
                crypto_sign_ed25519_pk_to_curve25519(encoded)
            with pytest.raises(InvalidPublicKeyError, match="small order"):
                ed25519_to_x25519(encoded)
    off_curve = (2).to_bytes(32, "little")  # y = 2 has no x on the curve
    with pytest.raises(InvalidPublicKeyError, match="not a point on the curve"):
        validate_public_key(KeyType.ED25519, off_curve)
    non_canonical = (_P + 3).to_bytes(32, "little")
    with pytest.raises(InvalidPublicKeyError, match="not canonically encoded"):
        validate_public_key(KeyType.ED25519, non_canonical)


@pytest.mark.parametrize("key_type", [KeyType.SECP256K1, KeyType.P256, KeyType.P384, KeyType.P521])
def test_ec_points_off_the_curve_are_refused(key_type: KeyType) -> None:
    raw = bytearray(_raw_key(key_type))
    validate_public_key(key_type, bytes(raw))
    # Find an x with no point on the curve (about half of all x values).
    for delta in range(1, 200):
        candidate = bytes(raw[:-1]) + bytes([(raw[-1] + delta) % 256])
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[key_type], candidate)
        except ValueError:
            break
    else:
        pytest.fail("no off-curve x found")
    with pytest.raises(InvalidPublicKeyError, match="not a valid point"):
        validate_public_key(key_type, candidate)
    with pytest.raises(InvalidPublicKeyError, match="bytes"):
        validate_public_key(key_type, bytes(raw) + b"\0")


@pytest.mark.parametrize("key_type", list(KeyType))
def test_jwk_round_trip(key_type: KeyType) -> None:
    raw = _raw_key(key_type)
    jwk = public_key_to_jwk(key_type, raw)
    assert jwk["crv"] == key_type.value
    assert public_key_from_jwk(jwk) == (key_type, raw)
    assert public_key_bytes({"type": "JsonWebKey2020", "publicKeyJwk": jwk}) == (key_type, raw)


def test_jwk_matches_cryptography_for_ec() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    raw = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    jwk = public_key_to_jwk(KeyType.P256, raw)

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

    assert jwk == {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y)}


def test_jwk_errors() -> None:
    raw = _raw_key(KeyType.P256)
    jwk = public_key_to_jwk(KeyType.P256, raw)
    with pytest.raises(PublicKeyError, match="private key material"):
        public_key_from_jwk({**jwk, "d": "AAAA"})
    with pytest.raises(UnsupportedPublicKeyError, match="not supported"):
        public_key_from_jwk({"kty": "RSA", "n": "AQAB", "e": "AQAB"})
    with pytest.raises(PublicKeyError, match="unpadded base64url"):
        public_key_from_jwk({**jwk, "x": jwk["x"] + "="})
    with pytest.raises(InvalidPublicKeyError, match="32 bytes each"):
        public_key_from_jwk({**jwk, "x": jwk["x"][:-4]})
    bad_y = base64.urlsafe_b64encode(bytes(31) + b"\x05").rstrip(b"=").decode()
    with pytest.raises(InvalidPublicKeyError, match="not a point on the curve"):
        public_key_from_jwk({**jwk, "y": bad_y})


def test_public_key_bytes_forms() -> None:
    ed = _raw_key(KeyType.ED25519)
    multikey = encode_multikey(KeyType.ED25519, ed)
    assert public_key_bytes({"type": "Multikey", "publicKeyMultibase": multikey}) == (
        KeyType.ED25519,
        ed,
    )
    assert public_key_bytes(
        {"type": "Ed25519VerificationKey2020", "publicKeyMultibase": multikey}
    ) == (KeyType.ED25519, ed)
    assert public_key_bytes(
        {"type": "Ed25519VerificationKey2018", "publicKeyBase58": base58.b58encode(ed).decode()}
    ) == (KeyType.ED25519, ed)

    k1 = ec.generate_private_key(ec.SECP256K1()).public_key()
    compressed = k1.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    uncompressed = k1.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    for form in (compressed, uncompressed):
        vm = {
            "type": "EcdsaSecp256k1VerificationKey2019",
            "publicKeyBase58": base58.b58encode(form).decode(),
        }
        assert public_key_bytes(vm) == (KeyType.SECP256K1, compressed)


@pytest.mark.parametrize(
    ("vm", "message"),
    [
        ({"type": "Multikey"}, "it has none"),
        (
            {"type": "Multikey", "publicKeyMultibase": "z6Mk", "publicKeyBase58": "abc"},
            "it has publicKeyMultibase, publicKeyBase58",
        ),
        ({"type": "Multikey", "publicKeyMultibase": 5}, "must be a string"),
        ({"type": "Multikey", "publicKeyMultibase": "uAAAA"}, "publicKeyMultibase: "),
        ({"type": "SomethingElse2099", "publicKeyBase58": "abc"}, "only read for the types"),
        ({"type": "Ed25519VerificationKey2018", "publicKeyBase58": "0OIl"}, "publicKeyBase58: "),
    ],
)
def test_public_key_bytes_errors(vm: dict[str, object], message: str) -> None:
    with pytest.raises(PublicKeyError, match=message):
        public_key_bytes(vm)


def test_declared_type_must_agree_with_the_key() -> None:
    p256 = encode_multikey(KeyType.P256, _raw_key(KeyType.P256))
    with pytest.raises(PublicKeyError, match="must hold a Ed25519 key, not P-256"):
        public_key_bytes({"type": "Ed25519VerificationKey2020", "publicKeyMultibase": p256})
    with pytest.raises(PublicKeyError, match="a verification method must be a JSON object"):
        public_key_bytes("did:key:z6Mk")  # type: ignore[arg-type]
