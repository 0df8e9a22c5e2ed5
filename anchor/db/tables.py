"""The service database's feature tables and their migrations, on SQLite and PostgreSQL.

The log's own tables (leaf blocks, digest index, checkpoints) are
:data:`anchor.log.store.LOG_SCHEMA`, migrated when the store opens. Every other table the service
keeps in the same database is here, as one more :class:`~anchor.db.migrations.Schema` with its
own version key (``features_version``): the anchor ledger (:data:`CHAIN_TABLES`, used by
:mod:`anchor.chain.ledger`), issuers and nonces (:mod:`anchor.auth`), status lists, their
versions and history (:data:`anchor.status.repository.SCHEMA`). :func:`open_service_store`
opens a database for the service and its commands and migrates both, once, at open, in write
transactions (so two processes opening one PostgreSQL database apply each step once); nothing
creates a table on a read path or per request.

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
from anchor.db import Connection, Dialect, Schema, Step
from anchor.db.migrations import migrate
from anchor.log.store import LogStore, open_store
from anchor.status import repository

FEATURES_VERSION: Final = 2
FEATURES_KEY: Final = "features_version"

CHAIN_TABLES: Final[tuple[str, ...]] = (
    "CREATE TABLE IF NOT EXISTS chains (id INTEGER PRIMARY KEY, chain_id INTEGER NOT NULL,"
    " genesis_hash BLOB NOT NULL, contract TEXT NOT NULL, current INTEGER NOT NULL DEFAULT 0,"
    " first_seen INTEGER NOT NULL, UNIQUE (chain_id, genesis_hash, contract))",
    "CREATE TABLE IF NOT EXISTS chain_accounts (chain INTEGER NOT NULL REFERENCES chains (id),"
    " address TEXT NOT NULL, next_nonce INTEGER NOT NULL, PRIMARY KEY (chain, address))",
    "CREATE TABLE IF NOT EXISTS anchors (id INTEGER PRIMARY KEY,"
    " chain INTEGER NOT NULL REFERENCES chains (id), size INTEGER NOT NULL,"
    " root BLOB NOT NULL, state TEXT NOT NULL, account TEXT NOT NULL, nonce INTEGER,"
    " tx_hash BLOB, block_number INTEGER, block_hash BLOB, log_index INTEGER,"
    " block_time INTEGER, error TEXT, reorgs INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS anchors_by_state ON anchors (chain, state, size)",
    "CREATE INDEX IF NOT EXISTS anchors_by_block ON anchors (chain, state, block_number)",
    "CREATE TABLE IF NOT EXISTS anchor_txs (chain INTEGER NOT NULL REFERENCES chains (id),"
    " hash BLOB NOT NULL, anchor INTEGER NOT NULL REFERENCES anchors (id),"
    " account TEXT NOT NULL, nonce INTEGER NOT NULL, gas INTEGER NOT NULL,"
    " max_fee INTEGER NOT NULL, max_priority_fee INTEGER NOT NULL, raw BLOB NOT NULL,"
    " state TEXT NOT NULL, error TEXT, created INTEGER NOT NULL, PRIMARY KEY (chain, hash))",
    "CREATE INDEX IF NOT EXISTS anchor_txs_by_nonce ON anchor_txs (chain, account, nonce)",
)
"""The anchor ledger's tables (:mod:`anchor.chain.ledger`), in order; each statement is
idempotent. Here rather than in the chain package, so that a command that opens the database
does not load the chain stack (web3) to migrate it."""

FEATURE_TABLES: Final[tuple[str, ...]] = (
    *CHAIN_TABLES,
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
