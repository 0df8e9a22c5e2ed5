"""The layout of the log's leaf blocks: the row format of table ``tiles``, what an append
writes into it, and how a row decodes. :class:`~anchor.log.store.LogStore` reads and writes
the rows; this module only computes them.

Pure: no I/O (bytes in, bytes out). Cost: about one SHA-256 per leaf and subtree for an append
(:func:`append_rows`, in C when the accelerator ``anchor.core._merklehash`` was built, else its
Python twin :func:`append_rows_python`), linear in a row's size for decoding.

Leaves are packed into *leaf blocks* of :data:`LEAF_BLOCK_SIZE` consecutive leaves, one row
each in table ``tiles`` (its historical name; a leaf block is not a C2SP tile, see
:mod:`anchor.core.tiles` for those)::

    tile     INTEGER PRIMARY KEY   leaves [tile * LEAF_BLOCK_SIZE, (tile + 1) * LEAF_BLOCK_SIZE)
    count    INTEGER               leaves present (LEAF_BLOCK_SIZE except in the last block)
    hashes   BLOB                  per leaf, in order: its leaf hash, then the hash of every
                                   complete subtree it completes, bottom up (32 bytes each)
    entries  BLOB                  per leaf: 2-byte length + canonical entry bytes
    created  BLOB                  per leaf: append time, 8-byte big-endian milliseconds

Appending leaf ``m`` completes the subtrees at levels ``1..t`` (``t`` = trailing one bits of
``m``), so the ``hashes`` blobs, read in block order, list every complete subtree exactly once
in :func:`anchor.core.merkle.stored_index` order: subtree ``(level, index)`` sits at byte
``32 * (stored_index(level, index) - stored_index(0, first leaf of its block))`` of the block
that holds its last leaf. A write touches only the last block; any root or proof is one
batched primary-key read of ``O(log n)`` blocks.

Packing leaves in blocks leaves one small B-tree insert per leaf (the digest index,
:mod:`anchor.log.digest_index`) instead of a row plus an index entry (``scripts/bench.py``
measures the difference).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from anchor.core import merkle
from anchor.core.entry import decode
from anchor.errors import IntegrityFailure, InvalidInput, NotFound, StoreError
from anchor.log.digest_index import Key, leaf_keys

LEAF_BLOCK_SIZE = 64
"""Leaves per leaf block (one ``tiles`` row)."""

BLOCKS_TABLE = (
    "CREATE TABLE IF NOT EXISTS tiles (tile INTEGER PRIMARY KEY, count INTEGER NOT NULL,"
    " hashes BLOB NOT NULL, entries BLOB NOT NULL, created BLOB NOT NULL)"
)
"""The leaf blocks (the table keeps its historical name ``tiles``)."""

LEAF_OFFSETS: Final = tuple(
    32 * (merkle.stored_index(0, k) - merkle.stored_index(0, 0)) for k in range(LEAF_BLOCK_SIZE)
)
"""Byte offset of each leaf's hash in its row's ``hashes`` blob (rows start at multiples of
:data:`LEAF_BLOCK_SIZE`, a power of two, so the offsets are the same in every row)."""

BlockRow = tuple[int, int, bytes, bytes, bytes]
"""A ``tiles`` row as written: tile, count, hashes, entries, created."""


@dataclass(frozen=True, slots=True)
class LeafBlock:
    """One decoded block row: the hash blobs, entries and append times of its leaves."""

    first: int
    hashes: bytes
    entries: tuple[bytes, ...]
    created: tuple[int, ...]

    def leaf_hash(self, index: int) -> bytes:
        off = 32 * (merkle.stored_index(0, index) - merkle.stored_index(0, self.first))
        return self.hashes[off : off + 32]


def split_entries(blob: bytes, count: int) -> tuple[bytes, ...]:
    """The ``count`` entries of an entries blob (each 2-byte length + bytes)."""
    out = []
    pos = 0
    for _ in range(count):
        n = int.from_bytes(blob[pos : pos + 2], "big")
        out.append(blob[pos + 2 : pos + 2 + n])
        pos += 2 + n
    if pos != len(blob):
        raise StoreError("a leaf block's entries do not match its leaf count")
    return tuple(out)


_LENGTH = struct.Struct(">H")


def entry_in(blob: bytes, index: int) -> bytes:
    """The bytes of leaf ``index`` in the entries blob of its block (length-prefixed)."""
    k = index % LEAF_BLOCK_SIZE
    pos = 0
    unpack = _LENGTH.unpack_from
    try:
        for _ in range(k):
            pos += 2 + unpack(blob, pos)[0]
        (n,) = unpack(blob, pos)
    except struct.error:
        raise NotFound(f"the log has no leaf {index}") from None
    data = blob[pos + 2 : pos + 2 + n]
    if len(data) != n:
        raise IntegrityFailure(
            f"the entries of leaf block {index // LEAF_BLOCK_SIZE} are truncated"
        )
    return data


def decode_block(
    block: int, count: int, hashes: bytes, entries: bytes, created: bytes
) -> LeafBlock:
    """A ``tiles`` row as a :class:`LeafBlock`; :class:`StoreError` when its parts disagree."""
    times = tuple(
        int.from_bytes(created[8 * i : 8 * i + 8], "big") for i in range(len(created) // 8)
    )
    if len(times) != count:
        raise StoreError(f"leaf block {block} has {len(times)} times for {count} leaves")
    return LeafBlock(
        block * LEAF_BLOCK_SIZE, bytes(hashes), split_entries(bytes(entries), count), times
    )


def extend_python(size: int, frontier: bytes, entries: list[bytes]) -> tuple[list[bytes], bytes]:
    """Leaf rows for ``entries`` appended to a tree of ``size`` leaves (see the C version in
    ``anchor/core/_ext/merklehash.c``, which computes the same): each entry's leaf hash followed by
    the hashes of the subtrees it completes, and the new frontier."""
    stack = [frontier[i : i + 32] for i in range(0, len(frontier), 32)]
    sha = merkle._sha256
    blobs = []
    for data in entries:
        blob = h = sha(b"\x00" + data).digest()
        m = size
        while m & 1:
            h = sha(b"\x01" + stack.pop() + h).digest()
            blob += h
            m >>= 1
        stack.append(h)
        blobs.append(blob)
        size += 1
    return blobs, b"".join(stack)


def append_rows_python(
    size: int, frontier: bytes, entries: list[bytes], block_size: int, salt: bytes
) -> tuple[list[Key], list[tuple[bytes, bytes]], bytes]:
    """What :meth:`~anchor.log.store.LogStore.append` writes for ``entries`` appended to a tree
    of ``size`` leaves (the C version in ``anchor/core/_ext/merklehash.c`` computes the same):
    the entries' digest-index rows, sorted; per run of leaves within one block, their
    concatenated hash rows and their length-prefixed entries; and the new frontier."""
    blobs, frontier = extend_python(size, frontier, entries)
    keys = sorted(leaf_keys(salt, size, entries))  # in key order: each B-tree page once
    chunks = []
    pos = 0
    while pos < len(entries):
        take = min(block_size - (size + pos) % block_size, len(entries) - pos)
        chunks.append(
            (
                b"".join(blobs[pos : pos + take]),
                b"".join(len(e).to_bytes(2, "big") + e for e in entries[pos : pos + take]),
            )
        )
        pos += take
    return keys, chunks, frontier


try:
    from anchor.core._merklehash import append_rows as append_rows
except ImportError:  # the optional C accelerator was not built
    append_rows = append_rows_python

try:
    from anchor.core._merklehash import inclusion_root as inclusion_root
except ImportError:  # the optional C accelerator was not built: merkle.verify_inclusion
    inclusion_root = None  # type: ignore[assignment]


def assign_indexes(
    size: int, encoded: Sequence[bytes], existing: dict[bytes, int]
) -> tuple[list[int], list[bool], list[bytes]]:
    """The leaf index of each of ``encoded`` appended to a tree of ``size`` leaves (those in
    ``existing`` keep theirs there, a repeat within the batch gets its first one's), whether
    each is new, and the new ones in order."""
    indexes: list[int]
    new: list[bool]
    fresh: list[bytes]
    if not existing and len(dict.fromkeys(encoded)) == len(encoded):
        fresh = list(encoded)  # the common case: all distinct, none known
        indexes = list(range(size, size + len(fresh)))
        new = [True] * len(fresh)
    else:
        indexes, new, fresh = [], [], []
        seen = dict(existing)
        for data in encoded:
            idx = seen.get(data)
            if idx is None:
                idx = seen[data] = size + len(fresh)
                fresh.append(data)
                new.append(True)
            else:
                new.append(False)
            indexes.append(idx)
    return indexes, new, fresh


def check_block(
    row: tuple[int, int, bytes, bytes, bytes], frontier: bytes, salt: bytes
) -> tuple[LeafBlock, bytes]:
    """Check a ``tiles`` row (tile, count, hashes, entries, created) against its entries,
    given ``frontier``: the hashes of the complete subtrees of the leaves before it. Every
    entry must decode and every stored hash must be what the entries imply; returns the
    decoded block and the frontier after it, or raises :class:`IntegrityFailure`."""
    block = int(row[0])
    try:
        decoded = decode_block(block, int(row[1]), row[2], row[3], row[4])
        for data in decoded.entries:
            decode(data)
    except (StoreError, InvalidInput) as exc:
        raise IntegrityFailure(f"leaf block {block} does not decode: {exc.detail}") from exc
    _keys, chunks, after = append_rows(
        decoded.first, frontier, list(decoded.entries), LEAF_BLOCK_SIZE, salt
    )
    if [c[0] for c in chunks] != [decoded.hashes]:
        raise IntegrityFailure(f"stored hashes of leaf block {block} do not match its entries")
    return decoded, after


def block_rows(
    size: int,
    count: int,
    chunks: Sequence[tuple[bytes, bytes]],
    now: int,
    partial: tuple[bytes, bytes, bytes],
) -> list[BlockRow]:
    """The rows that write ``count`` leaves from ``size`` on, appended at ``now`` (ms), given
    as per-block ``chunks`` of hash rows and entries (see :func:`append_rows_python`);
    ``partial``: the hashes, entries and times of the last block's leaves before ``size``
    (empty when ``size`` starts a block), which the first row extends."""
    stamp = now.to_bytes(8, "big")
    block, used = divmod(size, LEAF_BLOCK_SIZE)
    hashes, entries, created = partial
    rows: list[BlockRow] = []
    for chunk_hashes, chunk_entries in chunks:
        take = min(LEAF_BLOCK_SIZE - used, count)
        rows.append(
            (
                block,
                used + take,
                hashes + chunk_hashes,
                entries + chunk_entries,
                created + stamp * take,
            )
        )
        hashes = entries = created = b""
        count -= take
        block += 1
        used = 0
    if count:
        raise StoreError(f"{count} appended leaves fell outside their tiles")
    return rows


def tile_bundle(
    rows: Sequence[tuple[int, int, bytes, bytes]], start: int, end: int
) -> tuple[bytes, bytes]:
    """Leaves ``[start, end)`` out of the block ``rows`` (tile, count, hashes, entries) that
    hold them, in order: their leaf hashes concatenated and their entries as stored (see
    :meth:`~anchor.log.store.LogStore.tile_rows`). :class:`NotFound` when a leaf is not
    there."""
    first, last = start // LEAF_BLOCK_SIZE, (end - 1) // LEAF_BLOCK_SIZE
    if len(rows) != last - first + 1 or int(rows[-1][0]) * LEAF_BLOCK_SIZE + int(rows[-1][1]) < end:
        raise NotFound(f"the log has no leaves [{start}, {end})")
    hashes = bytearray()
    entries = bytearray()
    for block, count, blob, entry_blob in rows:
        lo = max(start, int(block) * LEAF_BLOCK_SIZE) - int(block) * LEAF_BLOCK_SIZE
        hi = min(end, (int(block) + 1) * LEAF_BLOCK_SIZE) - int(block) * LEAF_BLOCK_SIZE
        hashes += b"".join([blob[off : off + 32] for off in LEAF_OFFSETS[lo:hi]])
        data = bytes(entry_blob)
        if lo == 0 and hi == int(count):  # the whole row: its blob is already the bundle
            entries += data
            continue
        pos = 0
        for k in range(hi):
            n = 2 + int.from_bytes(data[pos : pos + 2], "big")
            if k >= lo:
                entries += data[pos : pos + n]
            pos += n
        if pos > len(data):
            raise IntegrityFailure(f"the entries of leaf block {block} are truncated")
    if len(hashes) != 32 * (end - start):
        raise StoreError(f"stored leaf hashes of [{start}, {end}) are missing")
    return bytes(hashes), bytes(entries)
