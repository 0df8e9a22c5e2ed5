"""The log defends its own history: a real database damaged byte by byte (service stopped),
then the real service started on it over a socket, anchoring on a real anvil node.

One base log (200 entries in four tiles, a signed checkpoint of 200 anchored to final) is
built once; every test damages its own copy at a place found from the store's layout (the
bytes of a known hash, entry, note or index key) and starts the service on it. Primary data
damaged: ``/healthz`` fails with 503, nothing new is signed or anchored, and every proof or
receipt either verifies against the signed checkpoint or is a 503 problem. The digest index
damaged: it is rebuilt, and a resubmission gets its original leaf back.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from helpers.anvil import AnvilNode, free_port
from helpers.chain import SUBMITTER, entry
from helpers.service import service_config
from pytest_aiohttp import AiohttpClient

from anchor.chain.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.cli.main import main
from anchor.config import Config
from anchor.core import merkle
from anchor.core.checkpoint import NoteVerifier, open_checkpoint
from anchor.core.entry import Entry
from anchor.db.sqlite import PAGE_SIZE
from anchor.errors import IndexDamaged, IntegrityFailure
from anchor.http.app import create_app
from anchor.http.appkeys import BATCHER, COMMITTER, MERKLE_LOG, STORE
from anchor.http.problems import make_runner
from anchor.keys import ChainAccountKey, save_key
from anchor.log.digest_index import index_key
from anchor.log.log import FAILURE_META
from anchor.log.store import SQLiteStore

pytestmark = pytest.mark.anvil

SIZE = 200
"""Leaves of the base log: tiles 0-2 full, tile 3 holds 8; signed and anchored at 200."""

WAIT_SECONDS = 20.0

TILE_RATE = 64
"""A background check rate of one tile a second."""


@dataclass(frozen=True)
class Base:
    data: Path
    rpc_url: str
    contract: str
    entries: tuple[Entry, ...]
    vkey: str

    @property
    def leaves(self) -> list[bytes]:
        return [merkle.leaf_hash(e.encode()) for e in self.entries]


def _config(data: Path, base_rpc: str, contract: str, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "rpc_url": base_rpc,
        "contract": contract,
        "confirmations": 1,
        "anchor_interval": 0.2,
        "anchor_size": 100_000,
        "integrity_rate": 1_000_000,
        "integrity_pause": 0.2,
        "port": free_port(),
    }
    values.update(overrides)
    return service_config(data.parent, **values)


async def _until(what: str, probe: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _build(config: Config, entries: list[Entry]) -> str:
    """Run the service once: append ``entries``, anchor them to final; returns the log's
    verifier key."""
    app = create_app(config)
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    url = f"http://{config.host}:{config.port}"
    try:
        await asyncio.to_thread(app[MERKLE_LOG].append, entries)
        app[BATCHER].wake(anchor_now=True)
        async with aiohttp.ClientSession() as session:

            async def final() -> bool:
                async with session.get(url + "/v1/anchors?state=final") as resp:
                    body = await resp.json()
                return any(a["treeSize"] == SIZE for a in body["anchors"])

            await _until("a final anchor of the base log", final)
            digest = entries[0].digest.hex()
            async with session.get(f"{url}/v1/receipts/{digest}") as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(url + "/v1/log") as resp:
                vkey = str((await resp.json())["verifierKey"])
    finally:
        await runner.cleanup()
    return vkey


@pytest.fixture(scope="module")
def base(anvil: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Base:
    account = anvil.accounts[7]
    contract = deploy(anvil.web3(), load_artifact(LOG_ANCHOR), account).address
    data = tmp_path_factory.mktemp("selfcheck-base") / "data"
    save_key(ChainAccountKey.from_hex(account.key.hex()), data / "chain-key.hex")
    entries = [entry(i) for i in range(SIZE)]
    vkey = asyncio.run(_build(_config(data, anvil.rpc_url, contract), entries))
    return Base(data, anvil.rpc_url, contract, tuple(entries), vkey)


# -- damaging a stopped database ------------------------------------------------------------


def _copy(base: Base, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(base.data, data)
    db = data / "ler-anchor.db"
    with sqlite3.connect(db) as conn:  # everything into the main file: nothing left in the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def _flip(db: Path, needle: bytes, offset: int, *, new: int | None = None) -> None:
    """Change the byte at ``offset`` in every copy of ``needle`` in the file (flip its low
    bit, or set it to ``new``)."""
    data = bytearray(db.read_bytes())
    positions = []
    start = data.find(needle)
    while start != -1:
        positions.append(start)
        start = data.find(needle, start + 1)
    assert positions, f"{needle.hex()} is not in the file"
    for pos in positions:
        data[pos + offset] = data[pos + offset] ^ 1 if new is None else new
    db.write_bytes(bytes(data))


def _subtree(base: Base, level: int, index: int) -> bytes:
    return merkle.root(base.leaves[index << level : (index + 1) << level])


# -- talking to the service ----------------------------------------------------------------


async def _start(
    aiohttp_client: AiohttpClient, base: Base, db: Path, **overrides: Any
) -> TestClient:
    config = _config(db.parent, base.rpc_url, base.contract, **overrides)
    return await aiohttp_client(create_app(config))


async def _health(client: TestClient) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


async def _wait_health(client: TestClient, what: str, ok: Callable[[int, Any], bool]) -> Any:
    seen: list[Any] = []

    async def probe() -> bool:
        status, body = await _health(client)
        seen[:] = [status, body]
        return ok(status, body)

    await _until(what, probe)
    return seen[1]


async def _failing(client: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = await _wait_health(
        client, "healthz to fail", lambda status, _b: status == 503
    )
    assert body["status"] == "failing"
    assert body["integrity"]["ok"] is False
    assert body["integrity"]["state"] == "failed"
    return body


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


async def _assert_503(resp: aiohttp.ClientResponse) -> None:
    assert resp.status == 503, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["type"].endswith("/integrity-failure")
    assert "restore" in problem["hint"]


async def _proofs_verify_or_503(client: TestClient, base: Base, root: bytes) -> int:
    """Every inclusion proof (by index) verifies against ``root`` (the signed root of 200)
    with the original leaf hash, or is a 503 problem; returns how many were 503."""
    refused = 0
    for index in range(SIZE):
        resp = await client.get("/v1/proofs/inclusion", params={"index": str(index)})
        if resp.status == 503:
            await _assert_503(resp)
            refused += 1
            continue
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["treeSize"] == SIZE
        proof = [_b64(p) for p in body["proof"]]
        merkle.verify_inclusion(index, SIZE, base.leaves[index], proof, root)
    for size1 in (1, 64, 100, 128, 199):
        resp = await client.get(
            "/v1/proofs/consistency", params={"size1": str(size1), "size2": str(SIZE)}
        )
        if resp.status == 503:
            await _assert_503(resp)
            continue
        assert resp.status == 200
        body = await resp.json()
        proof = [_b64(p) for p in body["proof"]]
        merkle.verify_consistency(size1, SIZE, proof, merkle.root(base.leaves[:size1]), root)
    return refused


async def _receipt_verifies_or_503(client: TestClient, base: Base, index: int, root: bytes) -> int:
    resp = await client.get(f"/v1/receipts/{base.entries[index].digest.hex()}")
    if resp.status == 503:
        await _assert_503(resp)
        return resp.status
    assert resp.status == 200, await resp.text()
    receipt = await resp.json()
    checkpoint = open_checkpoint(receipt["checkpoint"]["note"], NoteVerifier.from_vkey(base.vkey))
    assert checkpoint.root == root
    proof = [_b64(p) for p in receipt["inclusionProof"]]
    leaf = merkle.leaf_hash(_b64(receipt["entry"]["bytes"]))
    assert leaf == base.leaves[index]
    merkle.verify_inclusion(index, checkpoint.size, leaf, proof, checkpoint.root)
    return resp.status


async def _nothing_new_is_signed(client: TestClient) -> None:
    """Entries are refused; grown underneath (straight into the store), the log is still
    neither signed nor anchored when the batcher is woken."""
    app = client.app
    with pytest.raises(IntegrityFailure):
        await app[COMMITTER].append([entry(SIZE)])
    await asyncio.to_thread(app[STORE].append, [entry(SIZE + i) for i in range(10)])
    for _ in range(3):
        app[BATCHER].wake(anchor_now=True)
        await asyncio.sleep(0.3)
    conn = app[STORE].reader()
    assert conn.execute("SELECT max(size), count(*) FROM checkpoints").fetchone() == (SIZE, 1)
    assert conn.execute("SELECT count(*), max(size) FROM anchors").fetchone() == (1, SIZE)
    with pytest.raises(IntegrityFailure):
        await asyncio.to_thread(app[MERKLE_LOG].checkpoint)
    assert "Log integrity failure" in (app[BATCHER].status().last_error or "")


def _signed_root(base: Base) -> bytes:
    return merkle.root(base.leaves)


# -- primary data damaged --------------------------------------------------------------------


async def test_frontier_hash_is_caught_at_start_and_nothing_is_signed(
    aiohttp_client: AiohttpClient, base: Base, tmp_path: Path
) -> None:
    """The issue's case: one flipped byte in a subtree hash of the frontier. With the
    background check off, the start-up check alone stops the log signing a fork."""
    db = _copy(base, tmp_path)
    _flip(db, _subtree(base, 6, 2), 31)  # leaves 128..191: stored in tile 2, on the frontier
    client = await _start(aiohttp_client, base, db, integrity_rate=0)
    status, body = await _health(client)
    assert status == 503
    assert body["status"] == "failing"
    assert "not the signed root" in body["integrity"]["reason"]
    assert body["integrity"]["backgroundCheck"] == "off"
    await _nothing_new_is_signed(client)
    assert await _proofs_verify_or_503(client, base, _signed_root(base)) > 0
    assert await _receipt_verifies_or_503(client, base, 10, _signed_root(base)) == 503
    metrics = await (await client.get("/metrics")).text()
    assert "ler_anchor_integrity_failed 1.0" in metrics
    reason = client.app[STORE].meta(FAILURE_META)
    assert reason is not None
    assert "not the signed root" in reason


async def test_leaf_hash(aiohttp_client: AiohttpClient, base: Base, tmp_path: Path) -> None:
    db = _copy(base, tmp_path)
    _flip(db, base.leaves[5], 0)  # in tile 0: not on the frontier, found by the pass
    client = await _start(aiohttp_client, base, db)
    body = await _failing(client)
    assert "leaf block 0 do not match its entries" in body["integrity"]["reason"]
    await _nothing_new_is_signed(client)
    assert await _proofs_verify_or_503(client, base, _signed_root(base)) > 0
    assert await _receipt_verifies_or_503(client, base, 4, _signed_root(base)) == 503  # sibling


async def test_entry_digest(aiohttp_client: AiohttpClient, base: Base, tmp_path: Path) -> None:
    db = _copy(base, tmp_path)
    _flip(db, base.entries[9].digest, 7)  # the entry's bytes in tile 0's entries blob
    client = await _start(aiohttp_client, base, db)
    await _failing(client)
    await _nothing_new_is_signed(client)
    assert await _proofs_verify_or_503(client, base, _signed_root(base)) > 0
    resp = await client.get("/v1/proofs/inclusion", params={"index": "9"})
    await _assert_503(resp)
    # acknowledged, now unreadable: 503 (the log cannot prove it absent), never 404
    assert await _receipt_verifies_or_503(client, base, 9, _signed_root(base)) == 503
    by_digest = await client.get(
        "/v1/proofs/inclusion", params={"digest": base.entries[9].digest.hex()}
    )
    await _assert_503(by_digest)


async def test_inner_subtree_hash(
    aiohttp_client: AiohttpClient, base: Base, tmp_path: Path
) -> None:
    db = _copy(base, tmp_path)
    _flip(db, _subtree(base, 3, 1), 16)  # leaves 8..15, inside tile 0
    client = await _start(aiohttp_client, base, db)
    await _failing(client)
    await _nothing_new_is_signed(client)
    assert await _proofs_verify_or_503(client, base, _signed_root(base)) >= 8
    assert await _receipt_verifies_or_503(client, base, 0, _signed_root(base)) == 503


async def test_checkpoint_signature(
    aiohttp_client: AiohttpClient, base: Base, tmp_path: Path
) -> None:
    db = _copy(base, tmp_path)
    with sqlite3.connect(db) as conn:
        (note,) = conn.execute("SELECT note FROM checkpoints WHERE size = ?", (SIZE,)).fetchone()
    conn.close()
    signature = note.rstrip("\n").rsplit(" ", 1)[1].encode()
    at = 40
    _flip(db, signature, at, new=ord("B") if signature[at] != ord("B") else ord("C"))
    client = await _start(aiohttp_client, base, db)
    body = await _failing(client)
    assert "checkpoint for size 200 does not verify" in body["integrity"]["reason"]
    await _assert_503(await client.get("/v1/checkpoint"))
    await _nothing_new_is_signed(client)
    assert await _proofs_verify_or_503(client, base, _signed_root(base)) == SIZE
    assert await _receipt_verifies_or_503(client, base, 3, _signed_root(base)) == 503


# -- derived data damaged --------------------------------------------------------------------


async def test_digest_index_key_is_rebuilt(
    aiohttp_client: AiohttpClient, base: Base, tmp_path: Path
) -> None:
    """A flipped bit in one index key: every count still matches, but the digest is lost
    and a resubmission would append a duplicate leaf. The pass finds and rebuilds it."""
    db = _copy(base, tmp_path)
    store = SQLiteStore(db)
    salt = bytes.fromhex(store.meta("index_salt") or "")
    store.close()
    key = index_key(salt, base.entries[20].digest)
    _flip(db, key.to_bytes(8, "big", signed=True), 7)  # the key column of its index row
    damaged = SQLiteStore(db)
    assert damaged.find(base.entries[20].digest) == []  # what the damage did
    with pytest.raises(IndexDamaged, match="does not find leaf 20"):
        damaged.check_integrity()  # `ler-anchor log check` finds it too
    damaged.close()
    client = await _start(aiohttp_client, base, db)
    body = await _wait_health(
        client,
        "a complete pass",
        lambda status, b: status == 200 and b["integrity"]["passesComplete"] >= 1,
    )
    integrity = body["integrity"]
    assert integrity["indexRebuilds"] == 1
    assert integrity["state"] == "ok"
    assert integrity["reason"] is None
    assert integrity["backgroundCheck"] == "running"
    assert integrity["passSize"] == SIZE
    assert integrity["lastPassCompletedAt"].endswith("Z")
    assert integrity["lastPassSeconds"] >= 0
    assert integrity["errors"] == 0
    await _resubmission_gets_its_leaf(client, base, 20)
    metrics = await (await client.get("/metrics")).text()
    assert "ler_anchor_integrity_index_rebuilds_total 1.0" in metrics
    assert "ler_anchor_integrity_failed 0.0" in metrics
    assert "ler_anchor_integrity_passes_total" in metrics
    assert "ler_anchor_integrity_last_pass_timestamp_seconds" in metrics
    assert client.app[STORE].check_integrity() == SIZE  # no duplicate leaf, index sound


async def test_corrupt_digest_index_page_is_rebuilt_at_start(
    aiohttp_client: AiohttpClient, base: Base, tmp_path: Path
) -> None:
    """The index's root page unreadable (SQLITE_CORRUPT): rebuilt at start, from the
    entries, with the background check off."""
    db = _copy(base, tmp_path)
    root = _index_root_page(db)
    data = bytearray(db.read_bytes())
    data[(root - 1) * PAGE_SIZE] = 0xFF  # the page's type byte: no B-tree page has it
    db.write_bytes(bytes(data))
    client = await _start(aiohttp_client, base, db, integrity_rate=0)
    status, body = await _health(client)
    assert status == 200, body
    assert _index_root_page(db) != root
    await _resubmission_gets_its_leaf(client, base, 150)
    assert client.app[STORE].check_integrity() == SIZE


async def test_append_rebuilds_an_index_found_corrupt(tmp_path: Path, base: Base) -> None:
    """SQLite reports the index corrupt in the middle of an append: the index is rebuilt and
    the append goes through, without a duplicate."""
    db = _copy(base, tmp_path)
    root = _index_root_page(db)
    data = bytearray(db.read_bytes())
    data[(root - 1) * PAGE_SIZE] = 0xFF  # the page's type byte: no B-tree page has it
    db.write_bytes(bytes(data))
    store = SQLiteStore(db)  # opening reads no index page
    result = store.append([base.entries[33], entry(SIZE)])
    assert result.indexes == (33, SIZE)
    assert result.new == (False, True)
    store.close()
    assert _index_root_page(db) != root  # a new index, built from the entries
    store = SQLiteStore(db)
    assert store.check_integrity() == SIZE + 1
    store.close()


def _index_root_page(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'digests'"
        ).fetchone()
    conn.close()
    return int(root)


async def _resubmission_gets_its_leaf(client: TestClient, base: Base, index: int) -> None:
    result = await client.app[COMMITTER].append([base.entries[index]])
    assert (result.indexes, result.new, result.size) == ((index,), (False,), SIZE)
    found = await client.get(
        "/v1/proofs/inclusion",
        params={"digest": base.entries[index].digest.hex(), "submitter": SUBMITTER},
    )
    assert found.status == 200
    assert (await found.json())["index"] == index


async def test_failure_is_recorded_and_log_check_says_what_to_do(
    aiohttp_client: AiohttpClient, base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failed state survives a restart; `ler-anchor log check` names the damage on one
    line and exits non-zero, and on a sound copy (restored) clears the recorded failure."""
    db = _copy(base, tmp_path)
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(db, pristine)
    _flip(db, _subtree(base, 4, 5), 3)  # leaves 80..95, inside tile 1
    client = await _start(aiohttp_client, base, db)
    await _failing(client)
    await client.close()
    again = await _start(aiohttp_client, base, db, integrity_rate=0)
    status, body = await _health(again)
    assert status == 503
    assert body["integrity"]["reason"].startswith("recorded earlier: stored hashes of leaf block 1")
    await again.close()
    capsys.readouterr()
    assert main(["log", "check", "--db", str(db)]) == 10
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "ler-anchor log: Log integrity failure: stored hashes of leaf block 1 do not match its"
        " entries (the log's stored data is damaged; restore the database from a backup and"
        " run `ler-anchor log check`)"
    ]
    # the operator restores a sound copy; the recorded failure comes with the damaged file,
    # so put it on the sound copy too, as if recorded after the backup was taken
    with sqlite3.connect(pristine) as conn:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)", (FAILURE_META, '{"reason": "x"}')
        )
    conn.close()
    assert main(["log", "check", "--db", str(pristine)]) == 0
    out = capsys.readouterr().out
    assert f"log of {SIZE} entries checks" in out
    assert "1 signed checkpoints verify" in out
    assert "cleared the integrity failure" in out
    restored = await _start(aiohttp_client, base, pristine, integrity_rate=0)
    status, body = await _health(restored)
    assert status == 200, body
    assert body["integrity"]["state"] == "ok"


async def test_background_check_is_throttled(
    aiohttp_client: AiohttpClient, base: Base, tmp_path: Path
) -> None:
    """At 64 leaves a second a pass over 200 leaves takes about three seconds, its progress
    shown meanwhile; a damaged index key in tile 2 is found on the way and rebuilt."""
    db = _copy(base, tmp_path)
    store = SQLiteStore(db)
    salt = bytes.fromhex(store.meta("index_salt") or "")
    store.close()
    _flip(db, index_key(salt, base.entries[150].digest).to_bytes(8, "big", signed=True), 7)
    client = await _start(aiohttp_client, base, db, integrity_rate=TILE_RATE)
    status, body = await _health(client)
    assert status == 200
    assert body["integrity"]["pass"] == 1
    assert body["integrity"]["position"] < SIZE  # under way, throttled
    assert body["integrity"]["passesComplete"] == 0
    body = await _wait_health(
        client,
        "the pass to complete",
        lambda status, b: status == 200 and b["integrity"]["passesComplete"] >= 1,
    )
    integrity = body["integrity"]
    assert integrity["indexRebuilds"] == 1
    assert integrity["state"] == "ok"
    assert integrity["lastPassSeconds"] >= (SIZE - TILE_RATE) / TILE_RATE
    await _resubmission_gets_its_leaf(client, base, 150)
