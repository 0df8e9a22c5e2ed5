"""did:ethr identifiers: parsing ``did:ethr:[<network>:]<address or public key>``.

:func:`parse_ethr_did` checks the syntax, the EIP-55 checksum of a mixed-case address and,
for a public-key DID, that the key is a compressed secp256k1 point, and derives the identity
address (:func:`address_of_public_key`). The patterns of network names and hex chain ids are
shared with the driver's network configuration.

Pure (no I/O). Cost: a regular expression match and, for a public-key DID, one point
decompression and one Keccak-256 hash (tens of microseconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from did_methods.syntax import DidSyntaxError, ParsedDid, parse_did

METHOD: Final = "ethr"

_ADDRESS_HEX_DIGITS = 40
_PUBLIC_KEY_HEX_DIGITS = 66
_IDENTIFIER_RE = re.compile(r"0x(?P<hex>[0-9a-fA-F]{40}|[0-9a-fA-F]{66})")
HEX_CHAIN_ID_RE: Final = re.compile(r"0x[0-9a-fA-F]+")
"""A network label that is a hex chain id (``0x7a69``)."""
NETWORK_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]+(?::[A-Za-z0-9._-]+)*")
"""A network label or name: segments of letters, digits, ``.``, ``-``, ``_`` joined by ``:``."""
_COMPRESSED_KEY_PREFIXES = (b"\x02", b"\x03")


class InvalidEthrDidError(ValueError):
    """The text is not a did:ethr; the message says why."""


@dataclass(frozen=True, slots=True)
class EthrIdentifier:
    """A parsed did:ethr: the DID, its network label, identity address and public key.

    ``network`` is the label as written (``None`` when the DID has none); ``address`` is
    EIP-55 checksummed; ``public_key`` is the compressed secp256k1 key of a public-key DID.
    """

    did: str
    network: str | None
    address: ChecksumAddress
    public_key: bytes | None = None


def _uncompressed_secp256k1(raw: bytes) -> bytes:
    """The 65-byte uncompressed form of a secp256k1 point (``ValueError`` when not one)."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def compressed_secp256k1(raw: bytes) -> bytes:
    """The 33-byte compressed form of a secp256k1 point (``ValueError`` when not one)."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def address_of_public_key(public_key: bytes) -> ChecksumAddress:
    """The Ethereum address of a secp256k1 public key (compressed or uncompressed).

    Raises ``ValueError`` when the bytes are not a point on the curve.
    """
    uncompressed = _uncompressed_secp256k1(public_key)
    return to_checksum_address(keccak(uncompressed[1:])[-20:])


def parse_ethr_did(did: str | ParsedDid) -> EthrIdentifier:
    """Split a did:ethr into network label and identity. Raises :class:`InvalidEthrDidError`."""
    if isinstance(did, str):
        try:
            did = parse_did(did)
        except DidSyntaxError as exc:
            raise InvalidEthrDidError(str(exc)) from None
    if did.method != METHOD:
        raise InvalidEthrDidError(f"{did.did!r} is not a did:ethr (method {did.method})")
    network, _, identifier = did.method_specific_id.rpartition(":")
    match = _IDENTIFIER_RE.fullmatch(identifier)
    if match is None:
        raise InvalidEthrDidError(
            f"{did.did!r} is not a did:ethr: the identifier {identifier!r} must be 0x and "
            f"{_ADDRESS_HEX_DIGITS} hex digits (an address) or {_PUBLIC_KEY_HEX_DIGITS} hex "
            "digits (a compressed secp256k1 public key)"
        )
    if network and not NETWORK_NAME_RE.fullmatch(network):
        raise InvalidEthrDidError(
            f"{did.did!r} is not a did:ethr: the network {network!r} is empty or has an "
            "empty segment"
        )
    digits = match["hex"]
    if len(digits) == _ADDRESS_HEX_DIGITS:
        address = to_checksum_address("0x" + digits)
        if digits not in (digits.lower(), digits.upper()) and address[2:] != digits:
            raise InvalidEthrDidError(
                f"{did.did!r}: the address has mixed case but a wrong EIP-55 checksum "
                f"(expected {address}); write it all lowercase or with the right checksum"
            )
        return EthrIdentifier(did.did, network or None, address)
    public_key = bytes.fromhex(digits)
    if public_key[:1] not in _COMPRESSED_KEY_PREFIXES:
        raise InvalidEthrDidError(
            f"{did.did!r}: a public-key did:ethr holds a compressed secp256k1 key, which "
            f"starts with 02 or 03, not {digits[:2]}"
        )
    try:
        address = address_of_public_key(public_key)
    except ValueError:
        raise InvalidEthrDidError(
            f"{did.did!r}: {identifier} is not a point on the secp256k1 curve"
        ) from None
    return EthrIdentifier(did.did, network or None, address, public_key)
