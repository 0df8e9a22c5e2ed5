"""The database side of :mod:`anchor.chain`: the chain tables (:func:`ensure_schema`), the
read-only queries the rest of the service uses, and the state machine's reads and writes
(``_Ledger``).

The statements run unchanged on SQLite and PostgreSQL: ``?`` placeholders (the store maps
them), no ``rowid`` (rows are ordered by declared columns), no ``lastrowid`` (``RETURNING``),
no ``INSERT OR IGNORE / REPLACE`` (``ON CONFLICT``), no SQLite-only functions (two-argument
``max``) and no arithmetic on booleans. Only :func:`ensure_schema`'s DDL is SQLite's (as the
rest of the store's); it runs once, when the chain client is made at service start, never
on a read path: a read on a database without the chain tables answers "nothing" (the store
says whether a table exists).

Not pure (SQLite reads and writes). Cost: every query is one or two indexed reads; every
write is one short transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from eth_utils.address import to_checksum_address

from anchor.chain.values import (
    LIVE_STATES,
    AnchorRecord,
    AnchorState,
    ChainIdentity,
    Fees,
    LogInfo,
    ReceiptInfo,
    TxRecord,
    TxState,
    _now_ms,
)
from anchor.db.api import Connection
from anchor.db.tables import CHAIN_TABLES
from anchor.errors import StoreError
from anchor.log.store import LogStore

# ---- the database ---------------------------------------------------------------------------


SCHEMA: Final = CHAIN_TABLES
"""The chain tables (:data:`anchor.db.tables.CHAIN_TABLES`: kept there so that the service
database's migrations need not load the chain package)."""


def ensure_schema(store: LogStore) -> None:
    """Create the chain tables if they do not exist (idempotent)."""
    with store.transaction() as conn:
        for statement in SCHEMA:
            conn.execute(statement)


_ANCHOR_COLUMNS = (
    "a.id, c.chain_id, c.genesis_hash, c.contract, c.current, a.size, a.root, a.state,"
    " a.account, a.nonce, a.tx_hash, a.block_number, a.block_hash, a.log_index, a.block_time,"
    " a.error, a.reorgs, a.created, a.updated"
)
_ANCHOR_FROM = "anchors a JOIN chains c ON c.id = a.chain"
_TX_COLUMNS = (
    "hash, anchor, account, nonce, gas, max_fee, max_priority_fee, raw, state, error, created"
)
_TX_ORDER = "created, max_fee, max_priority_fee, hash"
"""Attempts oldest first: by the time each was recorded, and within one millisecond by fees
(an attempt replacing another of the same nonce offers both fees 12.5% more), then by hash."""
_TX_ORDER_DESC = "created DESC, max_fee DESC, max_priority_fee DESC, hash DESC"


def _has_schema(store: LogStore) -> bool:
    """Whether the chain tables exist (one read; read paths never create them, so they never
    take the writer lock: :func:`ensure_schema` runs when the chain client opens)."""
    return store.has_table("anchors")


def _anchor_record(row: Sequence[Any]) -> AnchorRecord:
    return AnchorRecord(
        id=int(row[0]),
        chain=ChainIdentity(int(row[1]), bytes(row[2]), to_checksum_address(row[3])),
        current_chain=bool(row[4]),
        size=int(row[5]),
        root=bytes(row[6]),
        state=AnchorState(row[7]),
        account=str(row[8]),
        nonce=None if row[9] is None else int(row[9]),
        tx_hash=None if row[10] is None else bytes(row[10]),
        block_number=None if row[11] is None else int(row[11]),
        block_hash=None if row[12] is None else bytes(row[12]),
        log_index=None if row[13] is None else int(row[13]),
        block_time=None if row[14] is None else int(row[14]),
        error=None if row[15] is None else str(row[15]),
        reorgs=int(row[16]),
        created_ms=int(row[17]),
        updated_ms=int(row[18]),
    )


def _tx_record(row: Sequence[Any]) -> TxRecord:
    return TxRecord(
        hash=bytes(row[0]),
        anchor_id=int(row[1]),
        account=str(row[2]),
        nonce=int(row[3]),
        gas=int(row[4]),
        fees=Fees(int(row[5]), int(row[6])),
        raw=bytes(row[7]),
        state=TxState(row[8]),
        error=None if row[9] is None else str(row[9]),
        created_ms=int(row[10]),
    )


def current_chain(store: LogStore) -> tuple[int, ChainIdentity] | None:
    """The row id and identity of the chain the service last started on, if any."""
    if not _has_schema(store):
        return None
    row = (
        store.reader()
        .execute("SELECT id, chain_id, genesis_hash, contract FROM chains WHERE current = 1")
        .fetchone()
    )
    if row is None:
        return None
    return int(row[0]), ChainIdentity(int(row[1]), bytes(row[2]), to_checksum_address(row[3]))


def list_anchors(
    store: LogStore,
    *,
    all_chains: bool = False,
    states: Iterable[AnchorState] | None = None,
    limit: int = 100,
) -> list[AnchorRecord]:
    """Anchors, newest first: those of the current chain, or of every chain recorded."""
    if not _has_schema(store):
        return []
    where = [] if all_chains else ["c.current = 1"]
    args: list[Any] = []
    if states is not None:
        wanted = [AnchorState(s).value for s in states]
        where.append(f"a.state IN ({','.join('?' * len(wanted))})")
        args.extend(wanted)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = (
        store.reader()
        .execute(
            f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} {clause} "  # noqa: S608
            "ORDER BY a.id DESC LIMIT ?",
            (*args, limit),
        )
        .fetchall()
    )
    return [_anchor_record(r) for r in rows]


def anchor_covering(
    store: LogStore, index: int, *, final_only: bool = False, newest: bool = False
) -> AnchorRecord | None:
    """An anchor on the current chain that covers leaf ``index`` (its size is above it):
    the smallest such size, or the largest with ``newest``; ``included`` or ``final`` ones,
    or only ``final`` ones with ``final_only``."""
    if not _has_schema(store):
        return None
    states = (AnchorState.FINAL,) if final_only else (AnchorState.INCLUDED, AnchorState.FINAL)
    order = "DESC" if newest else "ASC"
    row = (
        store.reader()
        .execute(
            f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} "  # noqa: S608
            f"WHERE c.current = 1 AND a.size > ? AND a.state IN ({','.join('?' * len(states))}) "
            f"ORDER BY a.size {order} LIMIT 1",
            (index, *(s.value for s in states)),
        )
        .fetchone()
    )
    return None if row is None else _anchor_record(row)


def latest_anchor(store: LogStore, *, final_only: bool = False) -> AnchorRecord | None:
    """The anchor of the largest size on the current chain that is ``included`` or ``final``
    (only ``final`` with ``final_only``): what the contract's ``latest()`` holds once mined.
    One indexed read."""
    if not _has_schema(store):
        return None
    states = (AnchorState.FINAL,) if final_only else (AnchorState.INCLUDED, AnchorState.FINAL)
    row = (
        store.reader()
        .execute(
            f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} "  # noqa: S608
            f"WHERE c.current = 1 AND a.state IN ({','.join('?' * len(states))}) "
            "ORDER BY a.size DESC LIMIT 1",
            tuple(s.value for s in states),
        )
        .fetchone()
    )
    return None if row is None else _anchor_record(row)


class _Ledger:
    """The state machine's reads and writes (synchronous; the client runs them in a thread).
    Every method that changes state does so in one transaction."""

    def __init__(self, store: LogStore) -> None:
        self.store = store

    # -- identity ---------------------------------------------------------------------------

    def adopt_identity(self, identity: ChainIdentity) -> tuple[int, ChainIdentity | None]:
        """Make ``identity`` the current chain; returns its row id and the previous current
        chain when it was another one."""
        now = _now_ms()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, chain_id, genesis_hash, contract FROM chains WHERE current = 1"
            ).fetchone()
            previous = (
                None
                if row is None
                else ChainIdentity(int(row[1]), bytes(row[2]), to_checksum_address(row[3]))
            )
            if previous == identity:
                return int(row[0]), None
            conn.execute("UPDATE chains SET current = 0 WHERE current = 1")
            conn.execute(
                "INSERT INTO chains (chain_id, genesis_hash, contract, current, first_seen) "
                "VALUES (?, ?, ?, 1, ?) ON CONFLICT (chain_id, genesis_hash, contract) "
                "DO UPDATE SET current = 1",
                (identity.chain_id, identity.genesis_hash, identity.contract, now),
            )
            ref = conn.execute(
                "SELECT id FROM chains WHERE chain_id = ? AND genesis_hash = ? AND contract = ?",
                (identity.chain_id, identity.genesis_hash, identity.contract),
            ).fetchone()[0]
            return int(ref), previous

    # -- reads ------------------------------------------------------------------------------

    def anchors_in(self, ref: int, states: Sequence[AnchorState]) -> list[AnchorRecord]:
        rows = (
            self.store.reader()
            .execute(
                f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} "  # noqa: S608
                f"WHERE a.chain = ? AND a.state IN ({','.join('?' * len(states))}) "
                "ORDER BY a.nonce IS NULL, a.nonce, a.size",
                (ref, *(s.value for s in states)),
            )
            .fetchall()
        )
        return [_anchor_record(r) for r in rows]

    def finals_since(self, ref: int, min_block: int) -> list[AnchorRecord]:
        """Final anchors whose block is at least ``min_block``, newest block first."""
        rows = (
            self.store.reader()
            .execute(
                f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} "  # noqa: S608
                "WHERE a.chain = ? AND a.state = ? AND a.block_number >= ? "
                "ORDER BY a.block_number DESC, a.log_index DESC",
                (ref, AnchorState.FINAL.value, min_block),
            )
            .fetchall()
        )
        return [_anchor_record(r) for r in rows]

    def largest_final_size(self, ref: int) -> int:
        """The largest tree size with a final anchor on chain ``ref`` (0: none)."""
        row = (
            self.store.reader()
            .execute(
                "SELECT max(size) FROM anchors WHERE chain = ? AND state = ?",
                (ref, AnchorState.FINAL.value),
            )
            .fetchone()
        )
        return 0 if row is None or row[0] is None else int(row[0])

    def anchor(self, anchor_id: int) -> AnchorRecord:
        row = (
            self.store.reader()
            .execute(f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} WHERE a.id = ?", (anchor_id,))  # noqa: S608
            .fetchone()
        )
        if row is None:
            raise StoreError(f"anchor {anchor_id} is missing")
        return _anchor_record(row)

    def attempts(self, ref: int, account: str, nonce: int) -> list[TxRecord]:
        """Every attempt recorded for ``nonce``, newest first."""
        rows = (
            self.store.reader()
            .execute(
                f"SELECT {_TX_COLUMNS} FROM anchor_txs "  # noqa: S608
                f"WHERE chain = ? AND account = ? AND nonce = ? ORDER BY {_TX_ORDER_DESC}",
                (ref, account, nonce),
            )
            .fetchall()
        )
        return [_tx_record(r) for r in rows]

    def attempts_of(self, anchor_id: int) -> list[TxRecord]:
        rows = (
            self.store.reader()
            .execute(
                f"SELECT {_TX_COLUMNS} FROM anchor_txs WHERE anchor = ? "  # noqa: S608
                f"ORDER BY {_TX_ORDER}",
                (anchor_id,),
            )
            .fetchall()
        )
        return [_tx_record(r) for r in rows]

    def next_nonce(self, ref: int, account: str) -> int | None:
        row = (
            self.store.reader()
            .execute(
                "SELECT next_nonce FROM chain_accounts WHERE chain = ? AND address = ?",
                (ref, account),
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    # -- writes -----------------------------------------------------------------------------

    def enqueue(self, ref: int, account: str, size: int, root: bytes) -> AnchorRecord:
        """A pending anchor for (size, root), unless a live anchor already covers ``size``; a
        fresh pending anchor (never sent) for a smaller size is moved up to this one."""
        now = _now_ms()
        live = [s.value for s in LIVE_STATES]
        with self.store.transaction() as conn:
            row = conn.execute(
                f"SELECT id FROM anchors WHERE chain = ? AND size >= ? "  # noqa: S608
                f"AND state IN ({','.join('?' * len(live))}) ORDER BY size DESC LIMIT 1",
                (ref, size, *live),
            ).fetchone()
            if row is None:
                fresh = conn.execute(
                    "SELECT id FROM anchors WHERE chain = ? AND state = ? AND nonce IS NULL "
                    "AND NOT EXISTS (SELECT 1 FROM anchor_txs t WHERE t.anchor = anchors.id) "
                    "ORDER BY size DESC LIMIT 1",
                    (ref, AnchorState.PENDING.value),
                ).fetchone()
                if fresh is not None:
                    conn.execute(
                        "UPDATE anchors SET size = ?, root = ?, updated = ? WHERE id = ?",
                        (size, root, now, fresh[0]),
                    )
                    anchor_id = int(fresh[0])
                else:
                    [(new_id,)] = conn.execute(
                        "INSERT INTO anchors (chain, size, root, state, account, created,"
                        " updated) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (ref, size, root, AnchorState.PENDING.value, account, now, now),
                    ).fetchall()  # read to the end: the statement is finished before COMMIT
                    anchor_id = int(new_id)
            else:
                anchor_id = int(row[0])
        return self.anchor(anchor_id)

    def record_attempt(
        self, anchor_id: int, ref: int, account: str, nonce: int, gas: int, fees: Fees,
        tx_hash: bytes, raw: bytes,
    ) -> TxRecord:  # fmt: skip
        """Record a signed attempt (before it is broadcast) and mark its anchor submitted."""
        now = _now_ms()
        with self.store.transaction() as conn:
            conn.execute(
                f"INSERT INTO anchor_txs ({_TX_COLUMNS}, chain) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) "
                # The very same transaction again (same key, nonce, fees and data), e.g.
                # after the chain was reset: it is one attempt, now of this anchor.
                "ON CONFLICT (chain, hash) DO UPDATE SET anchor = excluded.anchor,"
                " state = excluded.state, error = NULL, created = excluded.created",
                (tx_hash, anchor_id, account, nonce, gas, fees.max_fee, fees.max_priority_fee,
                 raw, TxState.SIGNED.value, now, ref),
            )  # fmt: skip
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = ?, error = NULL, updated = ? WHERE id = ?",
                (AnchorState.SUBMITTED.value, nonce, now, anchor_id),
            )
            conn.execute(
                "INSERT INTO chain_accounts (chain, address, next_nonce) VALUES (?, ?, ?) "
                "ON CONFLICT (chain, address) DO UPDATE SET next_nonce = CASE"
                " WHEN excluded.next_nonce > chain_accounts.next_nonce"
                " THEN excluded.next_nonce ELSE chain_accounts.next_nonce END",
                (ref, account, nonce + 1),
            )
        return TxRecord(
            tx_hash, anchor_id, account, nonce, gas, fees, raw, TxState.SIGNED, None, now
        )

    def set_tx_state(
        self, ref: int, tx_hash: bytes, state: TxState, error: str | None = None
    ) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchor_txs SET state = ?, error = coalesce(?, error)"
                " WHERE chain = ? AND hash = ?",
                (state.value, error, ref, tx_hash),
            )

    def mark_mined(
        self, ref: int, tx: TxRecord, receipt: ReceiptInfo, log_index: int, block_time: int
    ) -> None:
        """``tx`` succeeded: its anchor is included; every other attempt of its nonce is
        dropped, and any other anchor waiting on that nonce needs a fresh one."""
        now = _now_ms()
        with self.store.transaction() as conn:
            self._settle_nonce(conn, ref, tx, TxState.MINED, None, now)
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = ?, tx_hash = ?, block_number = ?,"
                " block_hash = ?, log_index = ?, block_time = ?, error = NULL, updated = ?"
                " WHERE id = ?",
                (AnchorState.INCLUDED.value, tx.nonce, tx.hash, receipt.block_number,
                 receipt.block_hash, log_index, block_time, now, tx.anchor_id),
            )  # fmt: skip

    def mark_reverted(self, ref: int, tx: TxRecord, reason: str) -> None:
        now = _now_ms()
        with self.store.transaction() as conn:
            self._settle_nonce(conn, ref, tx, TxState.REVERTED, reason, now)
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = ?, tx_hash = ?, error = ?, updated = ?"
                " WHERE id = ?",
                (AnchorState.FAILED.value, tx.nonce, tx.hash, reason, now, tx.anchor_id),
            )

    @staticmethod
    def _settle_nonce(
        conn: Connection, ref: int, tx: TxRecord, state: TxState, error: str | None,
        now: int,
    ) -> None:  # fmt: skip
        conn.execute(
            "UPDATE anchor_txs SET state = ?, error = ? WHERE chain = ? AND hash = ?",
            (state.value, error, ref, tx.hash),
        )
        conn.execute(
            "UPDATE anchor_txs SET state = ? WHERE chain = ? AND account = ? AND nonce = ?"
            " AND hash != ? AND state IN (?, ?)",
            (TxState.DROPPED.value, ref, tx.account, tx.nonce, tx.hash, TxState.SIGNED.value,
             TxState.SENT.value),
        )  # fmt: skip
        conn.execute(
            "UPDATE anchors SET state = ?, nonce = NULL, updated = ? WHERE chain = ?"
            " AND account = ? AND nonce = ? AND id != ? AND state IN (?, ?)",
            (AnchorState.PENDING.value, now, ref, tx.account, tx.nonce, tx.anchor_id,
             AnchorState.PENDING.value, AnchorState.SUBMITTED.value),
        )  # fmt: skip

    def mark_adopted(self, anchor_id: int, event: LogInfo, block_time: int) -> None:
        now = _now_ms()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchors SET state = ?, tx_hash = ?, block_number = ?, block_hash = ?,"
                " log_index = ?, block_time = ?, error = NULL, updated = ? WHERE id = ?",
                (AnchorState.INCLUDED.value, event.transaction_hash, event.block_number,
                 event.block_hash, event.log_index, block_time, now, anchor_id),
            )  # fmt: skip

    def mark_final(self, anchor_id: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchors SET state = ?, updated = ? WHERE id = ? AND state = ?",
                (AnchorState.FINAL.value, _now_ms(), anchor_id, AnchorState.INCLUDED.value),
            )

    def mark_failed(self, anchor_id: int, reason: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchors SET state = ?, error = ?, updated = ? WHERE id = ?",
                (AnchorState.FAILED.value, reason, _now_ms(), anchor_id),
            )

    def mark_reorged(self, ref: int, anchor: AnchorRecord, why: str) -> None:
        """Back to pending, keeping the nonce; the mined attempt becomes ``reorged``."""
        with self.store.transaction() as conn:
            if anchor.tx_hash is not None:
                conn.execute(
                    "UPDATE anchor_txs SET state = ? WHERE chain = ? AND hash = ?",
                    (TxState.REORGED.value, ref, anchor.tx_hash),
                )
            conn.execute(
                "UPDATE anchors SET state = ?, tx_hash = NULL, block_number = NULL,"
                " block_hash = NULL, log_index = NULL, block_time = NULL, error = ?,"
                " reorgs = reorgs + 1, updated = ? WHERE id = ?",
                (AnchorState.PENDING.value, why, _now_ms(), anchor.id),
            )

    def forget_lost_anchors(self, ref: int, lost: Sequence[int], why: str) -> None:
        """The chain lost these final anchors (``lost``, newest first: a reset or a deep
        reorg). The newest goes back to pending, to be anchored again, as does every other
        unfinished anchor, without a nonce; older lost ones fail; attempts in flight are
        dropped; the stored nonce is forgotten (read again from the chain on next use)."""
        now = _now_ms()
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE anchors SET state = ?, error = ?, updated = ? WHERE id = ?",
                [(AnchorState.FAILED.value, why, now, anchor_id) for anchor_id in lost[1:]],
            )
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = NULL, tx_hash = NULL, block_number = NULL,"
                " block_hash = NULL, log_index = NULL, block_time = NULL, error = ?,"
                " reorgs = reorgs + CASE WHEN id = ? THEN 1 ELSE 0 END, updated = ?"
                " WHERE chain = ? AND (id = ? OR state IN (?, ?, ?))",
                (AnchorState.PENDING.value, why, lost[0], now, ref, lost[0],
                 AnchorState.PENDING.value, AnchorState.SUBMITTED.value,
                 AnchorState.INCLUDED.value),
            )  # fmt: skip
            conn.execute(
                "UPDATE anchor_txs SET state = ? WHERE chain = ? AND state IN (?, ?)",
                (TxState.DROPPED.value, ref, TxState.SIGNED.value, TxState.SENT.value),
            )
            conn.execute("DELETE FROM chain_accounts WHERE chain = ?", (ref,))

    def release_nonce(self, ref: int, anchor: AnchorRecord, why: str, chain_next: int) -> None:
        """The anchor's nonce is used by something else (or was never used): its attempts are
        dropped, it goes back to pending without a nonce, and the stored next nonce follows
        the chain's."""
        now = _now_ms()
        with self.store.transaction() as conn:
            if anchor.nonce is not None:
                conn.execute(
                    "UPDATE anchor_txs SET state = ? WHERE anchor = ? AND nonce = ?"
                    " AND state IN (?, ?)",
                    (TxState.DROPPED.value, anchor.id, anchor.nonce, TxState.SIGNED.value,
                     TxState.SENT.value),
                )  # fmt: skip
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = NULL, error = ?, updated = ? WHERE id = ?",
                (AnchorState.PENDING.value, why, now, anchor.id),
            )
            conn.execute(
                "INSERT INTO chain_accounts (chain, address, next_nonce) VALUES (?, ?, ?) "
                "ON CONFLICT (chain, address) DO UPDATE SET next_nonce = excluded.next_nonce",
                (ref, anchor.account, chain_next),
            )
