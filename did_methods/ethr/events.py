"""did:ethr: the ERC-1056 registry's events as values, and the decoding of their logs.

:class:`OwnerChanged`, :class:`DelegateChanged` and :class:`AttributeChanged` (together
:data:`RegistryEvent`) are what the chain readers hand the document builder;
:func:`registry_log_filter` is the ``eth_getLogs`` filter for one identity in one block and
:func:`decode_registry_log` turns one log back into an event (raising
:class:`~did_methods.ethr.abi.RegistryReadError` for anything else).

Pure (no I/O). Cost: one ABI decode per log, linear in the log's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_abi.abi import decode as abi_decode
from eth_typing import BlockNumber, ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address

from did_methods.ethr.abi import EVENT_DATA_TYPES, EVENT_TOPICS, RegistryReadError, identity_topic

if TYPE_CHECKING:
    from web3.types import FilterParams

_EVENT_TOPIC_COUNT = 2
"""Topics of every registry event: the event signature and the indexed identity."""


@dataclass(frozen=True, slots=True)
class OwnerChanged:
    """``DIDOwnerChanged``: ``owner`` now owns the identity."""

    block: int
    log_index: int
    owner: ChecksumAddress
    previous_change: int


@dataclass(frozen=True, slots=True)
class DelegateChanged:
    """``DIDDelegateChanged``: a delegate added (until ``valid_to``) or revoked."""

    block: int
    log_index: int
    delegate_type: bytes
    delegate: ChecksumAddress
    valid_to: int
    previous_change: int


@dataclass(frozen=True, slots=True)
class AttributeChanged:
    """``DIDAttributeChanged``: an attribute set (until ``valid_to``) or revoked (0)."""

    block: int
    log_index: int
    name: bytes
    value: bytes
    valid_to: int
    previous_change: int


RegistryEvent = OwnerChanged | DelegateChanged | AttributeChanged


def registry_log_filter(registry: str, identity: str, block: int) -> FilterParams:
    """``eth_getLogs`` filter: the registry's three events about ``identity`` in ``block``."""
    return {
        "address": to_checksum_address(registry),
        "fromBlock": BlockNumber(block),
        "toBlock": BlockNumber(block),
        "topics": [
            [HexStr("0x" + topic.hex()) for topic in EVENT_TOPICS],
            identity_topic(identity),
        ],
    }


def decode_registry_log(log: Mapping[str, Any]) -> tuple[ChecksumAddress, RegistryEvent]:
    """The identity and event of one registry log. Raises :class:`RegistryReadError`."""
    topics = [bytes(topic) for topic in log.get("topics", ())]
    name = EVENT_TOPICS.get(topics[0]) if topics else None
    if name is None or len(topics) != _EVENT_TOPIC_COUNT:
        raise RegistryReadError(f"log {log.get('logIndex')} is not an ERC-1056 registry event")
    try:
        values = abi_decode(EVENT_DATA_TYPES[name], bytes(log["data"]))
        identity = to_checksum_address(abi_decode(["address"], topics[1])[0])
        block, index = int(log["blockNumber"]), int(log["logIndex"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryReadError(f"undecodable {name} log: {exc}") from None
    event: RegistryEvent
    if name == "DIDOwnerChanged":
        owner, previous = values
        event = OwnerChanged(block, index, to_checksum_address(owner), previous)
    elif name == "DIDDelegateChanged":
        delegate_type, delegate, valid_to, previous = values
        event = DelegateChanged(
            block, index, delegate_type, to_checksum_address(delegate), valid_to, previous
        )
    else:
        attribute, value, valid_to, previous = values
        event = AttributeChanged(block, index, attribute, value, valid_to, previous)
    return identity, event


def decode_logs(logs: Iterable[Mapping[str, Any]], identity: str) -> list[RegistryEvent]:
    """The events of ``logs`` about ``identity``, in order. Raises :class:`RegistryReadError`."""
    wanted = to_checksum_address(identity)
    events: list[RegistryEvent] = []
    for log in logs:
        owner, event = decode_registry_log(log)
        if owner == wanted:
            events.append(event)
    return events
