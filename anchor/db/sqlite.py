"""The SQLite backend of the database seam (:class:`SQLiteDatabase`), the embedded default.

I/O. One database file in WAL mode with ``synchronous=FULL``: a committed write transaction
is on disk before :meth:`SQLiteDatabase.transaction` returns. Writes go through one writer
connection behind a lock (SQLite allows one writer; a writer of another process waits up to
:data:`BUSY_TIMEOUT_MS`); reads use one connection per thread and never wait for the writer.
Every SQLite failure on these connections becomes the project's error in one place
(:func:`storage_error`, chosen by SQLite's result code): transient ones (full disk, read-only
file system, I/O error, lock timeout) are :class:`~anchor.errors.StorageUnavailable`,
answered 503 with ``Retry-After``. Cost: a connection costs one ``open`` and a few pragmas; a
transaction costs one ``fsync`` of the WAL at commit.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any, Final, Literal

from anchor.db import dbfiles
from anchor.db.migrations import Schema, migrate, read_version
from anchor.errors import StorageUnavailable, StoreError

PAGE_SIZE = 8192
"""SQLite page size of new databases: a full leaf-block row (about 8 KiB) fits one page."""

BUSY_TIMEOUT_MS = 10_000
"""How long a connection waits for another writer before failing."""

logger = logging.getLogger(__name__)

TRANSIENT_SQLITE_CODES: Final = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_PROTOCOL,
    }
)
"""Primary SQLite result codes that mean "not now" (disk full, read-only, I/O error, lock
held past the timeout): :class:`~anchor.errors.StorageUnavailable`, answered 503 with
``Retry-After``. Any other SQLite failure is a :class:`~anchor.errors.StoreError`."""

STORAGE_RETRY_AFTER_SECONDS: Final = 5
"""The ``Retry-After`` of a :class:`~anchor.errors.StorageUnavailable` answer."""


def storage_error(exc: sqlite3.Error) -> StoreError:
    """The project's error for a SQLite failure, chosen by SQLite's result code (never by
    the message): :class:`StorageUnavailable` for the :data:`TRANSIENT_SQLITE_CODES`,
    :class:`StoreError` otherwise."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    name: str = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if code is not None and code & 0xFF in TRANSIENT_SQLITE_CODES:
        return StorageUnavailable(
            f"the database is unavailable for now ({name}: {exc})",
            reason=name,
            retry_after=STORAGE_RETRY_AFTER_SECONDS,
            hint="free disk space or fix the database's file system; the service retries",
        )
    return StoreError(
        f"database failure ({name}: {exc})",
        hint="check the database file, its disk and its permissions",
    )


class _MappedCursor(sqlite3.Cursor):
    """A cursor whose SQLite failures are the project's errors (see :func:`storage_error`).
    Constraint violations (:class:`sqlite3.IntegrityError`) pass unchanged, for callers that
    still expect them inside their own transactions; :meth:`SQLiteDatabase.transaction` maps
    one that leaves its block."""

    def execute(self, sql: str, parameters: Any = (), /) -> _MappedCursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> _MappedCursor:
        try:
            return super().executemany(sql, seq_of_parameters)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc


class MappedConnection(sqlite3.Connection):
    """The database's connection class: statements run on :class:`_MappedCursor`, so every
    SQLite failure on its connections (reads and writes) is mapped in one place."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self.cursor(_MappedCursor).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self.cursor(_MappedCursor).executemany(sql, parameters)


_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_corruption(exc: BaseException) -> bool:
    """Whether SQLite reported damaged pages (``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``, with
    any extended code), as opposed to a busy, locked or full database: ``exc`` is SQLite's
    error, or the project's error it was mapped to (:func:`storage_error`). Always false for
    another backend's errors."""
    cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
    code = getattr(cause, "sqlite_errorcode", None) if isinstance(cause, sqlite3.Error) else None
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    create: bool = True,
    factory: type[sqlite3.Connection] = sqlite3.Connection,
) -> sqlite3.Connection:
    """A connection with the project's pragmas (WAL, synchronous=FULL, busy timeout).

    Autocommit is off at the Python level (``isolation_level=None``): callers manage
    transactions explicitly with ``BEGIN IMMEDIATE`` / ``COMMIT``. A database that does not
    exist is created (mode 0600, its directory 0700 if new) only with ``create``; otherwise,
    and ``read_only``, SQLite itself refuses to create it (``mode=rw`` / ``mode=ro``).
    """
    if read_only or not create:
        mode = "ro" if read_only else "rw"
        uri = Path(path).resolve().as_uri() + f"?mode={mode}"
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, factory=factory
        )
    else:
        dbfiles.create_private_file(Path(path))  # before SQLite: its -wal and -shm take its mode
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, factory=factory
        )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # only a new, empty database changes
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"could not switch {path} to WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache
    return conn


class SQLiteDatabase:
    """One SQLite database file (see the module docstring). Thread-safe."""

    def __init__(
        self,
        path: str | Path,
        schema: Schema,
        *,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        """Open the database at ``path`` and bring it to ``schema`` (:func:`migrate`, once,
        in the first write transaction). ``create``: make it (mode 0600) if it does not
        exist; without it a missing database is :class:`~anchor.errors.NoDatabase` and a file
        without the schema is refused, never given one. ``read_only``: SQLite ``mode=ro``,
        nothing is written (implies not ``create``); writes then fail."""
        self.path = Path(path)
        self._read_only = read_only
        create = create and not read_only
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.write_error: StorageUnavailable | None = None
        """The failure of the last write when it was a :class:`StorageUnavailable` (the disk
        is full, read-only, failing); ``None`` once a write commits (for health probes)."""
        self.migrated_from: int | None = None
        """The version the database was at when opened (0: created now)."""
        new_database = False
        if not create:
            dbfiles.require_database(self.path)
        else:
            new_database = not self.path.exists()
        try:
            if not create and not read_only:  # look before changing anything (journal mode)
                with closing(connect(self.path, read_only=True)) as probe:
                    self._version_checked(probe)
            if not read_only and not new_database:
                dbfiles.tighten(self.path)
            self._writer = connect(
                self.path, read_only=read_only, create=create, factory=MappedConnection
            )
            self._writer.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
            try:
                if not create:
                    self._version_checked(self._writer)
                self.migrated_from = migrate(
                    self._writer,
                    "sqlite",
                    schema,
                    create=create,
                    read_only=read_only,
                    where=str(self.path),
                )
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                self._writer.close()
                raise
        except (sqlite3.DatabaseError, StoreError) as exc:
            cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
            if not isinstance(cause, sqlite3.Error):  # a check of ours, already explained
                raise
            raise StoreError(
                f"cannot open the database {self.path}: {cause}",
                hint="check the path, its permissions, and that it is an LER Anchor database",
            ) from exc
        if new_database:
            logger.warning("created a new database %s (mode 0600)", self.path)

    @property
    def dialect(self) -> Literal["sqlite"]:
        return "sqlite"

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def where(self) -> str:
        """The database's file name (for messages)."""
        return str(self.path)

    def _version_checked(self, conn: sqlite3.Connection) -> str | None:
        """The schema version; a file without our ``meta`` table is not ours."""
        try:
            return read_version(conn)
        except (sqlite3.DatabaseError, StoreError) as exc:  # no table meta; not a database
            if isinstance(exc, StorageUnavailable):  # the disk, not the file's contents
                raise
            cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
            if not isinstance(cause, sqlite3.DatabaseError):
                raise
            raise StoreError(
                f"{self.path} is not an LER Anchor database ({cause})",
                hint="give --data-dir or --db the service's database",
            ) from None  # explained in full: not wrapped again by the open

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(
                    self.path, read_only=self._read_only, create=False, factory=MappedConnection
                )
            except sqlite3.Error as exc:
                raise storage_error(exc) from exc
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction on the writer connection, committed on exit.

        Every SQLite failure (of the body, or of the commit: a full disk shows there) leaves
        as :func:`storage_error` after the transaction is rolled back, so the writer
        connection is always usable again afterwards."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(StoreError):  # the first failure is the one reported
                        conn.execute("ROLLBACK")
                if isinstance(exc, StorageUnavailable):
                    self.write_error = exc
                if isinstance(exc, sqlite3.Error):  # a constraint the caller did not expect
                    raise storage_error(exc) from exc
                raise
            self.write_error = None

    def reopen_writer(self) -> None:
        """Replace the writer connection (after its schema was changed behind SQLite's back).
        The caller holds no transaction."""
        with self._write_lock:
            self._writer.close()
            self._writer = connect(self.path, factory=MappedConnection)

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
