"""The chain ledger's SQL is portable (it must run unchanged on SQLite and PostgreSQL) and keeps
its meaning: the statements the state machine runs use no SQLite-only construct, and the
rewritten ones (``RETURNING`` instead of ``lastrowid``, declared columns instead of
``rowid``, ``CASE`` instead of the two-argument ``max`` and boolean arithmetic) behave as
before, on a real SQLite file."""

from __future__ import annotations

import ast
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from anchor.chain import AnchorState, ChainIdentity, Fees, TxState, list_anchors
from anchor.chain.ledger import _Ledger
from anchor.db.tables import open_service_store

LEDGER = Path(__file__).resolve().parents[1] / "anchor" / "chain" / "ledger.py"
ACCOUNT = to_checksum_address("0x" + "22" * 20)

SQLITE_ONLY = {
    "rowid": re.compile(r"\b(rowid|oid|_rowid_)\b", re.IGNORECASE),
    "INSERT OR IGNORE / REPLACE": re.compile(r"\b(INSERT\s+OR|REPLACE\s+INTO)\b", re.IGNORECASE),
    "the SQLite catalogue": re.compile(r"\bsqlite_\w+", re.IGNORECASE),
    "two-argument max / min": re.compile(r"\b(max|min)\s*\([^()]*,", re.IGNORECASE),
    "SQLite-only functions": re.compile(
        r"\b(ifnull|iif|group_concat|strftime|datetime|julianday|printf)\s*\(", re.IGNORECASE
    ),
    "arithmetic on a comparison": re.compile(r"[+-]\s*\(\s*[\w.]+\s*(=|!=|<>|<|>)"),
}
"""SQL that PostgreSQL refuses or reads otherwise."""


def sqlite_only(sql: str) -> list[str]:
    """The SQLite-only constructs in ``sql``, named."""
    return [name for name, pattern in SQLITE_ONLY.items() if pattern.search(sql)]


def ledger_statements() -> list[str]:
    """The text of every SQL string in the ledger module outside :func:`ensure_schema` (whose
    DDL is the store's dialect) and its docstrings, f-string parts included."""
    tree = ast.parse(LEDGER.read_text(encoding="utf-8"))
    schema = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "ensure_schema"
    )
    skipped = {id(n) for n in ast.walk(schema)}
    skipped |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append(node.value)
    return [s for s in found if re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|ORDER BY)\b", s)]


def test_the_checker_names_what_the_ledger_used_to_run() -> None:
    assert sqlite_only("SELECT hash FROM anchor_txs ORDER BY created DESC, rowid DESC") == ["rowid"]
    assert sqlite_only("INSERT OR IGNORE INTO chains (id) VALUES (?)") == [
        "INSERT OR IGNORE / REPLACE"
    ]
    assert sqlite_only("SELECT 1 FROM sqlite_master WHERE name = 'anchors'") == [
        "the SQLite catalogue"
    ]
    assert sqlite_only("DO UPDATE SET next_nonce = max(next_nonce, excluded.next_nonce)") == [
        "two-argument max / min"
    ]
    assert sqlite_only("SET reorgs = reorgs + (id = ?), updated = ?") == [
        "arithmetic on a comparison"
    ]
    assert sqlite_only("SELECT max(size) FROM anchors WHERE chain = ?") == []


def test_the_ledger_runs_no_sqlite_only_sql() -> None:
    statements = ledger_statements()
    assert len(statements) > 20  # the queries and writes were found
    offending = {s: sqlite_only(s) for s in statements if sqlite_only(s)}
    assert not offending, offending
    tree = ast.parse(LEDGER.read_text(encoding="utf-8"))
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert "lastrowid" not in attributes  # new ids come back with RETURNING
    assert any("RETURNING id" in s for s in statements)


@pytest.fixture
def ledger(database: str) -> Iterator[tuple[_Ledger, int]]:
    """A ledger on each backend (``database``: SQLite, then PostgreSQL), its tables made by
    the service database's migrations."""
    store = open_service_store(database)
    try:
        ledger = _Ledger(store)
        identity = ChainIdentity(31337, b"\x01" * 32, to_checksum_address("0x" + "11" * 20))
        ref, previous = ledger.adopt_identity(identity)
        assert previous is None
        yield ledger, ref
    finally:
        store.close()


def test_enqueue_returns_the_new_rows_id(ledger: tuple[_Ledger, int]) -> None:
    book, ref = ledger
    first = book.enqueue(ref, ACCOUNT, 3, b"\x03" * 32)
    assert (first.size, first.state) == (3, AnchorState.PENDING)
    book.record_attempt(first.id, ref, ACCOUNT, 0, 50_000, Fees(10, 1), b"\xa0" * 32, b"raw")
    second = book.enqueue(ref, ACCOUNT, 5, b"\x05" * 32)  # the first is sent: a new row
    assert second.id != first.id
    assert (second.size, second.root) == (5, b"\x05" * 32)
    assert [a.id for a in list_anchors(book.store)] == [second.id, first.id]


def test_attempts_keep_their_order_within_one_millisecond(
    ledger: tuple[_Ledger, int],
) -> None:
    book, ref = ledger
    anchor = book.enqueue(ref, ACCOUNT, 4, b"\x04" * 32)
    fees = [Fees(100, 10), Fees(113, 12), Fees(128, 14)]  # each one a replacement
    hashes = [bytes([0xF0 - n]) * 32 for n in range(3)]  # falling: hash order is not age
    for fee, tx_hash in zip(fees, hashes, strict=True):
        book.record_attempt(anchor.id, ref, ACCOUNT, 7, 60_000, fee, tx_hash, b"raw")
    with book.store.transaction() as conn:  # as if all three were recorded in one millisecond
        conn.execute("UPDATE anchor_txs SET created = 1000")
    assert [tx.hash for tx in book.attempts_of(anchor.id)] == hashes  # oldest first
    assert [tx.hash for tx in book.attempts(ref, ACCOUNT, 7)] == hashes[::-1]  # newest first


def test_the_stored_nonce_only_grows_until_released(ledger: tuple[_Ledger, int]) -> None:
    book, ref = ledger
    anchor = book.enqueue(ref, ACCOUNT, 2, b"\x02" * 32)
    book.record_attempt(anchor.id, ref, ACCOUNT, 5, 60_000, Fees(10, 1), b"\x05" * 32, b"raw")
    assert book.next_nonce(ref, ACCOUNT) == 6
    book.record_attempt(anchor.id, ref, ACCOUNT, 3, 60_000, Fees(10, 1), b"\x03" * 32, b"raw")
    assert book.next_nonce(ref, ACCOUNT) == 6  # a lower nonce never moves it back
    book.record_attempt(anchor.id, ref, ACCOUNT, 8, 60_000, Fees(10, 1), b"\x08" * 32, b"raw")
    assert book.next_nonce(ref, ACCOUNT) == 9
    book.release_nonce(ref, book.anchor(anchor.id), "used elsewhere", 4)
    assert book.next_nonce(ref, ACCOUNT) == 4  # released: the chain's count, whatever it is
    released = book.anchor(anchor.id)
    assert (released.state, released.nonce) == (AnchorState.PENDING, None)
    states = {tx.hash[0]: tx.state for tx in book.attempts_of(anchor.id)}
    assert states[8] is TxState.DROPPED  # the released nonce's attempt
    assert states[5] is TxState.SIGNED  # other nonces' attempts are left alone


def test_only_the_newest_lost_anchor_counts_a_reorg(ledger: tuple[_Ledger, int]) -> None:
    book, ref = ledger
    ids = []
    for nonce, size in enumerate((2, 4, 6)):
        anchor = book.enqueue(ref, ACCOUNT, size, bytes([size]) * 32)
        tx_hash = bytes([size]) * 32
        book.record_attempt(anchor.id, ref, ACCOUNT, nonce, 60_000, Fees(10, 1), tx_hash, b"raw")
        ids.append(anchor.id)
    with book.store.transaction() as conn:
        conn.execute("UPDATE anchors SET state = ?", (AnchorState.FINAL.value,))
    book.forget_lost_anchors(ref, [ids[2], ids[1]], "the chain was reset")
    by_id = {a.id: a for a in list_anchors(book.store)}
    assert (by_id[ids[2]].state, by_id[ids[2]].reorgs) == (AnchorState.PENDING, 1)
    assert (by_id[ids[1]].state, by_id[ids[1]].reorgs) == (AnchorState.FAILED, 0)
    assert (by_id[ids[0]].state, by_id[ids[0]].reorgs) == (AnchorState.FINAL, 0)
    assert book.next_nonce(ref, ACCOUNT) is None  # read again from the chain on next use


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_ledgers_writes_run_on_a_traced_connection_without_sqlite_only_sql(
    ledger: tuple[_Ledger, int],
) -> None:
    """The statements SQLite actually runs for the writes above, as it reports them (the trace
    is SQLite's own; PostgreSQL runs the same writes in the tests above)."""
    book, ref = ledger
    assert book.store.db.dialect == "sqlite"
    ran: list[str] = []
    writer = book.store.db._writer  # type: ignore[attr-defined]
    assert isinstance(writer, sqlite3.Connection)
    writer.set_trace_callback(ran.append)
    try:
        anchor = book.enqueue(ref, ACCOUNT, 9, b"\x09" * 32)
        book.record_attempt(anchor.id, ref, ACCOUNT, 0, 60_000, Fees(10, 1), b"\x09" * 32, b"r")
        book.release_nonce(ref, book.anchor(anchor.id), "refused", 0)
        book.forget_lost_anchors(ref, [anchor.id], "the chain was reset")
    finally:
        writer.set_trace_callback(None)
    statements = [s for s in ran if s.split()[0].upper() in ("SELECT", "INSERT", "UPDATE")]
    assert len(statements) >= 8
    offending = {s: sqlite_only(s) for s in statements if sqlite_only(s)}
    assert not offending, offending
