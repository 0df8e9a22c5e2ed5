"""The database layer: connections, transactions and migrations, for every table.

I/O. :func:`open_database` opens a SQLite file (:mod:`anchor.db.sqlite`, the embedded
default) or, for a ``postgresql://`` URL, a PostgreSQL database (:mod:`anchor.db.postgres`),
and migrates it once to the given :class:`~anchor.db.migrations.Schema`. Both satisfy the
:class:`~anchor.db.api.Database` protocol: feature code asks for ``db.reader()`` (single
statements on a consistent snapshot) or ``with db.transaction() as conn:`` (serialised,
durable, atomic writes), writes its SQL once in SQLite's dialect with ``?`` placeholders, and
never creates tables on a read path (a :class:`~anchor.db.migrations.Step` does, at open).
Cost: opening is one connection (SQLite) or two small pools (PostgreSQL) and one ``meta``
read when no migration is due.

Using the seam from a feature (the tables of the log are the worked example, see
:data:`anchor.store.LOG_SCHEMA`): add the feature's ``CREATE TABLE`` statements as a new
:class:`~anchor.db.migrations.Step` of the schema (and to its ``create``), type the code
against :class:`~anchor.db.api.Database` / :class:`~anchor.db.api.Connection`, and use
``INSERT ... ON CONFLICT`` rather than ``INSERT OR REPLACE`` or a caught constraint error.
"""

from __future__ import annotations

from pathlib import Path

from anchor.db.api import Connection, Cursor, Database, Dialect
from anchor.db.migrations import Schema, Step
from anchor.db.sqlite import SQLiteDatabase

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def open_database(
    target: str | Path, schema: Schema, *, create: bool = True, read_only: bool = False
) -> Database:
    """Open ``target``, a ``postgresql://`` URL or a SQLite file path, at ``schema``."""
    if is_postgres_url(target):
        from anchor.db.postgres import PostgresDatabase  # psycopg loads only when used

        return PostgresDatabase(str(target), schema, create=create, read_only=read_only)
    return SQLiteDatabase(target, schema, create=create, read_only=read_only)


__all__ = [
    "Connection",
    "Cursor",
    "Database",
    "Dialect",
    "SQLiteDatabase",
    "Schema",
    "Step",
    "is_postgres_url",
    "open_database",
]
