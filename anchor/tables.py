"""The service database's feature tables and their migrations, on SQLite and PostgreSQL.

The log's own tables (leaf blocks, digest index, checkpoints) are
:data:`anchor.store.LOG_SCHEMA`, migrated when the store opens. Every other table the service
keeps in the same database is here, as one more :class:`~anchor.db.migrations.Schema` with its
own version key (``features_version``): the anchor ledger (:data:`anchor.chain.ledger.SCHEMA`),
issuers and nonces (:mod:`anchor.auth`), status lists, their versions and history
(:data:`anchor.status.repository.SCHEMA`). :func:`open_service_store` opens a database for the
service and its commands and migrates both, once, at open, in write transactions (so two
processes opening one PostgreSQL database apply each step once); nothing creates a table on a
read path or per request.

A database made by a release before these migrations already holds the tables (each feature
made its own at start): step 1 is idempotent DDL and finds them; step 2 adds the status
versions' ``seq`` column, filled so that the sequence numbers already published stay the same.

I/O (the migrations' statements). Cost at open: one ``meta`` read when the database is
current; otherwise the DDL and one pass over ``status_versions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from anchor.auth import issuers, nonces
from anchor.chain import ledger
from anchor.db import Connection, Dialect, Schema, Step
from anchor.db.migrations import migrate
from anchor.status import repository
from anchor.store import LogStore, open_store

FEATURES_VERSION: Final = 2
FEATURES_KEY: Final = "features_version"

FEATURE_TABLES: Final[tuple[str, ...]] = (
    *ledger.SCHEMA,
    *issuers.SCHEMA,
    *nonces.SCHEMA,
    *repository.SCHEMA,
)
"""Every feature table's DDL, in dependency order (each statement is idempotent)."""


def _create_tables(conn: Connection, dialect: Dialect) -> None:
    for statement in FEATURE_TABLES:
        conn.execute(statement)


def _create(conn: Connection, dialect: Dialect) -> None:
    """A database without a feature version: fresh, or made by an earlier release (whose
    features created their tables themselves); every step is idempotent."""
    for step in FEATURES_SCHEMA.steps:
        step.apply(conn, dialect)


FEATURES_SCHEMA: Final = Schema(
    version=FEATURES_VERSION,
    create=_create,
    steps=(
        Step(1, "the feature tables: anchors, issuers, nonces, status lists", _create_tables),
        Step(2, "status versions keep their publication order (seq)", repository.add_version_seq),
    ),
    key=FEATURES_KEY,
)
"""The feature tables' schema (see the module docstring)."""


def migrate_features(store: LogStore) -> int:
    """Bring the feature tables of ``store`` (opened writable) to :data:`FEATURES_SCHEMA`, in
    one write transaction; the version they were at (0: none). Idempotent."""
    with store.transaction() as conn:
        return migrate(
            conn,
            store.db.dialect,
            FEATURES_SCHEMA,
            create=True,
            read_only=False,
            where=store.db.where,
        )


def open_service_store(
    target: str | Path, *, create: bool = True, read_only: bool = False
) -> LogStore:
    """The service's database at ``target`` (a SQLite file or a ``postgresql://`` URL) with
    every table migrated (unless ``read_only``: then nothing is written, and a feature whose
    table is missing says so when it is used)."""
    store = open_store(target, create=create, read_only=read_only)
    if read_only:
        return store
    try:
        migrate_features(store)
    except BaseException:
        store.close()
        raise
    return store
