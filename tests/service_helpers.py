"""Shared helpers for tests of the running service (imported by test modules)."""

from __future__ import annotations

from pathlib import Path

from anchor.config import Config


def service_config(tmp_path: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "port": 8080,
        "operator_token": "operator-secret-token",
        "anchor_interval": 0.2,
        "anchor_size": 100,
    }
    values.update(overrides)
    return Config(**values).check()  # type: ignore[arg-type]


async def wait_healthy(url: str, timeout: float = 60) -> None:
    """Wait until the service at ``url`` answers ``/healthz`` with 200."""
    import asyncio
    import time

    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy in {timeout} s")
