"""The batcher: a background task that anchors the log's checkpoints on the chain.

Every ``poll_interval`` seconds (or at once after :meth:`Batcher.wake`) it advances the chain
client's state machine (receipts, confirmations, replacements, reorgs: see
:mod:`anchor.chain`) and, when an anchor is due, asks the log for a signed checkpoint of its
current size (:meth:`anchor.log.log.Log.checkpoint`) and queues its root and size for anchoring.

An anchor is due when the log has grown past the largest size that is anchored or on its way
(states ``pending``, ``submitted``, ``included``, ``final`` on the current chain) and

* there is no such anchor yet (a new log, or a new chain: the latest checkpoint is anchored
  at once, and covers every earlier entry), or
* ``anchor_size`` entries were appended since, or
* ``anchor_interval`` seconds passed since that anchor was queued, or
* :meth:`Batcher.wake` was called with ``anchor_now=True``;

but after an anchor failed (the contract refused it: see :mod:`anchor.chain`), the next one
waits ``anchor_interval`` seconds, so a lasting refusal (an unauthorised account) is retried
and reported once per interval rather than on every round.

Nothing is anchored while the log has not grown. Errors never stop the task: a
:class:`~anchor.errors.AnchorError` (the chain is unreachable, a node refuses, the database is
busy, full, read-only or failing: the store maps every SQLite error into the hierarchy) is
logged on one line, counted in :meth:`Batcher.status` and :attr:`Batcher.health` and passed
to ``on_error`` (for metrics); the next round comes after an exponential backoff
(``poll_interval`` doubled per consecutive failure, at most ``max_backoff``). All state is in
the database, so nothing is lost and nothing is sent twice across failures and restarts.

After every round (whether it succeeded or not) the batcher notifies its
:class:`AnchorChanges`, so that whoever waits for an anchor to change state (a receipt request
with ``wait``) looks again at once instead of polling the database.

Lifecycle (fits an aiohttp ``cleanup_ctx``): create, run :meth:`Batcher.run` as a task,
:meth:`Batcher.close` on shutdown (then close the chain client, which the batcher does not own).

Not pure (a background task over the log and the chain client). Cost per round: one chain
client step (see :mod:`anchor.chain.machine`), the log's size and the newest anchors (two
indexed reads), and when an anchor is due one signed checkpoint and one enqueue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from anchor.chain.client import ChainClient
from anchor.chain.values import (
    DEFAULT_POLL_INTERVAL_SECONDS,
    LIVE_STATES,
    AnchorRecord,
    AnchorState,
)
from anchor.core.taskhealth import TaskHealth
from anchor.errors import AnchorError, ConfigError
from anchor.log.log import Log

logger = logging.getLogger(__name__)

DEFAULT_ANCHOR_INTERVAL_SECONDS = 60.0
"""Seconds between anchors while the log grows slowly."""

DEFAULT_ANCHOR_SIZE = 10_000
"""New entries that trigger an anchor before the interval ends."""

DEFAULT_MAX_BACKOFF_SECONDS = 60.0
"""Longest wait between two rounds after consecutive failures."""

DEFAULT_LIST_LIMIT = 100
"""Anchors returned by :meth:`Batcher.anchors` unless told otherwise."""


class AnchorChanges:
    """Wakes the waiters for anchor state changes (final, reorganised, ...).

    A waiter takes :meth:`watch` *before* it reads the state it waits on, then awaits the
    returned event: a change notified between the read and the wait is not lost. Costs an
    event per :meth:`notify`; belongs to one event loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.notifications = 0
        """How many times :meth:`notify` was called (for tests and metrics)."""

    def watch(self) -> asyncio.Event:
        """The event the next :meth:`notify` sets."""
        return self._event

    def notify(self) -> None:
        """Wake every waiter (anchors may have changed state)."""
        self.notifications += 1
        event, self._event = self._event, asyncio.Event()
        event.set()


@dataclass(frozen=True, kw_only=True)
class BatcherConfig:
    """When to anchor and how often to look at the chain."""

    anchor_interval: float = DEFAULT_ANCHOR_INTERVAL_SECONDS
    anchor_size: int = DEFAULT_ANCHOR_SIZE
    poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS
    max_backoff: float = DEFAULT_MAX_BACKOFF_SECONDS

    def __post_init__(self) -> None:
        if self.anchor_interval < 0:
            raise ConfigError(f"anchor interval must not be negative ({self.anchor_interval})")
        if self.anchor_size < 1:
            raise ConfigError(f"anchor size must be at least 1 ({self.anchor_size})")
        if self.poll_interval <= 0 or self.max_backoff < self.poll_interval:
            raise ConfigError("poll interval must be positive and at most the maximum backoff")


@dataclass(frozen=True, slots=True)
class BatcherStatus:
    """A snapshot of the batcher for health checks and metrics."""

    running: bool
    rounds: int
    anchors_queued: int
    consecutive_errors: int
    total_errors: int
    last_error: str | None
    last_error_at: float | None
    """Unix time of the last error."""
    at_fee_cap: bool
    """An unmined anchor cannot be replaced because of the fee cap (it keeps waiting)."""


class Batcher:
    """Anchors ``log`` through ``client`` in the background (see the module docstring)."""

    def __init__(
        self,
        log: Log,
        client: ChainClient,
        config: BatcherConfig | None = None,
        *,
        on_error: Callable[[AnchorError], None] | None = None,
    ) -> None:
        self.log = log
        self.client = client
        self.config = config if config is not None else BatcherConfig()
        self._on_error = on_error
        self._wake = asyncio.Event()
        # wake(anchor_now=True) requests, and how many of them a round has answered: a request
        # made while a round runs is never lost to that round (it may have read the size
        # before the entries the request is about were appended)
        self._anchor_requests = 0
        self._anchor_answered = 0
        self._closing = False
        self._running = False
        self._stopped = asyncio.Event()
        self._rounds = 0
        self._queued = 0
        self._consecutive_errors = 0
        self._total_errors = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self.health = TaskHealth("batcher")
        """Rounds succeeded / failed, for ``/healthz`` and ``/metrics``."""
        self.changes = AnchorChanges()
        """Notified after every round (anchor states may have changed)."""

    # -- control ----------------------------------------------------------------------------

    def wake(self, *, anchor_now: bool = False) -> None:
        """Run a round now; with ``anchor_now``, anchor if the log grew, whatever the interval."""
        if anchor_now:
            self._anchor_requests += 1
        self._wake.set()

    async def run(self) -> None:
        """Run rounds until :meth:`close`; never raises an :class:`AnchorError`."""
        self._running = True
        self._stopped.clear()
        self.health.started()
        try:
            while not self._closing:
                delay = await self._round()
                if self._closing:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                self._wake.clear()
        finally:
            self._running = False
            self.health.stopped()
            self._stopped.set()

    def reopen(self) -> None:
        """Allow :meth:`run` again after :meth:`close` (a replica sequencing once more)."""
        self._closing = False

    async def close(self) -> None:
        """Stop :meth:`run` after its current round and wait for it to return."""
        self._closing = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    # -- one round --------------------------------------------------------------------------

    async def _round(self) -> float:
        """One round, with errors recorded; returns the delay until the next one."""
        try:
            await self.tick()
        except AnchorError as err:
            self.changes.notify()
            self._consecutive_errors += 1
            self._total_errors += 1
            self._last_error = err.diagnostics()
            self._last_error_at = time.time()
            self.health.failed(err)
            logger.warning(
                "anchoring: %s (attempt %d)", err.diagnostics(), self._consecutive_errors
            )
            if self._on_error is not None:
                self._on_error(err)
            backoff = self.config.poll_interval * 2 ** min(self._consecutive_errors, 30)
            return float(min(backoff, self.config.max_backoff))
        self.changes.notify()
        self._consecutive_errors = 0
        self.health.succeeded()
        return self.config.poll_interval

    async def tick(self) -> None:
        """Advance the state machine, queue an anchor if one is due, and send it.

        Raises what the chain client or the log raise (:meth:`run` catches it); in the log's
        failed state, its :class:`~anchor.errors.IntegrityFailure`: nothing is anchored."""
        self._rounds += 1
        failure = self.log.failure
        if failure is not None:
            raise failure
        await self.client.step()
        asked = self._anchor_requests  # before the size is read: these requests are answered
        if await self._due(asked):
            checkpoint = await asyncio.to_thread(self.log.checkpoint)
            if checkpoint.size > 0:
                record = await self.client.enqueue(checkpoint.size, checkpoint.root)
                self._queued += 1
                logger.info("queued tree size %d for anchoring (anchor %d)", record.size, record.id)
                await self.client.step()
            self._anchor_answered = max(self._anchor_answered, asked)

    async def _due(self, asked: int) -> bool:
        size = await asyncio.to_thread(self.log.store.size)
        latest = await self._latest_live()
        anchored = 0 if latest is None else latest.size
        if size <= anchored:
            self._anchor_answered = max(self._anchor_answered, asked)  # nothing new to anchor
            return False
        if asked > self._anchor_answered:
            return True
        newest = await self.client.anchors(limit=1)
        if newest and newest[0].state is AnchorState.FAILED:
            # The contract or the node refused the last one: retry once per interval.
            return self._age(newest[0].updated_ms) >= self.config.anchor_interval
        if latest is None or size - anchored >= self.config.anchor_size:
            return True
        return self._age(latest.created_ms) >= self.config.anchor_interval

    @staticmethod
    def _age(ms: int) -> float:
        return time.time() - ms / 1000

    async def _latest_live(self) -> AnchorRecord | None:
        """The newest anchor that is, or will be, on chain: on one chain, live anchors are
        created in increasing size order, so it is also the largest."""
        live = await self.client.anchors(states=LIVE_STATES, limit=1)
        return live[0] if live else None

    # -- queries ----------------------------------------------------------------------------

    async def anchors(
        self, *, all_chains: bool = False, limit: int = DEFAULT_LIST_LIMIT
    ) -> list[AnchorRecord]:
        """Anchors with their states, newest first (for ``GET /v1/anchors``)."""
        return await self.client.anchors(all_chains=all_chains, limit=limit)

    def status(self) -> BatcherStatus:
        return BatcherStatus(
            running=self._running,
            rounds=self._rounds,
            anchors_queued=self._queued,
            consecutive_errors=self._consecutive_errors,
            total_errors=self._total_errors,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            at_fee_cap=self.client.at_fee_cap,
        )
