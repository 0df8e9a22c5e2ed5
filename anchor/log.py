"""The log: the store plus the log's identity (origin and checkpoint key) and its signed
checkpoints, and a group committer that batches concurrent appends into one transaction.

Checkpoints are kept in table ``checkpoints`` (one per signed size). The log never signs two
different roots for one size, and never signs a size below one it already signed: an
append-only store makes every signed checkpoint consistent with every earlier one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from anchor.checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from anchor.entry import Entry
from anchor.errors import AnchorError, LimitExceeded, StoreError
from anchor.store import AppendResult, SQLiteStore, size_in
from anchor.taskhealth import TaskHealth

MAX_GROUP_ENTRIES = 50_000
"""Most entries one group commit writes (more waiting requests go into the next one)."""

MAX_PENDING_ENTRIES = 1_000_000
"""Most entries allowed to wait for a commit; beyond it appends are refused (back-pressure)."""


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint, its signed note and when it was signed (ms since the epoch)."""

    checkpoint: Checkpoint
    note: str
    created_ms: int

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def ensure_schema(store: SQLiteStore) -> None:
    with store.transaction() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints ("
            " size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL,"
            " created INTEGER NOT NULL)"
        )


class Log:
    """One append-only Merkle log with origin ``origin`` signed by ``signer``."""

    def __init__(self, store: SQLiteStore, signer: NoteSigner) -> None:
        self.store = store
        self.signer = signer
        ensure_schema(store)
        vkey = signer.verifier.vkey()
        recorded = store.meta("log_verifier_key")
        if recorded is None:
            store.set_meta("log_verifier_key", vkey)
        elif recorded != vkey:
            raise StoreError(
                f"this database belongs to the log {recorded}, not to {vkey}",
                hint="use the log key and origin this database was created with",
            )

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def verifier(self) -> NoteVerifier:
        return self.signer.verifier

    def append(self, entries: Sequence[Entry]) -> AppendResult:
        return self.store.append(entries)

    def checkpoint(self) -> SignedCheckpoint:
        """Sign the current tree head, or return the checkpoint already signed for it."""
        with self.store.transaction() as conn:
            size = size_in(conn)
            existing = conn.execute(
                "SELECT size, note, created FROM checkpoints WHERE size = ?", (size,)
            ).fetchone()
            if existing is not None:
                return self._load(existing)
            latest = conn.execute("SELECT max(size) FROM checkpoints").fetchone()[0]
            if latest is not None and int(latest) > size:
                raise StoreError(
                    f"log has {size} leaves but a checkpoint for {latest} was signed",
                    hint="the database was rolled back or replaced; restore it from backup",
                )
            root = self.store.root(size)
            cp = Checkpoint(self.origin, size, root)
            note = cp.sign(self.signer)
            now = int(time.time() * 1000)
            conn.execute(
                "INSERT INTO checkpoints (size, root, note, created) VALUES (?, ?, ?, ?)",
                (size, root, note, now),
            )
        return SignedCheckpoint(cp, note, now)

    def _load(self, row: tuple[int, str, int]) -> SignedCheckpoint:
        size, note, created = row
        cp = open_checkpoint(note, self.verifier)
        if cp.size != size:
            raise StoreError(f"stored checkpoint for size {size} says size {cp.size}")
        return SignedCheckpoint(cp, note, int(created))

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = (
            self.store.reader()
            .execute("SELECT size, note, created FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetchone()
        )
        return None if row is None else self._load(row)

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        row = (
            self.store.reader()
            .execute("SELECT size, note, created FROM checkpoints WHERE size = ?", (size,))
            .fetchone()
        )
        return None if row is None else self._load(row)

    def checkpoint_covering(self, index: int) -> SignedCheckpoint | None:
        """The smallest signed checkpoint that includes leaf ``index``."""
        row = (
            self.store.reader()
            .execute(
                "SELECT size, note, created FROM checkpoints WHERE size > ? ORDER BY size LIMIT 1",
                (index,),
            )
            .fetchone()
        )
        return None if row is None else self._load(row)


@dataclass
class _Pending:
    entries: Sequence[Entry]
    future: asyncio.Future[AppendResult] = field(repr=False)


class GroupCommitter:
    """Batches concurrent appends: requests that arrive while a commit runs are written
    together in the next transaction (one fsync for all of them). Each caller's future
    resolves only after its entries are durably committed.

    Run :meth:`run` as a background task; stop it with :meth:`close`, which first commits
    everything already queued.

    A failed commit (the store is full, read-only, failing: a
    :class:`~anchor.errors.StoreError`) fails only that group's callers, with the error
    (503 over HTTP); the task goes on with the next group. :attr:`health` is unhealthy from
    a failed commit until the next successful one, or if the task stopped; an append after
    the task stopped fails at once instead of waiting for ever.
    """

    def __init__(self, log: Log) -> None:
        self.log = log
        self._queue: list[_Pending] = []
        self._pending_entries = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._stopped = False
        self.commits = 0
        self.health = TaskHealth("committer")

    async def append(self, entries: Sequence[Entry]) -> AppendResult:
        if self._closing:
            raise StoreError("the log is shutting down", hint="retry against the restarted service")
        if self._stopped:
            raise StoreError(
                "the group committer stopped", hint="restart the service (see its log)"
            )
        if self._pending_entries + len(entries) > MAX_PENDING_ENTRIES:
            raise LimitExceeded(
                "too many entries are waiting to be committed", hint="retry in a moment"
            )
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(entries, future))
        self._pending_entries += len(entries)
        self._wake.set()
        return await asyncio.shield(future)

    async def run(self) -> None:
        self.health.started()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._commit_some()
                if self._closing:
                    return
        finally:
            self._stopped = True
            self.health.stopped()
            for item in self._queue:  # nobody will commit these any more
                if not item.future.done():
                    item.future.set_exception(StoreError("the group committer stopped"))
            self._queue.clear()

    async def _commit_some(self) -> None:
        group: list[_Pending] = []
        count = 0
        while self._queue and (
            not group or count + len(self._queue[0].entries) <= MAX_GROUP_ENTRIES
        ):
            item = self._queue.pop(0)
            group.append(item)
            count += len(item.entries)
        self._pending_entries -= count
        batch = [e for item in group for e in item.entries]
        answered = False
        try:
            result = await asyncio.to_thread(self.log.append, batch)
            answered = True
        except AnchorError as err:
            answered = True
            self.health.failed(err)
            for item in group:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        finally:
            if not answered:  # interrupted (a bug, cancellation): nobody may wait for ever
                for item in group:
                    if not item.future.done():
                        item.future.set_exception(StoreError("the commit was interrupted"))
        self.health.succeeded()
        self.commits += 1
        offset = 0
        for item in group:
            n = len(item.entries)
            part = AppendResult(
                result.indexes[offset : offset + n], result.new[offset : offset + n], result.size
            )
            offset += n
            if not item.future.done():
                item.future.set_result(part)

    async def close(self) -> None:
        """Commit what is queued, then stop :meth:`run`."""
        self._closing = True
        self._wake.set()
