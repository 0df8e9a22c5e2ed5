"""GroupCall: concurrent calls share batches, each caller gets its own result or the error."""

from __future__ import annotations

import asyncio
import threading

import pytest

from anchor.log.grouping import GroupCall


async def test_concurrent_calls_share_batches_and_get_their_own_results() -> None:
    batches: list[list[int]] = []
    release = threading.Event()

    def square_all(items: list[int]) -> list[int]:
        batches.append(items)
        release.wait(5)  # hold the first batch so that the others queue up behind it
        return [i * i for i in items]

    group: GroupCall[int, int] = GroupCall(square_all)
    first = asyncio.create_task(group(0))
    await asyncio.sleep(0.05)  # its batch is now running, held in the worker thread
    later = [asyncio.create_task(group(i)) for i in range(1, 50)]
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(first, *later) == [i * i for i in range(50)]
    assert batches == [[0], list(range(1, 50))]  # everyone who queued meanwhile: one batch


async def test_an_error_reaches_every_caller_of_its_batch_only() -> None:
    def fail_on_negative(items: list[int]) -> list[int]:
        if any(i < 0 for i in items):
            raise ValueError("negative item")
        return items

    group: GroupCall[int, int] = GroupCall(fail_on_negative)
    results = await asyncio.gather(group(-1), group(2), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await group(3) == 3  # the next batch runs normally


async def test_a_batch_with_the_wrong_number_of_results_fails_its_callers() -> None:
    group: GroupCall[int, int] = GroupCall(lambda items: items[:-1])
    with pytest.raises(RuntimeError, match="0 results for 1 calls"):
        await group(1)
