"""Multikey encoding: multibase base58btc (``z``) over a multicodec varint header, pure.

A Multikey value (W3C Controlled Identifiers §2.2.2, the did:key format) is::

    "z" + base58btc( varint(multicodec) || raw public key bytes )

with the unsigned-varint of the multiformats project (LEB128, at most 9 bytes, minimally
encoded) and the Bitcoin base58 alphabet. Supported public key codecs (see
:data:`KEY_CODECS`): Ed25519 (``0xed``, 32 bytes), X25519 (``0xec``, 32), secp256k1
(``0xe7``, 33, SEC1 compressed), P-256 (``0x1200``, 33), P-384 (``0x1201``, 49) and P-521
(``0x1202``, 67), the elliptic curve keys SEC1-compressed.

Every failure raises its own subclass of :class:`MultikeyError` (itself a ``ValueError``):
:class:`MultibasePrefixError`, :class:`Base58Error`, :class:`VarintError`,
:class:`UnknownCodecError`, :class:`UnsupportedKeyCodecError`, :class:`KeyLengthError`.
This module checks encodings and lengths only; whether the bytes are a valid curve point is
:func:`did_methods.keys.validate_public_key`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
"""The Bitcoin base58 alphabet used by multibase ``base58btc``."""
MULTIBASE_BASE58BTC = "z"
"""Multibase prefix of base58btc."""
MAX_VARINT_BYTES = 9
"""Longest unsigned varint accepted (the multiformats limit: 63-bit values)."""

_B58_INDEX = {char: index for index, char in enumerate(BASE58_ALPHABET)}
_B58_PAIR_BASE = 58 * 58
_B58_CHUNK = _B58_PAIR_BASE * _B58_PAIR_BASE
_B58_PAIRS = [a + b for a in BASE58_ALPHABET for b in BASE58_ALPHABET]
_B58_PAIR_INDEX = {pair: index for index, pair in enumerate(_B58_PAIRS)}


class KeyType(StrEnum):
    """A public key's algorithm; the value is its JOSE ``crv`` name."""

    ED25519 = "Ed25519"
    X25519 = "X25519"
    SECP256K1 = "secp256k1"
    P256 = "P-256"
    P384 = "P-384"
    P521 = "P-521"


@dataclass(frozen=True, slots=True)
class KeyCodec:
    """One multicodec public key type: its code, name, key type and raw key length."""

    code: int
    name: str
    key_type: KeyType
    length: int


KEY_CODECS: Mapping[int, KeyCodec] = {
    codec.code: codec
    for codec in (
        KeyCodec(0xED, "ed25519-pub", KeyType.ED25519, 32),
        KeyCodec(0xEC, "x25519-pub", KeyType.X25519, 32),
        KeyCodec(0xE7, "secp256k1-pub", KeyType.SECP256K1, 33),
        KeyCodec(0x1200, "p256-pub", KeyType.P256, 33),
        KeyCodec(0x1201, "p384-pub", KeyType.P384, 49),
        KeyCodec(0x1202, "p521-pub", KeyType.P521, 67),
    )
}
"""The supported public key multicodecs, by code."""
CODEC_BY_KEY_TYPE: Mapping[KeyType, KeyCodec] = {c.key_type: c for c in KEY_CODECS.values()}
_HEADERS: Mapping[KeyType, bytes] = {}  # filled below, once varint_encode exists

UNSUPPORTED_KEY_CODECS: Mapping[int, str] = {
    0xEA: "bls12_381-g1-pub",
    0xEB: "bls12_381-g2-pub",
    0xEE: "bls12_381-g1g2-pub",
    0xEF: "sr25519-pub",
    0x1203: "ed448-pub",
    0x1204: "x448-pub",
    0x1205: "rsa-pub",
    0x1206: "sm2-pub",
}
"""Public key multicodecs that exist but that this package does not support."""


class MultikeyError(ValueError):
    """Base of every Multikey decoding/encoding failure."""


class MultibasePrefixError(MultikeyError):
    """The value does not start with the base58btc multibase prefix ``z``."""


class Base58Error(MultikeyError):
    """The value is not base58btc (a character outside the alphabet, or empty)."""


class VarintError(MultikeyError):
    """The multicodec header is not a valid, minimal unsigned varint."""


class UnknownCodecError(MultikeyError):
    """The multicodec header names no public key type known here."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class UnsupportedKeyCodecError(MultikeyError):
    """The multicodec header names a public key type this package does not support."""

    def __init__(self, message: str, code: int, name: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class KeyLengthError(MultikeyError):
    """The raw key has the wrong length for its key type."""

    def __init__(self, message: str, codec: KeyCodec, actual: int) -> None:
        super().__init__(message)
        self.codec = codec
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Multikey:
    """A decoded Multikey: the codec and the raw public key bytes."""

    codec: KeyCodec
    raw: bytes

    @property
    def key_type(self) -> KeyType:
        """The key's algorithm."""
        return self.codec.key_type


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet) of ``data``; each leading zero byte becomes ``1``."""
    number = int.from_bytes(data, "big")
    # Four digits per big-integer division (58**4 fits in one CPython digit), each chunk
    # written with two lookups of a two-digit table: several times fewer Python steps.
    pieces: list[str] = []
    while number:
        number, chunk = divmod(number, _B58_CHUNK)
        high, low = divmod(chunk, _B58_PAIR_BASE)
        pieces.append(_B58_PAIRS[low])
        pieces.append(_B58_PAIRS[high])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(pieces)).lstrip("1")


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`. Raises :class:`Base58Error`."""
    if not text:
        raise Base58Error("the base58btc value is empty")
    try:
        # Two digits per step through a table of all digit pairs (as in b58encode).
        odd = len(text) % 2
        number = _B58_INDEX[text[0]] if odd else 0
        for start in range(odd, len(text), 2):
            number = number * _B58_PAIR_BASE + _B58_PAIR_INDEX[text[start : start + 2]]
    except KeyError:
        position, char = next((i, c) for i, c in enumerate(text) if c not in _B58_INDEX)
        raise Base58Error(
            f"{char!r} at position {position} is not a base58btc character "
            "(0, O, I and l are excluded from the alphabet)"
        ) from None
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def varint_encode(value: int) -> bytes:
    """The unsigned varint (LEB128) of ``value``, 0 <= value < 2**63."""
    if not 0 <= value < 1 << (7 * MAX_VARINT_BYTES):
        raise ValueError(f"{value} is out of range for an unsigned varint")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_decode(data: bytes) -> tuple[int, int]:
    """Decode the unsigned varint at the start of ``data``: ``(value, bytes used)``.

    Raises :class:`VarintError` when it is truncated, too long or not minimally encoded.
    """
    value = 0
    for index, byte in enumerate(data[:MAX_VARINT_BYTES]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise VarintError("the multicodec varint is not minimally encoded")
            return value, index + 1
    if len(data) >= MAX_VARINT_BYTES:
        raise VarintError(f"the multicodec varint is longer than {MAX_VARINT_BYTES} bytes")
    raise VarintError("the multicodec varint is truncated")


def multibase_encode(data: bytes) -> str:
    """Multibase base58btc: ``"z" + b58encode(data)``."""
    return MULTIBASE_BASE58BTC + b58encode(data)


def multibase_decode(text: str) -> bytes:
    """Inverse of :func:`multibase_encode`. Raises :class:`MultibasePrefixError` or
    :class:`Base58Error`."""
    if not text.startswith(MULTIBASE_BASE58BTC):
        shown = repr(text[0]) if text else "nothing"
        raise MultibasePrefixError(
            f"the multibase value starts with {shown}; only base58btc (prefix 'z') is supported"
        )
    return b58decode(text[1:])


def encode_multikey(key_type: KeyType, raw: bytes) -> str:
    """The Multikey string (``z...``) of a raw public key. Raises :class:`KeyLengthError`."""
    _check_length(CODEC_BY_KEY_TYPE[key_type], raw)
    return MULTIBASE_BASE58BTC + b58encode(_HEADERS[key_type] + raw)


def decode_multikey_bytes(data: bytes) -> Multikey:
    """Split multicodec-prefixed key bytes into codec and raw key, checking the length."""
    code, used = varint_decode(data)
    codec = KEY_CODECS.get(code)
    if codec is None:
        name = UNSUPPORTED_KEY_CODECS.get(code)
        if name is not None:
            raise UnsupportedKeyCodecError(
                f"public key type {name} (multicodec 0x{code:x}) is not supported; supported: "
                + ", ".join(f"{c.name} (0x{c.code:x})" for c in KEY_CODECS.values()),
                code,
                name,
            )
        raise UnknownCodecError(f"multicodec 0x{code:x} is not a known public key type", code)
    raw = data[used:]
    _check_length(codec, raw)
    return Multikey(codec, raw)


def decode_multikey(text: str) -> Multikey:
    """Decode a Multikey string (``z...``) into codec and raw public key bytes."""
    return decode_multikey_bytes(multibase_decode(text))


def _check_length(codec: KeyCodec, raw: bytes) -> None:
    if len(raw) != codec.length:
        raise KeyLengthError(
            f"a {codec.key_type.value} public key ({codec.name}) is {codec.length} bytes, "
            f"not {len(raw)}",
            codec,
            len(raw),
        )


_HEADERS = {key_type: varint_encode(codec.code) for key_type, codec in CODEC_BY_KEY_TYPE.items()}
