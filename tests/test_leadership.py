"""Leadership (anchor.db.leadership): one sequencer at a time on a real PostgreSQL server, the
lock released when its holder's session ends, taken over by a waiting replica, and duties
that start and stop with the role. SQLite: the one process always leads. And the log signs
each size once when several replicas share the database."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from anchor.core.checkpoint import NoteSigner
from anchor.core.entry import Entry, EntryKind
from anchor.core.taskhealth import TaskHealth
from anchor.db.leadership import (
    GRACE_MARGIN_SECONDS,
    AdvisoryLockLeadership,
    Duties,
    Leadership,
    Role,
    SoleLeadership,
    leadership_gauges,
)
from anchor.log.log import Log
from anchor.log.store import open_store

RETRY = 0.2
TIMEOUT = 1.0
GRACE = RETRY + TIMEOUT + GRACE_MARGIN_SECONDS
"""A replica leads once it held the lock this long."""


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``check()`` holds (fails the test after ``timeout``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class _Replica:
    """One leadership, its duties and a counter of the sequencer duty's rounds."""

    def __init__(self, leadership: Leadership) -> None:
        self.leadership = leadership
        self.tasks: list[TaskHealth] = []
        self.duties = Duties(leadership, self.tasks)
        self.health = TaskHealth("work")
        self.running = False
        self.rounds = 0
        self._jobs: list[asyncio.Task[None]] = []

    async def _work(self) -> None:
        self.running = True
        self.health.started()
        try:
            while True:
                self.rounds += 1
                await asyncio.sleep(0.01)
        finally:
            self.running = False
            self.health.stopped()

    async def start(self) -> None:
        self._jobs = [
            asyncio.create_task(self.leadership.run()),
            asyncio.create_task(self.duties.run()),
        ]
        await self.duties.add("work", self._work, health=self.health)

    async def stop(self) -> None:
        await self.duties.close()
        await self.leadership.close()
        for job in self._jobs:
            await job


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[Callable[[], _Replica]]:
    started: list[_Replica] = []

    def make() -> _Replica:
        replica = _Replica(AdvisoryLockLeadership(pg_url, retry=RETRY, timeout=TIMEOUT))
        started.append(replica)
        return replica

    yield make
    for replica in started:
        await replica.stop()


def _terminate(url: str) -> int:
    """End every leadership session on the server (as a crashed leader's would end)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'ler-anchor leadership'"
        ).fetchall()
    return len(rows)


async def test_sqlite_the_one_process_always_sequences() -> None:
    replica = _Replica(SoleLeadership())
    assert replica.leadership.is_leader
    await replica.start()
    await _until(lambda: replica.rounds > 0)
    assert replica.tasks == [replica.health]
    status = replica.leadership.status()
    assert status.to_json()["role"] == "sequencer"
    assert status.to_json()["database"] == "sqlite"
    assert status.ok
    await replica.stop()
    assert not replica.running
    assert replica.tasks == []  # a stopped duty is no longer listed


async def test_one_sequencer_and_a_takeover_when_it_stops(
    replicas: Callable[[], _Replica],
) -> None:
    first, second = replicas(), replicas()
    await first.start()
    await _until(lambda: first.leadership.is_leader)
    await second.start()
    await asyncio.sleep(5 * RETRY)  # the second tried several times
    assert not second.leadership.is_leader
    assert first.running
    assert not second.running
    assert second.tasks == []
    assert first.tasks == [first.health]
    assert second.leadership.status().ok  # a replica that reaches the database is healthy
    assert second.leadership.status().role is Role.REPLICA

    await first.stop()  # a clean stop ends its session: the lock is free at once
    took = await _until(lambda: second.leadership.is_leader)
    assert GRACE <= took < GRACE + 3 * RETRY + 1.0
    await _until(lambda: second.running)
    assert second.leadership.status().terms == 1
    gauges = {m.name: m.samples[0].value for m in leadership_gauges(second.leadership)}
    assert gauges["ler_anchor_sequencer"] == 1
    assert gauges["ler_anchor_database_reachable"] == 1


async def test_a_sequencer_whose_session_dies_stops_at_once_and_another_takes_over(
    replicas: Callable[[], _Replica], pg_url: str
) -> None:
    first, second = replicas(), replicas()
    await first.start()
    await _until(lambda: first.leadership.is_leader)
    await second.start()
    await asyncio.sleep(2 * RETRY)
    assert first.running
    assert not second.running

    ended = await asyncio.to_thread(_terminate, pg_url)
    assert ended == 2  # both replicas' leadership sessions
    await _until(lambda: not first.running or second.running)
    # never two sequencers: the old one stopped before (or as) the new one started
    await _until(lambda: first.leadership.is_leader != second.leadership.is_leader)
    assert first.running + second.running <= 1
    status = [r.leadership.status() for r in (first, second)]
    assert any(s.last_error for s in status)  # the lost session was noticed and recorded
    # both keep deciding: a sequencer again within seconds, both reachable again
    await _until(lambda: first.leadership.is_leader or second.leadership.is_leader)
    await _until(lambda: all(r.leadership.status().database_reachable for r in (first, second)))
    assert first.leadership.status().terms + second.leadership.status().terms >= 2


async def test_an_unreachable_database_is_reported_and_retried_without_a_secret() -> None:
    url = "postgresql://anchor:s3cret-pw@/anchor?host=/nonexistent-socket-dir"
    replica = _Replica(AdvisoryLockLeadership(url, retry=RETRY, timeout=TIMEOUT))
    await replica.start()
    await _until(lambda: replica.leadership.status().last_error is not None)
    await asyncio.sleep(3 * RETRY)
    status = replica.leadership.status()
    assert not replica.leadership.is_leader
    assert not replica.running
    assert not status.ok
    assert not status.database_reachable
    assert "s3cret-pw" not in (status.last_error or "")
    assert status.to_json()["databaseReachable"] is False
    assert all(not job.done() for job in replica._jobs)  # the task lives on, retrying
    await replica.stop()


async def test_duties_by_role_never_overlap_across_takeovers(
    replicas: Callable[[], _Replica], pg_url: str
) -> None:
    """Three replicas, the sequencer's session killed three times: at every instant at most
    one replica runs the sequencer duty, and each kill is followed by a new sequencer."""
    group = [replicas() for _ in range(3)]
    for replica in group:
        await replica.start()
    overlaps = 0

    async def watch(done: Callable[[], bool]) -> None:
        nonlocal overlaps
        deadline = time.monotonic() + 10
        while not done():
            overlaps += sum(r.running for r in group) > 1
            assert time.monotonic() < deadline, "no takeover within 10 s"
            await asyncio.sleep(0.005)

    for _ in range(3):
        await _until(lambda: sum(r.running for r in group) == 1)
        (leader,) = [r for r in group if r.running]
        await asyncio.to_thread(_terminate, pg_url)
        await watch(lambda: not leader.running)  # noqa: B023 (awaited in this iteration)
        await watch(lambda: sum(r.running for r in group) == 1)
    assert overlaps == 0
    assert sum(r.leadership.status().terms for r in group) >= 4


def test_two_replicas_logs_sign_each_size_once(pg_url: str) -> None:
    """Two processes' logs on one database (two stores, two pools): a size signed by one is
    returned as is to the other, never signed again; appends through either extend the same
    tree and the next checkpoint proves consistency with the other's."""
    seed = hashlib.sha256(b"replica log key").digest()
    stores = [open_store(pg_url), open_store(pg_url)]
    try:
        first, second = (Log(store, NoteSigner("replicas.test/log", seed)) for store in stores)
        first.append([Entry(EntryKind.CREDENTIAL, bytes([1]) * 32, "did:example:a")])
        signed = first.checkpoint()
        again = second.checkpoint()
        assert again.note == signed.note
        assert again.created_ms == signed.created_ms  # the stored note, not a new signature
        second.append([Entry(EntryKind.CREDENTIAL, bytes([2]) * 32, "did:example:a")])
        grown = first.checkpoint()  # first reloads the tree the second extended
        assert grown.size == 2
        assert second.latest_checkpoint() == grown
        rows = stores[0].reader().execute("SELECT size FROM checkpoints ORDER BY size")
        assert [int(r[0]) for r in rows] == [1, 2]
    finally:
        for store in stores:
            store.close()


async def test_a_failing_duty_is_reported_and_stops_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A duty that dies of a bug shows as stopped; the other duties and shutdown go on."""
    replica = _Replica(SoleLeadership())
    await replica.start()
    broken = TaskHealth("broken")
    crashed = asyncio.Event()

    async def crash() -> None:
        crashed.set()
        broken.started()
        try:
            raise RuntimeError("a bug in a background task")
        finally:
            broken.stopped()

    await replica.duties.add("broken", crash, health=broken)
    await asyncio.wait_for(crashed.wait(), 5)
    await _until(lambda: not broken.running)
    assert replica.running  # the other duty still runs
    assert broken in replica.tasks  # listed, and unhealthy: it stopped
    assert not broken.snapshot().ok
    await replica.stop()  # no exception escapes
    assert "broken had failed: RuntimeError: a bug in a background task" in caplog.text
