"""``GET /v1/receipts/{digest}?wait=N`` is woken by the batcher, over a real socket, on the
embedded chain: it answers as soon as the round that made the anchor final ends, and a wait
that nothing answers ends at its deadline with ``202``."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from aiohttp.test_utils import TestClient
from helpers.service import MakeClient, ok_json, post_signed

from anchor.errors import NotFound
from anchor.http.appkeys import ANCHOR_CHANGES, BATCHER, ISSUERS, MERKLE_LOG
from anchor.keys import Ed25519Key
from anchor.log.receipts import build_receipt


def digest(i: int) -> str:
    return hashlib.sha256(f"waited credential {i}".encode()).hexdigest()


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    # a long interval: after the first anchor (at once), nothing is anchored unless asked
    return await make_client(anchor_interval=60)


async def test_a_receipt_wait_is_woken_by_the_batcher_or_ends_at_its_deadline(
    client: TestClient,
) -> None:
    issuer = Ed25519Key.generate()
    client.app[ISSUERS].add(issuer.did, "Wait College")
    await ok_json(await post_signed(client, issuer, {"digests": [digest(0)]}), 201)
    first = await client.get(f"/v1/receipts/{digest(0)}", params={"wait": "30"})
    assert first.status == 200, await first.text()  # the first anchor is made at once

    await ok_json(await post_signed(client, issuer, {"digests": [digest(1)]}), 201)
    start = time.monotonic()
    pending = await client.get(f"/v1/receipts/{digest(1)}", params={"wait": "1"})
    took = time.monotonic() - start
    assert pending.status == 202  # nothing anchors it: the wait ends at its deadline
    assert (await pending.json())["status"] == "pending"
    assert 1.0 <= took < 2.0, took

    changes = client.app[ANCHOR_CHANGES]
    batcher = client.app[BATCHER]
    log = client.app[MERKLE_LOG]

    async def final_at() -> float:
        """When the batcher round that made the entry's anchor final ended."""
        while True:
            await changes.watch().wait()
            ended = time.monotonic()
            try:
                await asyncio.to_thread(build_receipt, log, 1, final_only=True)
            except NotFound:
                continue
            return ended

    async def drive() -> None:
        """Rounds every 0.2 s (not the service's 2 s): the anchor becomes final well before
        the route's 5 s safety re-check would notice it."""
        while True:
            batcher.wake()
            await asyncio.sleep(0.2)

    finality = asyncio.create_task(final_at())
    waiting = asyncio.create_task(client.get(f"/v1/receipts/{digest(1)}", params={"wait": "10"}))
    await asyncio.sleep(0.1)
    batcher.wake(anchor_now=True)
    driver = asyncio.create_task(drive())
    response = await waiting
    answered = time.monotonic()
    driver.cancel()
    assert response.status == 200, await response.text()
    assert (await response.json())["leafIndex"] == 1
    late = answered - await finality
    # woken when the round ended, not at the next safety re-check
    assert late < 0.5, f"the receipt came {late:.2f} s after the round that made it final"
