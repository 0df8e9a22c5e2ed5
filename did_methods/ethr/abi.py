"""did:ethr: the ERC-1056 registry's ABI and the encodings of the calls the driver makes.

Holds :data:`REGISTRY_ABI` (the two views and three events the driver uses), the function
selectors and event topics derived from it, the encoding of a ``changed`` / ``identityOwner``
call, the decoding of its result, and :class:`RegistryReadError`, raised wherever the chain
answers but not as an ERC-1056 registry would.

Pure (no I/O). Cost: importing computes five Keccak-256 hashes; encoding a call or decoding
a result is one ABI encode/decode of a few dozen bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

if TYPE_CHECKING:
    from web3.types import TxParams


class RegistryReadError(RuntimeError):
    """The chain answered, but not as an ERC-1056 registry would; the message says how."""


def _address_input(name: str, *, indexed: bool | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"internalType": "address", "name": name, "type": "address"}
    if indexed is not None:
        entry = {"indexed": indexed, **entry}
    return entry


def _event_input(solidity_type: str, name: str) -> dict[str, Any]:
    return {"indexed": False, "internalType": solidity_type, "name": name, "type": solidity_type}


REGISTRY_ABI: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "inputs": [_address_input("identity")],
        "name": "changed",
        "outputs": [{"internalType": "uint256", "name": "blockNumber", "type": "uint256"}],
        "stateMutability": "view",
        "type": "function",
    },
    {
        "inputs": [_address_input("identity")],
        "name": "identityOwner",
        "outputs": [{"internalType": "address", "name": "", "type": "address"}],
        "stateMutability": "view",
        "type": "function",
    },
    {
        "anonymous": False,
        "inputs": [
            _address_input("identity", indexed=True),
            _event_input("address", "owner"),
            _event_input("uint256", "previousChange"),
        ],
        "name": "DIDOwnerChanged",
        "type": "event",
    },
    {
        "anonymous": False,
        "inputs": [
            _address_input("identity", indexed=True),
            _event_input("bytes32", "delegateType"),
            _event_input("address", "delegate"),
            _event_input("uint256", "validTo"),
            _event_input("uint256", "previousChange"),
        ],
        "name": "DIDDelegateChanged",
        "type": "event",
    },
    {
        "anonymous": False,
        "inputs": [
            _address_input("identity", indexed=True),
            _event_input("bytes32", "name"),
            _event_input("bytes", "value"),
            _event_input("uint256", "validTo"),
            _event_input("uint256", "previousChange"),
        ],
        "name": "DIDAttributeChanged",
        "type": "event",
    },
)
"""The ERC-1056 registry ABI entries this driver uses (two views, three events)."""


def _abi_entry(name: str) -> Mapping[str, Any]:
    (entry,) = (item for item in REGISTRY_ABI if item["name"] == name)
    return entry


def _abi_signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(item['type'] for item in entry['inputs'])})"


def _data_types(entry: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(item["type"] for item in entry["inputs"] if not item.get("indexed"))


CHANGED_SELECTOR = keccak(text=_abi_signature(_abi_entry("changed")))[:4]
OWNER_SELECTOR = keccak(text=_abi_signature(_abi_entry("identityOwner")))[:4]
_EVENT_NAMES = ("DIDOwnerChanged", "DIDDelegateChanged", "DIDAttributeChanged")
EVENT_TOPICS: Mapping[bytes, str] = {
    keccak(text=_abi_signature(_abi_entry(name))): name for name in _EVENT_NAMES
}
EVENT_DATA_TYPES: Mapping[str, tuple[str, ...]] = {
    name: _data_types(_abi_entry(name)) for name in _EVENT_NAMES
}


def identity_topic(identity: str) -> HexStr:
    """The indexed ``identity`` topic of the registry's events (the address, 32 bytes)."""
    return HexStr("0x" + abi_encode(["address"], [to_checksum_address(identity)]).hex())


def call_params(registry: str, selector: bytes, identity: str) -> TxParams:
    """``eth_call`` parameters: the view ``selector`` of ``registry`` for ``identity``."""
    data = selector + abi_encode(["address"], [to_checksum_address(identity)])
    return {"to": to_checksum_address(registry), "data": HexStr("0x" + data.hex())}


def decode_result(solidity_type: str, raw: bytes, what: str) -> Any:
    """A view's result ``raw`` as one ``solidity_type``. Raises :class:`RegistryReadError`."""
    try:
        (value,) = abi_decode([solidity_type], bytes(raw))
    except Exception as exc:  # noqa: BLE001 - eth_abi raises several unrelated types
        raise RegistryReadError(
            f"{what} returned {bytes(raw).hex() or 'nothing'}, not an ABI {solidity_type}: "
            f"is there an ERC-1056 registry at that address? ({exc})"
        ) from None
    return value
