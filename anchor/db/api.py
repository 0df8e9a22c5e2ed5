"""The database seam: what feature code may rely on, whichever backend holds the tables.

Pure (typing only): :class:`Database`, :class:`Connection` and :class:`Cursor` are
structural protocols; :mod:`anchor.db.sqlite` and :mod:`anchor.db.postgres` implement them.
Feature code is typed against these instead of :class:`sqlite3.Connection`.

The contract, the same on both backends:

* SQL is written once, in the subset SQLite and PostgreSQL share, with ``?`` placeholders;
  the PostgreSQL connection translates the placeholders and the DDL types
  (:func:`anchor.db.postgres.translate`). Upserts are ``INSERT ... ON CONFLICT``, never
  ``INSERT OR REPLACE``; a probe for a free key is ``ON CONFLICT DO NOTHING`` and a look at
  ``rowcount``, never a caught constraint violation (it aborts a PostgreSQL transaction).
* :meth:`Database.transaction` is the only way to write. Write transactions are serialised
  (SQLite: one writer; PostgreSQL: a transaction-scoped advisory lock taken first), so
  read-modify-write code inside one loses no concurrent update, and the commit is durable
  before the block exits (SQLite ``synchronous=FULL``, PostgreSQL ``synchronous_commit``).
  Any failure rolls the whole transaction back and leaves as the project's error
  (:class:`~anchor.errors.StorageUnavailable` when it is transient, else
  :class:`~anchor.errors.StoreError`).
* :meth:`Database.reader` runs single statements outside any write transaction, each on a
  consistent snapshot; reads never wait for the writer.
* Tables are created and changed only by migrations (:mod:`anchor.db.migrations`), once,
  when the database opens; never on a read path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

from anchor.errors import StorageUnavailable

Dialect = Literal["sqlite", "postgresql"]
"""Which backend a :class:`Database` runs on (for the rare statement that differs)."""


class Cursor(Protocol):
    """The result of one statement: rows as tuples."""

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (``executemany``: all of its runs together)."""
        ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection inside a transaction (writes) or a reader (single statements)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class Database(Protocol):
    """One database: its tables, a serialised writer and concurrent readers."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def where(self) -> str:
        """The database named for messages: its file, or its URL without the password."""
        ...

    @property
    def write_error(self) -> StorageUnavailable | None:
        """The failure of the last write when it was transient; ``None`` once one commits."""
        ...

    def reader(self) -> Connection:
        """A connection for reads (single statements, each on a consistent snapshot)."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]:
        """A serialised write transaction, committed durably on exit, rolled back on error."""
        ...

    def meta(self, key: str) -> str | None:
        """The value of ``key`` in table ``meta``."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Set ``key`` in table ``meta`` (one write transaction)."""
        ...

    def close(self) -> None: ...
