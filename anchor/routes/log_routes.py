"""The public log: entries, proofs and checkpoints (reads; submission is in entry_routes)."""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from anchor.app import LOG_KEY, STORE
from anchor.entry import parse_digest
from anchor.errors import InvalidInput, NotFound
from anchor.logfiles import entry_json
from anchor.routes.params import int_param, optional_int_param, reject_unknown
from anchor.store import MAX_ENTRIES_PAGE

routes = web.RouteTableDef()

DEFAULT_PAGE = 1_000
"""Entries per page when ``end`` is not given."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@routes.get("/v1/entries")
async def list_entries(request: web.Request) -> web.Response:
    """Entries ``[start, end)`` in index order, at most MAX_ENTRIES_PAGE per page: a longer
    range (or one past the tree) is cut short, and ``next`` names the following page."""
    store = request.app[STORE]
    start = int_param(request, "start", 0)
    size = await asyncio.to_thread(store.size)
    end = optional_int_param(request, "end")
    if end is None:
        end = start + DEFAULT_PAGE
    end = max(start, min(end, start + MAX_ENTRIES_PAGE, size))
    page = await asyncio.to_thread(store.entries, start, end)
    body: dict[str, object] = {
        "start": start,
        "end": end,
        "treeSize": size,
        "entries": [entry_json(e) for e in page],
    }
    if end < size:
        body["next"] = (
            f"/v1/entries?start={end}&end={min(end + (end - start or DEFAULT_PAGE), size)}"
        )
    return web.json_response(body)


INCLUSION_PARAMETERS = ("index", "digest", "submitter", "size")


@routes.get("/v1/proofs/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    """Inclusion proof of a leaf (by ``index`` or ``digest``) in the tree of ``size`` leaves
    (default: the latest signed checkpoint that covers it). A leaf or size the log does not
    have is a 404."""
    log = request.app[LOG_KEY]
    store = log.store
    reject_unknown(request, INCLUSION_PARAMETERS)
    index = optional_int_param(request, "index")
    digest_hex = request.query.get("digest")
    if (index is None) == (digest_hex is None):
        raise InvalidInput("give exactly one of 'index' or 'digest'")
    if digest_hex is not None:
        submitter = request.query.get("submitter")
        found = await asyncio.to_thread(store.find, parse_digest(digest_hex), submitter or None)
        if not found:
            raise NotFound(f"no entry has digest {digest_hex}")
        index = found[0].index
    elif "submitter" in request.query:
        raise InvalidInput("'submitter' goes with 'digest'")
    assert index is not None
    size = optional_int_param(request, "size", minimum=1)
    checkpoint = None
    if size is None:
        checkpoint = await asyncio.to_thread(log.latest_checkpoint)
        if checkpoint is None or checkpoint.size <= index:
            checkpoint = await asyncio.to_thread(log.checkpoint)
        size = checkpoint.size
    if index >= size:
        raise NotFound(f"leaf {index} is not in a tree of {size} leaves")
    proof = await asyncio.to_thread(store.inclusion_proof, index, size)
    root = await asyncio.to_thread(store.root, size)
    leaf = (await asyncio.to_thread(store.entries, index, index + 1))[0]
    body: dict[str, object] = {
        "index": index,
        "treeSize": size,
        "leafHash": b64(leaf.leaf_hash),
        "proof": [b64(p) for p in proof],
        "root": b64(root),
    }
    if checkpoint is not None:
        body["checkpoint"] = checkpoint.note
    return web.json_response(body)


@routes.get("/v1/proofs/consistency")
async def consistency(request: web.Request) -> web.Response:
    """RFC 9162 consistency proof from ``size1`` to ``size2``. Sizes that name no proof of
    this log (``size1 > size2``: no tree is consistent with a smaller later one; or beyond
    the tree) are a 404, like any URL that names no resource."""
    store = request.app[STORE]
    size1 = int_param(request, "size1", minimum=1)
    size2 = int_param(request, "size2", minimum=1)
    if size1 > size2:
        raise NotFound(
            f"no consistency proof from size {size1} to the smaller size {size2}",
            hint="size1 must not exceed size2",
        )
    proof = await asyncio.to_thread(store.consistency_proof, size1, size2)
    root1 = await asyncio.to_thread(store.root, size1)
    root2 = await asyncio.to_thread(store.root, size2)
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


CHECKPOINTS_PAGE = 1_000
"""Most checkpoint notes per page of ``GET /v1/checkpoints``."""


@routes.get("/v1/checkpoints")
async def all_checkpoints(request: web.Request) -> web.Response:
    """Signed checkpoint notes, oldest first, paged (auditors check each one): those of
    tree size ``>= start``, at most ``limit``; ``next`` names the following page."""
    store = request.app[STORE]
    start = int_param(request, "start", 0)
    limit = int_param(request, "limit", CHECKPOINTS_PAGE, minimum=1, maximum=CHECKPOINTS_PAGE)

    def read() -> list[tuple[int, str]]:
        rows = store.reader().execute(
            "SELECT size, note FROM checkpoints WHERE size >= ? ORDER BY size LIMIT ?",
            (start, limit + 1),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    found = await asyncio.to_thread(read)
    body: dict[str, object] = {"checkpoints": [note for _size, note in found[:limit]]}
    if len(found) > limit:
        body["next"] = f"/v1/checkpoints?start={found[limit][0]}&limit={limit}"
    return web.json_response(body)


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
