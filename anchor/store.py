"""The log's durable store: SQLite in WAL mode behind the small :class:`LogStore` protocol.

Layout. One row per leaf, in table ``leaves``::

    idx      INTEGER PRIMARY KEY   the leaf index (0, 1, 2, ...)
    dkey     INTEGER               the digest's first 8 bytes as a signed integer (indexed)
    entry    BLOB                  the canonical entry bytes (``anchor.entry``)
    hashes   BLOB                  32-byte hashes: the leaf hash, then the hash of every
                                   complete subtree this leaf completes, bottom up
    created  INTEGER               milliseconds since the epoch

Appending leaf ``m`` completes the subtrees at levels ``1..t`` where ``t`` is the number of
trailing one bits of ``m``; their hashes travel in the same row, so the hash of subtree
``(level, index)`` is bytes ``[32*level, 32*level+32)`` of row ``((index+1) << level) - 1``.
Every complete subtree is stored exactly once, a write never touches an earlier row, and any
root or proof costs one batched primary-key read of ``O(log n)`` rows.

An index on ``dkey`` (8 bytes of the digest: a small integer key keeps the index compact and
fast; matches are confirmed against the full entry) serves both idempotent appends and
look-ups by digest.

The store keeps in memory only the *frontier*: the hashes of the at most 64 complete subtrees
that make up the current tree, so memory does not grow with the log.

Durability: ``journal_mode=WAL`` and ``synchronous=FULL``; :meth:`SQLiteStore.append` commits
its whole batch in one transaction before it returns, so a crash leaves each batch either
entirely present or entirely absent.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Protocol

import sqlite_utils

from anchor import merkle
from anchor.entry import DIGEST_SIZE, Entry, decode
from anchor.errors import InvalidInput, NotFound, StoreError

SCHEMA_VERSION = 1
"""Version of the table layout written to ``meta``; a different one is refused at open."""

BUSY_TIMEOUT_MS = 10_000
"""How long a connection waits for another writer before failing."""

MAX_APPEND_BATCH = 1_000_000
"""Most entries one :meth:`LogStore.append` call accepts."""

MAX_ENTRIES_PAGE = 10_000
"""Most entries one :meth:`LogStore.entries` call returns."""

NODE_CACHE_ROWS = 65_536
"""Rows of upper-level subtree hashes kept in memory (a fixed bound, ~10 MiB): the few
hashes near the top of the tree that every proof needs are read once, not per proof."""

NODE_CACHE_MIN_LEVEL = 4
"""Only rows that complete a subtree of at least this level are cached (1 row in 16)."""

_SQL_CHUNK = 500  # bound parameters per IN (...) query


def _dkey(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big", signed=True)


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


class LogStore(Protocol):
    """What the log needs from storage. SQLite now; PostgreSQL can implement it later."""

    def size(self) -> int:
        """Number of leaves committed."""
        ...

    def append(self, entries: Sequence[Entry]) -> AppendResult:
        """Append a batch in one transaction; re-appending an entry returns its index."""
        ...

    def read_hashes(self, nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of complete subtrees ``(level, index)``, in order; one batched read."""
        ...

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default: all)."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...

    def entries(self, start: int, end: int) -> list[StoredEntry]: ...

    def find(self, digest: bytes, submitter: str | None = None) -> list[StoredEntry]: ...

    def close(self) -> None: ...


def connect(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection with the project's pragmas (WAL, synchronous=FULL, busy timeout).

    Autocommit is off at the Python level (``isolation_level=None``): callers manage
    transactions explicitly with ``BEGIN IMMEDIATE`` / ``COMMIT``.
    """
    if read_only:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"could not switch {path} to WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache
    return conn


def _create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db.table("leaves").create(
        {"idx": int, "dkey": int, "entry": bytes, "hashes": bytes, "created": int},
        pk="idx",
        not_null={"dkey", "entry", "hashes", "created"},
        if_not_exists=True,
    )
    conn.execute("CREATE INDEX IF NOT EXISTS leaves_by_dkey ON leaves (dkey)")
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
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


try:
    from anchor._merklehash import extend as _extend
except ImportError:  # the optional C accelerator was not built
    _extend = _extend_python


class SQLiteStore:
    """The SQLite implementation of :class:`LogStore`.

    Thread-safe: appends are serialised by a lock on one writer connection; reads use one
    connection per thread. Other tables (anchors, issuers, ...) share the same database file
    through :meth:`transaction` and :meth:`reader`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        try:
            self._writer = connect(self.path)
            self._writer.execute("BEGIN IMMEDIATE")
            _create_schema(self._writer)
            self._writer.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open the database {self.path}: {exc}",
                hint="check the path, its permissions, and that it is an LER Anchor database",
            ) from exc
        version = self.meta("schema_version")
        if version != str(SCHEMA_VERSION):
            raise StoreError(
                f"database {self.path} has schema version {version}, expected {SCHEMA_VERSION}"
            )
        self._size = -1
        self._frontier = b""  # hashes of the complete subtrees of the tree, left to right
        self._node_cache: dict[int, bytes] = {}
        with self._write_lock:
            self._sync_frontier(self._writer)

    # -- connections ---------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction on the writer connection, committed on exit."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()

    def meta(self, key: str) -> str | None:
        row = self.reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- the log -------------------------------------------------------------------------

    def _sync_frontier(self, conn: sqlite3.Connection) -> None:
        """Reload size and frontier if the table changed under us (another process)."""
        row = conn.execute("SELECT max(idx) FROM leaves").fetchone()
        size = 0 if row[0] is None else int(row[0]) + 1
        if size == self._size:
            return
        nodes = merkle.subtrees(0, size)
        self._frontier = b"".join(self._read_hashes(conn, nodes, size))
        self._size = size

    def size(self) -> int:
        row = self.reader().execute("SELECT max(idx) FROM leaves").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def append(self, entries: Sequence[Entry]) -> AppendResult:
        """Append ``entries`` in one transaction and return each one's leaf index.

        An entry already in the log (same kind, digest and submitter), or repeated within
        the batch, gets its existing index and is not written again. Cost: one indexed
        look-up per distinct digest, one row per new leaf, about one node hash per leaf.
        """
        if len(entries) > MAX_APPEND_BATCH:
            raise InvalidInput(f"batch of {len(entries)} entries exceeds {MAX_APPEND_BATCH}")
        encoded = [e.encode() for e in entries]
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._sync_frontier(conn)
                existing = self._lookup(conn, encoded)
                size = self._size
                frontier = self._frontier
                now = int(time.time() * 1000)
                indexes: list[int] = []
                new: list[bool] = []
                fresh: list[bytes] = []
                for data in encoded:
                    idx = existing.get(data)
                    if idx is None:
                        idx = existing[data] = size + len(fresh)
                        fresh.append(data)
                        new.append(True)
                    else:
                        new.append(False)
                    indexes.append(idx)
                blobs, frontier = _extend(size, frontier, fresh)
                rows = zip(
                    range(size, size + len(fresh)),
                    [int.from_bytes(d[4:12], "big", signed=True) for d in fresh],
                    fresh,
                    blobs,
                    repeat(now),
                )
                size += len(fresh)
                conn.executemany(
                    "INSERT INTO leaves (idx, dkey, entry, hashes, created) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._size = -1  # force a reload on next use
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"append failed and was rolled back: {exc}") from exc
                raise
            self._size = size
            self._frontier = frontier
        return AppendResult(tuple(indexes), tuple(new), size)

    def _lookup(self, conn: sqlite3.Connection, encoded: Sequence[bytes]) -> dict[bytes, int]:
        """Indexes of those of ``encoded`` already in the log, by entry bytes."""
        keys = list({_dkey(data[4 : 4 + DIGEST_SIZE]) for data in encoded})
        found: dict[bytes, int] = {}
        wanted = set(encoded)
        for i in range(0, len(keys), _SQL_CHUNK):
            chunk = keys[i : i + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            for idx, data in conn.execute(
                f"SELECT idx, entry FROM leaves WHERE dkey IN ({marks})",  # noqa: S608
                chunk,
            ):
                if data in wanted:
                    found[bytes(data)] = int(idx)
        return found

    def _read_hashes(
        self, conn: sqlite3.Connection, nodes: Sequence[tuple[int, int]], size: int
    ) -> list[bytes]:
        rows_needed = {((index + 1) << level) - 1 for level, index in nodes}
        if rows_needed and max(rows_needed) >= size:
            raise NotFound(f"a subtree beyond the log's {size} leaves was requested")
        cache = self._node_cache
        blobs: dict[int, bytes] = {r: cache[r] for r in rows_needed if r in cache}
        wanted = sorted(rows_needed.difference(blobs))
        for i in range(0, len(wanted), _SQL_CHUNK):
            chunk = wanted[i : i + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            for idx, blob in conn.execute(
                f"SELECT idx, hashes FROM leaves WHERE idx IN ({marks})",  # noqa: S608
                chunk,
            ):
                blobs[int(idx)] = blob = bytes(blob)
                if len(blob) > 32 * NODE_CACHE_MIN_LEVEL:
                    if len(cache) >= NODE_CACHE_ROWS:
                        cache.clear()
                    cache[int(idx)] = blob
        out: list[bytes] = []
        for level, index in nodes:
            blob = blobs.get(((index + 1) << level) - 1)
            h = None if blob is None else blob[32 * level : 32 * level + 32]
            if h is None or len(h) != 32:
                raise StoreError(f"stored hash of subtree ({level}, {index}) is missing")
            out.append(h)
        return out

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
        rows = self.reader().execute(
            "SELECT idx, entry, substr(hashes, 1, 32), created FROM leaves "
            "WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        )
        return [StoredEntry(int(i), decode(bytes(e)), bytes(h), int(c)) for i, e, h, c in rows]

    def find(self, digest: bytes, submitter: str | None = None) -> list[StoredEntry]:
        """Leaves whose entry carries ``digest`` (optionally from ``submitter``), oldest first."""
        rows = self.reader().execute(
            "SELECT idx, entry, substr(hashes, 1, 32), created FROM leaves "
            "WHERE dkey = ? ORDER BY idx",
            (_dkey(digest),),
        )
        found = [StoredEntry(int(i), decode(bytes(e)), bytes(h), int(c)) for i, e, h, c in rows]
        found = [s for s in found if s.entry.digest == digest]
        if submitter is not None:
            found = [s for s in found if s.entry.submitter == submitter]
        return found

    def check_integrity(self, progress: object | None = None) -> int:
        """Recompute every stored hash from the entries, raising :class:`StoreError` at the
        first mismatch. Returns the size checked. Cost: one pass, ``O(n)`` hashes,
        ``O(log n)`` memory."""
        frontier: list[tuple[int, bytes]] = []
        checked = 0
        for idx, data, blob in self.reader().execute(
            "SELECT idx, entry, hashes FROM leaves ORDER BY idx"
        ):
            if idx != checked:
                raise StoreError(f"leaf {checked} is missing (next row is {idx})")
            decode(bytes(data))
            h = merkle.leaf_hash(bytes(data))
            expect = h
            level = 0
            while frontier and frontier[-1][0] == level:
                h = merkle.node_hash(frontier.pop()[1], h)
                level += 1
                expect += h
            frontier.append((level, h))
            if bytes(blob) != expect:
                raise StoreError(f"stored hashes of leaf {idx} do not match its entry")
            checked += 1
        return checked
