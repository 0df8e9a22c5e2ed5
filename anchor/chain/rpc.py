"""A read-only Ethereum JSON-RPC 2.0 server for the embedded chain, so that verifiers and
auditors (web3.py, ethers, ``ler-anchor verify`` and ``audit``) can read it like any node.

:func:`handle` takes a parsed request (one object or a batch) and answers it; every method
runs on the embedded chain's own thread (:meth:`EmbeddedChain.control`). Answers follow the
Ethereum JSON-RPC specification (quantities as ``0x`` hex, camelCase fields, block-wide
``logIndex``). Writes (sending or signing transactions, ``evm_*``, ``anvil_*``, filters and
the like) and unknown methods answer JSON-RPC error objects, never HTTP errors. There is no
transaction pool (the embedded chain mines every transaction when it is sent), so
``pending`` reads as ``latest``.

This module handles requests: the JSON-RPC envelope, batches, ids, notifications, refused
writes and unknown methods, and the mapping of errors to JSON-RPC error objects. The methods
and their limits are in :mod:`anchor.chain.rpc_methods`, the parameter checks and the answers'
form in :mod:`anchor.chain.rpc_codec`; their public names are re-exported here.

Limits (named constants here and in :mod:`anchor.chain.rpc_methods`): the request body
(checked by the route), its nesting depth and the batch length here; the ``eth_getLogs``
block range, results and filter sizes, the ``eth_call`` / ``eth_estimateGas`` gas, the
``eth_feeHistory`` block count there. :class:`RpcGate` shares the chain's thread fairly: at
most :data:`MAX_RPC_REQUESTS` requests at once, and one call of theirs on the thread at a
time, so the service's own chain work (mining, anchoring) never waits behind more than one.

Cost: a JSON-RPC envelope check per request, then the method's own (see
:mod:`anchor.chain.rpc_methods`); :func:`nesting_depth` is linear in the body. Not pure (the
methods read the chain); no writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

from eth.exceptions import PyEVMError
from eth_tester.exceptions import BlockNotFound as TesterBlockNotFound
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils.exceptions import ValidationError as EthUtilsValidationError

from anchor.chain.durable import ESTIMATE_GAS_RUNS
from anchor.chain.rpc_codec import (
    EXECUTION_REVERTED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    METHOD_NOT_FOUND,
    METHOD_NOT_SUPPORTED,
    PARSE_ERROR,
    RESOURCE_NOT_FOUND,
)
from anchor.chain.rpc_methods import (
    MAX_CALL_GAS,
    MAX_FEE_HISTORY_BLOCKS,
    MAX_FEE_PERCENTILES,
    MAX_FILTER_VALUES,
    MAX_LOG_BLOCK_RANGE,
    MAX_LOG_RESULTS,
    METHODS,
    PRIORITY_FEE_WEI,
    Tester,
    _revert,
)
from anchor.errors import JsonRpcError, RateLimited

__all__ = [
    "ESTIMATE_GAS_RUNS",
    "EXECUTION_REVERTED",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LIMIT_EXCEEDED",
    "MAX_CALL_GAS",
    "MAX_FEE_HISTORY_BLOCKS",
    "MAX_FEE_PERCENTILES",
    "MAX_FILTER_VALUES",
    "MAX_JSON_DEPTH",
    "MAX_LOG_BLOCK_RANGE",
    "MAX_LOG_RESULTS",
    "MAX_RPC_BATCH",
    "MAX_RPC_BODY_BYTES",
    "MAX_RPC_REQUESTS",
    "METHODS",
    "METHOD_NOT_FOUND",
    "METHOD_NOT_SUPPORTED",
    "PARSE_ERROR",
    "PRIORITY_FEE_WEI",
    "RESOURCE_NOT_FOUND",
    "WRITE_METHODS",
    "WRITE_PREFIXES",
    "RpcGate",
    "Runner",
    "handle",
    "nesting_depth",
    "parse_error",
]

MAX_RPC_BODY_BYTES: Final = 256 * 1024
"""Largest HTTP request body of ``POST /v1/chain/rpc``."""
MAX_JSON_DEPTH: Final = 32
"""Deepest nesting of arrays and objects in a request (checked before parsing: a deep
document would exhaust the parser's stack)."""
MAX_RPC_BATCH: Final = 100
"""Most requests in one JSON-RPC batch."""
MAX_RPC_REQUESTS: Final = 16
"""Most HTTP requests (a batch counts once) :class:`RpcGate` admits at once; more are refused
(HTTP 429, ``Retry-After``) rather than queued without bound."""
RPC_RETRY_AFTER_SECONDS: Final = 1
"""The ``Retry-After`` of a request the gate refuses."""

WRITE_METHODS: Final = frozenset(
    {
        "eth_sendRawTransaction",
        "eth_sendTransaction",
        "eth_sign",
        "eth_signTransaction",
        "eth_signTypedData",
        "eth_signTypedData_v3",
        "eth_signTypedData_v4",
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_uninstallFilter",
        "eth_subscribe",
        "eth_unsubscribe",
        "eth_submitWork",
        "eth_submitHashrate",
    }
)
"""Methods that would change the chain or keep state on the server: refused."""
WRITE_PREFIXES: Final = (
    "evm_",
    "anvil_",
    "hardhat_",
    "ganache_",
    "personal_",
    "miner_",
    "admin_",
    "debug_",
    "txpool_",
)

_METHOD = re.compile(r"[A-Za-z0-9_]{1,64}")

Runner = Callable[[Callable[[Tester], Any]], Any]
"""Runs a function of the eth-tester instance on the embedded chain's thread."""


# ---- sharing the chain's thread -------------------------------------------------------------


class RpcGate:
    """Admits JSON-RPC requests to the embedded chain's thread, which also mines the
    service's anchors: at most ``max_requests`` at once (:meth:`admit` refuses more), and one
    method call of theirs on the thread at a time, taken in turn (an ``asyncio.Lock`` is
    first come, first served), so a request's calls interleave with other requests' and the
    service's own chain work waits behind at most one call. Without it, concurrent requests
    queue any number of calls ahead of an anchor. Cost: a lock per call."""

    def __init__(self, run: Runner, max_requests: int = MAX_RPC_REQUESTS) -> None:
        self._run = run
        self._max_requests = max_requests
        self._turn = asyncio.Lock()
        self.in_flight = 0
        """Requests admitted and not yet answered."""

    @contextlib.contextmanager
    def admit(self) -> Iterator[Runner]:
        """A runner for one request's calls; raises :class:`RateLimited` when
        ``max_requests`` are being answered already."""
        if self.in_flight >= self._max_requests:
            raise RateLimited(
                f"the embedded chain's JSON-RPC is answering {self._max_requests} requests already",
                retry_after=RPC_RETRY_AFTER_SECONDS,
                hint=f"retry after {RPC_RETRY_AFTER_SECONDS} s, or batch your calls",
            )
        self.in_flight += 1
        try:
            yield self._one
        finally:
            self.in_flight -= 1

    async def _one(self, action: Callable[[Tester], Any]) -> Any:
        async with self._turn:
            return await self._run(action)


# ---- requests -------------------------------------------------------------------------------


def _error(request_id: object, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _valid_id(value: object) -> bool:
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


async def _answer_one(run: Runner, request: object) -> dict[str, Any] | None:
    if not isinstance(request, dict):
        return _error(None, INVALID_REQUEST, "a request must be a JSON object")
    notification = "id" not in request
    request_id = request.get("id")
    if not _valid_id(request_id):
        return _error(None, INVALID_REQUEST, "id must be a string, a number or null")
    method = request.get("method")
    params = request.get("params", [])
    if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return _error(request_id, INVALID_REQUEST, 'a request needs "jsonrpc": "2.0" and a method')
    if not isinstance(params, list):
        return _error(request_id, INVALID_PARAMS, "params must be a list")
    handler = METHODS.get(method)
    if handler is None:
        if method in WRITE_METHODS or method.startswith(WRITE_PREFIXES):
            return _error(
                request_id,
                METHOD_NOT_SUPPORTED,
                f"{method} is not supported: this endpoint of the embedded chain is read-only",
            )
        shown = method if _METHOD.fullmatch(method) else "the method"
        return _error(request_id, METHOD_NOT_FOUND, f"{shown} does not exist")
    try:
        result = await run(lambda tester: handler(tester, params))
    except JsonRpcError as exc:
        return _error(request_id, exc.code, exc.detail, exc.data)
    except TransactionFailed as exc:
        err = _revert(exc)
        return _error(request_id, err.code, err.detail, err.data)
    except (TesterValidationError, EthUtilsValidationError, TesterBlockNotFound) as exc:
        return _error(request_id, INVALID_PARAMS, f"{method}: {exc}")
    except PyEVMError as exc:
        return _error(request_id, RESOURCE_NOT_FOUND, f"{method}: {type(exc).__name__}: {exc}")
    if notification:
        return None
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


async def handle(run: Runner, request: object) -> dict[str, Any] | list[dict[str, Any]] | None:
    """The answer to a parsed JSON-RPC request or batch (None: only notifications)."""
    if isinstance(request, list):
        if not request:
            return _error(None, INVALID_REQUEST, "an empty batch")
        if len(request) > MAX_RPC_BATCH:
            return _error(None, LIMIT_EXCEEDED, f"a batch has at most {MAX_RPC_BATCH} requests")
        answers = [await _answer_one(run, item) for item in request]
        kept = [a for a in answers if a is not None]
        return kept or None
    return await _answer_one(run, request)


def nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw`` (strings skipped), without
    parsing it. Linear."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_error(detail: str) -> dict[str, Any]:
    return _error(None, PARSE_ERROR, detail)
