"""The public log: entries, proofs and checkpoints (reads; submission is in entry_routes)."""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from anchor.app import LOG_KEY, STORE
from anchor.entry import parse_digest
from anchor.errors import InvalidInput, NotFound
from anchor.logfiles import entry_json
from anchor.routes.params import int_param, optional_int_param
from anchor.store import MAX_ENTRIES_PAGE

routes = web.RouteTableDef()

DEFAULT_PAGE = 1_000
"""Entries per page when ``end`` is not given."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@routes.get("/v1/entries")
async def list_entries(request: web.Request) -> web.Response:
    """Entries ``[start, end)`` in index order, at most MAX_ENTRIES_PAGE per page."""
    store = request.app[STORE]
    start = int_param(request, "start", 0)
    size = await asyncio.to_thread(store.size)
    end = optional_int_param(request, "end")
    if end is None:
        end = min(start + DEFAULT_PAGE, size)
    if end < start:
        raise InvalidInput(f"end {end} is before start {start}")
    if end - start > MAX_ENTRIES_PAGE:
        raise InvalidInput(f"at most {MAX_ENTRIES_PAGE} entries per page")
    end = min(end, size)
    page = await asyncio.to_thread(store.entries, start, max(start, end))
    body: dict[str, object] = {
        "start": start,
        "end": max(start, end),
        "treeSize": size,
        "entries": [entry_json(e) for e in page],
    }
    if end < size:
        body["next"] = (
            f"/v1/entries?start={end}&end={min(end + (end - start or DEFAULT_PAGE), size)}"
        )
    return web.json_response(body)


@routes.get("/v1/proofs/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    """Inclusion proof of a leaf (by ``index`` or ``digest``) in the tree of ``size`` leaves
    (default: the latest signed checkpoint that covers it)."""
    log = request.app[LOG_KEY]
    index = optional_int_param(request, "index")
    digest_hex = request.query.get("digest")
    if (index is None) == (digest_hex is None):
        raise InvalidInput("give exactly one of 'index' or 'digest'")
    if digest_hex is not None:
        found = await asyncio.to_thread(log.find, parse_digest(digest_hex))
        submitter = request.query.get("submitter")
        if submitter:
            found = [f for f in found if f.entry.submitter == submitter]
        if not found:
            raise NotFound(f"no entry has digest {digest_hex}")
        index = found[0].index
    assert index is not None
    size = optional_int_param(request, "size", minimum=1)
    checkpoint = None
    if size is None:
        checkpoint = await asyncio.to_thread(log.latest_checkpoint)
        if checkpoint is None or checkpoint.size <= index:
            checkpoint = await asyncio.to_thread(log.checkpoint)
        size = checkpoint.size
    if index >= size:
        raise InvalidInput(f"leaf {index} is not in a tree of {size} leaves")
    # Served only once verified against the signed root (503 when it does not verify).
    root = (
        checkpoint.root
        if checkpoint is not None
        else await asyncio.to_thread(log.signed_root, size)
    )
    proof, leaf_hash = await asyncio.to_thread(log.verified_inclusion, index, size, root)
    body: dict[str, object] = {
        "index": index,
        "treeSize": size,
        "leafHash": b64(leaf_hash),
        "proof": [b64(p) for p in proof],
        "root": b64(root),
    }
    if checkpoint is not None:
        body["checkpoint"] = checkpoint.note
    return web.json_response(body)


@routes.get("/v1/proofs/consistency")
async def consistency(request: web.Request) -> web.Response:
    size1 = int_param(request, "size1", minimum=1)
    size2 = int_param(request, "size2", minimum=1)
    if size1 > size2:
        raise InvalidInput(f"size1 {size1} is larger than size2 {size2}")
    # Both roots proven against signed checkpoints and the proof verified before serving.
    proof, root1, root2 = await asyncio.to_thread(
        request.app[LOG_KEY].verified_consistency, size1, size2
    )
    return web.json_response(
        {
            "size1": size1,
            "size2": size2,
            "root1": b64(root1),
            "root2": b64(root2),
            "proof": [b64(p) for p in proof],
        }
    )


@routes.get("/v1/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint: JSON, or the C2SP note as ``text/plain`` when asked."""
    log = request.app[LOG_KEY]
    signed = await asyncio.to_thread(log.latest_checkpoint)
    if signed is None:
        signed = await asyncio.to_thread(log.checkpoint)
    if "text/plain" in request.headers.get("Accept", ""):
        return web.Response(text=signed.note, content_type="text/plain", charset="utf-8")
    return web.json_response(
        {
            "origin": signed.checkpoint.origin,
            "treeSize": signed.size,
            "root": b64(signed.root),
            "signedAt": signed.created_ms,
            "note": signed.note,
            "verifierKey": log.verifier.vkey(),
        }
    )


@routes.get("/v1/checkpoints")
async def all_checkpoints(request: web.Request) -> web.Response:
    """Every signed checkpoint note, oldest first (auditors check each one)."""
    store = request.app[STORE]

    def read() -> list[str]:
        return [
            str(r[0]) for r in store.reader().execute("SELECT note FROM checkpoints ORDER BY size")
        ]

    return web.json_response({"checkpoints": await asyncio.to_thread(read)})


@routes.get("/v1/log")
async def log_identity(request: web.Request) -> web.Response:
    """The log's stable identity: origin and checkpoint verifier key (public half only)."""
    log = request.app[LOG_KEY]
    verifier = log.verifier
    return web.json_response(
        {
            "origin": log.origin,
            "verifierKey": verifier.vkey(),
            "publicKey": b64(verifier.public_key),
            "keyId": verifier.key_id.hex(),
            "algorithm": "Ed25519",
            "hashing": "RFC 9162 SHA-256",
            "entryEncoding": 1,
        }
    )
