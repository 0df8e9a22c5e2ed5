"""Backup from, and restore into, a PostgreSQL database, through the SQLite backup format.

A backup is always one SQLite file with the service's schema, whichever backend it came from,
so one format serves both and a backup moves between them.

* :func:`backup_postgres` reads every table of the PostgreSQL database in **one**
  ``REPEATABLE READ, READ ONLY`` transaction (one consistent snapshot, while the service
  keeps writing), streams the rows into a new SQLite file made with the same schema, checks
  that file as a SQLite backup is checked (SQLite's integrity check, every log hash), and
  only then moves it into place.
* :func:`restore_postgres` checks a backup file exactly as the SQLite restore does (every
  log hash, then every anchored root reproduced: :func:`anchor.db.backup.checked_against`) and
  loads it into an **empty** PostgreSQL database (a new one, or one the service opened but
  never wrote to) in one write transaction: all of it or nothing. A database holding any row
  is refused: the restore never merges into, nor overwrites, a database in use.

I/O (one SQLite file and the PostgreSQL server). Cost: one pass over every table to copy,
and one over the log to check; memory is bounded by a batch of rows.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from anchor.db import Connection, dbfiles, open_database
from anchor.db.backup import (
    AnchoredRoot,
    Snapshot,
    check_copy,
    checked_against,
    copy_database,
    fsync_path,
    move_database,
    remove_database,
)
from anchor.db.migrations import column_exists, table_exists
from anchor.db.tables import FEATURE_TABLES, FEATURES_KEY, FEATURES_VERSION, open_service_store
from anchor.errors import Conflict, NotFound, StoreError
from anchor.log.leafblocks import BLOCKS_TABLE
from anchor.log.store import CHECKPOINTS_TABLE, LOG_SCHEMA, LogStore, open_store

if TYPE_CHECKING:
    from anchor.db.postgres import PostgresDatabase

BATCH_ROWS: Final = 2_000
"""Rows written per statement while copying (bounds memory with the snapshot's batches)."""

_NAME = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)", re.IGNORECASE)


def _table_order() -> tuple[str, ...]:
    """Every table of the service's database, parents before the tables referring to them."""
    names = ["meta", "digests"]
    for statement in (BLOCKS_TABLE, CHECKPOINTS_TABLE, *FEATURE_TABLES):
        match = _NAME.match(statement)
        if match is not None and match.group(1) not in names:
            names.append(match.group(1))
    return tuple(names)


TABLES: Final = _table_order()
"""The tables a backup holds, in load order (foreign keys point backwards)."""

_IDENT = re.compile(r"[a-z_][a-z0-9_]*")


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The columns of ``table`` in the SQLite file on ``conn`` (plain names, checked)."""
    names = [str(row[1]) for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]
    if not all(_IDENT.fullmatch(n) for n in names):
        raise StoreError(f"table {table} has a column name this program did not make")
    return names


def _batches(rows: Iterable[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


# -- backup ------------------------------------------------------------------------------


def backup_postgres(
    url: str, out: Path, progress: Callable[[int], object] | None = None
) -> Snapshot:
    """Copy the PostgreSQL database at ``url`` into the new SQLite backup file ``out`` (it
    must not exist) from one consistent snapshot, check the copy, then move it into place.
    The database must be at the current schema (``serve`` migrates it)."""
    if out.exists():
        raise Conflict(f"{out} exists already", hint="choose a new file name for each backup")
    from anchor.db.postgres import PostgresDatabase  # psycopg loads only on PostgreSQL

    source = open_database(url, LOG_SCHEMA, create=False, read_only=True)
    try:
        if not isinstance(source, PostgresDatabase):
            raise StoreError(f"{source.where} is not a PostgreSQL database")
        if source.meta(FEATURES_KEY) != str(FEATURES_VERSION):
            raise StoreError(
                f"the database {source.where} is not at the current schema",
                hint="start `ler-anchor serve` (or `ler-anchor issuer list`) on it once",
            )
        dbfiles.make_private_dir(out.parent)
        partial = out.with_name(out.name + ".partial")
        remove_database(partial)
        dbfiles.create_private_file(partial)  # 0600, and no "new database" warning
        open_service_store(partial).close()  # the same schema, at the same versions
        try:
            _copy_snapshot(source, partial)
            snapshot = check_copy(partial, progress)
            fsync_path(partial)
            move_database(partial, out)
            fsync_path(out.parent)
        except BaseException:
            remove_database(partial)
            raise
    finally:
        source.close()
    return Snapshot(out, snapshot.size, snapshot.root, snapshot.checkpoint_size, snapshot.bytes)


def _copy_snapshot(source: PostgresDatabase, target: Path) -> None:
    """Every row of ``source``, read in one snapshot, into the SQLite file ``target`` (in one
    transaction: the file is made by this program, not yet anyone's database)."""
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        with source.snapshot() as rows:
            present = {
                str(r[0])
                for r in rows(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema()"
                )
            }
            for table in TABLES:
                if table not in present:
                    continue
                columns = _columns(conn, table)
                conn.execute(f"DELETE FROM {table}")  # noqa: S608  (meta, from the creation)
                select = f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608
                insert = _insert_sql(table, columns)
                for batch in _batches(rows(select)):
                    conn.executemany(insert, batch)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot write the backup {target}: {exc}") from exc
    finally:
        conn.close()


# -- restore -----------------------------------------------------------------------------


def restore_postgres(
    backup_file: Path,
    url: str,
    anchored: Iterable[AnchoredRoot] | None,
    progress: Callable[[int], object] | None = None,
) -> tuple[Snapshot, int]:
    """Check ``backup_file`` as :func:`anchor.db.backup.restore` does, then load it into the
    empty PostgreSQL database at ``url`` (its tables are made first if it has none) in one
    transaction. Returns the snapshot and how many anchored roots were checked."""
    if not backup_file.is_file():
        raise NotFound(f"no backup at {backup_file}")
    with tempfile.TemporaryDirectory(prefix="ler-anchor-restore-") as work:
        staged = Path(work) / "staged.db"
        try:
            copy_database(backup_file, staged)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{backup_file} is not an LER Anchor backup: {exc}") from exc
        snapshot, roots = checked_against(staged, anchored, progress)
        open_service_store(staged).close()  # an older backup: its tables migrated first
        target = open_service_store(url)
        try:
            _load(staged, target)
        finally:
            target.close()
    restored = open_store(url, create=False, read_only=True)
    try:
        size = restored.size()
        if size != snapshot.size or restored.root(size) != snapshot.root:
            raise StoreError(f"the restored database {restored.db.where} does not match")
    finally:
        restored.close()
    return snapshot, len(roots)


def _load(staged: Path, target: LogStore) -> None:
    """Every row of the SQLite file ``staged`` into ``target``, which must hold none."""
    source = sqlite3.connect(f"{staged.resolve().as_uri()}?mode=ro", uri=True)
    try:
        with target.transaction() as conn:
            _refuse_rows(conn, target)
            for table in TABLES:
                if not table_exists(source, "sqlite", table):
                    continue
                columns = _columns(source, table)
                conn.execute(f"DELETE FROM {table}")  # noqa: S608  (meta, from the creation)
                select = f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608
                insert = _insert_sql(table, columns)
                for batch in _batches(source.execute(select)):
                    conn.executemany(insert, batch)
            _advance_identities(conn)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the backup: {exc}") from exc
    finally:
        source.close()


def _refuse_rows(conn: Connection, target: LogStore) -> None:
    for table in TABLES:
        if table == "meta":
            continue
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
            raise Conflict(
                f"the database {target.db.where} is not empty (table {table} has rows)",
                hint="restore into a new, empty PostgreSQL database (createdb), then point "
                "--database at it",
            )


def _advance_identities(conn: Connection) -> None:
    """Move each identity column's sequence past the ids just loaded (explicit ids do not
    advance it), so that the next row the service inserts gets a free id."""
    for table in TABLES:
        for column in ("id", "seq"):
            if not column_exists(conn, "postgresql", table, column):
                continue
            sequence = conn.execute(
                "SELECT pg_get_serial_sequence(?, ?)", (table, column)
            ).fetchone()[0]
            if sequence is None:  # a plain column (status_versions.seq), not an identity
                continue
            conn.execute(
                f"SELECT setval(?, coalesce((SELECT max({column}) FROM {table}), 0) + 1,"  # noqa: S608
                " false)",
                (sequence,),
            )
