"""The embedded chain survives restarts: a real ``ler-anchor serve`` process on a temporary
data directory is stopped with SIGINT and with ``kill -9``; before and after, its chain is
read through ``/v1/chain/rpc`` with web3.py's own ``HTTPProvider`` (not the project's client):
the same genesis, blocks, transaction receipts and ``Anchored`` events, receipts that still
verify, block times never earlier than the submission, and ``ler-anchor audit`` clean against
the default setup. Also: a log with many anchors restarts fast."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers.anvil import free_port
from helpers.chain import anchor_directly
from helpers.service import service_config, wait_healthy
from web3 import Web3

from anchor import keys
from anchor.auth.issuers import IssuerRegistry, ensure_schema
from anchor.chain import AnchorState, ChainClient, ChainConfig
from anchor.chain.contracts import LOG_ANCHOR, load_artifact
from anchor.chain.durable import CHAIN_FILE_NAME
from anchor.client.signing import signed_headers
from anchor.http.app import create_app
from anchor.http.problems import make_runner
from anchor.keys import Ed25519Key
from anchor.log.store import SQLiteStore
from anchor.verify.receipt import verify_receipt
from anchor.verify.trust import TrustRoot

STOP_TIMEOUT_SECONDS = 30
IDLE_SECONDS = 2.2
"""Idle time before a submission: a chain that stamps a block when the previous one is mined
would give the next anchor a time this much before its submission."""
MANY_ANCHORS = 150
RESTART_BOUND_SECONDS = 10.0
"""The test's bound on a restart (the benchmark's target with 1,000 anchors is 5 s)."""


class Service:
    """A ``ler-anchor serve`` subprocess on ``data``."""

    def __init__(self, data: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rpc = self.url + "/v1/chain/rpc"
        self.data = data
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        cmd = [
            *(sys.executable, "-m", "anchor", "serve", "--port", str(self.port)),
            *("--data-dir", str(self.data), "--anchor-interval", "0.3"),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=log)
        await wait_healthy(self.url)

    def stop(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def digests(batch: str, n: int) -> list[str]:
    return [hashlib.sha256(f"{batch} credential {i}".encode()).hexdigest() for i in range(n)]


async def submit(service: Service, key: Ed25519Key, ds: list[str]) -> float:
    """POST the digests; returns the wall-clock time just before sending."""
    raw = json.dumps({"digests": ds}).encode()
    url = service.url + "/v1/entries"
    headers = signed_headers("POST", url, raw, key, key.verification_method)
    headers["Content-Type"] = "application/json"
    sent = time.time()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, headers=headers) as r,
    ):
        assert r.status in (200, 201), await r.text()
    return sent


async def receipts(service: Service, ds: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as session:
        for d in ds:
            async with session.get(f"{service.url}/v1/receipts/{d}?wait=30") as r:
                assert r.status == 200, await r.text()
                out[d] = await r.json()
    return out


def chain_view(rpc: str, contract: str) -> dict[str, Any]:
    """Everything a verifier reads, through web3.py's HTTPProvider: every block hash and
    time, every transaction receipt, and every ``Anchored`` event."""
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    head = w3.eth.block_number
    blocks = {}
    tx_receipts = {}
    for n in range(head + 1):
        block = w3.eth.get_block(n)
        blocks[n] = (block["hash"].hex(), block["parentHash"].hex(), int(block["timestamp"]))
        for tx_hash in block["transactions"]:
            r = w3.eth.get_transaction_receipt(tx_hash)
            tx_receipts[tx_hash.hex()] = (
                r["blockHash"].hex(),
                r["blockNumber"],
                r["status"],
                [(lg["address"], [t.hex() for t in lg["topics"]], lg["data"].hex(), lg["logIndex"])
                 for lg in r["logs"]],
            )  # fmt: skip
    event = w3.eth.contract(address=contract, abi=load_artifact(LOG_ANCHOR).abi).events.Anchored
    events = [
        (e["args"]["root"].hex(), e["args"]["treeSize"], e["blockNumber"], e["logIndex"],
         e["transactionHash"].hex())
        for e in event.get_logs(from_block=0)
    ]  # fmt: skip
    return {
        "chainId": w3.eth.chain_id,
        "head": head,
        "blocks": blocks,
        "receipts": tx_receipts,
        "events": events,
    }


def restricted(view: dict[str, Any], head: int) -> dict[str, Any]:
    """``view`` as it was when the chain's head was ``head``."""
    blocks = {n: b for n, b in view["blocks"].items() if n <= head}
    return {
        "chainId": view["chainId"],
        "head": head,
        "blocks": blocks,
        "receipts": {h: r for h, r in view["receipts"].items() if r[1] <= head},
        "events": [e for e in view["events"] if e[2] <= head],
    }


async def service_trust(service: Service) -> TrustRoot:
    """The service's log as a verifier pins it once (from ``GET /v1/log``)."""
    async with aiohttp.ClientSession() as session, session.get(service.url + "/v1/log") as r:
        log = await r.json()
    return TrustRoot.from_json({k: log[k] for k in ("origin", "verifierKey", "chain", "contract")})


async def check_receipts(
    service: Service, found: dict[str, dict[str, Any]], trust: TrustRoot
) -> None:
    for receipt in found.values():
        await verify_receipt(receipt, service.rpc, trust=trust)


def check_block_times(found: dict[str, dict[str, Any]], sent: float) -> None:
    for receipt in found.values():
        stated = datetime.fromisoformat(receipt["anchor"]["blockTime"].replace("Z", "+00:00"))
        assert stated.timestamp() >= sent, (receipt["anchor"], sent)


async def test_the_embedded_chain_survives_sigint_and_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    issuer = Ed25519Key.generate()
    store = SQLiteStore(data / "ler-anchor.db")
    ensure_schema(store)
    IssuerRegistry(store).add(issuer.did)
    store.close()
    service = Service(data, tmp_path / "serve.log")
    try:
        # Round 1: anchor a batch after an idle chain; stop with SIGINT.
        await service.start()
        await asyncio.sleep(IDLE_SECONDS)
        batch_a = digests("a", 3)
        sent_a = await submit(service, issuer, batch_a)
        found_a = await receipts(service, batch_a)
        check_block_times(found_a, sent_a)
        trust = await service_trust(service)  # pinned once, before any restart
        await check_receipts(service, found_a, trust)
        contract = found_a[batch_a[0]]["anchor"]["contract"]
        view_1 = await asyncio.to_thread(chain_view, service.rpc, contract)
        async with aiohttp.ClientSession() as session, session.get(service.url + "/v1/log") as r:
            assert (await r.json())["rpc"] == service.rpc
        assert service.stop(signal.SIGINT) == 0

        chain_dir = data / "chain"
        assert stat.S_IMODE((chain_dir / CHAIN_FILE_NAME).stat().st_mode) == 0o600
        assert stat.S_IMODE(chain_dir.stat().st_mode) == 0o700

        # Round 2: the same chain; the old receipts verify and are not made again.
        await service.start()
        view_2 = await asyncio.to_thread(chain_view, service.rpc, contract)
        assert restricted(view_2, view_1["head"]) == view_1
        await check_receipts(service, found_a, trust)
        assert await receipts(service, batch_a) == found_a
        await asyncio.sleep(IDLE_SECONDS)
        batch_b = digests("b", 3)
        sent_b = await submit(service, issuer, batch_b)
        found_b = await receipts(service, batch_b)
        check_block_times(found_b, sent_b)
        view_3 = await asyncio.to_thread(chain_view, service.rpc, contract)
        # kill -9 while a new batch is being anchored
        batch_c = digests("c", 3)
        await submit(service, issuer, batch_c)
        await asyncio.sleep(0.4)
        assert service.process is not None
        os.kill(service.process.pid, signal.SIGKILL)
        service.kill()

        # Round 3: still the same chain; everything verifies; the new batch is anchored.
        await service.start()
        view_4 = await asyncio.to_thread(chain_view, service.rpc, contract)
        assert restricted(view_4, view_3["head"]) == view_3
        assert restricted(view_4, view_1["head"]) == view_1
        await check_receipts(service, {**found_a, **found_b}, trust)
        found_c = await receipts(service, batch_c)
        await check_receipts(service, found_c, trust)
        assert await receipts(service, batch_a + batch_b) == {**found_a, **found_b}
        view_5 = await asyncio.to_thread(chain_view, service.rpc, contract)
        times = [view_5["blocks"][n][2] for n in range(view_5["head"] + 1)]
        assert all(later > earlier for earlier, later in itertools.pairwise(times))

        # The auditor, against the default setup.
        audit = await asyncio.to_thread(
            subprocess.run,
            [
                *(sys.executable, "-m", "anchor", "audit", "--rpc-url", service.rpc),
                *("--contract", contract, "--log", service.url, "--json"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        report = json.loads(audit.stdout)
        assert report["clean"] is True
        assert report["anchors"] >= 3
        assert service.stop(signal.SIGINT) == 0
    finally:
        service.kill()


async def test_a_second_service_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    key, _ = keys.generate_if_missing(tmp_path / "chain-key.hex", "secp256k1")
    config = ChainConfig(
        chain_key=bytes.fromhex(key.to_hex().removeprefix("0x")), embedded_dir=tmp_path / "chain"
    )
    first = SQLiteStore(tmp_path / "one.db")
    second = SQLiteStore(tmp_path / "two.db")
    client = await ChainClient.open(first, config)
    try:
        from anchor.errors import ConfigError

        with pytest.raises(ConfigError, match="in use"):
            await ChainClient.open(second, config)
    finally:
        await client.close()
        first.close()
        second.close()


async def test_a_log_with_many_anchors_restarts_fast(tmp_path: Path) -> None:
    config = service_config(tmp_path, port=free_port())
    key, _ = keys.generate_if_missing(config.chain_key_path, "secp256k1")
    store = SQLiteStore(config.db_path)
    chain_config = ChainConfig(
        chain_key=bytes.fromhex(key.to_hex().removeprefix("0x")),
        embedded_dir=config.data_dir / "chain",
    )
    client = await ChainClient.open(store, chain_config)
    identity = await client.start()
    await anchor_directly(client, MANY_ANCHORS)
    await client.close()
    store.close()

    started = time.perf_counter()
    app = create_app(config)
    runner = make_runner(app)
    await runner.setup()  # opens the store and the chain, checks continuity, starts tasks
    elapsed = time.perf_counter() - started
    try:
        from anchor.http.appkeys import CHAIN

        assert app[CHAIN].identity == identity
        finals = await app[CHAIN].anchors(states=[AnchorState.FINAL], limit=MANY_ANCHORS + 1)
        assert len(finals) == MANY_ANCHORS
    finally:
        await runner.cleanup()
    assert elapsed < RESTART_BOUND_SECONDS


async def test_a_kept_chain_refuses_another_anchoring_key(tmp_path: Path) -> None:
    from anchor.chain.backends import EmbeddedChain
    from anchor.errors import ConfigError

    first = hashlib.sha256(b"first owner").digest()
    chain = await EmbeddedChain.start(first, tmp_path / "chain")
    address = chain.contract_address
    await chain.close()
    with pytest.raises(ConfigError, match="was made for the anchoring account"):
        await EmbeddedChain.start(hashlib.sha256(b"another owner").digest(), tmp_path / "chain")
    chain = await EmbeddedChain.start(first, tmp_path / "chain")  # the lock was released
    try:
        assert chain.contract_address == address
    finally:
        await chain.close()
