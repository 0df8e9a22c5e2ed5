"""Leadership: which `serve` replica sequences the log (signs checkpoints, anchors, renews
status lists, runs the background integrity pass) at any moment.

Any replica appends, serves reads and records nonces (the database serialises writes); what
must run in exactly one place is the work that signs or sends. This module decides where:

* :class:`SoleLeadership` (SQLite): the one process is always the leader; the data directory's
  lock (:mod:`anchor.db.dbfiles`) already guarantees a single writer.
* :class:`AdvisoryLockLeadership` (PostgreSQL): the leader holds the session-level advisory
  lock :data:`SEQUENCER_LOCK_KEY` on a dedicated connection of its own. Non-leaders try to
  take it every :data:`RETRY_SECONDS`; the leader checks its connection as often, each
  statement bounded by :data:`STATEMENT_TIMEOUT_MS` and the client's own timeout, with TCP
  keepalives on both ends. The moment that connection fails, the replica stops leading (the
  server releases a session lock when the session ends, so a killed leader's lock is free as
  soon as its socket closes, and a silent one's after the keepalives give up). A replica
  that takes the lock waits one *grace* period (``retry + timeout`` and a second's margin,
  5 s) before it starts sequencing: by then a former leader whose session the server ended
  has noticed it too (it checks every ``retry`` seconds, each check bounded by ``timeout``)
  and stopped, so two replicas never sequence at once. A failover therefore takes about
  6 s. (Work already under way when a leader stops, such as a transaction being sent, is
  finished, not abandoned; the database still refuses a second note for a size.)

:class:`Duties` runs background work by role: each duty is started when the replica takes
the role it needs and stopped when it loses it; its :class:`~anchor.core.taskhealth.TaskHealth`
is listed in ``/healthz`` only while it runs here.

Not pure (a database connection and tasks). Cost: one small query per
:data:`RETRY_SECONDS` on one extra connection per replica; nothing on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from anchor.core.taskhealth import TaskHealth

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

SEQUENCER_LOCK_KEY = 0x4C45_5253_4551_0001
"""The advisory lock (one 64-bit key) the sequencing replica holds for as long as it leads
(``LERSEQ`` and a version in hex; distinct from the per-transaction write lock)."""

RETRY_SECONDS = 1.0
"""How often a non-leader tries to take the lock, and the leader checks its connection."""

STATEMENT_TIMEOUT_MS = 3000
"""Longest a leadership statement may run on the server."""

CLIENT_TIMEOUT_SECONDS = 3.0
"""Longest the replica waits for an answer (or a connection) before it gives the
connection up as dead and stops leading."""

KEEPALIVE_IDLE_SECONDS = 2
KEEPALIVE_INTERVAL_SECONDS = 1
KEEPALIVE_COUNT = 3
"""TCP keepalives of the leadership connection, on both ends: a peer that vanished without
closing is noticed after about ``idle + interval * count`` seconds (5 s)."""

GRACE_MARGIN_SECONDS = 1.0
"""Added to ``retry + timeout`` in the grace period, for a busy former leader's delays."""

DUTY_STOP_SECONDS = 15.0
"""How long a stopping duty may take to finish its round before it is cancelled."""


class Role(StrEnum):
    """What this replica does besides serving reads and writes."""

    SEQUENCER = "sequencer"
    """Signs checkpoints, anchors, renews status lists, runs the integrity pass."""
    REPLICA = "replica"
    """Serves reads and writes; another replica sequences."""


@dataclass(frozen=True, slots=True)
class LeadershipStatus:
    """One replica's role at one instant (``/healthz`` member ``leadership``)."""

    role: Role
    backend: str
    """``sqlite`` or ``postgresql``."""
    database_reachable: bool
    """The leadership connection is up (always true on SQLite)."""
    role_since: float
    """Unix time the current role began."""
    terms: int
    """How many times this replica became the sequencer."""
    last_error: str | None
    """The leadership connection's last failure (None: none yet)."""

    @property
    def ok(self) -> bool:
        return self.database_reachable

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "role": self.role.value,
            "database": self.backend,
            "databaseReachable": self.database_reachable,
            "roleAgeSeconds": round(max(0.0, time.time() - self.role_since), 1),
            "terms": self.terms,
            "lastError": self.last_error,
        }


class Leadership:
    """The role of this replica, and a way to wait for it to change. Subclasses decide it in
    :meth:`run` (a background task, stopped by :meth:`close`)."""

    backend = "sqlite"

    def __init__(self) -> None:
        self._leader = False
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._since = time.time()
        self._terms = 0
        self._reachable = True
        self._last_error: str | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def role(self) -> Role:
        return Role.SEQUENCER if self._leader else Role.REPLICA

    def watch(self) -> asyncio.Event:
        """The event set at the next change of role (take it before reading the role)."""
        return self._changed

    def _set_leader(self, leader: bool) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        self._since = time.time()
        if leader:
            self._terms += 1
        logger.warning(
            "this replica %s the log", "now sequences" if leader else "no longer sequences"
        )
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def status(self) -> LeadershipStatus:
        return LeadershipStatus(
            role=self.role,
            backend=self.backend,
            database_reachable=self._reachable,
            role_since=self._since,
            terms=self._terms,
            last_error=self._last_error,
        )

    async def run(self) -> None:
        """Decide the role until :meth:`close`."""
        await self._closing.wait()

    async def close(self) -> None:
        """Stop :meth:`run` (and stop leading)."""
        self._closing.set()


class SoleLeadership(Leadership):
    """SQLite: one process, always the sequencer (from construction on)."""

    def __init__(self) -> None:
        super().__init__()
        self._leader = True  # from the start, and silently: there is no one else
        self._terms = 1


class AdvisoryLockLeadership(Leadership):
    """PostgreSQL: the sequencer is the replica holding :data:`SEQUENCER_LOCK_KEY` (see the
    module docstring). ``url`` is a ``postgresql://`` connection URL (its password is never
    logged or shown)."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        key: int = SEQUENCER_LOCK_KEY,
        retry: float = RETRY_SECONDS,
        timeout: float = CLIENT_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__()
        self._url = url
        self._key = key
        self._retry = retry
        self._timeout = timeout
        self._grace = retry + timeout + GRACE_MARGIN_SECONDS
        self._locked_at: float | None = None  # monotonic time the lock was taken
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        import psycopg  # loads only on PostgreSQL

        options = " ".join(
            (
                f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                f"-c tcp_keepalives_idle={KEEPALIVE_IDLE_SECONDS}",
                f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL_SECONDS}",
                f"-c tcp_keepalives_count={KEEPALIVE_COUNT}",
            )
        )
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(2, int(self._timeout)),
                application_name="ler-anchor leadership",
                keepalives=1,
                keepalives_idle=KEEPALIVE_IDLE_SECONDS,
                keepalives_interval=KEEPALIVE_INTERVAL_SECONDS,
                keepalives_count=KEEPALIVE_COUNT,
                options=options,
            ),
            self._timeout,
        )

    async def _query(self, sql: str, params: tuple[int, ...] = ()) -> Any:
        conn = self._conn
        assert conn is not None

        async def one() -> Any:
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
            return None if row is None else row[0]

        return await asyncio.wait_for(one(), self._timeout)

    async def _round(self) -> None:
        """Take the lock, or prove the session that holds it is alive; lead once the lock
        was held for the grace period."""
        if self._conn is None or self._conn.closed:
            self._locked_at = None
            self._conn = await self._connect()
        if self._locked_at is None:
            taken = await self._query("SELECT pg_try_advisory_lock(%s)", (self._key,))
            if taken:
                self._locked_at = time.monotonic()
                logger.info("took the sequencer lock; sequencing in %.1f s", self._grace)
        else:
            await self._query("SELECT 1")
        locked = self._locked_at
        if locked is not None and time.monotonic() - locked >= self._grace:
            self._set_leader(True)
        if not self._reachable:
            logger.warning("the database is reachable again")
        self._reachable = True

    async def _drop_connection(self) -> None:
        import psycopg

        self._locked_at = None
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # closing ends the session, which releases the lock; a dead peer may not answer
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
            await asyncio.wait_for(conn.close(), self._timeout)

    async def run(self) -> None:
        """Rounds every :data:`RETRY_SECONDS` until :meth:`close`; every error of the
        connection ends leadership at once and is retried (this task never dies of one)."""
        import psycopg

        try:
            while not self._closing.is_set():
                try:
                    await self._round()
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    self._set_leader(False)
                    text = _without_secret(f"{type(exc).__name__}: {exc}".strip(), self._url)
                    if self._reachable or text != self._last_error:
                        logger.warning("leadership connection failed: %s", text)
                    self._reachable = False
                    self._last_error = text
                    await self._drop_connection()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._retry)
        finally:
            self._set_leader(False)
            await self._drop_connection()


def _without_secret(text: str, url: str) -> str:
    """``text`` without the password of ``url`` (should the server or driver echo it)."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def leadership_gauges(leadership: Leadership) -> list[Metric]:
    """``ler_anchor_sequencer`` (1: this replica sequences), ``ler_anchor_database_reachable``
    and ``ler_anchor_sequencer_terms`` (times this replica became the sequencer)."""
    s = leadership.status()
    terms = CounterMetricFamily(
        "ler_anchor_sequencer_terms", "Times this replica became the sequencer"
    )
    terms.add_metric([], s.terms)
    return [
        GaugeMetricFamily(
            "ler_anchor_sequencer",
            "1 when this replica sequences the log (signs, anchors), 0 for a replica",
            value=1 if s.role is Role.SEQUENCER else 0,
        ),
        GaugeMetricFamily(
            "ler_anchor_database_reachable",
            "1 when this replica's leadership connection to the database is up",
            value=1 if s.database_reachable else 0,
        ),
        terms,
    ]


# -- duties by role ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Duty:
    name: str
    role: Role
    start: Callable[[], Coroutine[Any, Any, None]]
    stop: Callable[[], Awaitable[None]] | None
    health: TaskHealth | None
    task: asyncio.Task[None] | None = field(default=None)


class Duties:
    """Background work by role (see the module docstring). ``tasks`` is the application's
    list of task health records: a duty's record is in it while the duty runs here."""

    def __init__(self, leadership: Leadership, tasks: list[TaskHealth]) -> None:
        self.leadership = leadership
        self._tasks = tasks
        self._duties: list[_Duty] = []
        self._lock = asyncio.Lock()
        self._closing = False

    async def add(
        self,
        name: str,
        start: Callable[[], Coroutine[Any, Any, None]],
        *,
        stop: Callable[[], Awaitable[None]] | None = None,
        health: TaskHealth | None = None,
        role: Role = Role.SEQUENCER,
    ) -> None:
        """Run ``start()`` as task ``name`` whenever this replica has ``role`` (at once if
        it has it now). To stop it, ``stop()`` is awaited and then the task (cancelled after
        :data:`DUTY_STOP_SECONDS`); without ``stop`` the task is cancelled."""
        duty = _Duty(name, role, start, stop, health)
        async with self._lock:
            self._duties.append(duty)
            if self.leadership.role is role and not self._closing:
                self._start(duty)

    async def remove(self, name: str) -> None:
        """Stop duty ``name`` and forget it (shutdown)."""
        async with self._lock:
            for duty in [d for d in self._duties if d.name == name]:
                self._duties.remove(duty)
                await self._stop(duty)

    def _start(self, duty: _Duty) -> None:
        if duty.health is not None and duty.health not in self._tasks:
            self._tasks.append(duty.health)
        duty.task = asyncio.create_task(duty.start(), name=duty.name)

    async def _stop(self, duty: _Duty) -> None:
        task, duty.task = duty.task, None
        if task is not None:
            asking: asyncio.Future[None] | None = None
            if duty.stop is not None:  # asks it to finish its round (which may be waiting)
                asking = asyncio.ensure_future(duty.stop())
            else:
                task.cancel()
            _done, pending = await asyncio.wait({task}, timeout=DUTY_STOP_SECONDS)
            if pending:
                logger.warning("%s did not stop in %.0f s: cancelled", duty.name, DUTY_STOP_SECONDS)
                task.cancel()
                await asyncio.wait({task})
            if asking is not None:  # it returns once the task ended
                await asyncio.wait({asking}, timeout=1.0)
                if not asking.done():
                    asking.cancel()
                    await asyncio.wait({asking})
            for ended in (task, asking):  # a bug in the duty: reported, never raised here
                failure = None if ended is None or ended.cancelled() else ended.exception()
                if failure is not None:
                    logger.error(
                        "%s had failed: %s: %s", duty.name, type(failure).__name__, failure
                    )
        if duty.health is not None and duty.health in self._tasks:
            self._tasks.remove(duty.health)

    async def _reconcile(self) -> None:
        """Stop the duties of the other role, then start this role's (a duty whose task
        ended on its own stays ended until the role changes: its health says so)."""
        async with self._lock:
            role = self.leadership.role
            for duty in self._duties:  # stop first: the two roles' work never overlaps
                if duty.task is not None and duty.role is not role:
                    await self._stop(duty)
            if self._closing:
                return
            for duty in self._duties:
                if duty.role is role and duty.task is None:
                    self._start(duty)

    async def run(self) -> None:
        """Follow the role until :meth:`close`: start and stop duties as it changes."""
        while not self._closing:
            changed = self.leadership.watch()
            await self._reconcile()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), RETRY_SECONDS)

    async def close(self) -> None:
        """Stop every duty (and :meth:`run`)."""
        self._closing = True
        async with self._lock:
            for duty in self._duties:
                await self._stop(duty)
