"""The durable store of the embedded chain: py-evm's key-value database kept in one SQLite
file, and the eth-tester backend that uses it, stamps block times and finds transactions by
their index.

Why a persistent database rather than a replay journal: py-evm's chain database works over
any key-value store, so keeping that store on disk keeps every block, transaction, receipt
and state trie node exactly as they were made (hashes included, the random ``mixHash`` of
each block too), and a restart only opens the file and reads the head: its cost does not
grow with the chain. A replay journal would re-execute every block at each start (seconds per
thousand blocks) and would have to record every source of nondeterminism.

Crash safety: writes are buffered in memory and written in one SQLite transaction when a
block is mined (``synchronous=FULL``: on disk before the call that mined it returns). Every
transaction of the embedded chain is mined by the call that sends it, so the sender never
learns a transaction hash, hence never reads a receipt, before its block is durable. A
``kill -9`` at any moment leaves the file at the last mined block; state written for a block
that was not mined (no commit) is simply gone, as the block is.

The file is opened with an exclusive lock: a second service on the same data directory is
refused at start. Files are created with mode 0600 in a 0700 directory.

Cost: one SQLite transaction (one fsync) per mined block, a few milliseconds; reads are
SQLite primary-key lookups. Not pure: file I/O. Used only on the embedded chain's own thread.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Final, cast

from eth.abc import BlockAPI, BlockHeaderAPI, ComputationAPI, SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
from eth.vm.forks.prague import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_tester import PyEVMBackend
from eth_tester.backends.pyevm.main import get_default_account_keys
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound as TesterTransactionNotFound
from eth_typing import BlockNumber, Hash32

from anchor.errors import ConfigError, StoreError

CHAIN_FILE_NAME: Final = "chain.sqlite"
"""The embedded chain's database in its directory (``DATA_DIR/chain``)."""

ESTIMATE_GAS_RUNS: Final = 3
"""An ``eth_estimateGas`` executes at most this many times the gas it is given, in all
(:meth:`DurableTesterBackend.estimate`)."""

CALL_STIPEND: Final = 2300
"""Gas a value-bearing CALL gives its callee for free (EIP-150's stipend)."""

EMBEDDED_CHAIN_ID: Final = 131277322940537
"""Chain id of the embedded chain (eth-tester's, as before the chain became durable)."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class SQLiteKeyValue(BaseDB):
    """py-evm's key-value interface over a SQLite table. Writes stay in memory (visible to
    reads) until :meth:`flush` commits them, with ``meta`` values, in one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except OSError as exc:
            raise StoreError(
                f"the embedded chain's database {path} cannot be created: {exc}",
                hint="check the data directory, its disk and its permissions",
            ) from exc
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")  # takes the exclusive lock, kept until close
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.close()
            raise ConfigError(
                f"the embedded chain's database {path} is in use or unreadable: {exc}",
                hint="is another `ler-anchor serve` running on this data directory? stop it",
            ) from exc
        self._conn = conn
        self._pending: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        if key in self._pending:
            return self._pending[key] is not None
        return self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    def meta(self, name: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def flush(self, meta: dict[str, str] | None = None) -> None:
        """Commit every buffered write (and ``meta``) durably, in one transaction."""
        writes = [(k, v) for k, v in self._pending.items() if v is not None]
        deletes = [(k,) for k, v in self._pending.items() if v is None]
        try:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", writes)
            self._conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
            if meta:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", meta.items()
                )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreError(
                f"the embedded chain could not write {self.path}: {exc}",
                hint="check the disk (space, permissions); the block was not kept",
            ) from exc
        self._pending.clear()

    def close(self) -> None:
        self._conn.close()


class EmbeddedPosChain(MiningChain):
    """The embedded chain's rules: eth-tester's (Prague, post-merge, no proof, constant gas
    limit), so that a chain made before it was durable behaves the same."""

    chain_id = EMBEDDED_CHAIN_ID
    vm_configuration = ((BlockNumber(0), PragueVM),)

    def create_header_from_parent(
        self, parent_header: BlockHeaderAPI, **header_params: Any
    ) -> BlockHeaderAPI:
        header_params["gas_limit"] = parent_header.gas_limit
        return super().create_header_from_parent(parent_header, **header_params)

    def get_transaction_builder(self) -> Any:
        return self.get_vm().get_transaction_builder()


def block_time(parent_timestamp: int, now: float) -> int:
    """The timestamp of a block made at ``now``: not earlier than ``now`` (rounded up to the
    second), and strictly after its parent's as Ethereum requires. Pure."""
    return max(parent_timestamp + 1, math.ceil(now))


class DurableTesterBackend(PyEVMBackend):  # type: ignore[misc]
    """eth-tester's py-evm backend over an existing chain, with three changes:

    - a block's timestamp is set from the wall clock when its first transaction is applied
      (or, for an empty block, when it is mined), never earlier than that moment;
    - every mined block is made durable (:meth:`SQLiteKeyValue.flush`) before returning;
    - transactions are found through py-evm's transaction index, not by scanning blocks.
    """

    def __init__(self, chain: EmbeddedPosChain, store: SQLiteKeyValue | None) -> None:
        # not the parent's __init__: it would make a new chain
        self.account_keys = get_default_account_keys()
        self.chain = chain
        self._store = store

    def _stamp_if_empty(self) -> None:
        if self.chain.get_block().transactions:
            return
        parent = self.chain.get_canonical_head()
        stamp = block_time(parent.timestamp, time.time())
        self.chain.header = self.chain.header.copy(timestamp=stamp)

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = None) -> tuple[bytes, ...]:
        hashes: list[bytes] = []
        for _ in range(num_blocks):
            self._stamp_if_empty()
            if coinbase is None:
                hashes.extend(super().mine_blocks(1))
            else:
                hashes.extend(super().mine_blocks(1, coinbase))
            if self._store is not None:
                self._store.flush()
        return tuple(hashes)

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        self._stamp_if_empty()
        return bytes(super().send_raw_transaction(raw_transaction))

    def send_signed_transaction(self, signed_transaction: Any, block_number: Any = "latest") -> Any:
        self._stamp_if_empty()
        return super().send_signed_transaction(signed_transaction, block_number)

    def send_transaction(self, transaction: Any) -> Any:
        self._stamp_if_empty()
        return super().send_transaction(transaction)

    def _locate(self, tx_hash: bytes) -> tuple[BlockAPI, SignedTransactionAPI, int]:
        pending = self.chain.get_block()
        for index, transaction in enumerate(pending.transactions):
            if transaction.hash == tx_hash:
                return pending, transaction, index
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(tx_hash))
        except EvmTransactionNotFound:
            raise TesterTransactionNotFound(f"no transaction 0x{tx_hash.hex()}") from None
        block = self.chain.get_canonical_block_by_number(number)
        if index < len(block.transactions) and block.transactions[index].hash == tx_hash:
            return block, block.transactions[index], index
        raise TesterTransactionNotFound(f"no transaction 0x{tx_hash.hex()} in the chain")

    def _spoofed(self, transaction: dict[str, Any], header: BlockHeaderAPI) -> SpoofTransaction:
        """``transaction`` (eth-tester's form) as if sent by its ``from``, unsigned; without
        fees it offers the block's base fee and no tip."""
        tx = dict(transaction)
        for name in ("from", "to", "data"):
            if isinstance(tx.get(name), str):
                tx[name] = bytes.fromhex(tx[name][2:])
        if not any(f in tx for f in ("gas_price", "max_fee_per_gas", "max_priority_fee_per_gas")):
            tx["max_fee_per_gas"] = header.base_fee_per_gas or 0
            tx["max_priority_fee_per_gas"] = 0
        unsigned = self._get_normalized_and_unsigned_evm_transaction(tx, header.block_number)
        return SpoofTransaction(unsigned, from_=tx["from"])

    def _funded_state(self, spoof: SpoofTransaction, header: BlockHeaderAPI, gas: int) -> Any:
        """The state after block ``header``, the sender given what ``spoof`` could cost (as
        nodes do for calls: a read must not depend on the caller's balance)."""
        state = self.chain.get_vm(header).state
        sender = spoof.sender
        cost = gas * spoof.max_fee_per_gas + spoof.value
        state.set_balance(sender, state.get_balance(sender) + cost)
        return state

    def simulate(self, transaction: dict[str, Any], number: int) -> ComputationAPI:
        """Run ``transaction`` on the state after block ``number`` and discard the changes."""
        header = self.chain.get_canonical_block_header_by_number(BlockNumber(number))
        spoof = self._spoofed(transaction, header)
        state = self._funded_state(spoof, header, spoof.gas)
        computation: ComputationAPI = state.apply_transaction(spoof)
        return computation

    def estimate(self, transaction: dict[str, Any], number: int) -> int:
        """The least gas ``transaction`` needs on the state after block ``number``, searched
        up to its own ``gas``; raises the VM's error (e.g. ``Revert``) if it fails with that.

        Cost: at most :data:`ESTIMATE_GAS_RUNS` times ``gas`` of execution in all, whatever
        the code does (py-evm's own estimator searches up to the block's gas limit, 22 runs
        of up to 30,000,000 gas: 84 s on the embedded chain's thread for one loop). The
        first run, with all the gas, tells what the code used; nearly always that much is
        enough, so an estimate is two runs. Otherwise (a call keeping 1/64 of its gas back,
        a refund) the gas between what was used and what sufficed is bisected while the
        budget lasts, and the least amount seen to suffice is returned.
        """
        header = self.chain.get_canonical_block_header_by_number(BlockNumber(number))
        spoof = self._spoofed(transaction, header)
        state = self._funded_state(spoof, header, spoof.gas)

        def attempt(gas: int) -> ComputationAPI:
            snapshot = state.snapshot()
            try:
                trial = SpoofTransaction(cast(SignedTransactionAPI, spoof), gas=gas)
                run: ComputationAPI = state.apply_transaction(trial)
                return run
            finally:
                state.revert(snapshot)

        first = attempt(spoof.gas)
        if first.is_error:
            raise first.error
        used: int = spoof.gas - first.get_gas_remaining()
        # what was used, then what a node's optimistic guess adds (refund, stipend, 1/64)
        guesses = [used, (used + first.get_gas_refund() + CALL_STIPEND) * 64 // 63]
        too_little, enough = used - 1, int(spoof.gas)
        budget = (ESTIMATE_GAS_RUNS - 1) * spoof.gas
        while enough - too_little > 1:
            inside = [g for g in guesses if too_little < g < enough]
            guess = inside[0] if inside else (too_little + enough) // 2
            if guess > budget:
                break
            budget -= guess
            if attempt(guess).is_error:
                too_little = guess
            else:
                enough = guess
        return enough

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._locate(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, transaction, index, is_pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._locate(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, is_pending, self.chain.get_vm()
        )


def genesis_state() -> Any:
    """eth-tester's pre-funded accounts (the default test keys)."""
    return PyEVMBackend.generate_genesis_state()


def new_chain(db: AtomicDB, genesis_params: dict[str, Any]) -> EmbeddedPosChain:
    chain = EmbeddedPosChain.from_genesis(db, genesis_params, genesis_state())
    assert isinstance(chain, EmbeddedPosChain)
    return chain


def open_chain(db: AtomicDB) -> EmbeddedPosChain:
    """The chain already in ``db`` (its head, a new pending block on top)."""
    return EmbeddedPosChain(db)
