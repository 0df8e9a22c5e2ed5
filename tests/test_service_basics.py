"""The service over a real socket: read routes, problem details, admin API, OpenAPI."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from helpers.anvil import free_port
from helpers.service import service_config
from openapi_spec_validator import validate
from pytest_aiohttp import AiohttpClient

from anchor.core import merkle
from anchor.core.checkpoint import NoteVerifier, open_checkpoint
from anchor.core.entry import Entry, EntryKind
from anchor.http.app import create_app
from anchor.http.appkeys import MERKLE_LOG
from anchor.http.problems import make_runner

TOKEN = {"Authorization": "Bearer operator-secret-token"}


def _fill(app: web.Application, n: int) -> list[bytes]:
    entries = [
        Entry(
            EntryKind.CREDENTIAL,
            hashlib.sha256(bytes([i % 256, i // 256])).digest(),
            "did:web:a.example",
        )
        for i in range(n)
    ]
    app[MERKLE_LOG].append(entries)
    return [merkle.leaf_hash(e.encode()) for e in entries]


async def test_checkpoint_json_and_note(client: TestClient) -> None:
    leaves = _fill(client.app, 7)
    resp = await client.get("/v1/checkpoint")
    assert resp.status == 200
    body = await resp.json()
    verifier = NoteVerifier.from_vkey(body["verifierKey"])
    cp = open_checkpoint(body["note"], verifier)
    assert cp.size == 7
    assert cp.root == merkle.root(leaves)
    text = await client.get("/v1/checkpoint", headers={"Accept": "text/plain"})
    assert text.content_type == "text/plain"
    assert await text.text() == body["note"]
    ident = await (await client.get("/v1/log")).json()
    assert ident["verifierKey"] == body["verifierKey"]
    assert "d" not in ident


async def test_proofs_verify(client: TestClient) -> None:
    leaves = _fill(client.app, 20)
    import base64

    def d(x: str) -> bytes:
        return base64.b64decode(x)

    body = await (
        await client.get("/v1/proofs/inclusion", params={"index": "5", "size": "13"})
    ).json()
    merkle.verify_inclusion(
        5, 13, leaves[5], [d(p) for p in body["proof"]], merkle.root(leaves[:13])
    )
    by_digest = await client.get(
        "/v1/proofs/inclusion", params={"digest": hashlib.sha256(bytes([3, 0])).hexdigest()}
    )
    got = await by_digest.json()
    assert got["index"] == 3
    assert got["treeSize"] == 20  # a checkpoint was signed to cover it
    cons = await (
        await client.get("/v1/proofs/consistency", params={"size1": "4", "size2": "20"})
    ).json()
    merkle.verify_consistency(
        4, 20, [d(p) for p in cons["proof"]], merkle.root(leaves[:4]), merkle.root(leaves)
    )


async def test_entries_paging(client: TestClient) -> None:
    _fill(client.app, 25)
    body = await (await client.get("/v1/entries", params={"start": "10", "end": "20"})).json()
    assert [e["index"] for e in body["entries"]] == list(range(10, 20))
    assert body["next"].startswith("/v1/entries?start=20")
    tail = await (await client.get(body["next"])).json()
    assert [e["index"] for e in tail["entries"]] == list(range(20, 25))
    assert "next" not in tail
    # a range past the tree, or longer than a page, is cut short (never refused)
    past = await (await client.get("/v1/entries", params={"start": "20", "end": "99999"})).json()
    assert (past["start"], past["end"], len(past["entries"])) == (20, 25, 5)
    backwards = await (await client.get("/v1/entries", params={"start": "5", "end": "1"})).json()
    assert (backwards["end"], backwards["entries"]) == (5, [])


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/v1/proofs/inclusion?index=0&size=5", 404, "beyond the log"),
        ("/v1/proofs/inclusion?index=x", 400, "non-negative integer"),
        ("/v1/proofs/inclusion", 400, "exactly one of"),
        ("/v1/proofs/inclusion?digest=abc", 400, "hex digits"),
        ("/v1/proofs/inclusion?digest=" + "0" * 64, 404, "no entry has digest"),
        ("/v1/proofs/inclusion?index=0&digest=" + "0" * 64, 400, "exactly one of"),
        ("/v1/proofs/inclusion?index=0&submitter=did:web:a", 400, "goes with 'digest'"),
        ("/v1/proofs/inclusion?index=0&sise=1", 400, "unknown query parameter"),
        ("/v1/proofs/consistency?size1=2&size2=1", 404, "smaller size"),
        ("/v1/entries?start=0&end=" + "9" * 30, 400, "between 0 and"),
        ("/v1/nothing-here", 404, "Not Found"),
    ],
)
async def test_errors_are_problem_details(
    client: TestClient, path: str, status: int, detail: str
) -> None:
    resp = await client.get(path)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status
    assert detail in body["detail"]


async def test_wrong_method_is_405_problem(client: TestClient) -> None:
    resp = await client.put("/v1/checkpoint")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"


async def test_admin_api(client: TestClient) -> None:
    unauthenticated = await client.get("/v1/admin/issuers")
    assert unauthenticated.status == 401
    assert unauthenticated.headers["WWW-Authenticate"] == 'Bearer realm="ler-anchor admin"'
    assert await unauthenticated.read() == (
        b'{"type": "https://ler-anchor.org/problems/unauthorized", "title": "Unauthorized",'
        b' "status": 401, "detail": "the admin API needs \'Authorization: Bearer <operator'
        b' token>\'", "instance": "/v1/admin/issuers", "scheme": "Bearer"}'
    )
    bad = await client.get("/v1/admin/issuers", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    assert bad.headers["WWW-Authenticate"] == 'Bearer realm="ler-anchor admin"'
    added = await client.post(
        "/v1/admin/issuers", json={"did": "did:web:college.example", "name": "C"}, headers=TOKEN
    )
    assert added.status == 201
    again = await client.post(
        "/v1/admin/issuers", json={"did": "did:web:college.example"}, headers=TOKEN
    )
    assert again.status == 409
    notdid = await client.post("/v1/admin/issuers", json={"did": "college"}, headers=TOKEN)
    assert notdid.status == 400
    listed = await (await client.get("/v1/admin/issuers", headers=TOKEN)).json()
    assert [i["did"] for i in listed["issuers"]] == ["did:web:college.example"]
    gone = await client.delete("/v1/admin/issuers/did:web:college.example", headers=TOKEN)
    assert gone.status == 200
    assert (await gone.json())["active"] is False
    assert (
        await client.delete("/v1/admin/issuers/did:web:college.example", headers=TOKEN)
    ).status == 404


async def test_admin_api_disabled_without_token(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(service_config(tmp_path, operator_token=None)))
    resp = await client.get("/v1/admin/issuers", headers=TOKEN)
    assert resp.status == 403


async def test_did_resolution_endpoint(client: TestClient) -> None:
    did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    ok = await client.get(f"/1.0/identifiers/{did}")
    assert ok.status == 200
    assert (await ok.json(content_type=None))["didDocument"]["id"] == did
    bad = await client.get("/1.0/identifiers/did:key:xyz")
    assert bad.status == 400
    unsupported = await client.get("/1.0/identifiers/did:nope:abc")
    assert unsupported.status == 501
    doc_only = await client.get(
        f"/1.0/identifiers/{did}", headers={"Accept": "application/did+json"}
    )
    assert (await doc_only.json(content_type=None))["id"] == did
    refused = await client.get(f"/1.0/identifiers/{did}", headers={"Accept": "image/png"})
    assert refused.status == 406


async def test_health_and_metrics(client: TestClient) -> None:
    _fill(client.app, 3)
    health = await (await client.get("/healthz")).json()
    assert health["store"]["treeSize"] == 3
    await client.get("/v1/checkpoint")
    text = await (await client.get("/metrics")).text()
    assert (
        'ler_anchor_http_requests_total{method="GET",route="/v1/checkpoint",status="200"} 1.0'
        in text
    )


async def test_openapi_is_valid_and_describes_every_route(client: TestClient) -> None:
    doc = await (await client.get("/openapi.json")).json()
    validate(doc)
    served = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD":
            continue
        path = path.replace("{did:.+}", "{did}").replace("{path:.+}", "{path}")
        served.add((path, route.method.lower()))
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == described


async def test_did_ethr_resolves_on_the_anchoring_chain(client: TestClient) -> None:
    """The embedded chain gets an ERC-1056 registry at start; did:ethr resolves there."""
    address = "0x" + "ab" * 20
    resp = await client.get(f"/1.0/identifiers/did:ethr:anchor:{address}")
    assert resp.status == 200, await resp.text()
    body = await resp.json(content_type=None)
    doc = body["didDocument"]
    assert doc["id"].lower() == f"did:ethr:anchor:{address}"
    assert doc["verificationMethod"][0]["blockchainAccountId"].lower().endswith(address)
    unknown = await client.get(f"/1.0/identifiers/did:ethr:elsewhere:{address}")
    assert unknown.status == 404


async def test_access_log_has_one_line_per_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = make_runner(create_app(service_config(tmp_path)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                for path in ("/v1/entries?start=0&end=1", "/v1/nowhere"):
                    async with session.get(path) as resp:
                        await resp.read()
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 2
    assert re.fullmatch(
        r'127\.0\.0\.1 "GET /v1/entries\?start=0&end=1" 200 \d+ \d+\.\d{6}', lines[0]
    )
    assert re.fullmatch(r'127\.0\.0\.1 "GET /v1/nowhere" 404 \d+ \d+\.\d{6}', lines[1])
