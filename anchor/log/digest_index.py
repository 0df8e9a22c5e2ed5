"""The log's digest index: table ``digests``, which finds leaves by digest (keys, probing,
look-ups, its checks and its rebuild), on the database seam (:mod:`anchor.db`).

Table ``digests`` (``WITHOUT ROWID``: ``key INTEGER PRIMARY KEY``, ``idx INTEGER``) maps keys
to leaf indexes. A digest's key is the first 8 bytes of ``SHA-256(salt || digest)`` as a
signed integer (:func:`index_key`), with a random ``salt`` per database
(``meta.index_salt``), so nobody can choose digests whose keys crowd together. Keys are
open-addressed: an entry whose key is taken (the same digest from another submitter or of
another kind, or a 64-bit collision) takes the next free key (:func:`insert_probing`), and a
look-up walks the run of consecutive keys from the digest's own (:func:`indexes_by_keys`),
its caller confirming every candidate against the full entry. Rows are never deleted, so a
run ends at the first free key. The index also makes appends idempotent without a look-up
per entry: :class:`~anchor.log.store.LogStore` indexes a batch as new, and only if a key is
taken looks the batch up.

The index is derived data: :func:`rebuild` builds it again from the entries when it is found
damaged (and :func:`migrate_from_v2` from an older layout).

I/O: every function but :func:`index_key`, :func:`next_key` and :func:`leaf_keys` (pure) runs
SQL on the connection or database it is given; costs are on each function.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from anchor.core.entry import DIGEST_SIZE
from anchor.db.api import Connection, Database
from anchor.db.migrations import table_exists
from anchor.db.sqlite import SQLiteDatabase, is_corruption
from anchor.errors import IndexDamaged, StorageUnavailable, StoreError

INDEX_SALT_SIZE = 16
"""Bytes of the per-database random salt of digest-index keys (one SHA-256 block with the
digest)."""

DIGESTS_TABLE = "CREATE TABLE {name} (key INTEGER PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID"

INSERT_KEY: Final = "INSERT INTO {table} (key, idx) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
"""One index row; a taken key inserts nothing (no constraint error, which would abort a
PostgreSQL transaction)."""

_SQL_CHUNK: Final = 500  # bound parameters per IN (...) query

_KEY_MAX = 2**63 - 1

Key = tuple[int, int]
"""A digest-index row: the digest's key (see :func:`index_key`) and the leaf index."""

LeafEntries = Callable[[Connection], Iterable[tuple[int, Sequence[bytes]]]]
"""Reads, on the given connection, every leaf block in order as its first leaf index and
its entries (the canonical bytes of each leaf)."""


def index_key(salt: bytes, digest: bytes) -> int:
    """The digest-index key of ``digest`` (before any probing)."""
    return int.from_bytes(hashlib.sha256(salt + digest).digest()[:8], "big", signed=True)


def next_key(key: int) -> int:
    """The key after ``key``: the key space wraps around."""
    return key + 1 if key < _KEY_MAX else -_KEY_MAX - 1


def leaf_keys(salt: bytes, first: int, entries: Iterable[bytes]) -> list[Key]:
    """The index rows of ``entries``, leaves ``first, first + 1, ...`` (before probing)."""
    return [
        (index_key(salt, data[4 : 4 + DIGEST_SIZE]), first + k) for k, data in enumerate(entries)
    ]


def insert_probing(conn: Connection, table: str, rows: Iterable[Key]) -> None:
    """Insert digest-index rows one by one, each at the first free key from its own (a taken
    key inserts nothing: no constraint error, which would abort a PostgreSQL transaction)."""
    sql = INSERT_KEY.format(table=table)
    for key, idx in rows:
        while conn.execute(sql, (key, idx)).rowcount == 0:
            key = next_key(key)


def build(conn: Connection, table: str, salt: bytes, leaves: LeafEntries, *, ordered: bool) -> int:
    """Create ``table`` afresh (dropping any left over) and index every leaf in it, one block
    at a time (``ordered``: each block's rows in key order, so that B-tree inserts touch
    each page once). Returns the number of leaves indexed. Inside the caller's transaction;
    cost: one pass over the leaf blocks and one B-tree insert per leaf."""
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(DIGESTS_TABLE.format(name=table))
    indexed = 0
    for first, entries in leaves(conn):
        rows = leaf_keys(salt, first, entries)
        insert_probing(conn, table, sorted(rows) if ordered else rows)
        indexed += len(rows)
    return indexed


def migrate_from_v2(conn: Connection, leaves: LeafEntries) -> None:
    """Rebuild the version-2 digest index (keyed on digest and leaf-hash prefixes) as this
    salted, open-addressed one, with a new salt. Inside the caller's transaction (the
    schema migration's); one pass over the leaf blocks."""
    salt = os.urandom(INDEX_SALT_SIZE)
    build(conn, "digests_v3", salt, leaves, ordered=False)
    conn.execute("DROP TABLE digests")
    conn.execute("ALTER TABLE digests_v3 RENAME TO digests")
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ("index_salt", salt.hex()),
    )


def indexes_by_keys(conn: Connection, keys: set[int]) -> list[int]:
    """Candidate leaf indexes for ``keys``: every index in the run of consecutive keys from
    each key. One query per 500 keys and per step along the longest run
    (almost always one step)."""
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
        keys = {next_key(k) for k in taken}
    return found


def indexes_by_digest(conn: Connection, salt: bytes, digests: Iterable[bytes]) -> list[int]:
    """Candidate leaf indexes for ``digests`` (see :func:`indexes_by_keys`)."""
    return indexes_by_keys(conn, {index_key(salt, d) for d in digests})


def check_finds(conn: Connection, salt: bytes, first: int, entries: Sequence[bytes]) -> None:
    """Check that the index finds every one of ``entries`` (leaves ``first, first + 1, ...``)
    from its digest; raises :class:`IndexDamaged`. Cost: about one probe per entry."""
    keys = {index_key(salt, data[4 : 4 + DIGEST_SIZE]) for data in entries}
    try:
        found = set(indexes_by_keys(conn, keys))
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


def check_rows(conn: Connection, block_size: int, *, full: bool = True) -> None:
    """Check that the index holds exactly one row per leaf (without ``full``, only as many
    rows as leaves; ``block_size``: leaves per leaf block), in one statement, so appends
    meanwhile do not matter. Raises :class:`IndexDamaged`. Cost: one scan of the index;
    ``full`` also sorts its leaf indexes (seconds for millions of rows)."""
    counts = (
        "count(*), count(DISTINCT idx), min(idx), max(idx)"
        if full
        else "count(*), count(*), 0, count(*) - 1"
    )
    sql = (
        f"SELECT coalesce((SELECT tile * {block_size} + count FROM tiles"  # noqa: S608
        f" ORDER BY tile DESC LIMIT 1), 0), {counts} FROM digests"
    )
    try:
        size, rows, distinct, low, high = conn.execute(sql).fetchone()
    except (sqlite3.DatabaseError, StoreError) as exc:
        if isinstance(exc, StorageUnavailable):  # the disk, not the index
            raise
        raise IndexDamaged(f"the digest index cannot be read: {exc}") from exc
    if rows != size or distinct != size or (size and (low, high) != (0, size - 1)):
        raise IndexDamaged(
            f"the digest index holds {distinct} distinct of {rows} rows for leaves"
            f" {low}..{high}, but the log has {size} leaves"
        )


def rebuild(db: Database, salt: bytes, leaves: LeafEntries) -> int:
    """Rebuild the index from the entries and return the number of leaves indexed. The new
    index is built beside the old one and swapped in (on PostgreSQL in the same transaction,
    so other processes' appends wait); an old SQLite index whose pages SQLite reports
    corrupt is unlinked from the schema instead of dropped (its pages stay unused until
    ``VACUUM``). The caller holds its append lock and maps the errors. Cost: one pass over
    the leaf blocks and one B-tree insert per leaf, memory of all the entries blobs."""
    one_transaction = db.dialect != "sqlite"
    with db.transaction() as conn:
        indexed = build(conn, "digests_rebuild", salt, leaves, ordered=True)
        if one_transaction:
            conn.execute("DROP TABLE IF EXISTS digests")
            conn.execute("ALTER TABLE digests_rebuild RENAME TO digests")
            conn.execute("ALTER INDEX digests_rebuild_pkey RENAME TO digests_pkey")
    if not one_transaction:
        assert isinstance(db, SQLiteDatabase)
        _swap_sqlite(db)
    return indexed


def _swap_sqlite(db: SQLiteDatabase) -> None:
    """Replace ``digests`` by ``digests_rebuild`` (SQLite). Under the caller's append lock."""

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
