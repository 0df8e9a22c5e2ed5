"""The background integrity check: the log re-reads and rehashes its whole history, forever.

:class:`IntegrityChecker` runs as a task in the service (:func:`integrity_ctx`, an aiohttp
``cleanup_ctx``). A *pass* walks every leaf block of the log in order
(:meth:`LogStore.check_leaf_block <anchor.log.store.LogStore.check_leaf_block>`): each leaf hash
is recomputed from its entry, each stored subtree hash from its children (the frontier is
carried from the pass's own hashes, never read back), and the digest index must find every
leaf; then the index must hold one row per leaf, and every signed checkpoint must verify and
be reproduced by the stored tree.
After a complete pass the checker pauses ``pause`` seconds and starts again.

Throttled: at most ``rate`` leaves per second (the work runs in a worker thread, in steps of
a tenth of a second's budget, and the task sleeps off the rest; a checkpoint counts as
:data:`CHECKPOINT_LEAVES` leaves), so a pass over ``n`` leaves and ``c`` checkpoints takes
about ``(n + 8c) / rate`` seconds and, in that time, about ``2n`` SHA-256 compressions, ``n``
index probes, ``n / 64`` tile reads, one scan of the index and ``c`` signature checks and
roots. Memory: one tile and a frontier (``O(log n)``).

Findings: damaged primary data (entries, hashes, checkpoints) puts the log in the failed state
(:meth:`anchor.log.log.Log.fail`); a damaged digest index is rebuilt from the entries and the pass
goes on. Errors (a busy database, ...) never stop the task: each is logged, counted and shown
in ``/healthz``, and the step is retried after an exponential backoff. Progress and findings
are reported by :meth:`IntegrityChecker.status`, the ``integrity`` health probe and gauges on
``/metrics``. Not pure (reads the store, sleeps).

With several replicas on one database, only the sequencer runs the background passes (a duty
of :mod:`anchor.db.leadership`); every replica runs the start-up check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from anchor.errors import AnchorError, IndexDamaged, IntegrityFailure
from anchor.http.appkeys import CONFIG, DUTIES, HEALTH_PROBES, INTEGRITY, MERKLE_LOG, METRICS
from anchor.log.leafblocks import LEAF_BLOCK_SIZE
from anchor.log.log import Log

logger = logging.getLogger(__name__)

STEP_SECONDS = 0.1
"""Each step checks about this many seconds' budget of leaves (at least one tile)."""

CHECKPOINTS_PER_STEP = 64
"""Signed checkpoints verified per step at the end of a pass."""

CHECKPOINT_LEAVES = 8
"""What checking one checkpoint (a signature and a root) counts against the budget, in
leaves (it costs about as much as rehashing eight)."""

MAX_BACKOFF_SECONDS = 60.0
"""Longest wait after consecutive errors."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IntegrityStatus:
    """A snapshot of the background check for ``/healthz`` and ``/metrics``."""

    enabled: bool
    running: bool
    rate: int
    """Leaves per second at most."""
    pass_number: int
    """The pass under way (1 for the first), or the last one while pausing."""
    position: int
    """Leaves checked so far in the current pass."""
    pass_size: int
    """Leaves in the log when the current pass started."""
    passes_complete: int
    last_pass_completed_at: float | None
    """Unix time the last complete pass ended."""
    last_pass_seconds: float | None
    leaves_checked: int
    """Leaves checked since start, over all passes."""
    index_rebuilds: int
    consecutive_errors: int
    total_errors: int
    last_error: str | None
    failure: str | None
    """Why the log is in the failed state (None: it is not)."""

    def to_json(self) -> dict[str, object]:
        completed = self.last_pass_completed_at
        return {
            "ok": self.failure is None and (self.running or not self.enabled),
            "state": "failed" if self.failure is not None else "ok",
            "reason": self.failure,
            "backgroundCheck": "running" if self.running else "off",
            "leavesPerSecond": self.rate,
            "pass": self.pass_number,
            "position": self.position,
            "passSize": self.pass_size,
            "passesComplete": self.passes_complete,
            "lastPassCompletedAt": None
            if completed is None
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(completed)),
            "lastPassSeconds": None
            if self.last_pass_seconds is None
            else round(self.last_pass_seconds, 3),
            "indexRebuilds": self.index_rebuilds,
            "errors": self.total_errors,
            "lastError": self.last_error,
        }


class IntegrityChecker:
    """Checks ``log`` in the background (see the module docstring). ``rate`` 0: no passes,
    only the failed state is reported."""

    def __init__(self, log: Log, *, rate: int, pause: float) -> None:
        self.log = log
        self.rate = rate
        self.pause = pause
        self._wake = asyncio.Event()
        self._closing = False
        self._running = False
        self._pass = 0
        self._position = 0
        self._pass_size = 0
        self._passes = 0
        self._last_pass_at: float | None = None
        self._last_pass_seconds: float | None = None
        self._leaves = 0
        self._rebuilds = 0
        self._consecutive_errors = 0
        self._total_errors = 0
        self._last_error: str | None = None

    def status(self) -> IntegrityStatus:
        failure = self.log.failure
        return IntegrityStatus(
            enabled=self.rate > 0,
            running=self._running,
            rate=self.rate,
            pass_number=self._pass,
            position=self._position,
            pass_size=self._pass_size,
            passes_complete=self._passes,
            last_pass_completed_at=self._last_pass_at,
            last_pass_seconds=self._last_pass_seconds,
            leaves_checked=self._leaves,
            index_rebuilds=self._rebuilds,
            consecutive_errors=self._consecutive_errors,
            total_errors=self._total_errors,
            last_error=self._last_error,
            failure=None if failure is None else failure.detail,
        )

    def wake(self) -> None:
        """End the pause now (the next pass starts at once)."""
        self._wake.set()

    def reopen(self) -> None:
        """Allow :meth:`run` again after :meth:`close` (a replica sequencing once more)."""
        self._closing = False
        self._wake.clear()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """Passes until :meth:`close`; stops checking (but keeps reporting) once the log is in
        the failed state."""
        if self.rate <= 0:
            return
        self._running = True
        try:
            while not self._closing and self.log.failure is None:
                await self._one_pass()
                if self._closing or self.log.failure is not None:
                    break
                await self._sleep(self.pause)
        finally:
            self._running = False

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _one_pass(self) -> None:
        """One pass (see the module docstring); returns early when closing or failed."""
        self._pass += 1
        started = time.monotonic()
        store = self.log.store
        try:
            size = self._pass_size = await self._call(store.size)
            self._position = 0
            tile, frontier = 0, b""
            tiles_per_step = max(1, int(self.rate * STEP_SECONDS) // LEAF_BLOCK_SIZE)

            def step(tile: int, frontier: bytes) -> tuple[int, int, bytes]:
                """Check up to ``tiles_per_step`` tiles from ``tile``: (next tile, leaves
                checked, frontier after them)."""
                done = 0
                for t in range(tile, tile + tiles_per_step):
                    count, frontier = store.check_leaf_block(t, frontier)
                    end = t * LEAF_BLOCK_SIZE + count
                    if count < LEAF_BLOCK_SIZE and end < size:
                        raise IntegrityFailure(
                            f"leaves {end}..{size - 1} are missing (tile {t} holds {count})"
                        )
                    done += count
                    if end >= size:
                        return t + 1, done, frontier
                return tile + tiles_per_step, done, frontier

            while self._position < size:
                step_start = time.monotonic()
                tile, checked, frontier = await self._call(partial(step, tile, frontier))
                self._position = min(size, self._position + checked)
                self._leaves += checked
                spent = time.monotonic() - step_start
                await asyncio.sleep(max(0.0, checked / self.rate - spent))
            await self._call(store.check_index_rows)
            after: int | None = 0
            while after is not None:
                step_start = time.monotonic()
                after, count = await self._call(
                    partial(self.log.check_checkpoints, after, CHECKPOINTS_PER_STEP)
                )
                budget = count * CHECKPOINT_LEAVES / self.rate
                await asyncio.sleep(max(0.0, budget - (time.monotonic() - step_start)))
        except _Stop:
            return
        self._passes += 1
        self._last_pass_at = time.time()
        self._last_pass_seconds = time.monotonic() - started
        logger.info(
            "integrity pass %d: %d leaves, the digest index and every checkpoint check (%.1f s)",
            self._pass,
            size,
            self._last_pass_seconds,
        )

    async def _call(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread, until it succeeds. Damaged primary data enters the
        failed state and raises :class:`_Stop` (as does closing); a damaged index is rebuilt
        and ``fn`` retried; any other error is logged, counted and retried after a backoff."""
        rebuilt = False
        while True:
            if self._closing or self.log.failure is not None:
                raise _Stop
            try:
                value = await asyncio.to_thread(fn)
            except IntegrityFailure as err:
                await asyncio.to_thread(self.log.fail, err)
                raise _Stop from None
            except IndexDamaged as err:
                if rebuilt:  # the rebuilt index is still found wrong: report, back off
                    await self._error(err)
                    rebuilt = False
                    continue
                logger.warning("integrity: %s; rebuilding it from the entries", err.detail)
                try:
                    count = await asyncio.to_thread(self.log.store.rebuild_digest_index)
                except IntegrityFailure as failure:
                    await asyncio.to_thread(self.log.fail, failure)
                    raise _Stop from None
                except (AnchorError, sqlite3.Error, OSError) as exc:
                    await self._error(exc)
                    continue
                self._rebuilds += 1
                rebuilt = True
                logger.warning("integrity: rebuilt the digest index of %d leaves", count)
                continue
            except (AnchorError, sqlite3.Error, OSError) as exc:
                await self._error(exc)
                continue
            self._consecutive_errors = 0
            return value

    async def _error(self, exc: Exception) -> None:
        self._consecutive_errors += 1
        self._total_errors += 1
        text = exc.diagnostics() if isinstance(exc, AnchorError) else f"{type(exc).__name__}: {exc}"
        self._last_error = text
        logger.warning("integrity check: %s (attempt %d)", text, self._consecutive_errors)
        backoff = STEP_SECONDS * 2 ** min(self._consecutive_errors, 20)
        await self._sleep(min(backoff, MAX_BACKOFF_SECONDS))


class _Stop(Exception):
    """The pass ends: the service is closing or the log entered the failed state."""


# -- the service ---------------------------------------------------------------------------


async def integrity_health(app: web.Application) -> tuple[str, object, bool]:
    """The ``integrity`` health probe: unhealthy in the failed state or when the enabled
    background check is not running."""
    status = app[INTEGRITY].status()
    body = status.to_json()
    if not app[DUTIES].leadership.is_leader and status.failure is None:
        body["ok"] = True  # the background check runs on the sequencer
    return "integrity", body, bool(body["ok"])


def _gauges(checker: IntegrityChecker) -> list[Metric]:
    s = checker.status()
    passes = CounterMetricFamily(
        "ler_anchor_integrity_passes", "Complete background integrity passes"
    )
    passes.add_metric([], s.passes_complete)
    leaves = CounterMetricFamily(
        "ler_anchor_integrity_leaves_checked", "Leaves rehashed by the background integrity check"
    )
    leaves.add_metric([], s.leaves_checked)
    rebuilds = CounterMetricFamily(
        "ler_anchor_integrity_index_rebuilds", "Digest index rebuilds after damage was found"
    )
    rebuilds.add_metric([], s.index_rebuilds)
    errors = CounterMetricFamily(
        "ler_anchor_integrity_errors", "Errors of the background integrity check (retried)"
    )
    errors.add_metric([], s.total_errors)
    return [
        GaugeMetricFamily(
            "ler_anchor_integrity_failed",
            "1 when the log is in the failed state (stored data does not prove what it signed)",
            value=0 if s.failure is None else 1,
        ),
        GaugeMetricFamily(
            "ler_anchor_integrity_pass",
            "The background integrity pass under way",
            value=s.pass_number,
        ),
        GaugeMetricFamily(
            "ler_anchor_integrity_position",
            "Leaves checked in the current background integrity pass",
            value=s.position,
        ),
        GaugeMetricFamily(
            "ler_anchor_integrity_last_pass_timestamp_seconds",
            "Unix time the last complete background integrity pass ended (0: none yet)",
            value=s.last_pass_completed_at or 0.0,
        ),
        passes,
        leaves,
        rebuilds,
        errors,
    ]


async def integrity_ctx(app: web.Application) -> AsyncIterator[None]:
    """A ``cleanup_ctx``: the start-up check (before anything is served), then the
    background check as a task, its health probe and its metrics."""
    config = app[CONFIG]
    log = app[MERKLE_LOG]
    await asyncio.to_thread(log.start_check)
    checker = IntegrityChecker(log, rate=config.integrity_rate, pause=config.integrity_pause)
    app[INTEGRITY] = checker
    app[HEALTH_PROBES].append(integrity_health)
    app[METRICS].add_gauge_source(lambda: _gauges(checker))

    async def run() -> None:  # on the sequencer only (anchor.db.leadership)
        checker.reopen()
        await checker.run()

    await app[DUTIES].add("integrity-check", run, stop=checker.close)
    yield
    await app[DUTIES].remove("integrity-check")
