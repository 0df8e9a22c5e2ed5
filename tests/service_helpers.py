"""Shared helpers for tests of the running service (imported by test modules)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

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


def serve_command(data_dir: Path, port: int, *extra: str) -> list[str]:
    """``ler-anchor serve`` on ``data_dir`` and ``port`` as a separate process's argv."""
    serve = (sys.executable, "-m", "anchor", "serve")
    return [*serve, "--port", str(port), "--data-dir", str(data_dir), *extra]


async def wait_healthy(url: str, timeout: float = 30) -> dict[str, Any]:
    """Poll ``url``/healthz until it answers 200; returns its body."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        body: dict[str, Any] = await resp.json()
                        return body
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy")


INTEROP_SCRIPT = Path(__file__).parent / "interop" / "ecdsa_sd.mjs"


def run_db_ecdsa_sd(request: dict[str, Any], timeout: float = 120) -> Any:
    """Run Digital Bazaar's ecdsa-sd-2023 (tests/interop/ecdsa_sd.mjs) on one JSON request.

    The packaged context files are passed along so that both sides load the same bytes.
    """
    from anchor import jsonld_contexts

    contexts_dir = Path(jsonld_contexts.__file__).parent / "contexts"
    contexts = {
        url: str(contexts_dir / name) for url, name in jsonld_contexts.CONTEXT_FILES.items()
    }
    result = subprocess.run(
        ["node", str(INTEROP_SCRIPT)],
        input=json.dumps({**request, "contexts": contexts}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"node ecdsa_sd.mjs failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)
