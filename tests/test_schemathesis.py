"""Fuzz the running service from its own OpenAPI document (schemathesis): no input, however
odd, may produce a 5xx, and every response must match the documented status codes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from anvil import free_port
from hypothesis import HealthCheck, given, settings
from service_helpers import service_config

from anchor.app import create_app

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real service on a socket, its event loop in a thread of its own."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(service_config(tmp, port=port)))
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@pytest.mark.slow
def test_no_server_errors_on_any_documented_operation(base_url: str) -> None:
    doc = requests.get(base_url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    calls: list[int] = []
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=operation.as_strategy())
            def fuzz(case: schemathesis.Case) -> None:
                response = case.call(base_url=base_url, session=session, timeout=30)
                calls.append(response.status_code)
                if response.status_code >= 500:
                    detail = response.text[:300]
                    failures.append(
                        f"{case.method} {case.path} -> {response.status_code}: {detail}"
                    )

            fuzz()
    assert operations >= 20
    assert len(calls) >= operations * 5  # the fuzzer really sent requests
    assert {c for c in calls if c < 300}  # and some of them succeeded
    assert failures == []
