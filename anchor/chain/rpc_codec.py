"""The JSON-RPC vocabulary of the embedded chain's read-only endpoint (:mod:`anchor.chain.rpc`):
the error codes, the checks of method parameters (hex quantities, data, hashes, addresses)
and the shaping of answers (eth-tester values into the Ethereum JSON-RPC form: quantities as
``0x`` hex, camelCase fields, block-wide ``logIndex``).

Pure: no I/O, no state; a bad parameter raises :class:`~anchor.errors.JsonRpcError` with
:data:`INVALID_PARAMS`. Cost: linear in the size of the value checked or shaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from eth.abc import BlockAPI, SignedTransactionAPI
from eth_utils.address import to_checksum_address

from anchor.errors import JsonRpcError

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
RESOURCE_NOT_FOUND: Final = -32001
METHOD_NOT_SUPPORTED: Final = -32004
LIMIT_EXCEEDED: Final = -32005
EXECUTION_REVERTED: Final = 3
"""JSON-RPC error codes (JSON-RPC 2.0, EIP-1474; 3 is the nodes' "execution reverted")."""


_QUANTITY = re.compile(r"0x(0|[1-9a-fA-F][0-9a-fA-F]{0,63})")
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


# ---- parameters -----------------------------------------------------------------------------


def _invalid(detail: str) -> JsonRpcError:
    return JsonRpcError(detail, code=INVALID_PARAMS)


def _quantity(value: object, what: str) -> int:
    if isinstance(value, str) and _QUANTITY.fullmatch(value):
        return int(value, 16)
    raise _invalid(f"{what} must be a hex quantity such as 0x1a")


def _data(value: object, what: str) -> str:
    if isinstance(value, str) and _DATA.fullmatch(value):
        return value.lower()
    raise _invalid(f"{what} must be hex data (0x and an even number of hex digits)")


def _hash(value: object, what: str) -> bytes:
    if isinstance(value, str) and _HASH.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise _invalid(f"{what} must be a 32-byte hash (0x and 64 hex digits)")


def _address(value: object, what: str) -> str:
    if isinstance(value, str) and _ADDRESS.fullmatch(value):
        return to_checksum_address(value)
    raise _invalid(f"{what} must be an address (0x and 40 hex digits)")


def _param(params: Sequence[object], index: int, default: object = None) -> object:
    return params[index] if index < len(params) else default


def _bool(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _invalid(f"{what} must be true or false")


# ---- answers --------------------------------------------------------------------------------


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _rpc(value: object) -> object:
    """An eth-tester value in JSON-RPC form: ints as hex quantities, bytes as hex data,
    camelCase keys."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_rpc(v) for v in value]
    if isinstance(value, dict):
        return {_camel(str(k)): _rpc(v) for k, v in value.items()}
    return value


def _bloom_hex(bloom: int) -> str:
    return "0x" + bloom.to_bytes(256, "big").hex()


def _transaction(tx: dict[str, Any], timestamp: int | None) -> dict[str, Any]:
    out = dict(tx)
    if timestamp is not None:
        out["block_timestamp"] = timestamp
    out["input"] = out.pop("data", "0x")
    if out.get("to") in ("", b""):
        out["to"] = None
    answer = _rpc(out)
    assert isinstance(answer, dict)
    return answer


def _block(block: dict[str, Any]) -> dict[str, Any]:
    out = dict(block)
    out["miner"] = out.pop("coinbase")
    bloom = out.pop("logs_bloom")
    transactions = out.pop("transactions")
    answer = _rpc(out)
    assert isinstance(answer, dict)
    answer["logsBloom"] = _bloom_hex(int(bloom)) if isinstance(bloom, int) else _rpc(bloom)
    answer["transactions"] = [
        _transaction(t, block["timestamp"]) if isinstance(t, dict) else _rpc(t)
        for t in transactions
    ]
    return answer


def _log(
    block: BlockAPI,
    tx: SignedTransactionAPI,
    tx_index: int,
    log_index: int,
    address: bytes,
    topics: Sequence[int],
    data: bytes,
) -> dict[str, Any]:
    return {
        "address": to_checksum_address(address),
        "topics": ["0x" + t.to_bytes(32, "big").hex() for t in topics],
        "data": "0x" + data.hex(),
        "blockNumber": hex(block.number),
        "blockHash": "0x" + block.hash.hex(),
        "blockTimestamp": hex(block.header.timestamp),
        "transactionHash": "0x" + tx.hash.hex(),
        "transactionIndex": hex(tx_index),
        "logIndex": hex(log_index),
        "removed": False,
    }
