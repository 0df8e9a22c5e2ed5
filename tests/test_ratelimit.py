"""Per-client rate limits of the routes that make the service fetch for its callers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.service import service_config

from anchor.errors import ConfigError
from anchor.http.app import create_app
from anchor.http.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_minute_of_requests_then_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    assert [limiter.take("a") for _ in range(60)] == [0.0] * 60  # a burst of one minute's
    assert limiter.take("a") == pytest.approx(1.0)  # one token per second after that
    assert limiter.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    clock.now += 3600
    assert [limiter.take("a") for _ in range(60)] == [0.0] * 60  # full again, not more
    assert limiter.take("a") > 0


def test_memory_is_bounded_by_dropping_the_least_recent_client() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock, max_clients=2)
    assert limiter.take("a") == 0.0
    assert limiter.take("b") == 0.0
    assert limiter.take("a") > 0  # a is now the most recent, b the least
    assert limiter.take("c") == 0.0  # b is dropped
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0  # forgotten: a fresh bucket
    with pytest.raises(ValueError, match="at least one request per minute"):
        RateLimiter(0)


async def test_the_service_answers_429_with_retry_after(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(service_config(tmp_path, fetch_rate=3)))
    did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    statuses = [(await client.get(f"/1.0/identifiers/{did}")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = await client.get(f"/1.0/identifiers/{did}")
    assert limited.status == 429
    assert limited.content_type == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    body = await limited.json()
    assert body["type"].endswith("/rate-limited")
    assert body["retryAfter"] == int(limited.headers["Retry-After"])
    verify = await client.post("/v1/verify", json={})
    assert verify.status == 429  # the same client, the same bucket
    assert (await client.get("/v1/checkpoint")).status != 429  # other routes are not limited


async def test_a_zero_rate_turns_the_limit_off(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(create_app(service_config(tmp_path, fetch_rate=0)))
    did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    for _ in range(5):
        assert (await client.get(f"/1.0/identifiers/{did}")).status == 200
    with pytest.raises(ConfigError, match="fetch rate cannot be negative"):
        service_config(tmp_path, fetch_rate=-1)
