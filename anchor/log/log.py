"""The log: the store plus the log's identity (origin and checkpoint key) and its signed
checkpoints, and a group committer that batches concurrent appends into one transaction.

Checkpoints are kept in table ``checkpoints`` (one per signed size). The log never signs two
different roots for one size, and never signs a size below one it already signed: an
append-only store makes every signed checkpoint consistent with every earlier one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from anchor.core import merkle
from anchor.core.checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from anchor.core.entry import Entry
from anchor.core.taskhealth import TaskHealth
from anchor.db.sqlite import is_corruption
from anchor.errors import (
    AnchorError,
    EncodingError,
    IndexDamaged,
    IntegrityFailure,
    LimitExceeded,
    StoreError,
    VerificationError,
)
from anchor.log.store import AppendResult, LogStore, StoredEntry, size_in

logger = logging.getLogger(__name__)

FAILURE_META = "integrity_failure"
"""``meta`` key recording why the log entered the failed state (JSON: reason, time)."""


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


class Log:
    """One append-only Merkle log with origin ``origin`` signed by ``signer``."""

    def __init__(self, store: LogStore, signer: NoteSigner) -> None:
        self.store = store
        self.signer = signer
        self._failure: IntegrityFailure | None = None
        self._failure_lock = threading.Lock()
        recorded_failure = store.meta(FAILURE_META)
        if recorded_failure is not None:
            self._failure = IntegrityFailure(
                f"recorded earlier: {_recorded_reason(recorded_failure)}"
            )
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

    # -- the failed state ------------------------------------------------------------------

    @property
    def failure(self) -> IntegrityFailure | None:
        """Why the log is in the failed state (None: it is not)."""
        return self._failure

    def fail(self, err: AnchorError) -> IntegrityFailure:
        """Enter the failed state for ``err`` (the first reason is kept), log it on one line
        and record it in ``meta``; returns the failure to raise. Never call it inside a
        store transaction (recording takes the write lock)."""
        with self._failure_lock:
            first = self._failure is None
            if self._failure is None:
                self._failure = (
                    err if isinstance(err, IntegrityFailure) else IntegrityFailure(err.detail)
                )
            failure = self._failure
        if first:
            logger.error(
                "log integrity failure: %s; the log stops signing, anchoring and appending (%s)",
                failure.detail,
                failure.hint,
            )
            record = json.dumps({"reason": failure.detail, "at": int(time.time() * 1000)})
            try:
                self.store.set_meta(FAILURE_META, record)
            except (StoreError, sqlite3.Error) as exc:
                logger.error("could not record the integrity failure in the database: %s", exc)
        return failure

    def adopt_recorded_failure(self) -> IntegrityFailure | None:
        """Enter the failed state if another process sharing the database recorded one (a
        replica's check found damage); returns the failure (None: there is none). Cost: one
        ``meta`` read while not failed."""
        if self._failure is not None:
            return self._failure
        recorded = self.store.meta(FAILURE_META)
        if recorded is None:
            return None
        reason = _recorded_reason(recorded)
        with self._failure_lock:
            first = self._failure is None
            if self._failure is None:
                self._failure = IntegrityFailure(f"recorded by another replica: {reason}")
            failure = self._failure
        if first:
            logger.error(
                "log integrity failure %s; the log stops signing, anchoring and appending (%s)",
                failure.detail,
                failure.hint,
            )
        return failure

    def _refuse_if_failed(self) -> None:
        failure = self._failure
        if failure is not None:
            raise failure

    # -- checks ------------------------------------------------------------------------------

    def start_check(self) -> None:
        """The start-up check: the latest signed checkpoint must verify, the stored tree must
        reproduce its root and the current tree must extend it; the digest index must hold
        one row per leaf, else it is rebuilt from the entries. A mismatch in primary data
        enters the failed state (nothing is raised for it). Cost: ``O(log n)`` stored hashes,
        one signature verification and one count of the digest index's rows."""
        if self._failure is not None:
            logger.error("log integrity failure %s (%s)", self._failure.detail, self._failure.hint)
            return
        try:
            latest = self.latest_checkpoint()
            size = self.store.size()
            if latest is not None:
                if latest.size > size:
                    raise IntegrityFailure(
                        f"the log has {size} leaves but a checkpoint for {latest.size} was signed"
                    )
                self._prove_extends(latest, size, self.store.root(size))
            try:
                self.store.check_index_rows(full=False)
            except IndexDamaged as err:
                logger.warning("%s; rebuilding the digest index from the entries", err.detail)
                self.store.rebuild_digest_index()
        except IntegrityFailure as err:
            self.fail(err)
        except (sqlite3.DatabaseError, StoreError) as exc:
            if not is_corruption(exc):
                raise
            self.fail(IntegrityFailure(f"the database is corrupt: {exc}"))

    def _prove_extends(self, signed: SignedCheckpoint, size: int, root: bytes) -> None:
        """Check that the stored tree reproduces ``signed``'s root and that the tree of
        ``size`` leaves with ``root`` extends it (a consistency proof from stored hashes,
        verified against the signed root). Raises :class:`IntegrityFailure`. Cost:
        ``O(log n)`` stored hashes (one root, one proof) and ``O(log n)`` node hashes."""
        stored = self.store.root(signed.size)
        if stored != signed.root:
            raise IntegrityFailure(
                f"the stored tree of {signed.size} leaves has root {stored.hex()}, not the"
                f" signed root {signed.root.hex()}"
            )
        if 0 < signed.size < size:
            proof = self.store.consistency_proof(signed.size, size)
            try:
                merkle.verify_consistency(signed.size, size, proof, signed.root, root)
            except VerificationError as exc:
                raise IntegrityFailure(
                    f"the tree of {size} leaves is not consistent with the signed checkpoint"
                    f" of {signed.size}: {exc.detail}"
                ) from exc

    def signed_root(self, size: int) -> bytes:
        """The root of the tree of ``size`` leaves, proven: a signed checkpoint's root, or
        the stored root shown consistent with the nearest signed checkpoint (the smallest
        above ``size``, else the latest). Raises :class:`IntegrityFailure` (entering the
        failed state) when it is not. Cost: one or two checkpoint reads and signature
        checks; for an unsigned size also ``O(log n)`` stored hashes."""
        exact = self.checkpoint_at(size)
        if exact is not None:
            return exact.root
        root = self.store.root(size)
        if size == 0:
            return root
        above = self._checkpoint_row(
            "SELECT size, note, created FROM checkpoints WHERE size > ? ORDER BY size LIMIT 1",
            (size,),
        )
        try:
            if above is not None:
                proof = self.store.consistency_proof(size, above.size)
                merkle.verify_consistency(size, above.size, proof, root, above.root)
            else:
                below = self.latest_checkpoint()
                if below is not None and below.size > 0:
                    proof = self.store.consistency_proof(below.size, size)
                    merkle.verify_consistency(below.size, size, proof, below.root, root)
        except VerificationError as exc:
            raise self.fail(
                IntegrityFailure(
                    f"the stored root of {size} leaves is not consistent with the signed"
                    f" checkpoints: {exc.detail}"
                )
            ) from exc
        return root

    def verified_inclusion(self, index: int, size: int, root: bytes) -> tuple[list[bytes], bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves and the leaf
        hash recomputed from the stored entry, verified against ``root`` (from
        :meth:`signed_root` or a signed checkpoint) before it is served. Raises
        :class:`IntegrityFailure` (entering the failed state) when it does not verify.
        Cost: ``O(log n)`` stored hashes, one row read, ``O(log n)`` hashes."""
        try:
            return self.store.checked_inclusion_proof(index, size, root)
        except VerificationError as exc:
            raise self.fail(
                IntegrityFailure(
                    f"the inclusion proof of leaf {index} in the tree of {size} leaves does not"
                    f" verify against the signed root: {exc.detail}"
                )
            ) from exc
        except IntegrityFailure as err:
            raise self.fail(err) from None

    def verified_consistency(self, size1: int, size2: int) -> tuple[list[bytes], bytes, bytes]:
        """The consistency proof from ``size1`` to ``size2`` and both roots, each root proven
        by :meth:`signed_root` and the proof verified against them before it is served.
        Raises :class:`IntegrityFailure` (entering the failed state). Cost: ``O(log n)``
        stored hashes per root and for the proof."""
        root1 = self.signed_root(size1)
        root2 = self.signed_root(size2)
        proof = self.store.consistency_proof(size1, size2)
        try:
            merkle.verify_consistency(size1, size2, proof, root1, root2)
        except VerificationError as exc:
            raise self.fail(
                IntegrityFailure(
                    f"the consistency proof from {size1} to {size2} does not verify against"
                    f" the signed roots: {exc.detail}"
                )
            ) from exc
        return proof, root1, root2

    def check_checkpoints(self, after: int, limit: int) -> tuple[int | None, int]:
        """:func:`check_checkpoints` with this log's verifier."""
        return check_checkpoints(self.store, self.verifier, after, limit)

    def find(self, digest: bytes, submitter: str | None = None) -> list[StoredEntry]:
        """:meth:`LogStore.find`; in the failed state a digest not found raises the
        failure instead (the log cannot prove it absent)."""
        try:
            found = self.store.find(digest, submitter)
        except IntegrityFailure as err:  # the index could not be rebuilt from the tiles
            raise self.fail(err) from None
        if not found:
            self._refuse_if_failed()
        return found

    # -- appending and signing ---------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> AppendResult:
        """Append ``entries`` (see :meth:`LogStore.append`); refused in the failed state,
        which a corrupt database found on the way enters."""
        self._refuse_if_failed()
        try:
            return self.store.append(entries)
        except IntegrityFailure as err:
            raise self.fail(err) from None

    def checkpoint(self) -> SignedCheckpoint:
        """Sign the current tree head, or return the checkpoint already signed for it.

        Before signing, the stored tree must reproduce the latest signed root and the new
        tree must be consistent with it (:meth:`_prove_extends`), so the log never signs a
        fork; a mismatch enters the failed state, and in that state nothing is signed (both
        raise :class:`IntegrityFailure`). Cost: ``O(log n)`` stored hashes (two roots and a
        consistency proof), one signature verification and one signature.

        Several replicas on one database: the write transaction is serialised, and the key
        on ``size`` refuses a second note for a size; a size already signed (by another
        replica) returns that replica's checkpoint, so no size is ever signed twice."""
        self._refuse_if_failed()
        try:
            with self.store.transaction() as conn:
                size = size_in(conn)
                existing = conn.execute(
                    "SELECT size, note, created FROM checkpoints WHERE size = ?", (size,)
                ).fetchone()
                if existing is not None:
                    return self._load(existing)
                latest = conn.execute(
                    "SELECT size, note, created FROM checkpoints ORDER BY size DESC LIMIT 1"
                ).fetchone()
                if latest is not None and int(latest[0]) > size:
                    raise StoreError(
                        f"log has {size} leaves but a checkpoint for {latest[0]} was signed",
                        hint="the database was rolled back or replaced; restore it from backup",
                    )
                root = self.store.root(size)
                if latest is not None:
                    self._prove_extends(self._load(latest), size, root)
                cp = Checkpoint(self.origin, size, root)
                note = cp.sign(self.signer)
                now = int(time.time() * 1000)
                inserted = conn.execute(
                    "INSERT INTO checkpoints (size, root, note, created) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (size) DO NOTHING",
                    (size, root, note, now),
                ).rowcount
                if inserted != 1:  # another sequencer signed this size first: use its note
                    signed = conn.execute(
                        "SELECT size, note, created FROM checkpoints WHERE size = ?", (size,)
                    ).fetchone()
                    theirs = self._load(signed)
                    if theirs.root != root:
                        raise IntegrityFailure(
                            f"the checkpoint signed for size {size} has root"
                            f" {theirs.root.hex()}, the stored tree {root.hex()}"
                        )
                    return theirs
        except IntegrityFailure as err:  # the transaction is rolled back: record it now
            raise self.fail(err) from None
        return SignedCheckpoint(cp, note, now)

    def _load(self, row: tuple[int, str, int]) -> SignedCheckpoint:
        """A stored checkpoint, its signature verified (see :func:`open_stored`)."""
        return open_stored(row, self.verifier)

    def _checkpoint_row(self, sql: str, params: tuple[int, ...] = ()) -> SignedCheckpoint | None:
        row = self.store.reader().execute(sql, params).fetchone()
        if row is None:
            return None
        try:
            return self._load(row)
        except IntegrityFailure as err:
            raise self.fail(err) from None

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        return self._checkpoint_row(
            "SELECT size, note, created FROM checkpoints ORDER BY size DESC LIMIT 1"
        )

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        return self._checkpoint_row(
            "SELECT size, note, created FROM checkpoints WHERE size = ?", (size,)
        )

    def checkpoint_covering(self, index: int) -> SignedCheckpoint | None:
        """The smallest signed checkpoint that includes leaf ``index``."""
        return self._checkpoint_row(
            "SELECT size, note, created FROM checkpoints WHERE size > ? ORDER BY size LIMIT 1",
            (index,),
        )


def open_stored(row: tuple[int, str, int], verifier: NoteVerifier) -> SignedCheckpoint:
    """A ``checkpoints`` row (size, note, created), its signature verified. Raises
    :class:`IntegrityFailure` when the stored note does not verify or names another size."""
    size, note, created = row
    try:
        cp = open_checkpoint(note, verifier)
    except (VerificationError, EncodingError) as err:
        raise IntegrityFailure(
            f"the stored checkpoint for size {size} does not verify: {err.detail}"
        ) from err
    if cp.size != size:
        raise IntegrityFailure(f"stored checkpoint for size {size} says size {cp.size}")
    return SignedCheckpoint(cp, note, int(created))


def check_checkpoints(
    store: LogStore, verifier: NoteVerifier, after: int, limit: int
) -> tuple[int | None, int]:
    """Check up to ``limit`` signed checkpoints above size ``after``: each note's signature
    verifies and the stored tree reproduces its root. Returns the largest size checked (None
    when there was none) and how many were checked. Raises :class:`IntegrityFailure`. Cost
    per checkpoint: one signature verification and ``O(log n)`` stored hashes."""
    rows = (
        store.reader()
        .execute(
            "SELECT size, note, created FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?",
            (after, limit),
        )
        .fetchall()
    )
    size = store.size()
    last = None
    for row in rows:
        signed = open_stored(row, verifier)
        if signed.size > size:
            raise IntegrityFailure(
                f"the log has {size} leaves but a checkpoint for {signed.size} was signed"
            )
        stored = store.root(signed.size)
        if stored != signed.root:
            raise IntegrityFailure(
                f"the stored tree of {signed.size} leaves has root {stored.hex()}, not the"
                f" signed root {signed.root.hex()}"
            )
        last = signed.size
    return last, len(rows)


def _recorded_reason(record: str) -> str:
    """The reason in a :data:`FAILURE_META` record (its text if it is not the JSON written)."""
    try:
        doc = json.loads(record)
    except json.JSONDecodeError:
        return record
    reason = doc.get("reason") if isinstance(doc, dict) else None
    return str(reason) if reason is not None else record


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
