"""A full disk under a running service: submissions answer 503 problem details with
Retry-After while it lasts, /healthz and /metrics say so, no background task dies, and once
space returns anchoring resumes and every acknowledged (201) entry gets its receipt.

The database lives on a small tmpfs mounted for the test (needs root, or the right to mount;
otherwise the test is skipped and says why) and the disk is filled by a ballast file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers.chain import entry, open_log, wait_for
from helpers.service import service_config

from anchor.client.signing import signed_headers
from anchor.db.sqlite import STORAGE_RETRY_AFTER_SECONDS, storage_error
from anchor.errors import StorageUnavailable, StoreError
from anchor.http.app import create_app
from anchor.http.appkeys import BATCHER, ISSUERS, STATUS
from anchor.keys import Ed25519Key
from anchor.log.log import GroupCommitter

TMPFS_SIZE = "24m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the file system has no byte left."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError:
                    break
    finally:
        os.close(fd)
    return ballast


def digests(start: int, count: int) -> list[str]:
    return [hashlib.sha256(f"entry {i}".encode()).hexdigest() for i in range(start, start + count)]


async def submit(client: TestClient, key: Ed25519Key, ds: list[str]) -> aiohttp.ClientResponse:
    raw = json.dumps({"digests": ds}).encode()
    headers = signed_headers(
        "POST", str(client.make_url("/v1/entries")), raw, key, key.verification_method
    )
    headers["Content-Type"] = "application/json"
    return await client.post("/v1/entries", data=raw, headers=headers)


async def health(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/healthz")
    assert resp.status in (200, 503)
    body: dict[str, Any] = await resp.json()
    return body


async def all_receipts(client: TestClient, key: Ed25519Key, ds: list[str]) -> None:
    for d in ds:
        resp = await client.get(f"/v1/receipts/{d}", params={"submitter": key.did, "wait": "30"})
        assert resp.status == 200, await resp.text()


async def test_a_full_disk_answers_503_and_anchoring_resumes(
    small_disk: Path, tmp_path: Path
) -> None:
    config = service_config(
        tmp_path, data_dir=small_disk / "data", anchor_interval=3600, anchor_size=10**9
    )
    app = create_app(config)
    async with TestClient(TestServer(app)) as client:
        key = Ed25519Key.generate()
        app[ISSUERS].add(key.did, "Test College")
        acknowledged: list[str] = []

        first = digests(0, 50)
        assert (await submit(client, key, first)).status == 201
        acknowledged += first
        await all_receipts(client, key, first)  # a new log is anchored at once

        second = digests(50, 50)  # acknowledged, not yet anchored (the interval is long)
        assert (await submit(client, key, second)).status == 201
        acknowledged += second

        ballast = fill(small_disk)
        refused = await submit(client, key, digests(100, 500))
        assert refused.status == 503, await refused.text()
        assert refused.content_type == "application/problem+json"
        assert refused.headers["Retry-After"] == "5"
        problem = await refused.json()
        assert problem["type"].endswith("/storage-unavailable")
        assert problem["reason"] == "SQLITE_FULL"
        assert problem["retryAfter"] == 5
        again = await submit(client, key, digests(600, 1))
        assert again.status == 503  # still full: still refused, not a 500

        body = await health(client)
        assert body["status"] != "ok"
        assert body["storage"]["ok"] is False
        assert "SQLITE_FULL" in body["storage"]["lastWriteError"]

        # the batcher must sign a checkpoint to anchor the second batch: that write fails
        app[BATCHER].wake(anchor_now=True)

        async def batcher_failed() -> bool:
            return not (await health(client))["chain"]["ok"]

        await wait_for(batcher_failed, what="the batcher to report the full disk")
        body = await health(client)
        assert body["tasks"]["batcher"]["running"] is True  # failing, not dead
        assert body["tasks"]["batcher"]["consecutiveErrors"] >= 1
        metrics = await (await client.get("/metrics")).text()
        assert 'ler_anchor_task_consecutive_errors{task="batcher"} ' in metrics
        assert 'ler_anchor_task_running{task="batcher"} 1.0' in metrics
        assert 'ler_anchor_task_consecutive_errors{task="batcher"} 0.0' not in metrics

        ballast.unlink()  # space returns: the batcher's next try succeeds by itself
        await all_receipts(client, key, second)

        third = digests(700, 50)
        assert (await submit(client, key, third)).status == 201
        acknowledged += third
        app[BATCHER].wake(anchor_now=True)
        await all_receipts(client, key, acknowledged)
        body = await health(client)
        assert body["storage"]["ok"] is True
        assert body["tasks"]["batcher"]["ok"] is True
        assert body["tasks"]["committer"]["ok"] is True
        assert body["chain"]["ok"] is True


async def test_the_store_and_the_committer_survive_a_full_disk(small_disk: Path) -> None:
    log = open_log(small_disk / "log.db")
    store = log.store
    committer = GroupCommitter(log)
    task = asyncio.create_task(committer.run())
    try:
        await committer.append([entry(i) for i in range(100)])
        ballast = fill(small_disk)
        with pytest.raises(StorageUnavailable) as full:
            await committer.append([entry(i) for i in range(100, 200)])
        assert full.value.reason == "SQLITE_FULL"
        assert full.value.status == 503
        assert committer.health.snapshot().consecutive_errors == 1
        assert not committer.health.snapshot().ok
        assert isinstance(store.write_error, StorageUnavailable)
        with pytest.raises(StorageUnavailable):  # other writes: mapped the same way
            store.set_meta("probe", "x" * 200_000)
        assert store.size() == 100  # reads go on
        assert not task.done()

        ballast.unlink()
        result = await committer.append([entry(i) for i in range(100, 200)])
        assert result.size == 200
        assert committer.health.snapshot().ok
        assert store.write_error is None
        store.set_meta("probe", "ok")  # the writer connection is usable again
        assert log.checkpoint().size == 200
        assert store.check_integrity() == 200
    finally:
        await committer.close()
        await task
        store.close()


async def test_status_renewal_survives_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    """Lists valid for 1.5 s with a 1 s ttl are renewed about every second in the background:
    while the disk is full the renewal task fails, stays alive and says so; then it renews."""
    config = service_config(
        tmp_path,
        data_dir=small_disk / "data",
        status_ttl_ms=1000,
        status_valid_days=1.5 / 86_400,
    )
    app = create_app(config)
    async with TestClient(TestServer(app)) as client:
        key = Ed25519Key.generate()
        app[ISSUERS].add(key.did, "Test College")

        async def post(path: str, body: Any) -> aiohttp.ClientResponse:
            raw = json.dumps(body).encode()
            headers = signed_headers(
                "POST", str(client.make_url(path)), raw, key, key.verification_method
            )
            headers["Content-Type"] = "application/json"
            return await client.post(path, data=raw, headers=headers)

        assert (await post("/v1/status-keys", key.private_jwk())).status == 200
        allocated = await post("/v1/status-lists/allocate", {"purpose": "revocation"})
        assert allocated.status == 201, await allocated.text()
        list_id = (await allocated.json())["entries"][0]["statusListCredential"].rsplit("/")[-1]

        async def renewal(ok: bool) -> bool:
            task = (await health(client))["tasks"]["status-renewal"]
            assert task["running"] is True  # failing or not, it never dies
            return bool(task["ok"] is ok)

        ballast = fill(small_disk)
        await wait_for(lambda: renewal(False), what="the renewal task to report the full disk")
        stuck = len(app[STATUS].versions(list_id))
        ballast.unlink()
        await wait_for(lambda: renewal(True), what="the renewal task to recover")

        async def renewed() -> bool:
            versions = app[STATUS].versions(list_id)
            return len(versions) > stuck and all(v.log_index is not None for v in versions)

        await wait_for(renewed, what="a logged renewal once space returned")


def test_sqlite_errors_are_mapped_by_result_code(tmp_path: Path) -> None:
    """Read-only and busy are "not now" (503 with Retry-After); a file that is not a
    database is a plain store error. Real SQLite errors, chosen by their codes."""
    path = tmp_path / "t.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    read_only = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as caught:
        read_only.execute("INSERT INTO t VALUES (1)")
    mapped = storage_error(caught.value)
    assert isinstance(mapped, StorageUnavailable)
    assert mapped.reason == "SQLITE_READONLY"
    assert mapped.status == 503
    assert mapped.retry_after == STORAGE_RETRY_AFTER_SECONDS

    writer.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.Error) as busy:
        other.execute("BEGIN IMMEDIATE")
    held = storage_error(busy.value)
    assert isinstance(held, StorageUnavailable)
    assert held.reason == "SQLITE_BUSY"
    writer.execute("ROLLBACK")

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.Error) as corrupt:
        sqlite3.connect(junk).execute("SELECT * FROM sqlite_master")
    plain = storage_error(corrupt.value)
    assert type(plain) is StoreError
    assert "SQLITE_NOTADB" in plain.detail
    for conn in (writer, read_only, other):
        conn.close()
