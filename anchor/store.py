"""The log's durable store (:class:`LogStore`) on the database seam (:mod:`anchor.db`): SQLite
in WAL mode (:class:`SQLiteStore`, the default) or PostgreSQL (:func:`open_store`).

I/O. Layout: leaves are packed into *leaf blocks* of :data:`LEAF_BLOCK_SIZE` consecutive
leaves, one row each in table ``tiles`` (its historical name; a leaf block is not a C2SP
tile, see :mod:`anchor.tiles` for those)::

    tile     INTEGER PRIMARY KEY   leaves [tile * LEAF_BLOCK_SIZE, (tile + 1) * LEAF_BLOCK_SIZE)
    count    INTEGER               leaves present (LEAF_BLOCK_SIZE except in the last block)
    hashes   BLOB                  per leaf, in order: its leaf hash, then the hash of every
                                   complete subtree it completes, bottom up (32 bytes each)
    entries  BLOB                  per leaf: 2-byte length + canonical entry bytes
    created  BLOB                  per leaf: append time, 8-byte big-endian milliseconds

Appending leaf ``m`` completes the subtrees at levels ``1..t`` (``t`` = trailing one bits of
``m``), so the ``hashes`` blobs, read in block order, list every complete subtree exactly once
in :func:`anchor.merkle.stored_index` order: subtree ``(level, index)`` sits at byte
``32 * (stored_index(level, index) - stored_index(0, first leaf of its block))`` of the block
that holds its last leaf. A write touches only the last block; any root or proof is one
batched primary-key read of ``O(log n)`` blocks.

Table ``digests`` (``WITHOUT ROWID``: ``key INTEGER PRIMARY KEY``, ``idx INTEGER``) finds
leaves by digest. A digest's key is the first 8 bytes of ``SHA-256(salt || digest)`` as a
signed integer, with a random ``salt`` per database (``meta.index_salt``), so nobody can
choose digests whose keys crowd together. Keys are open-addressed: an entry whose key is
taken (the same digest from another submitter or of another kind, or a 64-bit collision)
takes the next free key, and a look-up walks the run of consecutive keys from the digest's
own, confirming every candidate against the full entry. Rows are never deleted, so a run
ends at the first free key. The index also makes appends idempotent without a look-up per
entry: a batch is indexed as new, and only if a key is taken is the batch looked up.

Packing leaves in blocks leaves one small B-tree insert per leaf (the digest index) instead of
a row plus an index entry (``scripts/bench.py`` measures the difference).

The store keeps in memory only the *frontier*: the hashes of the at most 64 complete subtrees
that make up the current tree, so memory does not grow with the log.

Self-check. The entries are the primary data; the stored hashes must be exactly what the
entries imply, and :meth:`LogStore.check_leaf_block` proves it one block at a time (the caller
carries the frontier recomputed from the entries, never read back from storage). The digest
index is derived data: :meth:`LogStore.rebuild_digest_index` rebuilds it from the entries
when it is found damaged (or SQLite reports its pages corrupt on an append or a look-up).

Durability: SQLite ``synchronous=FULL``, PostgreSQL ``synchronous_commit``;
:meth:`LogStore.append` commits its whole batch in one transaction before it returns, so a
crash leaves each batch either entirely present or entirely absent. Several processes may
append to one PostgreSQL database: write transactions are serialised by the database
(:mod:`anchor.db.postgres`) and each append reloads the frontier when the size moved.

Schema: :data:`LOG_SCHEMA`, applied by :mod:`anchor.db.migrations` once at open.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from anchor import merkle
from anchor.db import is_postgres_url, open_database
from anchor.db.api import Connection, Database, Dialect
from anchor.db.migrations import Schema, Step, table_exists
from anchor.db.sqlite import BUSY_TIMEOUT_MS as BUSY_TIMEOUT_MS
from anchor.db.sqlite import PAGE_SIZE as PAGE_SIZE
from anchor.db.sqlite import STORAGE_RETRY_AFTER_SECONDS as STORAGE_RETRY_AFTER_SECONDS
from anchor.db.sqlite import TRANSIENT_SQLITE_CODES as TRANSIENT_SQLITE_CODES
from anchor.db.sqlite import MappedConnection as MappedConnection
from anchor.db.sqlite import SQLiteDatabase
from anchor.db.sqlite import connect as connect
from anchor.db.sqlite import is_corruption as is_corruption
from anchor.db.sqlite import storage_error as storage_error
from anchor.entry import DIGEST_SIZE, Entry, decode
from anchor.errors import (
    IndexDamaged,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    StoreError,
)

SCHEMA_VERSION = 4
"""Version of the table layout written to ``meta`` (see :data:`LOG_SCHEMA`). Version 2
(digest index keyed on digest and leaf-hash prefixes) and version 3 (no ``checkpoints``
table yet) are migrated at open; any other is refused."""

INDEX_SALT_SIZE = 16
"""Bytes of the per-database random salt of digest-index keys (one SHA-256 block with the
digest)."""

LEAF_BLOCK_SIZE = 64
"""Leaves per leaf block (one ``tiles`` row)."""

TILE_SIZE = LEAF_BLOCK_SIZE
"""The former name of :data:`LEAF_BLOCK_SIZE` (a leaf block is not a C2SP tile)."""

MAX_APPEND_BATCH = 1_000_000
"""Most entries one :meth:`SQLiteStore.append` call accepts."""

MAX_ENTRIES_PAGE = 10_000
"""Most entries one :meth:`SQLiteStore.entries` call returns."""

NODE_CACHE_NODES = 65_536
"""Upper-level subtree hashes kept in memory (a fixed bound, about 10 MiB): they never
change, and the few near the top of the tree serve every proof."""

NODE_CACHE_MIN_LEVEL = 6
"""Only subtrees of at least this level (64 leaves) are cached."""

_SQL_CHUNK = 500  # bound parameters per IN (...) query

_LEAF_OFFSETS: Final = tuple(
    32 * (merkle.stored_index(0, k) - merkle.stored_index(0, 0)) for k in range(LEAF_BLOCK_SIZE)
)
"""Byte offset of each leaf's hash in its row's ``hashes`` blob (rows start at multiples of
:data:`LEAF_BLOCK_SIZE`, a power of two, so the offsets are the same in every row)."""

LOG = logging.getLogger("ler_anchor")


_KEY_MAX = 2**63 - 1


def _index_key(salt: bytes, digest: bytes) -> int:
    """The digest-index key of ``digest`` (before any probing)."""
    return int.from_bytes(hashlib.sha256(salt + digest).digest()[:8], "big", signed=True)


def _next_key(key: int) -> int:
    """The key after ``key``: the key space wraps around."""
    return key + 1 if key < _KEY_MAX else -_KEY_MAX - 1


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A leaf as stored: index, entry, leaf hash and append time (ms since the epoch)."""

    index: int
    entry: Entry
    leaf_hash: bytes
    created_ms: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Indexes for each appended entry, in input order, and which of them are new."""

    indexes: tuple[int, ...]
    new: tuple[bool, ...]
    size: int


DIGESTS_TABLE = "CREATE TABLE {name} (key INTEGER PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID"

BLOCKS_TABLE = (
    "CREATE TABLE IF NOT EXISTS tiles (tile INTEGER PRIMARY KEY, count INTEGER NOT NULL,"
    " hashes BLOB NOT NULL, entries BLOB NOT NULL, created BLOB NOT NULL)"
)
"""The leaf blocks (the table keeps its historical name ``tiles``)."""

CHECKPOINTS_TABLE = (
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    " size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL,"
    " created INTEGER NOT NULL)"
)
"""The signed checkpoints of :mod:`anchor.log`."""

_INSERT_KEY = "INSERT INTO {table} (key, idx) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"


def _insert_probing(conn: Connection, table: str, rows: Iterable[tuple[int, int]]) -> None:
    """Insert digest-index rows one by one, each at the first free key from its own (a taken
    key inserts nothing: no constraint error, which would abort a PostgreSQL transaction)."""
    sql = _INSERT_KEY.format(table=table)
    for key, idx in rows:
        while conn.execute(sql, (key, idx)).rowcount == 0:
            key = _next_key(key)


def _migrate_from_v2(conn: Connection, dialect: Dialect) -> None:
    """Rebuild the version-2 digest index (keyed on digest and leaf-hash prefixes) as the
    salted, open-addressed version-3 index. Inside the caller's transaction; one pass over
    the leaf blocks, memory bounded by one block."""
    salt = os.urandom(INDEX_SALT_SIZE)
    conn.execute("DROP TABLE IF EXISTS digests_v3")
    conn.execute(DIGESTS_TABLE.format(name="digests_v3"))
    for block, count, entries in conn.execute(
        "SELECT tile, count, entries FROM tiles ORDER BY tile"
    ):
        first = int(block) * LEAF_BLOCK_SIZE
        rows = [
            (_index_key(salt, data[4 : 4 + DIGEST_SIZE]), first + k)
            for k, data in enumerate(_split_entries(bytes(entries), int(count)))
        ]
        _insert_probing(conn, "digests_v3", rows)
    conn.execute("DROP TABLE digests")
    conn.execute("ALTER TABLE digests_v3 RENAME TO digests")
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ("index_salt", salt.hex()),
    )


def _create_log_tables(conn: Connection, dialect: Dialect) -> None:
    """The log's tables on a fresh database, at :data:`SCHEMA_VERSION`."""
    conn.execute(BLOCKS_TABLE)
    conn.execute(DIGESTS_TABLE.format(name="digests"))
    conn.execute(CHECKPOINTS_TABLE)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
        ("index_salt", os.urandom(INDEX_SALT_SIZE).hex()),
    )


def _add_checkpoints(conn: Connection, dialect: Dialect) -> None:
    conn.execute(CHECKPOINTS_TABLE)


LOG_SCHEMA: Final = Schema(
    version=SCHEMA_VERSION,
    create=_create_log_tables,
    steps=(
        Step(3, "salted, open-addressed digest index", _migrate_from_v2, frozenset({"sqlite"})),
        Step(4, "checkpoints table (created at open, not on first use)", _add_checkpoints),
    ),
    readable=frozenset({3}),
)
"""The database's schema and its migrations (:mod:`anchor.db.migrations`): the log's leaf
blocks, digest index and checkpoints. Feature tables join it as further steps."""


def size_in(conn: Connection) -> int:
    """The number of committed leaves, read on ``conn`` (inside its transaction, if any)."""
    row = conn.execute("SELECT tile, count FROM tiles ORDER BY tile DESC LIMIT 1").fetchone()
    return 0 if row is None else int(row[0]) * LEAF_BLOCK_SIZE + int(row[1])


@dataclass(frozen=True, slots=True)
class _LeafBlock:
    """One decoded block row: the hash blobs, entries and append times of its leaves."""

    first: int
    hashes: bytes
    entries: tuple[bytes, ...]
    created: tuple[int, ...]

    def leaf_hash(self, index: int) -> bytes:
        off = 32 * (merkle.stored_index(0, index) - merkle.stored_index(0, self.first))
        return self.hashes[off : off + 32]


def _split_entries(blob: bytes, count: int) -> tuple[bytes, ...]:
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


def _entry_in(blob: bytes, index: int) -> bytes:
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


def _decode_block(
    block: int, count: int, hashes: bytes, entries: bytes, created: bytes
) -> _LeafBlock:
    times = tuple(
        int.from_bytes(created[8 * i : 8 * i + 8], "big") for i in range(len(created) // 8)
    )
    if len(times) != count:
        raise StoreError(f"leaf block {block} has {len(times)} times for {count} leaves")
    return _LeafBlock(
        block * LEAF_BLOCK_SIZE, bytes(hashes), _split_entries(bytes(entries), count), times
    )


def _extend_python(size: int, frontier: bytes, entries: list[bytes]) -> tuple[list[bytes], bytes]:
    """Leaf rows for ``entries`` appended to a tree of ``size`` leaves (see the C version in
    ``anchor/_ext/merklehash.c``, which computes the same): each entry's leaf hash followed by
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


_Key = tuple[int, int]
"""A digest-index row: the digest's key (see :func:`_index_key`) and the leaf index."""


def _append_rows_python(
    size: int, frontier: bytes, entries: list[bytes], block_size: int, salt: bytes
) -> tuple[list[_Key], list[tuple[bytes, bytes]], bytes]:
    """What :meth:`SQLiteStore.append` writes for ``entries`` appended to a tree of ``size``
    leaves (the C version in ``anchor/_ext/merklehash.c`` computes the same): the entries'
    digest-index rows, sorted; per run of leaves within one block, their concatenated hash rows and
    their length-prefixed entries; and the new frontier."""
    blobs, frontier = _extend_python(size, frontier, entries)
    keys = sorted(  # in key order, B-tree inserts touch each page once
        (_index_key(salt, data[4 : 4 + DIGEST_SIZE]), size + i) for i, data in enumerate(entries)
    )
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
    from anchor._merklehash import append_rows as _append_rows
except ImportError:  # the optional C accelerator was not built
    _append_rows = _append_rows_python

try:
    from anchor._merklehash import inclusion_root as _inclusion_root
except ImportError:  # the optional C accelerator was not built: merkle.verify_inclusion
    _inclusion_root = None  # type: ignore[assignment]


class _Corrupt(StoreError):
    """SQLite reported damaged pages during an operation that may be retried once the
    digest index is rebuilt (internal to this module)."""


class LogStore:
    """The log's store in one database (:class:`~anchor.db.api.Database`, SQLite or
    PostgreSQL).

    Thread-safe: appends are serialised by a lock here and by the database's write lock
    (which also serialises the appends of other processes on a PostgreSQL database: each
    append reloads the frontier when another one moved the size, :meth:`_sync_frontier`).
    Other tables (anchors, issuers, ...) share the database through :meth:`transaction` and
    :meth:`reader`.
    """

    def __init__(self, db: Database) -> None:
        """Use ``db``, opened at :data:`LOG_SCHEMA` (see :func:`open_store`)."""
        self.db = db
        self.read_only = db.read_only
        self._append_lock = threading.Lock()
        salt = db.meta("index_salt")
        self._salt = bytes.fromhex(salt or "")
        if len(self._salt) != INDEX_SALT_SIZE:
            raise StoreError("the database has no valid digest-index salt")
        self._size = -1
        self._frontier = b""  # hashes of the complete subtrees of the tree, left to right
        self._node_cache: dict[tuple[int, int], bytes] = {}  # upper-level subtree hashes
        self._sync_frontier(db.reader())
        if not table_exists(db.reader(), db.dialect, "digests") and not db.read_only:
            self.rebuild_digest_index()  # a rebuild was interrupted between drop and rename

    # -- the database --------------------------------------------------------------------

    @property
    def write_error(self) -> StorageUnavailable | None:
        """The failure of the last write when it was a :class:`StorageUnavailable` (the disk
        is full, read-only, failing; the server is down); ``None`` once a write commits."""
        return self.db.write_error

    def reader(self) -> Connection:
        """A read connection (single statements, each on a consistent snapshot)."""
        return self.db.reader()

    def transaction(self) -> AbstractContextManager[Connection]:
        """A serialised write transaction, committed durably on exit (see
        :meth:`anchor.db.api.Database.transaction`)."""
        return self.db.transaction()

    def close(self) -> None:
        self.db.close()

    def has_table(self, name: str) -> bool:  # one catalogue read
        return table_exists(self.reader(), self.db.dialect, name)

    def meta(self, key: str) -> str | None:
        return self.db.meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.db.set_meta(key, value)

    # -- the log -------------------------------------------------------------------------

    def _sync_frontier(self, conn: Connection) -> None:
        """Reload size and frontier if the table changed under us (another process)."""
        size = size_in(conn)
        if size == self._size:
            return
        nodes = merkle.subtrees(0, size)
        self._frontier = b"".join(self._read_hashes(conn, nodes, size))
        self._size = size

    def size(self) -> int:
        return size_in(self.reader())

    def append(self, entries: Sequence[Entry]) -> AppendResult:
        """Append ``entries`` in one transaction and return each one's leaf index.

        An entry already in the log (same kind, digest and submitter), or repeated within
        the batch, gets its existing index and is not written again. Cost: one small B-tree
        insert and about one node hash per new leaf, one leaf-block row per
        :data:`LEAF_BLOCK_SIZE` leaves; a batch holding a re-submitted entry also pays one
        index probe per digest.
        """
        if len(entries) > MAX_APPEND_BATCH:
            raise InvalidInput(f"batch of {len(entries)} entries exceeds {MAX_APPEND_BATCH}")
        encoded = [e.encode() for e in entries]
        try:
            return self._append_encoded(encoded)
        except _Corrupt:  # SQLite found damaged pages: the index is rebuilt, then retried once
            self.rebuild_digest_index()
            try:
                return self._append_encoded(encoded)
            except _Corrupt as again:
                raise IntegrityFailure(f"the database is corrupt: {again.__cause__}") from again

    def _append_encoded(self, encoded: list[bytes]) -> AppendResult:
        """One attempt of :meth:`append`; raises :class:`_Corrupt` when SQLite reports
        damaged pages (nothing is written then)."""
        with self._append_lock:
            try:
                with self.db.transaction() as conn:
                    self._sync_frontier(conn)
                    size = self._size
                    now = int(time.time() * 1000)
                    placed = self._place(conn, size, encoded, {}, optimistic=True)
                    if placed is None:  # an entry is in the log already: look the batch up
                        placed = self._place(conn, size, encoded, self._lookup(conn, encoded))
                    assert placed is not None
                    indexes, new, fresh, chunks, frontier = placed
                    self._write_blocks(conn, size, len(fresh), chunks, now)
                    size += len(fresh)
            except BaseException as exc:
                self._size = -1  # force a reload on next use
                if is_corruption(exc):
                    raise _Corrupt(f"append failed and was rolled back: {exc}") from exc
                raise
            self._size = size
            self._frontier = frontier
        return AppendResult(tuple(indexes), tuple(new), size)

    def _place(
        self,
        conn: Connection,
        size: int,
        encoded: Sequence[bytes],
        existing: dict[bytes, int],
        *,
        optimistic: bool = False,
    ) -> tuple[list[int], list[bool], list[bytes], list[tuple[bytes, bytes]], bytes] | None:
        """Give every entry an index (``existing`` ones keep theirs), hash the new ones and
        index their digests.

        ``optimistic``: treat every entry as new; if the index key of one is taken (the
        entry is in the log already, or another with the same key is) write nothing and
        return ``None``, so the caller looks the batch up first. Otherwise a taken key (the
        look-up found no such entry) moves to the next free key."""
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
        rows, chunks, frontier = _append_rows(
            size, self._frontier, fresh, LEAF_BLOCK_SIZE, self._salt
        )
        conn.execute("SAVEPOINT place")
        inserted = conn.executemany(_INSERT_KEY.format(table="digests"), rows).rowcount
        if inserted != len(rows):  # a key is taken: undo the batch's index rows
            conn.execute("ROLLBACK TO place")
            if optimistic:
                conn.execute("RELEASE place")
                return None
            _insert_probing(conn, "digests", rows)
        conn.execute("RELEASE place")
        return indexes, new, fresh, chunks, frontier

    def _write_blocks(
        self,
        conn: Connection,
        size: int,
        count: int,
        chunks: Sequence[tuple[bytes, bytes]],
        now: int,
    ) -> None:
        """Write ``count`` leaves from ``size`` on, given as per-block ``chunks`` of hash rows
        and entries (see :func:`_append_rows_python`), extending the last, partial block.
        Inside the caller's transaction."""
        if not count:
            return
        stamp = now.to_bytes(8, "big")
        block, used = divmod(size, LEAF_BLOCK_SIZE)
        hashes = entries = created = b""
        if used:
            row = conn.execute(
                "SELECT hashes, entries, created FROM tiles WHERE tile = ?", (block,)
            ).fetchone()
            if row is None:
                raise StoreError(f"the leaf block of leaf {size} is missing")
            hashes, entries, created = bytes(row[0]), bytes(row[1]), bytes(row[2])
        rows: list[tuple[int, int, bytes, bytes, bytes]] = []
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
        conn.executemany(
            "INSERT INTO tiles (tile, count, hashes, entries, created) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (tile) DO UPDATE SET count = excluded.count, hashes = excluded.hashes,"
            " entries = excluded.entries, created = excluded.created",
            rows,
        )

    def _blocks(self, conn: Connection, blocks: Iterable[int]) -> dict[int, _LeafBlock]:
        out: dict[int, _LeafBlock] = {}
        wanted = sorted(set(blocks))
        for i in range(0, len(wanted), _SQL_CHUNK):
            chunk = wanted[i : i + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                "SELECT tile, count, hashes, entries, created FROM tiles"  # noqa: S608
                f" WHERE tile IN ({marks})",
                chunk,
            ):
                out[int(row[0])] = _decode_block(int(row[0]), int(row[1]), row[2], row[3], row[4])
        return out

    def _indexes_by_digest(self, conn: Connection, digests: Iterable[bytes]) -> list[int]:
        """Candidate leaf indexes for ``digests``: every index in the run of consecutive keys
        from each digest's own key. One query per ``_SQL_CHUNK`` keys and per step along the
        longest run (almost always one step)."""
        return self._indexes_by_keys(conn, {_index_key(self._salt, d) for d in digests})

    @staticmethod
    def _indexes_by_keys(conn: Connection, keys: set[int]) -> list[int]:
        found: list[int] = []
        while keys:
            taken: set[int] = set()
            unique = list(keys)
            for i in range(0, len(unique), _SQL_CHUNK):
                chunk = unique[i : i + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, idx in conn.execute(
                    f"SELECT key, idx FROM digests WHERE key IN ({marks})",  # noqa: S608
                    chunk,
                ):
                    found.append(int(idx))
                    taken.add(int(key))
            keys = {_next_key(k) for k in taken}
        return found

    def _lookup(self, conn: Connection, encoded: Sequence[bytes]) -> dict[bytes, int]:
        """Indexes of those of ``encoded`` already in the log, by entry bytes."""
        candidates = self._indexes_by_digest(conn, (d[4 : 4 + DIGEST_SIZE] for d in encoded))
        if not candidates:
            return {}
        wanted = set(encoded)
        blocks = self._blocks(conn, (i // LEAF_BLOCK_SIZE for i in candidates))
        found: dict[bytes, int] = {}
        for idx in sorted(candidates):
            block = blocks[idx // LEAF_BLOCK_SIZE]
            data = block.entries[idx - block.first]
            if data in wanted:
                found.setdefault(data, idx)
        return found

    def _read_hashes(
        self, conn: Connection, nodes: Sequence[tuple[int, int]], size: int
    ) -> list[bytes]:
        """One query for all ``nodes``: SQLite slices each 32-byte hash out of its block, so
        only the hashes cross into Python. Upper-level hashes are cached (they never
        change and every proof of a large tree needs some of them)."""
        return self._read_nodes(conn, nodes, size)[0]

    def _read_nodes(
        self,
        conn: Connection,
        nodes: Sequence[tuple[int, int]],
        size: int,
        entries_of: int | None = None,
    ) -> tuple[list[bytes], bytes | None]:
        """:meth:`_read_hashes`, and in the same query the entries blob of block
        ``entries_of`` (None when not asked for or absent)."""
        last_leaf = [((index + 1) << level) - 1 for level, index in nodes]
        if last_leaf and max(last_leaf) >= size:
            raise NotFound(f"a subtree beyond the log's {size} leaves was requested")
        cache = self._node_cache
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

    def read_hashes(self, nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        rows = [((index + 1) << level) - 1 for level, index in nodes]
        return self._read_hashes(
            self.reader(), nodes, self._size_at_least(max(rows, default=-1) + 1)
        )

    def _size_at_least(self, size: int) -> int:
        """The log size if it is known to be at least ``size`` without a query, else read it.
        Leaves are never removed, so a size once seen stays a lower bound."""
        known = self._size
        return known if size <= known else self.size()

    def _check_size(self, size: int) -> None:
        have = self._size_at_least(size)
        if not 0 <= size <= have:
            raise NotFound(f"tree size {size} is beyond the log's {have} leaves")

    def root(self, size: int | None = None) -> bytes:
        size = self.size() if size is None else size
        self._check_size(size)
        return merkle.tree_root(size, self)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise InvalidInput(f"leaf index {index} is not below tree size {size}")
        return merkle.inclusion_proof(index, size, self)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise InvalidInput(f"a consistency proof needs 0 < size1 <= size2 ({size1}, {size2})")
        return merkle.consistency_proof(size1, size2, self)

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        """Leaves ``[start, end)``; at most :data:`MAX_ENTRIES_PAGE` of them."""
        if start < 0 or end < start:
            raise InvalidInput(f"bad entry range [{start}, {end})")
        if end - start > MAX_ENTRIES_PAGE:
            raise InvalidInput(f"at most {MAX_ENTRIES_PAGE} entries per page")
        conn = self.reader()
        end = min(end, size_in(conn))
        if end <= start:
            return []
        blocks = self._blocks(
            conn, range(start // LEAF_BLOCK_SIZE, (end - 1) // LEAF_BLOCK_SIZE + 1)
        )
        return [self._stored(blocks[i // LEAF_BLOCK_SIZE], i) for i in range(start, end)]

    @staticmethod
    def _stored(block: _LeafBlock, index: int) -> StoredEntry:
        k = index - block.first
        return StoredEntry(
            index, decode(block.entries[k]), block.leaf_hash(index), block.created[k]
        )

    def find(self, digest: bytes, submitter: str | None = None) -> list[StoredEntry]:
        """Leaves whose entry carries ``digest`` (optionally from ``submitter``), oldest first.
        If SQLite reports the index's pages corrupt, the index is rebuilt and the look-up
        retried once."""
        try:
            return self._find(digest, submitter)
        except (sqlite3.DatabaseError, StoreError) as exc:
            if not is_corruption(exc):
                raise
            self.rebuild_digest_index()
        return self._find(digest, submitter)

    def _find(self, digest: bytes, submitter: str | None) -> list[StoredEntry]:
        conn = self.reader()
        candidates = sorted(self._indexes_by_digest(conn, [digest]))
        blocks = self._blocks(conn, (i // LEAF_BLOCK_SIZE for i in candidates))
        found = [self._stored(blocks[i // LEAF_BLOCK_SIZE], i) for i in candidates]
        found = [s for s in found if s.entry.digest == digest]
        if submitter is not None:
            found = [s for s in found if s.entry.submitter == submitter]
        return found

    def check_integrity(self, progress: Callable[[int], object] | None = None) -> int:
        """Recompute every stored hash from the entries and check the digest index,
        raising :class:`IntegrityFailure` (primary data) or :class:`IndexDamaged` (the
        index) at the first mismatch. Returns the size checked; ``progress(n)`` hears of
        every ``n`` leaves checked. Cost: one pass, ``O(n)`` hashes and index probes,
        ``O(log n)`` memory."""
        size = self.size()
        frontier = b""
        checked = 0
        block = 0
        while checked < size:
            count, frontier = self.check_leaf_block(block, frontier)
            if count == 0:
                raise IntegrityFailure(f"leaf {checked} is missing (leaf block {block} is absent)")
            if count < LEAF_BLOCK_SIZE and checked + count < size:
                raise IntegrityFailure(f"leaf block {block} is partial but not the last one")
            checked += count
            block += 1
            if progress is not None:
                progress(count)
        self.check_index_rows()
        return checked

    def check_leaf_block(
        self, block: int, frontier: bytes, *, index: bool = True
    ) -> tuple[int, bytes]:
        """Check one block against its entries, given ``frontier``: the hashes of the complete
        subtrees of the leaves before it, as the caller recomputed them from *their* entries.

        Every entry must decode, every leaf hash must be the hash of its entry and every
        subtree hash the block stores must be the hash of its children; with ``index``, the
        digest index must find every leaf of the block from its digest. Returns the block's
        leaf count (0 when there is no such block) and the frontier after it. Raises
        :class:`IntegrityFailure` (also when SQLite reports the block's pages corrupt) or
        :class:`IndexDamaged`. Cost: one row read, about two hashes and one index probe per
        leaf."""
        conn = self.reader()
        try:
            row = conn.execute(
                "SELECT tile, count, hashes, entries, created FROM tiles WHERE tile = ?", (block,)
            ).fetchone()
        except (sqlite3.DatabaseError, StoreError) as exc:
            if is_corruption(exc):
                raise IntegrityFailure(f"leaf block {block} cannot be read: {exc}") from exc
            raise StoreError(f"leaf block {block} cannot be read: {exc}") from exc
        if row is None:
            return 0, frontier
        first = block * LEAF_BLOCK_SIZE
        try:
            decoded = _decode_block(block, int(row[1]), row[2], row[3], row[4])
            for data in decoded.entries:
                decode(data)
        except (StoreError, InvalidInput) as exc:
            raise IntegrityFailure(f"leaf block {block} does not decode: {exc.detail}") from exc
        _keys, chunks, after = _append_rows(
            first, frontier, list(decoded.entries), LEAF_BLOCK_SIZE, self._salt
        )
        if [c[0] for c in chunks] != [decoded.hashes]:
            raise IntegrityFailure(f"stored hashes of leaf block {block} do not match its entries")
        if index:
            self._check_index_finds(conn, first, decoded.entries)
        return len(decoded.entries), after

    def _check_index_finds(self, conn: Connection, first: int, entries: Sequence[bytes]) -> None:
        keys = {_index_key(self._salt, data[4 : 4 + DIGEST_SIZE]) for data in entries}
        try:
            found = set(self._indexes_by_keys(conn, keys))
        except (sqlite3.DatabaseError, StoreError) as exc:
            if isinstance(exc, StorageUnavailable):  # the disk, not the index
                raise
            raise IndexDamaged(f"the digest index cannot be read: {exc}") from exc
        missing = [first + k for k in range(len(entries)) if first + k not in found]
        if missing:
            raise IndexDamaged(
                f"the digest index does not find leaf {missing[0]}"
                + (f" (and {len(missing) - 1} more of its block)" if len(missing) > 1 else "")
            )

    def check_index_rows(self, *, full: bool = True) -> None:
        """Check that the digest index holds exactly one row per leaf (without ``full``, only
        as many rows as leaves), in one statement, so appends meanwhile do not matter.
        Raises :class:`IndexDamaged`. Cost: one scan of the index; ``full`` also sorts its
        leaf indexes (seconds for millions of rows)."""
        counts = (
            "count(*), count(DISTINCT idx), min(idx), max(idx)"
            if full
            else "count(*), count(*), 0, count(*) - 1"
        )
        sql = (
            f"SELECT coalesce((SELECT tile * {LEAF_BLOCK_SIZE} + count FROM tiles"  # noqa: S608
            f" ORDER BY tile DESC LIMIT 1), 0), {counts} FROM digests"
        )
        try:
            size, rows, distinct, low, high = self.reader().execute(sql).fetchone()
        except (sqlite3.DatabaseError, StoreError) as exc:
            if isinstance(exc, StorageUnavailable):  # the disk, not the index
                raise
            raise IndexDamaged(f"the digest index cannot be read: {exc}") from exc
        if rows != size or distinct != size or (size and (low, high) != (0, size - 1)):
            raise IndexDamaged(
                f"the digest index holds {distinct} distinct of {rows} rows for leaves"
                f" {low}..{high}, but the log has {size} leaves"
            )

    def rebuild_digest_index(self) -> int:
        """Rebuild the digest index from the entries (it is derived data) and return the
        number of leaves indexed. The new index is built beside the old one and swapped in
        (on PostgreSQL in the same transaction, so other processes' appends wait); an old
        SQLite index whose pages SQLite reports corrupt is unlinked from the schema instead
        of dropped (its pages stay unused until ``VACUUM``). Raises
        :class:`IntegrityFailure` when the leaf blocks themselves cannot be read. Cost: one
        pass over the leaf blocks and one B-tree insert per leaf, memory of all the entries
        blobs; holds the write lock (appends wait) throughout."""
        one_transaction = self.db.dialect != "sqlite"
        with self._append_lock:
            try:
                with self.db.transaction() as conn:
                    conn.execute("DROP TABLE IF EXISTS digests_rebuild")
                    conn.execute(DIGESTS_TABLE.format(name="digests_rebuild"))
                    indexed = 0
                    for block, count, entries in conn.execute(
                        "SELECT tile, count, entries FROM tiles ORDER BY tile"
                    ).fetchall():
                        first = int(block) * LEAF_BLOCK_SIZE
                        rows = [
                            (_index_key(self._salt, data[4 : 4 + DIGEST_SIZE]), first + k)
                            for k, data in enumerate(_split_entries(bytes(entries), int(count)))
                        ]
                        _insert_probing(conn, "digests_rebuild", sorted(rows))
                        indexed += len(rows)
                    if one_transaction:
                        conn.execute("DROP TABLE IF EXISTS digests")
                        conn.execute("ALTER TABLE digests_rebuild RENAME TO digests")
                        conn.execute("ALTER INDEX digests_rebuild_pkey RENAME TO digests_pkey")
                if not one_transaction:
                    self._swap_index()
            except (sqlite3.DatabaseError, StoreError) as exc:
                if isinstance(exc, StorageUnavailable):
                    raise
                if is_corruption(exc):
                    raise IntegrityFailure(f"the digest index cannot be rebuilt: {exc}") from exc
                raise StoreError(f"the digest index cannot be rebuilt: {exc}") from exc
        return indexed

    def _swap_index(self) -> None:
        """Replace ``digests`` by ``digests_rebuild`` (SQLite). Under the append lock."""
        db = self.db
        assert isinstance(db, SQLiteDatabase)

        def run(*statements: str) -> None:
            with db.transaction() as conn:
                for sql in statements:
                    conn.execute(sql)

        rename = "ALTER TABLE digests_rebuild RENAME TO digests"
        if table_exists(db.reader(), "sqlite", "digests"):
            try:
                run("DROP TABLE digests", rename)
                return
            except (sqlite3.DatabaseError, StoreError) as exc:
                if not is_corruption(exc):
                    raise
            # Dropping walks the damaged B-tree: unlink it from the schema instead (a new
            # schema version makes every connection reload it).
            version = int(db.reader().execute("PRAGMA schema_version").fetchone()[0])
            try:
                run(
                    "PRAGMA writable_schema = ON",
                    "DELETE FROM sqlite_master WHERE name = 'digests'",
                    f"PRAGMA schema_version = {version + 1}",
                    "PRAGMA writable_schema = OFF",
                )
            finally:
                run("PRAGMA writable_schema = OFF")
            db.reopen_writer()  # a fresh writer connection reads the new schema
        run(rename)

    def entry_bytes(self, index: int) -> bytes:
        """The stored (canonical) bytes of leaf ``index``. One row read."""
        row = (
            self.reader()
            .execute("SELECT entries FROM tiles WHERE tile = ?", (index // LEAF_BLOCK_SIZE,))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"the log has no leaf {index}")
        return _entry_in(bytes(row[0]), index)

    def checked_inclusion_proof(
        self, index: int, size: int, root: bytes
    ) -> tuple[list[bytes], bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves, verified
        against ``root`` (a signed root) with the leaf hash recomputed from the stored entry
        bytes; returns the proof and that leaf hash. Raises
        :class:`~anchor.errors.VerificationError` when it does not verify. Cost: the proof's
        ``O(log n)`` reads, one more row read, and ``len(proof) + 1`` hashes."""
        self._check_size(size)
        if not 0 <= index < size:
            raise InvalidInput(f"leaf index {index} is not below tree size {size}")
        plan = merkle.inclusion_plan(index, size)
        needed = plan.needed()
        hashes, entries = self._read_nodes(self.reader(), needed, size, index // LEAF_BLOCK_SIZE)
        if entries is None:
            raise NotFound(f"the log has no leaf {index}")
        proof = merkle.build_proof(plan, dict(zip(needed, hashes, strict=True)))
        leaf = merkle.leaf_hash(_entry_in(entries, index))
        if _inclusion_root is not None:  # the proof is well formed (built above): one C call
            try:
                if _inclusion_root(index, size, leaf, b"".join(proof)) == root:
                    return proof, leaf
            except ValueError:
                pass
        merkle.verify_inclusion(index, size, leaf, proof, root)  # raises, saying what differs
        return proof, leaf

    def tile_rows(self, start: int, end: int) -> tuple[bytes, bytes]:
        """Leaves ``[start, end)`` as stored, for C2SP tiles (:mod:`anchor.tiles`): their leaf
        hashes concatenated (32 bytes each) and their entries as stored (each a 2-byte
        big-endian length and the entry bytes). At most :data:`MAX_ENTRIES_PAGE` leaves; one
        primary-key range read of ``(end - start) / LEAF_BLOCK_SIZE + 1`` rows."""
        if start < 0 or end <= start or end - start > MAX_ENTRIES_PAGE:
            raise InvalidInput(f"bad leaf range [{start}, {end})")
        first, last = start // LEAF_BLOCK_SIZE, (end - 1) // LEAF_BLOCK_SIZE
        rows = (
            self.reader()
            .execute(
                "SELECT tile, count, hashes, entries FROM tiles WHERE tile BETWEEN ? AND ?"
                " ORDER BY tile",
                (first, last),
            )
            .fetchall()
        )
        if (
            len(rows) != last - first + 1
            or int(rows[-1][0]) * LEAF_BLOCK_SIZE + int(rows[-1][1]) < end
        ):
            raise NotFound(f"the log has no leaves [{start}, {end})")
        hashes = bytearray()
        entries = bytearray()
        for block, count, blob, entry_blob in rows:
            lo = max(start, int(block) * LEAF_BLOCK_SIZE) - int(block) * LEAF_BLOCK_SIZE
            hi = min(end, (int(block) + 1) * LEAF_BLOCK_SIZE) - int(block) * LEAF_BLOCK_SIZE
            hashes += b"".join([blob[off : off + 32] for off in _LEAF_OFFSETS[lo:hi]])
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


class SQLiteStore(LogStore):
    """The log's store in one SQLite database file (the embedded default)."""

    db: SQLiteDatabase

    def __init__(self, path: str | Path, *, create: bool = True, read_only: bool = False) -> None:
        """Open the database at ``path``. ``create``: make it (mode 0600) if it does not exist,
        only ``serve`` (and tests) do; without it a missing database is :class:`NoDatabase`
        and a file without the schema is refused, never given one. ``read_only``: SQLite
        ``mode=ro``, nothing is written (implies not ``create``); writes then fail."""
        self.path = Path(path)
        db = SQLiteDatabase(path, LOG_SCHEMA, create=create, read_only=read_only)
        try:
            super().__init__(db)
        except BaseException:
            db.close()
            raise

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        return self.db.reader()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction on the writer connection, committed on exit (see
        :meth:`anchor.db.sqlite.SQLiteDatabase.transaction`)."""
        with self.db.transaction() as conn:
            yield conn


def open_store(target: str | Path, *, create: bool = True, read_only: bool = False) -> LogStore:
    """The log's store in ``target``: a ``postgresql://`` URL or a SQLite file path."""
    if not is_postgres_url(target):
        return SQLiteStore(target, create=create, read_only=read_only)
    db = open_database(target, LOG_SCHEMA, create=create, read_only=read_only)
    try:
        return LogStore(db)
    except BaseException:
        db.close()
        raise


def sqlite_store(store: LogStore) -> SQLiteStore:
    """``store`` as the :class:`SQLiteStore` that feature modules not yet ported to the seam
    (anchors, issuers, nonces, status lists) are typed against; a store on another backend
    is refused with :class:`StoreError`. Pure."""
    if not isinstance(store, SQLiteStore):
        raise StoreError(
            f"this feature does not run on {store.db.dialect} yet",
            hint="use a SQLite database for it",
        )
    return store
