"""The log's durable store (:class:`LogStore`) on the database seam (:mod:`anchor.db`): SQLite
in WAL mode (:class:`SQLiteStore`, the default) or PostgreSQL (:func:`open_store`).

I/O. The log is two tables: the leaves in *leaf blocks* of :data:`LEAF_BLOCK_SIZE`
consecutive leaves, one row each in table ``tiles`` (the row format and what an append writes:
:mod:`anchor.log.leafblocks`), and the digest index ``digests``, which finds leaves by digest
and makes appends idempotent (:mod:`anchor.log.digest_index`). A write touches only the last
block and one small B-tree insert per leaf; any root or proof is one batched primary-key read
of ``O(log n)`` blocks (:mod:`anchor.log.nodes`, which caches the upper levels).

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

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from anchor.core import merkle
from anchor.core.entry import DIGEST_SIZE, Entry, decode
from anchor.db import is_postgres_url, open_database
from anchor.db.api import Connection, Database, Dialect
from anchor.db.migrations import Schema, Step, table_exists
from anchor.db.sqlite import SQLiteDatabase, is_corruption
from anchor.errors import (
    IntegrityFailure,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    StoreError,
)
from anchor.log import digest_index
from anchor.log.digest_index import DIGESTS_TABLE, INDEX_SALT_SIZE, INSERT_KEY, insert_probing
from anchor.log.leafblocks import (
    BLOCKS_TABLE,
    LEAF_BLOCK_SIZE,
    LeafBlock,
    append_rows,
    assign_indexes,
    block_rows,
    check_block,
    decode_block,
    entry_in,
    inclusion_root,
    split_entries,
    tile_bundle,
)
from anchor.log.nodes import NodeReader

SCHEMA_VERSION = 4
"""Version of the table layout written to ``meta`` (see :data:`LOG_SCHEMA`). Version 2
(digest index keyed on digest and leaf-hash prefixes) and version 3 (no ``checkpoints``
table yet) are migrated at open; any other is refused."""

MAX_APPEND_BATCH = 1_000_000
"""Most entries one :meth:`SQLiteStore.append` call accepts."""

MAX_ENTRIES_PAGE = 10_000
"""Most entries one :meth:`SQLiteStore.entries` call returns."""

_SQL_CHUNK = 500  # bound parameters per IN (...) query

logger = logging.getLogger(__name__)


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


CHECKPOINTS_TABLE = (
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    " size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL,"
    " created INTEGER NOT NULL)"
)
"""The signed checkpoints of :mod:`anchor.log.log`."""


def _migrate_from_v2(conn: Connection, dialect: Dialect) -> None:
    """Step 3: the salted, open-addressed digest index (:mod:`anchor.log.digest_index`)."""
    digest_index.migrate_from_v2(conn, _leaf_entries)


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


def _leaf_entries(conn: Connection) -> Iterator[tuple[int, tuple[bytes, ...]]]:
    """Every leaf block in order, as its first leaf index and its entries (all rows read
    first: the caller writes on ``conn`` meanwhile)."""
    for block, count, entries in conn.execute(
        "SELECT tile, count, entries FROM tiles ORDER BY tile"
    ).fetchall():
        yield int(block) * LEAF_BLOCK_SIZE, split_entries(bytes(entries), int(count))


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
        self._nodes = NodeReader()  # reads subtree hashes, caching the upper levels
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
        indexes, new, fresh = assign_indexes(size, encoded, existing)
        rows, chunks, frontier = append_rows(
            size, self._frontier, fresh, LEAF_BLOCK_SIZE, self._salt
        )
        conn.execute("SAVEPOINT place")
        inserted = conn.executemany(INSERT_KEY.format(table="digests"), rows).rowcount
        if inserted != len(rows):  # a key is taken: undo the batch's index rows
            conn.execute("ROLLBACK TO place")
            if optimistic:
                conn.execute("RELEASE place")
                return None
            insert_probing(conn, "digests", rows)
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
        and entries (see :func:`~anchor.log.leafblocks.append_rows_python`), extending the
        last, partial block. Inside the caller's transaction."""
        if not count:
            return
        block, used = divmod(size, LEAF_BLOCK_SIZE)
        partial = (b"", b"", b"")
        if used:
            row = conn.execute(
                "SELECT hashes, entries, created FROM tiles WHERE tile = ?", (block,)
            ).fetchone()
            if row is None:
                raise StoreError(f"the leaf block of leaf {size} is missing")
            partial = (bytes(row[0]), bytes(row[1]), bytes(row[2]))
        conn.executemany(
            "INSERT INTO tiles (tile, count, hashes, entries, created) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (tile) DO UPDATE SET count = excluded.count, hashes = excluded.hashes,"
            " entries = excluded.entries, created = excluded.created",
            block_rows(size, count, chunks, now, partial),
        )

    def _blocks(self, conn: Connection, blocks: Iterable[int]) -> dict[int, LeafBlock]:
        out: dict[int, LeafBlock] = {}
        wanted = sorted(set(blocks))
        for i in range(0, len(wanted), _SQL_CHUNK):
            chunk = wanted[i : i + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                "SELECT tile, count, hashes, entries, created FROM tiles"  # noqa: S608
                f" WHERE tile IN ({marks})",
                chunk,
            ):
                out[int(row[0])] = decode_block(int(row[0]), int(row[1]), row[2], row[3], row[4])
        return out

    def _lookup(self, conn: Connection, encoded: Sequence[bytes]) -> dict[bytes, int]:
        """Indexes of those of ``encoded`` already in the log, by entry bytes."""
        candidates = digest_index.indexes_by_digest(
            conn, self._salt, (d[4 : 4 + DIGEST_SIZE] for d in encoded)
        )
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
        """The hashes of subtrees ``nodes`` of the tree of ``size`` leaves, in one query
        (:class:`~anchor.log.nodes.NodeReader`)."""
        return self._nodes.read(conn, nodes, size)[0]

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
    def _stored(block: LeafBlock, index: int) -> StoredEntry:
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
        candidates = sorted(digest_index.indexes_by_digest(conn, self._salt, [digest]))
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
        decoded, after = check_block(row, frontier, self._salt)
        if index:
            digest_index.check_finds(conn, self._salt, decoded.first, decoded.entries)
        return len(decoded.entries), after

    def check_index_rows(self, *, full: bool = True) -> None:
        """Check that the digest index holds exactly one row per leaf (without ``full``, only
        as many rows as leaves), in one statement, so appends meanwhile do not matter.
        Raises :class:`IndexDamaged`. Cost: one scan of the index; ``full`` also sorts its
        leaf indexes (seconds for millions of rows)."""
        digest_index.check_rows(self.reader(), LEAF_BLOCK_SIZE, full=full)

    def rebuild_digest_index(self) -> int:
        """Rebuild the digest index from the entries (it is derived data) and return the
        number of leaves indexed. The new index is built beside the old one and swapped in
        (on PostgreSQL in the same transaction, so other processes' appends wait); an old
        SQLite index whose pages SQLite reports corrupt is unlinked from the schema instead
        of dropped (its pages stay unused until ``VACUUM``). Raises
        :class:`IntegrityFailure` when the leaf blocks themselves cannot be read. Cost: one
        pass over the leaf blocks and one B-tree insert per leaf, memory of all the entries
        blobs; holds the write lock (appends wait) throughout."""
        with self._append_lock:
            try:
                return digest_index.rebuild(self.db, self._salt, _leaf_entries)
            except (sqlite3.DatabaseError, StoreError) as exc:
                if isinstance(exc, StorageUnavailable):
                    raise
                if is_corruption(exc):
                    raise IntegrityFailure(f"the digest index cannot be rebuilt: {exc}") from exc
                raise StoreError(f"the digest index cannot be rebuilt: {exc}") from exc

    def has_table(self, name: str) -> bool:
        """Whether table ``name`` exists (one catalogue read, on a reader)."""
        return table_exists(self.db.reader(), self.db.dialect, name)

    def entry_bytes(self, index: int) -> bytes:
        """The stored (canonical) bytes of leaf ``index``. One row read."""
        row = (
            self.reader()
            .execute("SELECT entries FROM tiles WHERE tile = ?", (index // LEAF_BLOCK_SIZE,))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"the log has no leaf {index}")
        return entry_in(bytes(row[0]), index)

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
        hashes, entries = self._nodes.read(self.reader(), needed, size, index // LEAF_BLOCK_SIZE)
        if entries is None:
            raise NotFound(f"the log has no leaf {index}")
        proof = merkle.build_proof(plan, dict(zip(needed, hashes, strict=True)))
        leaf = merkle.leaf_hash(entry_in(entries, index))
        if inclusion_root is not None:  # the proof is well formed (built above): one C call
            try:
                if inclusion_root(index, size, leaf, b"".join(proof)) == root:
                    return proof, leaf
            except ValueError:
                pass
        merkle.verify_inclusion(index, size, leaf, proof, root)  # raises, saying what differs
        return proof, leaf

    def tile_rows(self, start: int, end: int) -> tuple[bytes, bytes]:
        """Leaves ``[start, end)`` as stored, for C2SP tiles (:mod:`anchor.core.tiles`): their leaf
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
        return tile_bundle(rows, start, end)


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
