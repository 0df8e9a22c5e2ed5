"""Subtree hashes read out of the log's leaf blocks (:mod:`anchor.log.leafblocks`): one query
slices every requested 32-byte hash out of the block that holds it, so only the hashes cross
into Python, and the hashes of upper-level subtrees, which never change and serve every
proof of a large tree, are kept in a bounded cache.

I/O: one query (per 250 subtrees) on the connection it is given; memory: at most
:data:`NODE_CACHE_NODES` cached hashes (about 10 MiB).
"""

from __future__ import annotations

from collections.abc import Sequence

from anchor.core import merkle
from anchor.db.api import Connection
from anchor.errors import NotFound, StoreError
from anchor.log.leafblocks import LEAF_BLOCK_SIZE

NODE_CACHE_NODES = 65_536
"""Upper-level subtree hashes kept in memory (a fixed bound, about 10 MiB): they never
change, and the few near the top of the tree serve every proof."""

NODE_CACHE_MIN_LEVEL = 6
"""Only subtrees of at least this level (64 leaves) are cached."""

_SQL_CHUNK = 500  # bound parameters per query (three per subtree)


class NodeReader:
    """Reads subtree hashes for one store; shared by its threads (the cache holds only
    hashes, which never change, so a race at worst reads one twice)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], bytes] = {}

    def read(
        self,
        conn: Connection,
        nodes: Sequence[tuple[int, int]],
        size: int,
        entries_of: int | None = None,
    ) -> tuple[list[bytes], bytes | None]:
        """The hashes of subtrees ``nodes`` (level, index) of the tree of ``size`` leaves, in
        order, and in the same query the entries blob of block ``entries_of`` (None when not
        asked for or absent). :class:`NotFound` for a subtree beyond ``size``,
        :class:`StoreError` when a stored hash is missing."""
        last_leaf = [((index + 1) << level) - 1 for level, index in nodes]
        if last_leaf and max(last_leaf) >= size:
            raise NotFound(f"a subtree beyond the log's {size} leaves was requested")
        cache = self._cache
        found: dict[tuple[int, int], bytes] = {}
        wanted: list[tuple[tuple[int, int], int, int]] = []
        stored = merkle.stored_index
        for node, m in zip(nodes, last_leaf, strict=True):
            hit = cache.get(node)
            if hit is not None:
                found[node] = hit
            elif node not in found:
                block = m // LEAF_BLOCK_SIZE
                wanted.append(
                    (node, block, 32 * (stored(*node) - stored(0, block * LEAF_BLOCK_SIZE)) + 1)
                )
                found[node] = b""
        entries: bytes | None = None
        for i in range(0, max(len(wanted), 1 if entries_of is not None else 0), _SQL_CHUNK // 2):
            chunk = wanted[i : i + _SQL_CHUNK // 2]
            params: list[int] = []
            for n, (_node, block, off) in enumerate(chunk):
                params += (n, block, off)
            if entries_of is not None and i == 0:  # offset 0 asks for the entries blob
                params += (-1, entries_of, 0)
            values = ",".join("(?,?,?)" for _ in range(len(params) // 3))
            for n, h in conn.execute(
                f"WITH o(n, tile, off) AS (VALUES {values}) "  # noqa: S608
                "SELECT o.n, CASE o.off WHEN 0 THEN t.entries ELSE substr(t.hashes, o.off, 32)"
                " END FROM o JOIN tiles t ON t.tile = o.tile",
                params,
            ):
                if n < 0:
                    entries = bytes(h)
                    continue
                node = chunk[n][0]
                found[node] = h = bytes(h)
                if node[0] >= NODE_CACHE_MIN_LEVEL and len(h) == 32:
                    if len(cache) >= NODE_CACHE_NODES:
                        cache.clear()
                    cache[node] = h
        out = [found[node] for node in nodes]
        for node, h in zip(nodes, out, strict=True):
            if len(h) != 32:
                raise StoreError(f"stored hash of subtree {node} is missing")
        return out, entries
