"""The database side of issuer authentication: the issuer and nonce tables are made once when
the service opens its database, never on a request; a nonce is consumed by one atomic
statement, so replicas sharing one database refuse a replay sent to another replica; and the
statements stay portable (no SQLite-only SQL).

Everything runs on real SQLite files; the service is the real application over a socket, the
replicas real aiohttp applications on their own ports sharing one database file.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from helpers.service import post_signed, service_config
from pytest_aiohttp import AiohttpClient

from anchor.auth import issuers, nonces
from anchor.auth.issuers import IssuerRegistry
from anchor.auth.middleware import Authenticator, principal_of, require_signature
from anchor.auth.nonces import NonceStore
from anchor.client.signing import signed_headers
from anchor.errors import NotFound
from anchor.http.app import create_app
from anchor.http.appkeys import AUTHENTICATOR_KEY, ISSUERS, STORE
from anchor.keys import Ed25519Key
from anchor.log.store import LogStore, SQLiteStore, open_store
from anchor.verify.identity import did_key_ed25519

AUTH_PACKAGE = Path(__file__).resolve().parents[1] / "anchor" / "auth"
PUBLIC_BASE = "https://anchor.example"


def _tables(store: SQLiteStore) -> set[str]:
    rows = store.reader().execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "ler-anchor.db")
    try:
        yield opened
    finally:
        opened.close()


# --- schema: once at open, never per request ------------------------------------------------


def test_opening_a_registry_or_a_nonce_store_creates_nothing(store: SQLiteStore) -> None:
    NonceStore(store)
    with pytest.raises(NotFound, match="has no issuer registry yet"):
        IssuerRegistry(store)
    assert not {"auth_nonces", "issuers"} & _tables(store)
    issuers.ensure_schema(store)
    nonces.ensure_schema(store)
    nonces.ensure_schema(store)  # idempotent
    assert {"auth_nonces", "issuers"} <= _tables(store)
    assert IssuerRegistry(store).list() == []
    assert NonceStore(store).remember("did:key:a#a", "n" * 16, expires=1300, now=1000)


async def test_signed_requests_run_no_schema_statement(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client: TestClient = await aiohttp_client(create_app(service_config(tmp_path)))
    store = client.app[STORE]
    assert {"auth_nonces", "issuers"} <= _tables(store)  # made at start
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "Test College")
    statements: list[str] = []
    with store.transaction() as conn:  # every write of the service goes through this one
        conn.set_trace_callback(statements.append)
    try:
        for i in range(3):
            response = await post_signed(client, key, {"digests": [f"{i:064x}"]})
            assert response.status == 201, await response.text()
        unsigned = await client.post("/v1/entries", json={"digests": ["00" * 32]})
        assert unsigned.status == 401
    finally:
        with store.transaction() as conn:
            conn.set_trace_callback(None)
    nonce_writes = [s for s in statements if s.startswith("INSERT INTO auth_nonces")]
    assert len(nonce_writes) == 3, statements  # the trace sees the request path's writes
    schema = [s for s in statements if re.match(r"\s*(CREATE|ALTER|DROP)\b", s, re.IGNORECASE)]
    assert schema == []


# --- one nonce, several replicas on one database --------------------------------------------


def test_concurrent_nonce_stores_on_one_database_accept_each_nonce_once(database: str) -> None:
    """Two stores (two replicas' connections) race to consume the same nonces: each nonce is
    accepted exactly once, whichever replica gets it (on each backend)."""
    replicas = [open_store(database), open_store(database)]
    try:
        nonces.ensure_schema(replicas[0])
        stores = [NonceStore(replica) for replica in replicas]
        count = 40
        results: list[list[bool]] = [[], []]
        start = threading.Barrier(2)

        def consume(which: int) -> None:
            start.wait()
            for i in range(count):
                nonce = f"shared-nonce-{i:06d}"
                results[which].append(
                    stores[which].remember("did:key:a#a", nonce, expires=2000, now=1000)
                )

        threads = [threading.Thread(target=consume, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert [len(r) for r in results] == [count, count]
        assert all(a != b for a, b in zip(results[0], results[1], strict=True)), results
    finally:
        for replica in replicas:
            replica.close()


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"did": principal_of(request).did})


def _replica(store: LogStore) -> web.Application:
    """One replica of the signed-write path: its own connections to the shared database, its
    own nonce store and registry, the real authenticator."""
    registry = IssuerRegistry(store)

    async def resolve_key(keyid: str) -> bytes | None:
        return did_key_ed25519(keyid)

    async def is_registered(did: str) -> bool:
        return await asyncio.to_thread(registry.is_registered, did)

    app = web.Application()
    app[AUTHENTICATOR_KEY] = Authenticator(
        resolve_key=resolve_key,
        is_registered=is_registered,
        nonces=NonceStore(store),
        public_base_url=PUBLIC_BASE,
    )
    app.router.add_post("/v1/things", require_signature(_echo))
    return app


async def test_a_replay_sent_to_another_replica_is_refused(
    aiohttp_client: AiohttpClient, database: str
) -> None:
    stores = [open_store(database), open_store(database)]
    try:
        issuers.ensure_schema(stores[0])
        nonces.ensure_schema(stores[0])
        key = Ed25519Key.generate()
        IssuerRegistry(stores[0]).add(key.did)
        first, second = [await aiohttp_client(_replica(s)) for s in stores]
        body = b'{"a": 1}'
        for round_no in range(5):  # the same signed request to both replicas at once
            headers = signed_headers(
                "POST", PUBLIC_BASE + "/v1/things", body, key, key.verification_method
            )
            answers = await asyncio.gather(
                first.post("/v1/things", data=body, headers=headers),
                second.post("/v1/things", data=body, headers=headers),
            )
            statuses = sorted(answer.status for answer in answers)
            assert statuses == [200, 401], (round_no, statuses)
            refused = next(answer for answer in answers if answer.status == 401)
            assert (await refused.json())["reason"] == "replayed-nonce"
        later = await second.post("/v1/things", data=body, headers=headers)
        assert later.status == 401  # and sequentially, on either replica
    finally:
        for store in stores:
            store.close()


# --- portable SQL ---------------------------------------------------------------------------

_SQLITE_ONLY = re.compile(
    r"\browid\b|lastrowid|INSERT\s+OR\s+(IGNORE|REPLACE)|REPLACE\s+INTO|\bAUTOINCREMENT\b",
    re.IGNORECASE,
)


def _sqlite_only(source: str) -> list[str]:
    """The SQLite-only constructs in ``source``; ``WITHOUT ROWID`` (a storage hint of the
    SQLite DDL, kept so that existing databases keep their tables) is allowed."""
    return [m.group(0) for m in _SQLITE_ONLY.finditer(source.replace("WITHOUT ROWID", ""))]


def test_the_auth_statements_use_no_sqlite_only_sql() -> None:
    found = {
        path.name: hits
        for path in sorted(AUTH_PACKAGE.glob("*.py"))
        if (hits := _sqlite_only(path.read_text(encoding="utf-8")))
    }
    assert found == {}
    # the check itself finds what it looks for
    assert _sqlite_only("INSERT OR IGNORE INTO t SELECT rowid FROM u") == [
        "INSERT OR IGNORE",
        "rowid",
    ]
    assert _sqlite_only("cursor.lastrowid; CREATE TABLE t (a) WITHOUT ROWID") == ["lastrowid"]
