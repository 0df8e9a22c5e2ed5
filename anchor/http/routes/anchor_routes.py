"""Receipts and anchors: ``GET /v1/receipts/{digest}`` and ``GET /v1/anchors``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from anchor.chain import AnchorState, anchor_covering, list_anchors
from anchor.core.entry import parse_digest
from anchor.core.receipt import receipt_schema
from anchor.errors import AnchorError, EncodingError, InvalidInput, NotFound
from anchor.http.appkeys import ANCHOR_CHANGES, CHAIN, MERKLE_LOG, STORE
from anchor.http.openapi import HEX_DIGEST, errors, flag_query, int_query, json_response
from anchor.http.routes.params import flag_param, int_param
from anchor.log.receipts import build_receipt

routes = web.RouteTableDef()

MAX_WAIT_SECONDS = 60
"""Longest ``wait`` a receipt request may ask for."""

WAIT_RECHECK_SECONDS = 5.0
"""A waiting receipt request is woken by the batcher after each round (anchor states may have
changed); it also looks again after this long without a wake, as a safety net."""

MAX_ANCHORS_PAGE = 1000
"""Most anchors one ``GET /v1/anchors`` returns."""


@routes.get("/v1/receipts/{digest}")
async def receipt(request: web.Request) -> web.Response:
    """The receipt of an entry: ``202`` with ``status: pending`` until a final anchor covers
    it, then the full receipt. ``wait`` (seconds) waits for it; ``submitter`` picks the
    entry when several issuers submitted the same digest."""
    log = request.app[MERKLE_LOG]
    try:
        digest = parse_digest(request.match_info["digest"])
    except EncodingError as err:
        raise InvalidInput(err.detail) from None
    submitter = request.query.get("submitter") or None
    wait = int_param(request, "wait", 0, maximum=MAX_WAIT_SECONDS)
    found = await asyncio.to_thread(log.find, digest, submitter)
    if not found:
        raise NotFound(
            f"no entry has digest {digest.hex()}" + (f" from {submitter}" if submitter else "")
        )
    if submitter is None and len({f.entry.submitter for f in found}) > 1:
        raise InvalidInput(
            "several issuers submitted this digest", hint="add ?submitter=<issuer DID>"
        )
    index = found[0].index
    deadline = time.monotonic() + wait
    changes = request.app.get(ANCHOR_CHANGES)
    while True:
        woken = None if changes is None else changes.watch()  # before the read: no lost wake
        try:
            body = await asyncio.to_thread(build_receipt, log, index, final_only=True)
        except NotFound:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            timeout = min(left, WAIT_RECHECK_SECONDS)
            if woken is None:
                await asyncio.sleep(timeout)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout)
            continue
        return web.json_response(body)
    pending = {
        "status": "pending",
        "digest": digest.hex(),
        "submitter": found[0].entry.submitter,
        "leafIndex": index,
        "detail": "the entry is logged; its receipt comes once a final anchor covers it",
    }
    pending.update(await _confirmations(request, index))
    return web.json_response(pending, status=202)


async def _confirmations(request: web.Request, index: int) -> dict[str, Any]:
    """How far the entry's anchor is from final: ``confirmationsRequired`` always, and
    ``confirmations`` (of the first included anchor covering it) once one is mined."""
    client = request.app[CHAIN]
    out: dict[str, Any] = {"confirmationsRequired": client.confirmations, "confirmations": 0}
    anchor = await asyncio.to_thread(anchor_covering, request.app[STORE], index)
    if anchor is None or anchor.block_number is None:
        return out
    try:
        head = await client.backend.block("latest")
    except AnchorError:  # the node did not answer: the count is unknown, not an error here
        return {"confirmationsRequired": client.confirmations}
    if head is not None:
        out["confirmations"] = max(0, head.number - anchor.block_number + 1)
    return out


@routes.get("/v1/anchors")
async def anchors(request: web.Request) -> web.Response:
    """Anchors of the current chain with their states, newest first."""
    store = request.app[STORE]
    state = request.query.get("state")
    states = None
    if state is not None:
        try:
            states = [AnchorState(state)]
        except ValueError:
            raise InvalidInput(
                f"unknown state {state!r}", hint="one of " + ", ".join(s.value for s in AnchorState)
            ) from None
    limit = int_param(request, "limit", 100, minimum=1, maximum=MAX_ANCHORS_PAGE)
    every = flag_param(request, "allChains")
    records = await asyncio.to_thread(
        list_anchors, store, all_chains=every, states=states, limit=limit
    )
    return web.json_response({"anchors": [r.to_json() for r in records]})


@routes.get("/v1/schemas/receipt.json")
async def schema(request: web.Request) -> web.Response:
    """The JSON Schema of receipts."""
    return web.json_response(receipt_schema(), content_type="application/schema+json")


def openapi_paths() -> dict[str, Any]:
    return {
        "/v1/receipts/{digest}": {
            "get": {
                "summary": "The receipt of an entry (pending until a final anchor covers it)",
                "parameters": [
                    {"name": "digest", "in": "path", "required": True, "schema": HEX_DIGEST},
                    {"name": "submitter", "in": "query", "schema": {"type": "string"}},
                    int_query(
                        "wait",
                        f"seconds to wait for the receipt (at most {MAX_WAIT_SECONDS})",
                        maximum=MAX_WAIT_SECONDS,
                    ),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "description": "A receipt; its JSON Schema is /v1/schemas/receipt.json",
                            "required": ["type", "version", "entry", "leafIndex", "checkpoint"],
                        },
                        "The receipt",
                    ),
                    "202": json_response(
                        {
                            "type": "object",
                            "required": ["status", "digest", "leafIndex"],
                            "properties": {
                                "status": {"const": "pending"},
                                "digest": HEX_DIGEST,
                                "submitter": {"type": "string"},
                                "leafIndex": {"type": "integer"},
                                "detail": {"type": "string"},
                                "confirmations": {
                                    "type": "integer",
                                    "description": "of the first mined anchor covering it (0: "
                                    "none yet); absent when the chain did not answer",
                                },
                                "confirmationsRequired": {
                                    "type": "integer",
                                    "description": "confirmations that make an anchor final",
                                },
                            },
                        },
                        "Logged, not anchored yet",
                    ),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/anchors": {
            "get": {
                "summary": "Anchors with their states (pending, submitted, included, final)",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": [s.value for s in AnchorState]},
                    },
                    int_query(
                        "limit",
                        f"at most {MAX_ANCHORS_PAGE} (default 100)",
                        minimum=1,
                        maximum=MAX_ANCHORS_PAGE,
                    ),
                    flag_query("allChains", "anchors of every chain, not only the current"),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "properties": {
                                "anchors": {"type": "array", "items": {"type": "object"}}
                            },
                        }
                    ),
                    **errors(400),
                },
            }
        },
        "/v1/schemas/receipt.json": {
            "get": {
                "summary": "The JSON Schema of receipts",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/schema+json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
