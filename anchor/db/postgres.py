"""The PostgreSQL backend of the database seam (:class:`PostgresDatabase`), for scale-out.

I/O, through psycopg 3 and two ``psycopg_pool`` connection pools. The guarantees are
SQLite's:

* **One writer at a time.** Every write transaction first takes the transaction-scoped
  advisory lock :data:`WRITE_LOCK_KEY` (``pg_advisory_xact_lock``), so write transactions of
  every process on the database run one after another, like SQLite's single writer, and
  read-modify-write code written for SQLite loses no concurrent update. Writers run at READ
  COMMITTED: each statement after the lock sees everything committed before it. Within a
  process a lock also queues the threads, so a process holds at most one writer connection.
  A writer that waits for the lock longer than :data:`LOCK_TIMEOUT_MS` fails with
  :class:`~anchor.errors.StorageUnavailable`, as SQLite's busy timeout does.
* **Durable commits.** ``synchronous_commit`` is set ``on`` on every connection (whatever
  the server's default), so a transaction that returned is on the server's disk.
* **Consistent reads.** A reader statement runs in its own ``REPEATABLE READ, READ ONLY``
  transaction on a pooled connection, and its rows are fetched before the connection goes
  back to the pool.
* **Restarts.** A pooled connection the server dropped is replaced: the writer's pool checks
  each connection before a write transaction, and a read found broken runs once more on a
  fresh connection; only when the server stays away does a call fail (503).
* **SQL written once.** Statements use SQLite's ``?`` placeholders and types; :func:`translate`
  rewrites the placeholders (outside string literals, quoted names and comments) and the DDL
  types (``BLOB``, ``INTEGER``, ``INTEGER PRIMARY KEY AUTOINCREMENT``, ``WITHOUT ROWID``).
* **Errors.** A connection that cannot be made or is lost, a full disk, a shutdown or a
  lock timeout is :class:`~anchor.errors.StorageUnavailable` (503 with ``Retry-After``); any
  other failure is :class:`~anchor.errors.StoreError`. The password of the URL never
  appears in a message, a log line or a ``repr`` (:func:`redact`).

Cost: a statement is one round trip (plus a pool check-out, microseconds); a write
transaction three more (``BEGIN`` with the lock, ``COMMIT``, and the server's WAL flush).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg import IsolationLevel

from anchor.db.api import Connection, Cursor
from anchor.db.migrations import Schema, migrate
from anchor.errors import StorageUnavailable, StoreError

WRITE_LOCK_KEY: Final = 0x4C45_5241_6E63_6872
"""The advisory-lock key every write transaction takes first ("LERAnchr")."""

LOCK_TIMEOUT_MS: Final = 10_000
"""How long a writer waits for another writer before failing (SQLite's busy timeout)."""

CONNECT_TIMEOUT_SECONDS: Final = 10
"""How long opening the database, or a check-out from a pool, waits for a connection."""

TCP_KEEPALIVES: Final = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}
"""A server that vanished without closing (a network partition) fails a statement waiting on
it within about 15 s instead of never (ignored on a unix socket)."""

POOL_MAX_READERS: Final = 8
"""Most read connections one process holds."""

SNAPSHOT_BATCH_ROWS: Final = 2_000
"""Rows fetched per round trip by :meth:`PostgresDatabase.snapshot` (bounds its memory)."""

STORAGE_RETRY_AFTER_SECONDS: Final = 5
"""The ``Retry-After`` of a :class:`~anchor.errors.StorageUnavailable` answer."""

TRANSIENT_SQLSTATE_CLASSES: Final = frozenset({"08", "53", "57", "58"})
"""SQLSTATE classes that mean "not now": connection exception, insufficient resources (disk
full, out of memory, too many connections), operator intervention (shutdown), system error
(I/O)."""

TRANSIENT_SQLSTATES: Final = frozenset({"55P03", "40001", "40P01"})
"""Single SQLSTATEs that mean "not now": lock timeout, serialisation failure, deadlock."""


def redact(url: str) -> str:
    """``url`` without its password (for messages, logs and ``repr``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def pg_error(exc: psycopg.Error, where: str, secret: str | None = None) -> StoreError:
    """The project's error for a psycopg failure, chosen by its type and SQLSTATE (never by
    its message): :class:`StorageUnavailable` when transient, :class:`StoreError` otherwise.
    ``secret`` (the password) is blanked out of the message should the server echo it."""
    state = exc.sqlstate
    text = " ".join(str(exc).split())  # one line: libpq adds indented hints
    if secret:
        text = text.replace(secret, "***")
    name = type(exc).__name__
    transient = (
        isinstance(exc, psycopg.OperationalError)
        if state is None
        else state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    )
    if transient:
        return StorageUnavailable(
            f"the database {where} is unavailable for now ({name}: {text})",
            reason=state or name,
            retry_after=STORAGE_RETRY_AFTER_SECONDS,
            hint="check that the PostgreSQL server is up, reachable and has disk space;"
            " the service retries",
        )
    return StoreError(
        f"database failure on {where} ({name}{f' {state}' if state else ''}: {text})",
        hint="check the PostgreSQL server's log and the database's permissions",
    )


# -- translation -------------------------------------------------------------------------

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|[?%]", re.DOTALL)
_DDL = re.compile(r"\s*(CREATE|ALTER)\b", re.IGNORECASE)
_TYPES: Final = (
    (
        re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.IGNORECASE),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bBLOB\b", re.IGNORECASE), "BYTEA"),
    (re.compile(r"\bINTEGER\b", re.IGNORECASE), "BIGINT"),
    (re.compile(r"\s*\bWITHOUT\s+ROWID\b", re.IGNORECASE), ""),
)
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)
_ROWID_ALIAS = (
    re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b(?!\s+AUTOINCREMENT)", re.IGNORECASE),
    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
)
"""In a table with rowids, SQLite assigns an ``INTEGER PRIMARY KEY`` column left out of an
insert (it is the rowid): on PostgreSQL that is an identity column."""


def _rewrite_code(code: str, ddl: bool, rowid_table: bool = False) -> str:
    if ddl:
        if rowid_table:
            code = _ROWID_ALIAS[0].sub(_ROWID_ALIAS[1], code)
        for pattern, replacement in _TYPES:
            code = pattern.sub(replacement, code)
    return code


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """``sql`` in SQLite's dialect as psycopg runs it on PostgreSQL: ``?`` becomes ``%s`` and
    a literal ``%`` becomes ``%%``, except inside string literals, quoted names and comments;
    in ``CREATE`` / ``ALTER`` statements, SQLite's types become PostgreSQL's. Pure; cached."""
    ddl = _DDL.match(sql) is not None
    rowid_table = ddl and _WITHOUT_ROWID.search(sql) is None
    out: list[str] = []
    pos = 0
    for match in _TOKENS.finditer(sql):
        out.append(_rewrite_code(sql[pos : match.start()], ddl, rowid_table))
        piece = match.group()
        if piece == "?":
            out.append("%s")
        elif piece == "%":
            out.append("%%")
        elif piece[0] in "'\"":
            out.append(piece.replace("%", "%%"))
        else:  # a comment: dropped, it could hold a stray placeholder
            out.append(" ")
        pos = match.end()
    out.append(_rewrite_code(sql[pos:], ddl, rowid_table))
    return "".join(out)


_INSERT_VALUES = re.compile(
    r"(\s*INSERT\s+INTO\s+[^()'\"]+\([^()'\"]*\)\s*VALUES\s*)(\([^()'\"]*\))(.*)",
    re.IGNORECASE | re.DOTALL,
)
_DO_UPDATE = re.compile(r"\bDO\s+UPDATE\b", re.IGNORECASE)

MULTI_ROW_PARAMETERS: Final = 4_000
"""Most parameters of one multi-row ``INSERT`` (:func:`multi_row_insert`)."""


@lru_cache(maxsize=256)
def numbered(sql: str, rows: int = 1) -> str:
    """:func:`translate`, with PostgreSQL's own ``$1, $2, ...`` placeholders (for a raw
    cursor, which psycopg does not parse: large statements cost nothing to send) and, given
    a one-row ``INSERT ... VALUES`` (see :func:`multi_row_insert`), ``rows`` rows. Pure."""
    if rows != 1:
        parts = multi_row_insert(sql)
        if parts is None:
            raise ValueError("not a one-row INSERT ... VALUES statement")
        head, row, tail = parts
        sql = head + ",".join([row] * rows) + tail
    count = itertools.count(1)
    return re.sub(
        r"%%|%s",
        lambda m: "%" if m.group() == "%%" else f"${next(count)}",
        translate(sql),
    )


def multi_row_insert(sql: str) -> tuple[str, str, str] | None:
    """``sql`` split as (head, row, tail) when it is a one-row ``INSERT ... VALUES (...)``
    that can take many rows in one statement: without ``ON CONFLICT ... DO UPDATE`` (which
    refuses to touch one row twice in a statement, where separate statements would not);
    else None. Pure."""
    match = _INSERT_VALUES.fullmatch(sql)
    if match is None or _DO_UPDATE.search(match.group(3)):
        return None
    head, row, tail = match.groups()
    return head, row, tail


# -- connections ---------------------------------------------------------------------------


class _Rows:
    """The fetched rows of a reader statement (the connection is back in its pool)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self._rowcount = rowcount

    @property
    def rowcount(self) -> int:
        return self._rowcount

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rest = self._rows[self._next :]
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row


_Raw = psycopg.Connection[tuple[Any, ...]]


class _WriteConnection:
    """A writer connection inside its transaction: statements translated, errors mapped."""

    def __init__(self, raw: _Raw, db: PostgresDatabase) -> None:
        self._raw = raw
        self._db = db

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        try:
            cur = self._raw.cursor()
            cur.execute(translate(sql), tuple(parameters))
            return _Rows(cur.fetchall() if cur.description is not None else [], cur.rowcount)
        except psycopg.Error as exc:
            raise self._db.error(exc) from exc

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        """Run ``sql`` once per parameter row. A plain ``INSERT ... VALUES`` (see
        :func:`multi_row_insert`) is sent as multi-row statements, a few thousand parameters
        each, others pipelined; ``rowcount`` is the total either way."""
        rows = [tuple(p) for p in parameters]
        try:
            if not rows or multi_row_insert(sql) is None:
                cur = self._raw.cursor()
                cur.executemany(translate(sql), rows)
                return _Rows([], cur.rowcount)
            raw = psycopg.RawCursor(self._raw)
            per = max(1, MULTI_ROW_PARAMETERS // max(1, len(rows[0])))
            total = 0
            for start in range(0, len(rows), per):
                chunk = rows[start : start + per]
                raw.execute(numbered(sql, len(chunk)), [value for r in chunk for value in r])
                total += raw.rowcount
            return _Rows([], total)
        except psycopg.Error as exc:
            raise self._db.error(exc) from exc


class _ReadConnection:
    """Reader statements, each on a pooled connection in its own read-only snapshot."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self._db.read(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        raise StoreError("a reader cannot write: use the database's transaction()")


def _configure_writer(conn: _Raw) -> None:
    conn.execute("SET synchronous_commit = on")
    conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
    conn.isolation_level = IsolationLevel.READ_COMMITTED


def _configure_reader(conn: _Raw) -> None:
    conn.execute("SET synchronous_commit = on")
    conn.commit()
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True


class PostgresDatabase:
    """A PostgreSQL database (see the module docstring). Thread-safe."""

    def __init__(
        self,
        url: str,
        schema: Schema,
        *,
        create: bool = True,
        read_only: bool = False,
        max_readers: int = POOL_MAX_READERS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        """Connect to ``url`` (``postgresql://user:password@host:port/name``) and bring the
        database to ``schema`` (:func:`~anchor.db.migrations.migrate`, once, under the write
        lock). ``create``: a database without our tables is given them; otherwise it is
        refused. ``read_only``: nothing is written (no writer pool), writes fail.
        ``connect_timeout``: seconds to wait for a connection (at open, and per check-out)."""
        self._where = redact(url)
        self._secret = urlsplit(url).password
        try:  # fail at once when the server refuses (the pools would retry until the timeout)
            psycopg.connect(url, connect_timeout=max(1, int(connect_timeout))).close()
        except psycopg.Error as exc:
            raise pg_error(exc, self._where, self._secret) from exc
        self._read_only = read_only
        self._write_lock = threading.Lock()
        self.write_error: StorageUnavailable | None = None
        """The failure of the last write when it was a :class:`StorageUnavailable`."""
        self._readers: psycopg_pool.ConnectionPool[_Raw] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_readers,
            open=False,
            name="ler-anchor-readers",
            timeout=connect_timeout,
            kwargs={
                "autocommit": False,
                "connect_timeout": max(1, int(connect_timeout)),
                **TCP_KEEPALIVES,
            },
            configure=_configure_reader,
        )
        self._writers: psycopg_pool.ConnectionPool[_Raw] | None = None
        if not read_only:
            self._writers = psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=1,
                open=False,
                name="ler-anchor-writer",
                timeout=connect_timeout,
                check=psycopg_pool.ConnectionPool.check_connection,  # a round trip per write
                kwargs={
                    "autocommit": True,
                    "connect_timeout": max(1, int(connect_timeout)),
                    **TCP_KEEPALIVES,
                },
                configure=_configure_writer,
            )
        try:
            for pool in (self._readers, self._writers):
                if pool is not None:
                    pool.open(wait=True, timeout=connect_timeout)
        except psycopg.Error as exc:
            self.close()
            raise self.error(exc) from exc
        except BaseException:
            self.close()
            raise
        try:
            if read_only:
                with self._readers.connection() as raw, raw.transaction():
                    self.migrated_from = migrate(
                        _WriteConnection(raw, self),
                        "postgresql",
                        schema,
                        create=False,
                        read_only=True,
                        where=self._where,
                    )
            else:
                with self.transaction() as conn:
                    self.migrated_from = migrate(
                        conn,
                        "postgresql",
                        schema,
                        create=create,
                        read_only=False,
                        where=self._where,
                    )
        except psycopg.Error as exc:
            self.close()
            raise self.error(exc) from exc
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresDatabase({self._where!r})"

    @property
    def dialect(self) -> Literal["postgresql"]:
        return "postgresql"

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def where(self) -> str:
        """The database's URL without its password."""
        return self._where

    def error(self, exc: psycopg.Error) -> StoreError:
        return pg_error(exc, self._where, self._secret)

    def read(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        """Run one read statement in its own snapshot and return its rows. A pooled
        connection found broken (the server restarted, or dropped it) is replaced, with every
        idle one found broken too, and the statement, which changes nothing, is run once more
        on a fresh one."""
        for attempt in range(2):
            broken = False
            try:
                with self._readers.connection() as raw:
                    try:
                        cur = raw.execute(translate(sql), tuple(parameters))
                        rows = cur.fetchall() if cur.description is not None else []
                        return _Rows(rows, cur.rowcount)
                    except psycopg.OperationalError:
                        if attempt or not raw.broken:
                            raise
                        broken = True  # the pool discards it on return
            except psycopg.Error as exc:
                if not broken:
                    raise self.error(exc) from exc
            self._readers.check()  # the others were most likely dropped too: replace them
        raise StoreError("unreachable: a read was retried without an answer")

    def reader(self) -> Connection:
        return _ReadConnection(self)

    @contextmanager
    def snapshot(self) -> Iterator[Callable[[str], Iterator[tuple[Any, ...]]]]:
        """One ``REPEATABLE READ, READ ONLY`` transaction for several statements: a single
        consistent view of every table (a backup), while writers go on. Yields ``rows(sql)``,
        which streams a statement's rows through a server-side cursor,
        :data:`SNAPSHOT_BATCH_ROWS` at a time (memory stays bounded whatever the table's
        size). Errors leave as the project's (:meth:`error`)."""
        names = itertools.count()
        try:
            with self._readers.connection() as raw, raw.transaction():

                def rows(sql: str) -> Iterator[tuple[Any, ...]]:
                    with raw.cursor(name=f"ler_anchor_snapshot_{next(names)}") as cur:
                        cur.itersize = SNAPSHOT_BATCH_ROWS
                        cur.execute(translate(sql))
                        yield from cur

                yield rows
        except psycopg.Error as exc:
            raise self.error(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: the advisory write lock first, committed durably on exit;
        rolled back on any error, which leaves as the project's error."""
        if self._writers is None:
            raise StoreError(f"the database {self._where} was opened read-only")
        with self._write_lock:
            try:
                with self._writers.connection() as raw, raw.transaction():
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
                    yield _WriteConnection(raw, self)
            except psycopg.Error as exc:
                err = self.error(exc)
                if isinstance(err, StorageUnavailable):
                    self.write_error = err
                raise err from exc
            except StorageUnavailable as exc:
                self.write_error = exc
                raise
            self.write_error = None

    def meta(self, key: str) -> str | None:
        row = self.read("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        for pool in (self._readers, self._writers):
            if pool is not None:
                pool.close()
