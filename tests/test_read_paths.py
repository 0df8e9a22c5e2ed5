"""Read paths never take the writer lock: with another connection holding it (``BEGIN
IMMEDIATE``, as the service's writer or an operator command does), the anchor look-ups behind
receipts, proofs and ``/healthz`` answer at once instead of waiting out the busy timeout, and
on a database without the chain tables they answer "nothing" without creating them."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor.chain import anchor_covering, current_chain, latest_anchor, list_anchors
from anchor.chain.ledger import ensure_schema
from anchor.log.store import SQLiteStore

PROMPT_SECONDS = 1.0
"""Well under the store's busy timeout (10 s): a read that waited for the lock would exceed it."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "ler-anchor.db")
    try:
        yield opened
    finally:
        opened.close()


def _reads(store: SQLiteStore) -> tuple[object, ...]:
    return (
        list_anchors(store),
        anchor_covering(store, 0),
        anchor_covering(store, 0, final_only=True),
        latest_anchor(store),
        current_chain(store),
    )


def test_anchor_reads_do_not_wait_for_the_writer(store: SQLiteStore) -> None:
    ensure_schema(store)
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        start = time.monotonic()
        assert _reads(store) == ([], None, None, None, None)
        assert time.monotonic() - start < PROMPT_SECONDS
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_anchor_reads_create_nothing(store: SQLiteStore) -> None:
    assert _reads(store) == ([], None, None, None, None)
    tables = {
        row[0]
        for row in store.reader().execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert "anchors" not in tables
    assert "chains" not in tables
