"""Shared helpers for tests of the running service (imported by test modules)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from anvil import free_port

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


async def wait_healthy(url: str, timeout: float = 60) -> dict[str, Any]:
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


class TarPit:
    """A TCP server on 127.0.0.1 that counts the connections it accepts and never answers
    (``hold``: keeps them open until :meth:`close`), or closes each at once (``hold=False``:
    a host that refuses to talk, so a client fails fast)."""

    def __init__(self, *, hold: bool = True) -> None:
        self.hold = hold
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> TarPit:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.hold:
            self._writers.append(writer)
        else:
            writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class ServiceProcess:
    """``python -m anchor serve`` in a child process (so a crash of the service is seen as a
    crash, not as a failure of the test process)."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "anchor", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", str(data_dir), *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log_path = data_dir.parent / f"service-{self.port}.log"
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the service exited with {self.proc.returncode}")
                try:
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status in (200, 503):
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.url} did not answer")

    def stop(self) -> str:
        """Stop the service; what it wrote on standard error."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log_path.read_text(errors="replace")
