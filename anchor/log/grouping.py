"""Concurrent calls answered together: many requests, one thread hop and one transaction.

While one batch runs in a worker thread, the next callers queue up and share the following
batch. Each caller learns its own result (or the batch's error) only when its batch is done,
so a caller told "yes" was told after the work was committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCall(Generic[T, R]):
    """``await group(item)`` runs ``batch([..., item, ...])`` in a worker thread together with
    the other items queued meanwhile and returns ``item``'s result. ``batch`` returns one
    result per item, in order; whatever it raises is raised to every caller of that batch,
    as if each had run it. Cost: one thread hop per batch instead of one per call."""

    def __init__(self, batch: Callable[[list[T]], Sequence[R]]) -> None:
        self._batch = batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await asyncio.to_thread(self._batch, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} calls")
            except Exception as exc:  # noqa: BLE001 - not handled: raised to each caller
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
