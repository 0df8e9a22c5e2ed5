"""The log as C2SP tlog-tiles: ``GET /checkpoint``, ``/tile/<L>/<N>[.p/<W>]`` and
``/tile/entries/<N>[.p/<W>]`` (coordinates in :mod:`anchor.core.tiles`).

Only what the latest signed checkpoint covers is served (a tile beyond its tree size is a
404), so a tile client never sees hashes no signed root commits to; while the log is in its
failed state (damage found in the store) every route here answers 503. Tiles are built on the
fly from the store's hashes: a level-0 tile and an entry bundle are one range read of four
store rows, a higher tile one batched read of 256 stored subtree hashes (the README's
"Tiles" section has the measured rates). Full tiles never change and are cacheable forever;
partial tiles and the checkpoint are cacheable for :data:`SHORT_MAX_AGE` seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from anchor.core.tiles import Tile, check_covered, parse_tile_path, tile_nodes
from anchor.http.appkeys import MERKLE_LOG, STORE
from anchor.http.openapi import errors
from anchor.log.log import SignedCheckpoint
from anchor.log.store import LogStore

routes = web.RouteTableDef()

IMMUTABLE = "public, max-age=31536000, immutable"
"""``Cache-Control`` of full tiles and full entry bundles."""

SHORT_MAX_AGE = 5
"""Seconds a partial tile or the checkpoint may be cached (a new checkpoint is signed about
as often)."""

SHORT = f"public, max-age={SHORT_MAX_AGE}"


async def _signed(request: web.Request) -> SignedCheckpoint:
    """The latest signed checkpoint (signing the current tree head when none is yet). In the
    log's failed state (:attr:`~anchor.log.log.Log.failure`) nothing is served: tiles are not
    proved one by one against the signed root, so a damaged store must not be published."""
    log = request.app[MERKLE_LOG]
    if log.failure is not None:
        raise log.failure
    signed = await asyncio.to_thread(log.latest_checkpoint)
    if signed is None:
        signed = await asyncio.to_thread(log.checkpoint)
    return signed


def read_tile(store: LogStore, tile: Tile) -> bytes:
    """The bytes of ``tile`` (hashes, or the entry bundle), read from ``store``. The caller
    checks that the latest signed checkpoint covers the tile."""
    if tile.entries or tile.level == 0:
        hashes, entries = store.tile_rows(tile.first, tile.first + tile.width)
        return bytes(entries if tile.entries else hashes)
    return b"".join(store.read_hashes(tile_nodes(tile)))


async def _serve(request: web.Request, tile: Tile) -> web.Response:
    signed = await _signed(request)
    check_covered(tile, signed.size)
    body = await asyncio.to_thread(read_tile, request.app[STORE], tile)
    response = web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"Cache-Control": IMMUTABLE if tile.full else SHORT},
    )
    if tile.entries:  # the spec asks for compressed bundles (as Accept-Encoding allows)
        response.enable_compression()
    return response


@routes.get("/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint as a C2SP signed note (``text/plain``)."""
    signed = await _signed(request)
    return web.Response(
        text=signed.note,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": SHORT},
    )


@routes.get("/tile/entries/{path:.+}")
async def entry_bundle(request: web.Request) -> web.Response:
    """An entry bundle: the entries of level-0 tile ``N``, each length-prefixed."""
    return await _serve(request, parse_tile_path("entries/" + request.match_info["path"]))


@routes.get("/tile/{path:.+}")
async def hash_tile(request: web.Request) -> web.Response:
    """A hash tile: 32-byte subtree hashes of height ``8·L``."""
    return await _serve(request, parse_tile_path(request.match_info["path"]))


def openapi_paths() -> dict[str, Any]:
    def octets(summary: str, description: str) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "description": description,
                "tags": ["tiles"],
                "parameters": [
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 64},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The tile's bytes",
                        "headers": {"Cache-Control": {"schema": {"type": "string"}}},
                        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                    },
                    **errors(404, 503),
                },
            }
        }

    return {
        "/checkpoint": {
            "get": {
                "summary": "The latest signed checkpoint (C2SP signed note, tlog-tiles)",
                "tags": ["tiles"],
                "responses": {
                    "200": {
                        "description": "The note",
                        "headers": {"Cache-Control": {"schema": {"type": "string"}}},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **errors(503),
                },
            }
        },
        "/tile/{path}": octets(
            "A C2SP tlog-tiles hash tile",
            "path is <L>/<N>[.p/<W>]: level L (0: leaf hashes), index N in 3-digit elements "
            "(x001/x234/067), and for a partial tile its width W (1-255). Full tiles are "
            "immutable. Tiles beyond the latest signed checkpoint are 404.",
        ),
        "/tile/entries/{path}": octets(
            "A C2SP tlog-tiles entry bundle",
            "path is <N>[.p/<W>]: the entries of level-0 tile N, each a big-endian uint16 "
            "length and the canonical entry bytes.",
        ),
    }
