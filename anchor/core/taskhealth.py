"""Health of the service's background tasks (batcher, group committer, status renewal).

Each task owns one :class:`TaskHealth` and reports every round to it: :meth:`~TaskHealth.
succeeded` or :meth:`~TaskHealth.failed`. A task that fails keeps running and retries after
:meth:`~TaskHealth.backoff` seconds (doubling per consecutive failure, capped). The
application lists them under ``TASKS``; ``/healthz`` shows each one (:func:`probe_value`),
unhealthy while its last round failed or it stopped, and ``/metrics`` exports, per task,
``ler_anchor_task_consecutive_errors``, ``ler_anchor_task_last_success_timestamp_seconds``
and ``ler_anchor_task_running`` (:func:`gauges`).

Pure bookkeeping: no I/O; every call is O(1) (the gauges O(tasks)).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from anchor.errors import AnchorError


def describe(error: Exception) -> str:
    """One line for a task's failure: an :class:`AnchorError`'s diagnostics, else the
    exception's type and message (an error the code did not expect, which the task
    survived)."""
    if isinstance(error, AnchorError):
        return error.diagnostics()
    return f"unexpected {type(error).__name__}: {error}"


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    """One task's health at one instant."""

    name: str
    running: bool
    consecutive_errors: int
    total_errors: int
    last_error: str | None
    last_error_at: float | None
    last_success_at: float | None

    @property
    def ok(self) -> bool:
        """Running, and its last round did not fail."""
        return self.running and self.consecutive_errors == 0

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "running": self.running,
            "consecutiveErrors": self.consecutive_errors,
            "totalErrors": self.total_errors,
            "lastError": self.last_error,
            "lastErrorAgeSeconds": None
            if self.last_error_at is None
            else round(time.time() - self.last_error_at, 1),
            "lastSuccessAgeSeconds": None
            if self.last_success_at is None
            else round(time.time() - self.last_success_at, 1),
        }


class TaskHealth:
    """The health record of one background task (mutable: the task updates it)."""

    def __init__(self, name: str, *, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._clock = clock
        self.running = False
        self.consecutive_errors = 0
        self.total_errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None

    def started(self) -> None:
        self.running = True

    def stopped(self) -> None:
        self.running = False

    def succeeded(self) -> None:
        self.consecutive_errors = 0
        self.last_success_at = self._clock()

    def failed(self, error: Exception) -> None:
        """Record a failed round: ``error`` is an :class:`AnchorError`, or any other exception
        a task survived (see :func:`describe`)."""
        self.consecutive_errors += 1
        self.total_errors += 1
        self.last_error = describe(error)
        self.last_error_at = self._clock()

    def backoff(self, base: float, cap: float) -> float:
        """Seconds to wait before the next round: ``base`` after a success, doubled per
        consecutive failure, at most ``cap``."""
        if self.consecutive_errors == 0:
            return base
        return float(min(cap, base * 2 ** min(self.consecutive_errors, 30)))

    def snapshot(self) -> TaskSnapshot:
        return TaskSnapshot(
            name=self.name,
            running=self.running,
            consecutive_errors=self.consecutive_errors,
            total_errors=self.total_errors,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            last_success_at=self.last_success_at,
        )


def probe_value(tasks: Iterable[TaskHealth]) -> tuple[dict[str, object], bool]:
    """The ``tasks`` member of ``/healthz`` (one object per task) and whether all are ok."""
    snapshots = [task.snapshot() for task in tasks]
    return {s.name: s.to_json() for s in snapshots}, all(s.ok for s in snapshots)


def gauges(tasks: Iterable[TaskHealth]) -> list[Metric]:
    """Prometheus gauges of ``tasks``, labelled by task name."""
    errors = GaugeMetricFamily(
        "ler_anchor_task_consecutive_errors",
        "Consecutive failed rounds of a background task (0: its last round succeeded)",
        labels=["task"],
    )
    success = GaugeMetricFamily(
        "ler_anchor_task_last_success_timestamp_seconds",
        "Unix time of a background task's last successful round (0: none yet)",
        labels=["task"],
    )
    running = GaugeMetricFamily(
        "ler_anchor_task_running", "Whether a background task is running", labels=["task"]
    )
    for task in tasks:
        s = task.snapshot()
        errors.add_metric([s.name], s.consecutive_errors)
        success.add_metric([s.name], s.last_success_at or 0.0)
        running.add_metric([s.name], 1.0 if s.running else 0.0)
    return [errors, success, running]
