"""``POST /v1/chain/rpc``: the embedded chain's read-only JSON-RPC endpoint
(:mod:`anchor.chain.rpc`), so that verifiers and auditors can check receipts against the
default setup as against any node. On an external chain it answers 404: use that chain's own
RPC endpoint. Not pure (HTTP I/O); cost: reading a bounded body (its nesting checked before
it is parsed) and the methods' own (:mod:`anchor.chain.rpc`)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from anchor.chain import rpc
from anchor.errors import LimitExceeded, NotFound
from anchor.http.appkeys import CHAIN_RPC
from anchor.http.openapi import errors
from anchor.http.routes.links import RPC_PATH

routes = web.RouteTableDef()

_READ_CHUNK_BYTES = 64 * 1024


async def _body(request: web.Request) -> bytes:
    limit = rpc.MAX_RPC_BODY_BYTES
    too_large = LimitExceeded(
        f"a JSON-RPC request body is at most {limit} bytes",
        hint=f"split the batch (at most {rpc.MAX_RPC_BATCH} requests)",
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@routes.post(RPC_PATH)
async def chain_rpc(request: web.Request) -> web.Response:
    """Answer a JSON-RPC request or batch with the embedded chain's read methods."""
    gate = request.app.get(CHAIN_RPC)
    if gate is None:
        raise NotFound(
            "this service anchors on an external chain, whose JSON-RPC endpoint it does not serve",
            hint="read the chain through its own JSON-RPC endpoint",
        )
    raw = await _body(request)
    if rpc.nesting_depth(raw) > rpc.MAX_JSON_DEPTH:
        return web.json_response(
            rpc.parse_error(f"the body nests deeper than {rpc.MAX_JSON_DEPTH} levels")
        )
    try:
        parsed: object = json.loads(raw)
    except (ValueError, RecursionError):
        return web.json_response(rpc.parse_error("the body is not JSON"))
    with gate.admit() as run:
        answer = await rpc.handle(run, parsed)
    if answer is None:
        return web.Response(status=204)
    return web.json_response(answer)


def openapi_paths() -> dict[str, Any]:
    # JSON-RPC 2.0 answers any JSON body (a malformed request, a batch holding one) with
    # error objects (HTTP 200), so the body is any JSON value
    either = {
        "description": "a JSON-RPC 2.0 request object, or a batch (array) of them; anything "
        "else is answered with a JSON-RPC error object (-32600 invalid request)"
    }
    return {
        RPC_PATH: {
            "post": {
                "summary": "Read-only Ethereum JSON-RPC of the embedded chain (verifiers, "
                "auditors, web3.py, ethers)",
                "description": (
                    "Serves eth_chainId, net_version, web3_clientVersion, eth_blockNumber, "
                    "eth_getBlockByNumber/ByHash, eth_getTransactionByHash, "
                    "eth_getTransactionReceipt, eth_getLogs, eth_call, eth_estimateGas, "
                    "eth_getCode, eth_getBalance, eth_getTransactionCount, eth_getStorageAt, "
                    "eth_gasPrice, eth_maxPriorityFeePerGas and eth_feeHistory. Writes and "
                    "unknown methods answer JSON-RPC error objects. Limits: body "
                    f"{rpc.MAX_RPC_BODY_BYTES} bytes, batch {rpc.MAX_RPC_BATCH} requests, "
                    f"eth_getLogs {rpc.MAX_LOG_BLOCK_RANGE} blocks and "
                    f"{rpc.MAX_LOG_RESULTS} logs, eth_call and eth_estimateGas "
                    f"{rpc.MAX_CALL_GAS} gas (an estimate executes at most "
                    f"{rpc.ESTIMATE_GAS_RUNS} times its gas in all), {rpc.MAX_RPC_REQUESTS} "
                    "requests at once (their calls take turns on the chain's thread). Only "
                    "on the embedded chain (404 on an external one)."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": either}},
                },
                "responses": {
                    "200": {
                        "description": "The JSON-RPC answer (errors included)",
                        "content": {"application/json": {"schema": either}},
                    },
                    "204": {"description": "Only notifications (requests without an id)"},
                    **errors(404, 413),
                    "429": {
                        **errors(429)["429"],
                        "description": f"{rpc.MAX_RPC_REQUESTS} requests are being answered "
                        "already (from any client); Retry-After says when to retry",
                    },
                },
            }
        }
    }
