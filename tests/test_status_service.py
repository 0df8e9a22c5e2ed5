"""Status lists kept by the running service: allocation, updates, history, publishing.

Every test talks to the application over a socket (``aiohttp_client``), with a real SQLite
database, real RFC 9421 request signatures and real ``eddsa-jcs-2022`` proofs. Issuers are
did:key issuers that uploaded their own key (``POST /v1/status-keys``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from helpers.chain import wait_for
from helpers.service import (
    WebDidHost,
    allocate,
    database_settings,
    list_id_of,
    new_issuer,
    ok_json,
    serve_web_did,
    service_config,
    set_statuses,
    signed_post,
)
from pytest_aiohttp import AiohttpClient

from anchor.core.entry import EntryKind
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS, RESOLVER, STATUS, STORE
from anchor.keys import Ed25519Key
from anchor.log.store import SQLiteStore
from anchor.status.allocation import HIDDEN_ID_PREFIX, hide_credential_id
from anchor.status.bitstring import Bitstring
from anchor.status.check import Outcome, StatusChecker
from anchor.status.credential import (
    parse_status_entry,
    parse_status_list_credential,
    validate_status,
)
from anchor.status.model import MAX_ALLOCATION, ROLLOVER_FRACTION, now_ms
from anchor.status.repository import StatusRepository
from anchor.vc.data_integrity import (
    canonical_digest,
    ed25519_public_key_to_multibase,
    verify_proof,
)
from did_methods import build_resolver

CHI_SQUARE_BUCKETS = 64
CHI_SQUARE_CRITICAL = 113.505
"""Critical value of the chi-square distribution with 63 degrees of freedom at
significance 0.0001 (P[X > 113.505] = 1e-4; computed from the regularized incomplete gamma
function). A uniform allocator fails the test once in 10,000 runs."""


# --- helpers -------------------------------------------------------------------------------


async def fetch_list(client: TestClient, list_id: str, **params: str) -> dict[str, Any]:
    response = await client.get(f"/v1/status-lists/{list_id}", params=params)
    assert response.status == 200, await response.text()
    doc: dict[str, Any] = json.loads(await response.read())
    return doc


def bits_of(doc: dict[str, Any]) -> Bitstring:
    return parse_status_list_credential(doc, min_entries=0).bitstring


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path, database: str) -> TestClient:
    """The service on each backend (``database``: SQLite, then PostgreSQL)."""
    return await aiohttp_client(create_app(service_config(tmp_path, **database_settings(database))))


@pytest.fixture
async def small_client(aiohttp_client: AiohttpClient, tmp_path: Path) -> TestClient:
    """Lists of 64 entries (rolled over at 57) and a 1 ms ttl."""
    config = service_config(tmp_path, status_list_entries=64, status_ttl_ms=1)
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def issuer(client: TestClient) -> Ed25519Key:
    return await new_issuer(client)


# --- allocation ---------------------------------------------------------------------------------


async def test_concurrent_allocations_hand_out_each_position_once(
    small_client: TestClient,
) -> None:
    """The property that matters at the boundary: whatever the interleaving of requests, no
    position is handed out twice, every list closes at its threshold, and the database and
    the lists' bitmaps hold every allocation (uniformity of the draw is a unit test of
    :mod:`anchor.status.allocation`)."""
    client = small_client
    issuer = await new_issuer(client)
    answers = await asyncio.gather(*(allocate(client, issuer, count=25) for _ in range(8)))
    positions = [(list_id_of(e), int(e["statusListIndex"])) for a in answers for e in a]
    assert len(positions) == 200
    assert len(set(positions)) == 200  # no position handed out twice
    service = client.app[STATUS]
    lists = {lst.id: lst for lst in service.lists(issuer.did)}
    threshold = int(64 * ROLLOVER_FRACTION)  # 57 of 64 entries
    per_list = Counter(list_id for list_id, _ in positions)
    assert sorted(per_list.values()) == [29, threshold, threshold, threshold]
    assert [lst.open for lst in lists.values()] == [False, False, False, True]
    for list_id, lst in lists.items():
        assert lst.allocated == per_list[list_id]
        taken = {index for other, index in positions if other == list_id}
        assert all(0 <= index < lst.entries for index in taken)
    conn = client.app[STORE].reader()
    rows = conn.execute("SELECT list_id, idx FROM status_entries").fetchall()
    assert sorted((str(r[0]), int(r[1])) for r in rows) == sorted(positions)
    for list_id, bitmap in conn.execute("SELECT id, allocation FROM status_lists"):
        marked = {i for i in range(64) if bytes(bitmap)[i >> 3] & (0x80 >> (i & 7))}
        assert marked == {index for other, index in positions if other == list_id}


async def test_allocation_limits_are_the_services_own(
    client: TestClient, issuer: Ed25519Key
) -> None:
    """The route checks nothing itself: a request past the service's limit gets the
    service's 413, a malformed one its 400, both before the status key is authorised (an
    issuer that has not uploaded its key would get 409 otherwise). The largest request
    allowed is served."""
    path = "/v1/status-lists/allocate"
    keyless = await new_issuer(client, upload=False)
    refused = await signed_post(client, keyless, path, {"purpose": "revocation", "count": 1})
    assert refused.status == 409, await refused.text()
    too_many = {"purpose": "revocation", "count": MAX_ALLOCATION + 1}
    ids = {"purpose": "revocation", "credentialIds": [f"c{i}" for i in range(MAX_ALLOCATION + 1)]}
    for key, body in ((issuer, too_many), (issuer, ids), (keyless, too_many)):
        refused = await signed_post(client, key, path, body)
        assert refused.status == 413, await refused.text()
        assert refused.content_type == "application/problem+json"
        problem = await refused.json()
        assert problem["detail"].endswith(f"at most {MAX_ALLOCATION}"), problem
    for body in (
        {"purpose": "revocation", "count": 0},
        {"purpose": "revocation", "count": "3"},
        {"purpose": "revocation", "count": 2, "credentialIds": ["a", "b"]},
        {"purpose": "revocation", "credentialIds": []},
    ):
        refused = await signed_post(client, keyless, path, body)
        assert refused.status == 400, (body, await refused.text())
    assert client.app[STATUS].lists(issuer.did) == []  # nothing was allocated
    (one,) = await allocate(client, issuer, count=1.0)  # JSON's 1.0 is 1
    assert one["statusPurpose"] == "revocation"
    # The largest request taken, into a list of the default length: distinct positions
    # spread over the whole list (64 buckets, chi-square at p = 1e-4).
    entries = await allocate(client, issuer, count=MAX_ALLOCATION - 1)
    indexes = [int(e["statusListIndex"]) for e in [one, *entries]]
    assert len(set(indexes)) == MAX_ALLOCATION
    width = 131_072 // CHI_SQUARE_BUCKETS
    observed = Counter(index // width for index in indexes)
    expected = MAX_ALLOCATION / CHI_SQUARE_BUCKETS
    statistic = sum((observed[b] - expected) ** 2 / expected for b in range(CHI_SQUARE_BUCKETS))
    assert statistic < CHI_SQUARE_CRITICAL, statistic


async def test_allocation_is_idempotent_per_credential_id(
    client: TestClient, issuer: Ed25519Key
) -> None:
    ids = ["urn:uuid:a", "urn:uuid:b", "urn:uuid:a"]
    body = {"purpose": "revocation", "credentialIds": ids}
    first = await ok_json(await signed_post(client, issuer, "/v1/status-lists/allocate", body), 201)
    entries = first["entries"]
    assert first["new"] == [True, True, False]
    assert entries[0] == entries[2] != entries[1]
    again = await ok_json(await signed_post(client, issuer, "/v1/status-lists/allocate", body), 200)
    assert again["entries"] == entries
    assert again["new"] == [False, False, False]
    # Another purpose is another entry; another issuer's same id is its own.
    suspension = await allocate(client, issuer, "suspension", credentialIds=["urn:uuid:a"])
    assert suspension[0]["statusPurpose"] == "suspension"
    other = await new_issuer(client)
    theirs = await allocate(client, other, credentialIds=["urn:uuid:a"])
    assert theirs[0]["statusListCredential"] != entries[0]["statusListCredential"]
    entry = parse_status_entry(entries[0])
    assert entry.id == f"{entry.status_list_credential}#{entry.status_list_index}"


async def test_credential_ids_are_kept_only_hidden(
    client: TestClient, issuer: Ed25519Key, tmp_path: Path
) -> None:
    """An issuer may use an e-mail address as its credential id: the database never holds
    it in clear, and ids an earlier version stored in clear are hidden at the next start."""
    email = "learner@example.org"
    (first,) = await allocate(client, issuer, credentialIds=[email])
    store = client.app[STORE]
    stored = [r[0] for r in store.reader().execute("SELECT credential_id FROM status_entries")]
    assert stored
    assert all(str(cid).startswith(HIDDEN_ID_PREFIX) for cid in stored)
    if isinstance(store, SQLiteStore):  # not anywhere in the files either
        for file in (store.path, Path(f"{store.path}-wal")):
            assert email.encode() not in file.read_bytes()
    # an id stored in clear by an earlier version, then a restart
    with store.transaction() as conn:
        conn.execute(
            "UPDATE status_entries SET credential_id = ? WHERE credential_id IS NOT NULL", (email,)
        )
        conn.execute("DELETE FROM meta WHERE key = 'credential_ids_hidden'")
    service = StatusRepository(store, client.app[STATUS].settings)
    (cid,) = [r[0] for r in store.reader().execute("SELECT credential_id FROM status_entries")]
    assert cid == hide_credential_id(service._id_key, email)
    (again,) = await allocate(client, issuer, credentialIds=[email])
    assert again == first  # still the same entry for the same id


async def test_new_list_opened_before_the_current_fills(
    small_client: TestClient, aiohttp_client: AiohttpClient
) -> None:
    client = small_client
    issuer = await new_issuer(client)
    body = {"purpose": "revocation", "count": 56}
    first = await ok_json(await signed_post(client, issuer, "/v1/status-lists/allocate", body), 201)
    (list_a,) = first["openedLists"]
    assert {list_id_of(e) for e in first["entries"]} == {list_a}
    one = await ok_json(
        await signed_post(client, issuer, "/v1/status-lists/allocate", {"purpose": "revocation"}),
        201,
    )
    # The 57th allocation reaches 90 % of 64: list B is opened and published at once,
    # while 7 positions of A are still free.
    assert list_id_of(one["entries"][0]) == list_a
    (list_b,) = one["openedLists"]
    assert list_b != list_a
    service = client.app[STATUS]
    a, b = service.get_list(list_a), service.get_list(list_b)
    assert (a.allocated, a.entries, a.open) == (57, 64, False)
    assert (b.allocated, b.open) == (0, True)
    assert bits_of(await fetch_list(client, list_b)).entries == 64
    nxt = await allocate(client, issuer, count=100)  # spans B and a third list
    assert list_id_of(nxt[0]) == list_b
    assert len({list_id_of(e) for e in nxt}) == 2
    assert service.get_list(list_a).allocated == 57  # a closed list is never allocated again


# --- updates ------------------------------------------------------------------------------------


async def test_100_concurrent_revocations_all_land(client: TestClient, issuer: Ed25519Key) -> None:
    entries = await allocate(client, issuer, count=100)
    list_id = list_id_of(entries[0])
    assert {list_id_of(e) for e in entries} == {list_id}
    responses = await asyncio.gather(
        *(
            set_statuses(client, issuer, list_id, [{"index": e["statusListIndex"], "value": 1}])
            for e in entries
        )
    )
    assert [r.status for r in responses] == [200] * 100
    bits = bits_of(await fetch_list(client, list_id))
    assert all(bits.get(int(e["statusListIndex"])) == 1 for e in entries)
    assert len(bits.nonzero_indexes()) == 100
    service = client.app[STATUS]
    assert [v.version for v in service.versions(list_id)] == list(range(1, 102))
    history = await ok_json(await client.get(f"/v1/status-lists/{list_id}/history"))
    assert len(history["changes"]) == 100


async def test_undoing_a_revocation_refuses_the_whole_batch(
    client: TestClient, issuer: Ed25519Key
) -> None:
    a, b, c = (int(e["statusListIndex"]) for e in await allocate(client, issuer, count=3))
    entries = await allocate(client, issuer)
    list_id = list_id_of(entries[0])
    revoked = await set_statuses(client, issuer, list_id, [{"index": str(a), "value": 1}])
    before = await ok_json(revoked)
    refused = await set_statuses(
        client,
        issuer,
        list_id,
        [{"index": str(b), "value": 1}, {"index": str(a), "value": 0, "reason": "oops"}],
    )
    assert refused.status == 409
    problem = await refused.json()
    assert refused.content_type == "application/problem+json"
    assert "cannot be undone" in problem["detail"]
    assert problem["index"] == str(a)
    bits = bits_of(await fetch_list(client, list_id))
    assert (bits.get(a), bits.get(b), bits.get(c)) == (1, 0, 0)  # b was not applied
    assert client.app[STATUS].get_list(list_id).version == before["version"]
    history = await ok_json(await client.get(f"/v1/status-lists/{list_id}/history"))
    assert [(h["index"], h["new"]) for h in history["changes"]] == [(str(a), 1)]
    # Revoking again is a no-op (nothing recorded, no new version).
    again = await ok_json(await set_statuses(client, issuer, list_id, [{"index": a, "value": 1}]))
    assert again["changed"] == 0
    assert again["version"] == before["version"]
    # Malformed batches and entries never allocated are refused too.
    for bad in ([], [{"index": "01", "value": 1}]):
        response = await set_statuses(client, issuer, list_id, bad)
        assert response.status == 400, bad
    # a well-formed value the list cannot hold (1-bit entries): a conflict with the list
    response = await set_statuses(client, issuer, list_id, [{"index": str(b), "value": 2}])
    assert response.status == 409
    free = next(i for i in range(131_072) if i not in (a, b, c))
    unallocated = await set_statuses(client, issuer, list_id, [{"index": str(free), "value": 1}])
    assert unallocated.status == 404


async def test_suspension_set_and_cleared(client: TestClient, issuer: Ed25519Key) -> None:
    (entry,) = await allocate(client, issuer, "suspension")
    list_id, index = list_id_of(entry), entry["statusListIndex"]
    await ok_json(await set_statuses(client, issuer, list_id, [{"index": index, "value": 1}]))
    doc = await fetch_list(client, list_id)
    assert validate_status(entry, doc, proofs_verified=True, min_entries=0).valid is False
    await ok_json(await set_statuses(client, issuer, list_id, [{"index": index, "value": 0}]))
    doc = await fetch_list(client, list_id)
    assert validate_status(entry, doc, proofs_verified=True, min_entries=0).valid is True
    history = await ok_json(await client.get(f"/v1/status-lists/{list_id}/history"))
    assert [(h["old"], h["new"]) for h in history["changes"]] == [(0, 1), (1, 0)]


async def test_message_list(client: TestClient, issuer: Ed25519Key) -> None:
    messages = [
        {"status": "0x0", "message": "pending review"},
        {"status": "0x1", "message": "accepted"},
        {"status": "0x2", "message": "rejected"},
        {"status": "0x3", "message": "withdrawn"},
    ]
    kind = {"purpose": "message", "statusSize": 2, "statusMessage": messages}
    created = await ok_json(await signed_post(client, issuer, "/v1/status-lists", kind), 201)
    assert created["entries"] == 131_072
    assert created["statusSize"] == 2
    (entry,) = await allocate(client, issuer, **kind)
    assert list_id_of(entry) == created["id"]
    assert entry["statusSize"] == 2
    assert entry["statusMessage"] == messages
    index = entry["statusListIndex"]
    await ok_json(await set_statuses(client, issuer, created["id"], [{"index": index, "value": 2}]))
    doc = await fetch_list(client, created["id"])
    result = validate_status(entry, doc, proofs_verified=True)
    assert (result.status, result.message) == (2, "rejected")
    too_big = await set_statuses(client, issuer, created["id"], [{"index": index, "value": 4}])
    assert too_big.status == 409  # well formed; this list's statusSize is 2
    for bad in (
        {"purpose": "message", "statusSize": 2},
        {"purpose": "revocation", "statusSize": 2},
        {"purpose": "refresh"},
    ):
        response = await signed_post(client, issuer, "/v1/status-lists", bad)
        assert response.status == 400, bad


# --- publishing ---------------------------------------------------------------------------------


async def test_published_list_is_signed_by_the_issuer(
    client: TestClient, issuer: Ed25519Key
) -> None:
    (entry,) = await allocate(client, issuer)
    response = await client.get(f"/v1/status-lists/{list_id_of(entry)}")
    body = await response.read()
    doc = json.loads(body)
    url = str(client.make_url(f"/v1/status-lists/{list_id_of(entry)}"))
    assert doc["id"] == entry["statusListCredential"] == url
    assert doc["issuer"] == issuer.did
    assert doc["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert doc["credentialSubject"]["ttl"] == 300_000
    assert "validUntil" not in doc
    proof = verify_proof(doc, issuer.public_bytes, expected_proof_purpose="assertionMethod")
    assert proof.verification_method == issuer.verification_method
    assert canonical_digest(doc) == hashlib.sha256(body).digest()
    parsed = parse_status_list_credential(doc)
    assert parsed.valid_from == doc["validFrom"]
    assert parsed.bitstring.entries == 131_072


async def test_etag_304_and_cache_control(client: TestClient, issuer: Ed25519Key) -> None:
    (entry,) = await allocate(client, issuer)
    path = f"/v1/status-lists/{list_id_of(entry)}"
    first = await client.get(path)
    body = await first.read()
    etag = first.headers["ETag"]
    assert etag == f'"{hashlib.sha256(body).hexdigest()}"'
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert first.content_type == "application/vc"
    cached = await client.get(path, headers={"If-None-Match": etag})
    assert cached.status == 304
    assert cached.headers["ETag"] == etag
    assert await cached.read() == b""
    assert (await client.get(path, headers={"If-None-Match": f"W/{etag}"})).status == 304
    assert (await client.get(path, headers={"If-None-Match": '"other"'})).status == 200
    head = await client.head(path)
    assert head.status == 200
    assert head.headers["ETag"] == etag
    index = entry["statusListIndex"]
    await ok_json(
        await set_statuses(client, issuer, list_id_of(entry), [{"index": index, "value": 1}])
    )
    changed = await client.get(path, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag


async def test_timestamp_returns_the_older_list(client: TestClient, issuer: Ed25519Key) -> None:
    (entry,) = await allocate(client, issuer)
    list_id, index = list_id_of(entry), int(entry["statusListIndex"])
    original = await fetch_list(client, list_id)
    await asyncio.sleep(0.01)
    between = time.time()
    await asyncio.sleep(0.01)
    await ok_json(await set_statuses(client, issuer, list_id, [{"index": index, "value": 1}]))
    assert bits_of(await fetch_list(client, list_id)).get(index) == 1
    iso = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(between))
        + f".{int(between * 1000) % 1000:03d}Z"
    )
    for stamp in (iso, f"{between:.3f}", iso.replace("Z", "+00:00")):
        old = await client.get(f"/v1/status-lists/{list_id}", params={"timestamp": stamp})
        assert old.status == 200, stamp
        doc = json.loads(await old.read())
        assert doc == original
        assert bits_of(doc).get(index) == 0
        assert old.headers["Cache-Control"].endswith("immutable")
    later = await fetch_list(client, list_id, timestamp=str(int(time.time()) + 60))
    assert bits_of(later).get(index) == 1
    before = await client.get(f"/v1/status-lists/{list_id}", params={"timestamp": "1700000000"})
    assert before.status == 404
    for bad in ("yesterday", "2025-01-01T00:00:00"):
        response = await client.get(f"/v1/status-lists/{list_id}", params={"timestamp": bad})
        assert response.status == 400, bad
    assert (await client.get("/v1/status-lists/0123456789abcdef")).status == 404


# --- authorisation -------------------------------------------------------------------------------


async def test_an_issuer_cannot_touch_another_issuers_list(
    client: TestClient, issuer: Ed25519Key
) -> None:
    (entry,) = await allocate(client, issuer)
    list_id = list_id_of(entry)
    intruder = await new_issuer(client)
    change = [{"index": entry["statusListIndex"], "value": 1}]
    response = await set_statuses(client, intruder, list_id, change)
    assert response.status == 403
    assert "another issuer" in (await response.json())["detail"]
    stranger = Ed25519Key.generate()  # not registered at all
    assert (await set_statuses(client, stranger, list_id, change)).status == 403
    unsigned = await client.post(f"/v1/status-lists/{list_id}/statuses", json=change)
    assert unsigned.status == 401
    assert bits_of(await fetch_list(client, list_id)).nonzero_indexes() == []


async def test_status_key_upload_rules(client: TestClient) -> None:
    issuer = await new_issuer(client, upload=False)
    refused = await signed_post(client, issuer, "/v1/status-lists", {"purpose": "revocation"})
    assert refused.status == 409
    problem = await refused.json()
    assert problem["type"].endswith("/status-key-not-authorized")
    assert "POST /v1/status-keys" in problem["hint"]
    other = Ed25519Key.generate()
    wrong = await signed_post(client, issuer, "/v1/status-keys", other.private_jwk())
    assert wrong.status == 403
    public_only = await signed_post(client, issuer, "/v1/status-keys", issuer.public_jwk())
    assert public_only.status == 400
    empty = await signed_post(client, issuer, "/v1/status-keys", {})
    assert empty.status == 409  # a did:key issuer's key is its own: a conflict, not a typo
    assert "upload" in (await empty.json())["hint"]
    missing = await client.get("/v1/status-keys", params={"did": issuer.did})
    assert missing.status == 404
    uploaded = await ok_json(
        await signed_post(client, issuer, "/v1/status-keys", issuer.private_jwk())
    )
    assert uploaded["custody"] == "uploaded"
    assert uploaded["authorized"] is True
    assert uploaded["suggestedVerificationMethod"] == issuer.verification_method
    assert issuer.private_jwk()["d"] not in json.dumps(uploaded)  # no private key returned
    public = await ok_json(await client.get("/v1/status-keys", params={"did": issuer.did}))
    assert public == uploaded
    path = client.app[STATUS].keys.key_path(issuer.did)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (
        await signed_post(client, issuer, "/v1/status-lists", {"purpose": "revocation"})
    ).status == 201


# --- history and the log -------------------------------------------------------------------------


async def test_history_records_who_when_and_why(client: TestClient, issuer: Ed25519Key) -> None:
    entries = await allocate(client, issuer, "suspension", count=3)
    list_id = list_id_of(entries[0])
    start = time.time()
    changes = [
        {"index": e["statusListIndex"], "value": 1, "reason": f"audit {i}"}
        for i, e in enumerate(entries)
    ]
    await ok_json(await set_statuses(client, issuer, list_id, changes))
    await ok_json(
        await set_statuses(client, issuer, list_id, [{**changes[0], "value": 0, "reason": None}])
    )
    history = await ok_json(await client.get(f"/v1/status-lists/{list_id}/history"))
    rows = history["changes"]
    assert [(r["index"], r["old"], r["new"], r["reason"]) for r in rows] == [
        (entries[0]["statusListIndex"], 0, 1, "audit 0"),
        (entries[1]["statusListIndex"], 0, 1, "audit 1"),
        (entries[2]["statusListIndex"], 0, 1, "audit 2"),
        (entries[0]["statusListIndex"], 1, 0, None),
    ]
    assert {r["by"] for r in rows} == {issuer.did}
    assert {r["keyid"] for r in rows} == {issuer.verification_method}
    assert [r["version"] for r in rows] == [2, 2, 2, 3]
    for r in rows:
        assert start - 1 <= datetime.fromisoformat(r["at"]).timestamp() <= time.time() + 1
    page = await ok_json(
        await client.get(f"/v1/status-lists/{list_id}/history", params={"limit": "2"})
    )
    assert len(page["changes"]) == 2
    assert page["next"].endswith(f"after={rows[1]['seq']}")
    rest = await ok_json(await client.get(page["next"]))
    assert rest["changes"] == rows[2:]
    one = await ok_json(
        await client.get(
            f"/v1/status-lists/{list_id}/history",
            params={"index": entries[0]["statusListIndex"]},
        )
    )
    assert len(one["changes"]) == 2


async def test_every_version_is_logged_and_can_be_looked_up(small_client: TestClient) -> None:
    client = small_client  # ttl 1 ms: a superseded version is stale almost at once
    issuer = await new_issuer(client)
    entries = await allocate(client, issuer, count=60)  # opens two lists
    list_id = list_id_of(entries[0])
    for e in entries[:3]:
        change = [{"index": e["statusListIndex"], "value": 1}]
        await ok_json(await set_statuses(client, issuer, list_id_of(e), change))
    service = client.app[STATUS]
    store = client.app[STORE]
    versions = [v for lst in service.lists() for v in service.versions(lst.id)]
    assert len(versions) == 2 + 3
    listed = await ok_json(await client.get("/v1/entries", params={"start": "0", "end": "100"}))
    logged = {(e["digest"], e["kind"], e["submitter"]) for e in listed["entries"]}
    for version in versions:
        assert (version.digest.hex(), "status-list", issuer.did) in logged
        (found,) = store.find(version.digest, issuer.did)
        assert found.entry.kind is EntryKind.STATUS_LIST
        assert found.index == version.log_index
        assert canonical_digest(version.credential()) == version.digest
    current = service.current_version(list_id)
    info = await ok_json(
        await client.get(f"/v1/status-lists/{list_id}/versions/{current.digest.hex()}")
    )
    assert info["current"] is True
    assert info["stale"] is False
    assert info["logIndex"] == current.log_index
    assert info["inclusionProof"] == f"/v1/proofs/inclusion?index={current.log_index}"
    first = service.versions(list_id)[0]
    await asyncio.sleep(0.01)
    old = await ok_json(
        await client.get(f"/v1/status-lists/{list_id}/versions/{first.digest.hex()}")
    )
    assert old["current"] is False
    assert old["stale"] is True
    assert old["supersededAt"]
    unknown = await client.get(f"/v1/status-lists/{list_id}/versions/{'00' * 32}")
    assert unknown.status == 404
    assert "never published" in (await unknown.json())["detail"]
    assert (await client.get(f"/v1/status-lists/{list_id}/versions/xyz")).status == 400


# --- did:web issuers and validity ----------------------------------------------------------------


@pytest.fixture
async def web_did(tmp_path: Path) -> AsyncIterator[WebDidHost]:
    async with serve_web_did(tmp_path) as host:
        yield host


async def test_did_web_issuer_adds_the_generated_key(
    aiohttp_client: AiohttpClient, tmp_path: Path, web_did: WebDidHost
) -> None:
    config = service_config(  # the did:web host is a test server on this machine
        tmp_path, ca_file=web_did.ca_file, outbound_networks="any"
    )
    client = await aiohttp_client(create_app(config))
    signing = Ed25519Key.generate()
    did = web_did.did
    keyid = f"{did}#key-1"
    web_did.document = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [
            {
                "id": keyid,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": ed25519_public_key_to_multibase(signing.public_bytes),
            }
        ],
        "authentication": [keyid],
    }
    client.app[ISSUERS].add(did, "Web College")
    # The request key is under authentication only: it cannot sign lists.
    info = await ok_json(await signed_post(client, signing, "/v1/status-keys", {}, keyid))
    assert info["custody"] == "generated"
    assert info["authorized"] is False
    addition = info["didDocumentAddition"]
    assert addition["assertionMethod"] == [info["suggestedVerificationMethod"]]
    assert client.app[STATUS].keys.key_path(did).stat().st_mode & 0o777 == 0o600
    body = {"purpose": "revocation"}
    refused = await signed_post(client, signing, "/v1/status-lists", body, keyid)
    assert refused.status == 409
    problem = await refused.json()
    assert problem["didDocumentAddition"] == addition
    assert "assertionMethod" in problem["hint"]
    # The issuer adds the key to its DID document: publishing now works.
    web_did.document["verificationMethod"] += addition["verificationMethod"]
    web_did.document["assertionMethod"] = addition["assertionMethod"]
    client.app[RESOLVER].clear_cache()
    created = await ok_json(
        await signed_post(client, signing, "/v1/status-lists", body, keyid), 201
    )
    doc = await fetch_list(client, created["id"])
    assert doc["issuer"] == did
    assert doc["proof"]["verificationMethod"] == info["suggestedVerificationMethod"]
    answer = await signed_post(client, signing, "/v1/status-lists/allocate", body, keyid)
    (entry,) = (await ok_json(answer, 201))["entries"]
    async with aiohttp.ClientSession() as session:
        checker = StatusChecker(build_resolver(session, ca_file=web_did.ca_file), session)
        (result,) = await checker.check_credential({"issuer": did, "credentialStatus": entry})
    assert result.outcome is Outcome.VALID
    public = await ok_json(await client.get("/v1/status-keys", params={"did": did}))
    assert public["authorized"] is True


async def test_lists_are_renewed_before_valid_until(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    config = service_config(tmp_path, status_ttl_ms=1000, status_valid_days=1.5 / 86_400)
    client = await aiohttp_client(create_app(config))
    issuer = await new_issuer(client)
    (entry,) = await allocate(client, issuer)
    list_id = list_id_of(entry)
    first = await fetch_list(client, list_id)
    valid_from = datetime.fromisoformat(first["validFrom"])
    assert datetime.fromisoformat(first["validUntil"]) - valid_from == timedelta(seconds=1.5)
    await asyncio.sleep(0.6)  # now less than one ttl before validUntil
    renewed = await fetch_list(client, list_id)
    assert renewed["validFrom"] > first["validFrom"]
    assert renewed["credentialSubject"]["encodedList"] == first["credentialSubject"]["encodedList"]
    versions = client.app[STATUS].versions(list_id)
    assert [v.version for v in versions] == [1, 2]
    assert all(v.log_index is not None for v in versions)


async def test_lists_nobody_fetches_are_renewed_in_the_background(
    aiohttp_client: AiohttpClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A static export must not go stale: due lists are renewed without being fetched."""
    config = service_config(tmp_path, status_ttl_ms=1000, status_valid_days=1.5 / 86_400)
    client = await aiohttp_client(create_app(config))
    issuer = await new_issuer(client)
    (entry,) = await allocate(client, issuer)
    list_id = list_id_of(entry)
    service = client.app[STATUS]
    deadline = asyncio.get_running_loop().time() + 10
    while len(versions := service.versions(list_id)) < 2 or any(
        v.log_index is None
        for v in versions  # logged right after it is signed
    ):
        assert asyncio.get_running_loop().time() < deadline, "no logged renewal within 10 s"
        await asyncio.sleep(0.1)
    current = service.current_version(list_id)
    valid_until = datetime.fromisoformat(current.credential()["validUntil"])
    assert valid_until > datetime.now(UTC)
    assert service.due_for_renewal(now_ms()) == []
    from anchor.cli.main import main

    export = ["status", "export", "--out", str(tmp_path / "x"), "--data-dir", str(config.data_dir)]
    assert await asyncio.to_thread(main, export) == 0
    out = capsys.readouterr().out
    printed = re.search(r"the first of them expires at (\S+) \(validUntil\)", out)
    assert printed is not None, out
    assert printed.group(1) >= current.credential()["validUntil"]  # or renewed since
    assert "export again before then" in out


@pytest.mark.parametrize("damage", ["socket", "missing"])
async def test_the_renewal_loop_survives_a_broken_key_file_and_recovers(
    aiohttp_client: AiohttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """The issuer's status key file is replaced by a Unix socket, which no one can open (even
    root: ENXIO), or is gone, so renewing its list fails. The renewal loop logs it on one line,
    keeps running and says so in ``/healthz`` (a list it cannot renew is a failure there, not
    only a warning in the log); once the key file is back it renews the list and is healthy
    again."""
    config = service_config(tmp_path, status_ttl_ms=1000, status_valid_days=1.5 / 86_400)
    client = await aiohttp_client(create_app(config))
    issuer = await new_issuer(client)
    (entry,) = await allocate(client, issuer)
    list_id = list_id_of(entry)
    service = client.app[STATUS]
    key_file = service.keys.key_path(issuer.did)
    aside = key_file.with_name("moved-aside")

    async def renewal() -> dict[str, Any]:
        response = await client.get("/healthz")
        assert response.status in (200, 503)
        task: dict[str, Any] = (await response.json())["tasks"]["status-renewal"]
        assert task["running"] is True  # failing or not, it never ends
        return task

    async def failing_again() -> bool:
        return (await renewal())["consecutiveErrors"] >= 2

    key_file.rename(aside)
    blocker = socket.socket(socket.AF_UNIX)
    if damage == "socket":
        cwd = Path.cwd()
        os.chdir(key_file.parent)  # a socket's path is at most 107 bytes: bind it by its name
        try:
            blocker.bind(key_file.name)
        finally:
            os.chdir(cwd)
    try:
        await wait_for(failing_again, what="two failed renewal rounds")
        task = await renewal()
        assert task["ok"] is False
        assert task["lastError"], task
        stuck = len(service.versions(list_id))
    finally:
        blocker.close()
        key_file.unlink(missing_ok=True)
    aside.rename(key_file)

    async def recovered() -> bool:
        versions = service.versions(list_id)
        renewed = len(versions) > stuck and all(v.log_index is not None for v in versions)
        return renewed and bool((await renewal())["ok"])

    await wait_for(recovered, what="a logged renewal and a healthy task once the key is back")
    assert service.due_for_renewal(now_ms()) == []
    lines = [r.getMessage() for r in caplog.records if r.name == "anchor.status.publisher"]
    assert any(line.startswith("renewing status lists failed: ") for line in lines), lines
    assert all("\n" not in line for line in lines)
