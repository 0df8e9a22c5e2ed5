"""Outbound work is bounded per request and per client, and strangers cost nothing.

* A credential's status entries and the hosts they name are capped (the excess is
  ``unknown`` and never fetched); every list fetched costs the client a rate-limit token.
* A host that accepts connections and never answers (a tar pit) holds at most
  ``CONNECTIONS_PER_HOST`` connections: an ordinary verification stays fast meanwhile, and
  signed writes go on.
* A signed request from a DID that is not a registered issuer is refused before its DID is
  resolved and before any nonce is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from helpers.service import TarPit, service_config
from pytest_aiohttp import AiohttpClient

from anchor import outbound
from anchor.client.signing import signed_headers
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS, STORE
from anchor.http.ratelimit import RateLimiter, client_key
from anchor.keys import Ed25519Key
from anchor.status.check import MAX_STATUS_ENTRIES, MAX_STATUS_HOSTS

ISSUER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def credential(*urls: str) -> dict[str, Any]:
    """A well-formed credential (its proof does not verify: only the status check matters)
    with one status entry per URL."""
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "issuer": ISSUER,
        "credentialSubject": {"id": "urn:uuid:7d2c0b8e-0b0e-4d5c-9a51-000000000001"},
        "credentialStatus": [
            {
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": str(i),
                "statusListCredential": url,
            }
            for i, url in enumerate(urls)
        ],
        "proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022"},
    }


def status_entries(report: dict[str, Any]) -> list[dict[str, Any]]:
    (status,) = [c for c in report["checks"] if c["check"] == "status"]
    entries: list[dict[str, Any]] = status["details"]["entries"]
    return entries


class Hits:
    """A plain HTTP host on 127.0.0.1 that answers 404 at once and counts requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def hits() -> AsyncIterator[Hits]:
    host = Hits()

    async def handler(request: web.Request) -> web.Response:
        host.requests += 1
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host.port = runner.addresses[0][1]
    yield host
    await runner.cleanup()


@pytest.fixture
async def tar_pit() -> AsyncIterator[TarPit]:
    pit = await TarPit().start()
    yield pit
    await pit.close()


async def service(aiohttp_client: AiohttpClient, tmp_path: Path, **overrides: object) -> TestClient:
    config = service_config(tmp_path, outbound_networks="any", **overrides)
    return await aiohttp_client(create_app(config))


async def verify(client: TestClient, doc: dict[str, Any]) -> aiohttp.ClientResponse:
    return await client.post("/v1/verify", json={"credential": doc})


async def test_status_entries_and_hosts_per_credential_are_capped(
    aiohttp_client: AiohttpClient, tmp_path: Path, hits: Hits
) -> None:
    client = await service(aiohttp_client, tmp_path, fetch_rate=0)
    many = [hits.url(f"/list/{i}") for i in range(2000)]
    resp = await verify(client, credential(*many))
    assert resp.status == 200
    entries = status_entries(await resp.json())
    assert len(entries) == 2000
    assert hits.requests == MAX_STATUS_ENTRIES  # not 2,000
    beyond = entries[MAX_STATUS_ENTRIES:]
    assert {e["outcome"] for e in beyond} == {"unknown"}
    assert {e["error"]["type"].rsplit("/", 1)[1] for e in beyond} == {"limit-exceeded"}

    hosts = [f"http://127.0.0.{n}:{hits.port}/list" for n in range(1, 8)]  # 7 hosts
    resp = await verify(client, credential(*hosts))
    entries = status_entries(await resp.json())
    types = [e["error"]["type"].rsplit("#", 1)[-1].rsplit("/", 1)[-1] for e in entries]
    assert types == ["STATUS_RETRIEVAL_ERROR"] * MAX_STATUS_HOSTS + ["limit-exceeded"] * (
        7 - MAX_STATUS_HOSTS
    )
    assert hits.requests == MAX_STATUS_ENTRIES + 1  # 127.0.0.1 (only it listens)


async def test_every_fetch_costs_a_token(
    aiohttp_client: AiohttpClient, tmp_path: Path, hits: Hits
) -> None:
    client = await service(aiohttp_client, tmp_path, fetch_rate=20)
    ten = credential(*(hits.url(f"/a/{i}") for i in range(10)))
    assert (await verify(client, ten)).status == 200  # 1 + 10 tokens of 20
    limited = await verify(client, ten)  # 1 + 10 more: the bucket holds 9
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert hits.requests == 10  # the refused request fetched nothing


def test_rate_limits_group_ipv6_clients_by_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "unknown"
    limiter = RateLimiter(10)
    assert limiter.take("a", 7) == 0.0
    assert limiter.take("a", 7) > 0  # 3 left: nothing spent
    assert limiter.take("a", 3) == 0.0
    assert limiter.take("b", 50) == 0.0  # more than a bucket costs the whole bucket
    assert limiter.take("b") > 0


async def test_a_tar_pit_host_cannot_starve_other_verifications_or_writes(
    aiohttp_client: AiohttpClient, tmp_path: Path, hits: Hits, tar_pit: TarPit
) -> None:
    client = await service(aiohttp_client, tmp_path, fetch_rate=0)
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "Test College")
    pits = [f"http://127.0.0.1:{tar_pit.port}/list/{i}" for i in range(150)]
    stuck = [
        asyncio.create_task(verify(client, credential(*pits[i : i + 15])))
        for i in range(0, 150, 15)
    ]
    deadline = time.monotonic() + 10
    while tar_pit.connections < outbound.CONNECTIONS_PER_HOST and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # time for more connections, if the pool allowed them
    assert tar_pit.connections == outbound.CONNECTIONS_PER_HOST

    start = time.monotonic()
    resp = await verify(client, credential(hits.url("/ordinary")))
    took = time.monotonic() - start
    assert resp.status == 200
    (entry,) = status_entries(await resp.json())
    assert "answered 404" in entry["error"]["detail"]  # it was fetched, not timed out
    assert took < 2.0, f"an ordinary verification took {took:.1f} s"

    raw = json.dumps({"digests": [hashlib.sha256(b"during the tar pit").hexdigest()]}).encode()
    url = str(client.make_url("/v1/entries"))
    headers = signed_headers("POST", url, raw, key, key.verification_method)
    headers["Content-Type"] = "application/json"
    start = time.monotonic()
    write = await client.post("/v1/entries", data=raw, headers=headers)
    assert write.status == 201
    assert time.monotonic() - start < 2.0
    assert not any(task.done() for task in stuck)  # the tar pit still holds its victims
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)


async def test_unregistered_signers_cost_no_fetch_and_no_nonce(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await service(aiohttp_client, tmp_path)
    host = await TarPit(hold=False).start()  # counts connections, closes them at once
    try:
        did = f"did:web:localhost%3A{host.port}"
        key = Ed25519Key.generate()  # any key: the DID document is never read
        raw = json.dumps({"digests": [hashlib.sha256(b"x").hexdigest()]}).encode()
        url = str(client.make_url("/v1/entries"))

        async def post() -> aiohttp.ClientResponse:
            headers = signed_headers("POST", url, raw, key, f"{did}#key-1")
            headers["Content-Type"] = "application/json"
            return await client.post("/v1/entries", data=raw, headers=headers)

        def nonces() -> int:
            row = client.app[STORE].reader().execute("SELECT count(*) FROM auth_nonces")
            return int(row.fetchone()[0])

        for _ in range(5):
            refused = await post()
            assert refused.status == 403
            assert (await refused.json())["reason"] == "unregistered-issuer"
        assert host.connections == 0  # no did:web fetch for a stranger
        assert nonces() == 0  # and no fsync'd nonce row

        # the same request from a registered DID does make the service fetch its document
        client.app[ISSUERS].add(did, "Registered")
        unresolved = await post()
        assert unresolved.status == 503  # its DID document could not be fetched
        assert host.connections >= 1
        assert nonces() == 0  # the signature was never verified: no nonce either
    finally:
        await host.close()
