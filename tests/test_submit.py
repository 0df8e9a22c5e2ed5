"""Signed submissions over a real socket, and a crash of the serving process mid-load."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from helpers.anvil import free_port
from helpers.service import database_settings, post_signed, service_config, wait_healthy
from pytest_aiohttp import AiohttpClient

from anchor.client.signing import signed_headers
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS
from anchor.keys import Ed25519Key
from anchor.log.store import SQLiteStore


def digest(i: int) -> str:
    return hashlib.sha256(f"credential {i}".encode()).hexdigest()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path, database: str) -> TestClient:
    """The service on each backend (``database``: SQLite, then PostgreSQL)."""
    return await aiohttp_client(create_app(service_config(tmp_path, **database_settings(database))))


@pytest.fixture
def issuer(client: TestClient) -> Ed25519Key:
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "Test College")
    return key


async def test_submit_and_resubmit(client: TestClient, issuer: Ed25519Key) -> None:
    first = await post_signed(client, issuer, {"digests": [digest(1), digest(2)]})
    assert first.status == 201, await first.text()
    body = await first.json()
    assert [e["index"] for e in body["entries"]] == [0, 1]
    assert body["submitter"] == issuer.did
    assert body["entries"][0]["receipt"].startswith(f"/v1/receipts/{digest(1)}?submitter=did%3Akey")
    again = await post_signed(client, issuer, {"digests": [digest(2)]})
    assert again.status == 200
    assert (await again.json())["entries"][0] == {**body["entries"][1], "new": False}


async def test_submission_failures(client: TestClient, issuer: Ed25519Key) -> None:
    unsigned = await client.post("/v1/entries", json={"digests": [digest(1)]})
    assert unsigned.status == 401
    assert unsigned.content_type == "application/problem+json"
    assert unsigned.headers["WWW-Authenticate"].startswith('Signature realm="')
    assert 'error="unsigned"' in unsigned.headers["WWW-Authenticate"]
    assert "Accept-Signature" in unsigned.headers
    stranger = Ed25519Key.generate()
    forbidden = await post_signed(client, stranger, {"digests": [digest(1)]})
    assert forbidden.status == 403
    too_many = await post_signed(client, issuer, {"digests": [digest(i) for i in range(10_001)]})
    assert too_many.status == 413
    for bad, detail in [
        ({"digests": []}, "at least one digest"),
        ({"digests": ["zz"]}, "hex digits"),
        ({"digests": [7]}, "not a string"),
        ({"digests": [digest(1)], "kind": "receipt"}, "unknown entry kind"),
        ([1, 2], "JSON object"),
    ]:
        resp = await post_signed(client, issuer, bad)
        assert resp.status == 400, bad
        assert detail in (await resp.json())["detail"]


async def test_concurrent_submissions_group_commit(client: TestClient, issuer: Ed25519Key) -> None:
    results = await asyncio.gather(
        *(post_signed(client, issuer, {"digests": [digest(i)]}) for i in range(60))
    )
    indexes = sorted([(await r.json())["entries"][0]["index"] for r in results])
    assert indexes == list(range(60))


async def test_a_removed_issuer_is_refused_at_once(client: TestClient, issuer: Ed25519Key) -> None:
    other = Ed25519Key.generate()
    client.app[ISSUERS].add(other.did)
    both = await asyncio.gather(
        post_signed(client, issuer, {"digests": [digest(1)]}),
        post_signed(client, other, {"digests": [digest(2)]}),
        post_signed(client, Ed25519Key.generate(), {"digests": [digest(3)]}),
    )
    assert [r.status for r in both] == [201, 201, 403]
    client.app[ISSUERS].remove(issuer.did)
    after = await asyncio.gather(
        post_signed(client, issuer, {"digests": [digest(4)]}),
        post_signed(client, other, {"digests": [digest(5)]}),
    )
    assert [r.status for r in after] == [403, 201]
    assert client.app[ISSUERS].active_among([issuer.did, other.did, issuer.did, "did:web:x"]) == [
        False,
        True,
        False,
        False,
    ]


@pytest.mark.slow
async def test_kill_9_of_the_server_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = Ed25519Key.generate()
    store = SQLiteStore(data / "ler-anchor.db")
    from anchor.auth.issuers import IssuerRegistry, ensure_schema

    ensure_schema(store)
    IssuerRegistry(store).add(key.did)
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "anchor", "serve", "--port", str(port), "--data-dir", str(data)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    acknowledged: set[str] = set()
    for round_no in range(2):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_healthy(url, timeout=30)
            stop = asyncio.Event()

            async def submitter(
                worker: int, session: aiohttp.ClientSession, stop: asyncio.Event, base: int
            ) -> None:
                i = 0
                while not stop.is_set():
                    ds = [digest(base + worker * 10**4 + i * 10 + j) for j in range(10)]
                    raw = json.dumps({"digests": ds}).encode()
                    headers = signed_headers(
                        "POST", url + "/v1/entries", raw, key, key.verification_method
                    )
                    headers["Content-Type"] = "application/json"
                    try:
                        async with session.post(
                            url + "/v1/entries", data=raw, headers=headers
                        ) as r:
                            if r.status in (200, 201):
                                acknowledged.update(ds)
                    except aiohttp.ClientError:
                        return
                    i += 1

            async with aiohttp.ClientSession() as session:
                workers = [
                    asyncio.create_task(submitter(w, session, stop, round_no * 10**6))
                    for w in range(8)
                ]
                await asyncio.sleep(1.5)
                os.kill(proc.pid, signal.SIGKILL)
                stop.set()
                await asyncio.gather(*workers)
        finally:
            proc.kill()
            proc.wait()
    assert len(acknowledged) > 100
    store = SQLiteStore(data / "ler-anchor.db")
    try:
        missing = [d for d in acknowledged if not store.find(bytes.fromhex(d))]
        assert missing == []
        assert store.check_integrity() == store.size()
    finally:
        store.close()
