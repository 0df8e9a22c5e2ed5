"""The public log: entries, proofs and checkpoints (reads; submission is in entry_routes)."""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from anchor.chain import AnchorRecord, latest_anchor
from anchor.core.entry import parse_digest
from anchor.errors import InvalidInput, NotFound
from anchor.http.appkeys import CHAIN, MERKLE_LOG, STORE
from anchor.http.routes.links import rpc_url
from anchor.http.routes.params import int_param, optional_int_param, reject_unknown
from anchor.log.logfiles import entry_json, iso_ms
from anchor.log.store import MAX_ENTRIES_PAGE

routes = web.RouteTableDef()

DEFAULT_PAGE = 1_000
"""Entries per page when ``end`` is not given."""

ANCHORED_LATEST = "latest"
"""The one value of the ``anchored`` query parameter: prove against the latest anchored root
(what LogAnchor v2's ``latest()`` holds; its views check proofs against it)."""


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


INCLUSION_PARAMETERS = ("index", "digest", "submitter", "size", "anchored")
CONSISTENCY_PARAMETERS = ("size1", "size2", "anchored")


@routes.get("/v1/proofs/inclusion")
async def inclusion(request: web.Request) -> web.Response:
    """Inclusion proof of a leaf (by ``index`` or ``digest``) in the tree of ``size`` leaves
    (default: the latest signed checkpoint that covers it). A leaf or size the log does not
    have is a 404."""
    log = request.app[MERKLE_LOG]
    reject_unknown(request, INCLUSION_PARAMETERS)
    index = optional_int_param(request, "index")
    digest_hex = request.query.get("digest")
    if (index is None) == (digest_hex is None):
        raise InvalidInput("give exactly one of 'index' or 'digest'")
    if digest_hex is not None:
        submitter = request.query.get("submitter")
        found = await asyncio.to_thread(log.find, parse_digest(digest_hex), submitter or None)
        if not found:
            raise NotFound(f"no entry has digest {digest_hex}")
        index = found[0].index
    elif "submitter" in request.query:
        raise InvalidInput("'submitter' goes with 'digest'")
    assert index is not None
    size = optional_int_param(request, "size", minimum=1)
    checkpoint = None
    anchor = await _latest_anchor(request)
    if anchor is not None:
        if size is not None:
            raise InvalidInput("give 'size' or 'anchored', not both")
        if index >= anchor.size:
            raise NotFound(
                f"leaf {index} is not covered by the latest anchor (tree size {anchor.size})",
                hint="ask again after the next anchor",
            )
        size = anchor.size
    elif size is None:
        checkpoint = await asyncio.to_thread(log.latest_checkpoint)
        if checkpoint is None or checkpoint.size <= index:
            checkpoint = await asyncio.to_thread(log.checkpoint)
        size = checkpoint.size
    if index >= size:
        raise NotFound(f"leaf {index} is not in a tree of {size} leaves")
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
    if anchor is not None:
        body["anchor"] = anchor.to_json()
    return web.json_response(body)


@routes.get("/v1/proofs/consistency")
async def consistency(request: web.Request) -> web.Response:
    """RFC 9162 consistency proof from ``size1`` to ``size2``, or with ``anchored=latest`` to
    the size of the latest anchor (e.g. from the size of a receipt's anchor). Sizes that name
    no proof of this log (``size1 > size2``: no tree is consistent with a smaller later one;
    or beyond the tree) are a 404, like any URL that names no resource."""
    reject_unknown(request, CONSISTENCY_PARAMETERS)
    size1 = int_param(request, "size1", minimum=1)
    anchor = await _latest_anchor(request)
    if anchor is None:
        size2 = int_param(request, "size2", minimum=1)
    elif request.query.get("size2"):
        raise InvalidInput("give 'size2' or 'anchored', not both")
    else:
        size2 = anchor.size
    if size1 > size2:
        raise NotFound(
            f"no consistency proof from size {size1} to the smaller size {size2}",
            hint="size1 must not exceed size2",
        )
    # Both roots proven against signed checkpoints and the proof verified before serving.
    proof, root1, root2 = await asyncio.to_thread(
        request.app[MERKLE_LOG].verified_consistency, size1, size2
    )
    body: dict[str, object] = {
        "size1": size1,
        "size2": size2,
        "root1": b64(root1),
        "root2": b64(root2),
        "proof": [b64(p) for p in proof],
    }
    if anchor is not None:
        body["anchor"] = anchor.to_json()
    return web.json_response(body)


async def _latest_anchor(request: web.Request) -> AnchorRecord | None:
    """With ``anchored=latest``: the latest included or final anchor of the current chain
    (404 when there is none); without it, ``None``."""
    value = request.query.get("anchored")
    if value is None or value == "":
        return None
    if value != ANCHORED_LATEST:
        raise InvalidInput(f"query parameter 'anchored' must be {ANCHORED_LATEST!r}")
    anchor = await asyncio.to_thread(latest_anchor, request.app[STORE])
    if anchor is None:
        raise NotFound(
            "nothing is anchored on the current chain yet", hint="ask again after the first anchor"
        )
    return anchor


@routes.get("/v1/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint: JSON, or the C2SP note as ``text/plain`` when asked."""
    log = request.app[MERKLE_LOG]
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
            "signedAt": iso_ms(signed.created_ms),
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
    """The log's stable identity: origin and checkpoint verifier key (public half only), and
    where it is anchored: the chain (CAIP-2) and the LogAnchor contract. Together they are the
    trust root a verifier pins (``ler-anchor trust add``)."""
    log = request.app[MERKLE_LOG]
    verifier = log.verifier
    chain = request.app[CHAIN]
    return web.json_response(
        {
            "chain": chain.identity.caip2 if chain.identity is not None else None,
            "contract": chain.contract_address,
            "origin": log.origin,
            "verifierKey": verifier.vkey(),
            "publicKey": b64(verifier.public_key),
            "keyId": verifier.key_id.hex(),
            "algorithm": "Ed25519",
            "hashing": "RFC 9162 SHA-256",
            "entryEncoding": 1,
            "rpc": rpc_url(request),
        }
    )
