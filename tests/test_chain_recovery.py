"""Prompt recovery on chain while the service runs: a reorganisation deeper than the
confirmations after an anchor became final (noticed on the next step, anchored again, receipts
wait meanwhile, reported by ``/healthz`` and ``/metrics``), and an anchor transaction the node
forgot (broadcast again within a poll or two, not after the replacement wait), through the
chain client and through the service over a socket on a real anvil node."""

from __future__ import annotations

import asyncio
import hashlib
import time
from argparse import Namespace
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.anvil import AnvilNode
from helpers.chain import (
    ANVIL,
    EMBEDDED,
    Chain,
    assert_receipt_sound,
    entry,
    open_chain,
    open_log,
    trust_root,
    wait_for,
)
from helpers.service import service_config

from anchor.chain import (
    DEFAULT_REORG_DEPTH,
    MAX_REORG_DEPTH,
    AnchorRecord,
    AnchorState,
    ChainClient,
    ChainConfig,
    TxState,
    Web3Backend,
    list_anchors,
)
from anchor.chain.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.cli.main import main
from anchor.config import Config, from_sources
from anchor.core.entry import Entry, EntryKind
from anchor.errors import ConfigError, NotFound, VerificationError
from anchor.http.app import create_app
from anchor.http.appkeys import CHAIN, MERKLE_LOG
from anchor.keys import ChainAccountKey, save_key
from anchor.log.receipts import build_receipt
from anchor.verify.receipt import verify_receipt
from anchor.verify.trust import TrustRoot

SERVICE_WAIT_SECONDS = 60.0


async def anchor_of(client: ChainClient, anchor_id: int) -> AnchorRecord:
    [found] = [a for a in await client.anchors() if a.id == anchor_id]
    return found


async def step_until_final(client: ChainClient, chain: Chain, anchor_id: int) -> AnchorRecord:
    """Step the client, mining a block per round, until the anchor is final."""

    async def final() -> bool:
        await client.step()
        if (await anchor_of(client, anchor_id)).state is AnchorState.FINAL:
            return True
        await chain.mine()
        return False

    await wait_for(final, what=f"anchor {anchor_id} to become final")
    return await anchor_of(client, anchor_id)


def test_reorg_depth_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = hashlib.sha256(b"recovery key").digest()
    assert ChainConfig(chain_key=key).reorg_depth == DEFAULT_REORG_DEPTH == Config().reorg_depth
    assert ChainConfig(chain_key=key, reorg_depth=0).reorg_depth == 0
    assert from_sources(Namespace(), {"LER_ANCHOR_REORG_DEPTH": "8"}).reorg_depth == 8
    for bad in (-1, MAX_REORG_DEPTH + 1):
        with pytest.raises(ConfigError):
            ChainConfig(chain_key=key, reorg_depth=bad)
        with pytest.raises(ConfigError):
            Config(reorg_depth=bad).check()
    data = str(tmp_path / "data")
    assert main(["serve", "--data-dir", data, "--reorg-depth", "-1"]) != 0
    err = capsys.readouterr().err
    assert "reorg depth" in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


async def test_a_reorg_deeper_than_the_confirmations_is_noticed_while_running(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(3)])
    client = await chain.client(log.store, confirmations=2)
    checkpoint = log.checkpoint()
    first = await client.enqueue(checkpoint.size, checkpoint.root)
    first = await step_until_final(client, chain, first.id)
    snapshot = await chain.snapshot()  # after the first anchor: the reorg spares it
    log.append([entry(i) for i in range(3, 8)])
    checkpoint = log.checkpoint()
    second = await client.enqueue(checkpoint.size, checkpoint.root)
    lost = await step_until_final(client, chain, second.id)
    await chain.mine()
    old_receipt = build_receipt(log, 6, final_only=True)
    await assert_receipt_sound(old_receipt, chain)
    head = await chain.backend.block("latest")
    assert head is not None
    assert lost.block_number is not None
    depth = head.number - lost.block_number + 1
    assert depth > client.confirmations
    await chain.reorg(snapshot, depth)

    await client.step()  # notices, and sends the anchor again on its nonce
    moved = await anchor_of(client, lost.id)
    assert moved.state in (AnchorState.SUBMITTED, AnchorState.INCLUDED)
    assert (moved.reorgs, moved.nonce) == (1, lost.nonce)
    assert (await anchor_of(client, first.id)).state is AnchorState.FINAL
    status = await client.reorg_status()
    assert status.count == client.final_reorg_count == 1
    assert status.last is not None
    assert (status.last.anchor_id, status.last.block_hash) == (lost.id, lost.block_hash)
    assert [r.anchor_id for r in status.unrecovered] == [lost.id]
    with pytest.raises(NotFound):
        build_receipt(log, 6, final_only=True)  # never from a removed block
    await assert_receipt_sound(build_receipt(log, 2, final_only=True), chain)
    with pytest.raises(VerificationError) as caught:
        await verify_receipt(old_receipt, chain.backend, trust=await trust_root(chain))
    assert caught.value.what in ("transaction", "block")

    again = await step_until_final(client, chain, lost.id)
    assert again.tx_hash != lost.tx_hash
    old, new = await client.attempts(lost.id)
    assert (old.state, new.state, new.nonce) == (TxState.REORGED, TxState.MINED, old.nonce)
    status = await client.reorg_status()
    assert (status.count, status.unrecovered) == (1, ())
    receipt = build_receipt(log, 6, final_only=True)
    assert receipt["anchor"]["transactionHash"] == "0x" + new.hash.hex()
    await assert_receipt_sound(receipt, chain)
    for _ in range(3):  # the recovered chain is canonical: nothing more happens
        await client.step()
    assert (await client.reorg_status()).count == 1
    assert len(await chain.anchored_events()) == 2
    await client.close()
    log.store.close()


async def test_a_loss_below_the_reorg_depth_waits_for_the_next_start(tmp_path: Path) -> None:
    chain = await open_chain(EMBEDDED, lambda *args: pytest.fail("no anvil here"))
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(2)])
    client = await chain.client(log.store, confirmations=2, reorg_depth=1)
    snapshot = await chain.snapshot()
    checkpoint = log.checkpoint()
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    final = await step_until_final(client, chain, record.id)
    await chain.mine(2)
    head = await chain.backend.block("latest")
    assert head is not None
    assert final.block_number is not None
    await chain.reorg(snapshot, head.number - final.block_number + 1)
    await client.step()  # its block is deeper than reorg_depth below the head: not looked at
    assert (await anchor_of(client, record.id)).state is AnchorState.FINAL
    assert (await client.reorg_status()).count == 0
    await client.close()
    restarted = await chain.client(log.store, confirmations=2, reorg_depth=1)
    await restarted.start()  # the start-time check finds it
    assert (await anchor_of(restarted, record.id)).state is AnchorState.PENDING
    assert (await restarted.reorg_status()).count == 1
    await restarted.close()
    await chain.close()
    log.store.close()


# ---- the service over a socket ------------------------------------------------------------------


class Service:
    """The real app on a socket, anchoring on a fresh anvil node (LogAnchor deployed by its
    first account, whose key the service uses)."""

    def __init__(self, node: AnvilNode, client: Any, backend: Web3Backend) -> None:
        self.node = node
        self.client = client
        self.backend = backend

    async def get(self, path: str) -> tuple[int, Any]:
        response = await self.client.get(path)
        return response.status, await response.json(content_type=None)

    async def trust(self) -> TrustRoot:
        """The service's log as a verifier pins it (from ``GET /v1/log``)."""
        _, log = await self.get("/v1/log")
        members = ("origin", "verifierKey", "chain", "contract")
        return TrustRoot.from_json({k: log[k] for k in members})

    async def text(self, path: str) -> str:
        response = await self.client.get(path)
        return str(await response.text())

    def append(self, count: int) -> list[str]:
        entries = [
            Entry(EntryKind.CREDENTIAL, hashlib.sha256(b"recovery %d" % i).digest(), "did:web:a.b")
            for i in range(count)
        ]
        self.client.app[MERKLE_LOG].append(entries)
        return [e.digest.hex() for e in entries]

    async def until(self, what: str, check: Callable[[], Any]) -> float:
        """Poll ``check`` (an async predicate) until it holds; returns the seconds it took."""
        start = time.monotonic()

        async def holds() -> bool:
            return bool(await check())

        await wait_for(holds, what=what, timeout=SERVICE_WAIT_SECONDS)
        return time.monotonic() - start


@pytest.fixture
async def service(
    aiohttp_client: Any, anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> AsyncIterator[Service]:
    node = anvil_factory()
    owner = node.accounts[0]
    contract = await asyncio.to_thread(deploy, node.web3(), load_artifact(LOG_ANCHOR), owner)
    save_key(ChainAccountKey.from_hex(owner.key.hex()), tmp_path / "data" / "chain-key.hex")
    config = service_config(
        tmp_path,
        rpc_url=node.rpc_url,
        contract=contract.address,
        confirmations=2,
        anchor_interval=0.2,
    )
    client = await aiohttp_client(create_app(config))
    backend = await Web3Backend.connect(node.rpc_url)
    try:
        yield Service(node, client, backend)
    finally:
        await backend.close()


@pytest.mark.anvil
async def test_the_service_recovers_from_a_deep_reorg_without_a_restart(
    service: Service,
) -> None:
    node = service.node
    [digest] = service.append(1)

    async def receipt_served() -> bool:
        status, _ = await service.get(f"/v1/receipts/{digest}")
        if status != 200:
            node.mine()  # confirmations
            await asyncio.sleep(0.1)
        return status == 200

    await service.until("the first receipt", receipt_served)
    _, old_receipt = await service.get(f"/v1/receipts/{digest}")
    _, health = await service.get("/healthz")
    assert (health["chain"]["ok"], health["chain"]["reorgedAnchors"]) == (True, 0)
    node.mine()
    depth = node.block_number() - old_receipt["anchor"]["blockNumber"] + 1
    assert depth > 2  # deeper than the confirmations
    node.reorg(depth)

    async def reorg_reported() -> bool:
        _, body = await service.get("/healthz")
        return bool(body["chain"]["reorgedAnchors"] == 1)

    noticed = await service.until("healthz to report the reorg", reorg_reported)
    assert noticed < 3.0  # a poll interval is 0.2 s (measured: about 0.13 s)
    _, health = await service.get("/healthz")
    assert health["status"] != "ok"
    chain_probe = health["chain"]
    assert (chain_probe["ok"], chain_probe["reorgedNotFinal"]) == (False, 1)
    assert chain_probe["lastReorg"]["blockHash"] == old_receipt["anchor"]["blockHash"]
    assert chain_probe["lastReorg"]["transactionHash"] == old_receipt["anchor"]["transactionHash"]
    status, pending = await service.get(f"/v1/receipts/{digest}")
    assert (status, pending["status"]) == (202, "pending")
    with pytest.raises(VerificationError):
        await verify_receipt(old_receipt, service.backend, trust=await service.trust())
    assert "ler_anchor_final_anchor_reorgs_total 1.0" in await service.text("/metrics")

    await service.until("the receipt on the new chain", receipt_served)
    _, receipt = await service.get(f"/v1/receipts/{digest}")
    assert receipt["anchor"]["transactionHash"] != old_receipt["anchor"]["transactionHash"]
    check = await verify_receipt(receipt, service.backend, trust=await service.trust())
    assert check.receipt.leaf_index == 0
    _, health = await service.get("/healthz")
    assert health["chain"]["ok"] is True
    assert (health["chain"]["reorgedAnchors"], health["chain"]["reorgedNotFinal"]) == (1, 0)


@pytest.mark.anvil
async def test_the_service_sends_a_dropped_anchor_again_at_once(service: Service) -> None:
    node = service.node
    node.set_automine(False)
    [digest] = service.append(1)
    chain_client: ChainClient = service.client.app[CHAIN]
    store = chain_client.store

    def submitted() -> list[AnchorRecord]:
        return list_anchors(store, states=[AnchorState.SUBMITTED])

    async def sent() -> bool:
        return bool(submitted())

    await service.until("the anchor transaction", sent)
    [anchor] = submitted()
    [attempt] = await chain_client.attempts(anchor.id)
    status, _ = await service.get(f"/v1/receipts/{digest}")
    assert status == 202
    assert chain_client.rebroadcasts == 0  # the node holds it: nothing is sent again
    node.drop_all_transactions()  # (the service may send it again before the next line)

    async def known_again() -> bool:
        return await service.backend.transaction(attempt.hash) is not None

    resent = await service.until("the node to hold the transaction again", known_again)
    assert resent < 3.0  # one 0.2 s poll (measured: about 0.22 s), not the 180 s wait
    assert chain_client.rebroadcasts == 1
    assert "ler_anchor_rebroadcasts_total 1.0" in await service.text("/metrics")

    async def receipt_served() -> bool:
        status, _ = await service.get(f"/v1/receipts/{digest}")
        if status != 200:
            node.mine()
            await asyncio.sleep(0.1)
        return status == 200

    await service.until("the receipt", receipt_served)
    _, receipt = await service.get(f"/v1/receipts/{digest}")
    assert receipt["anchor"]["transactionHash"] == "0x" + attempt.hash.hex()
    await verify_receipt(receipt, service.backend, trust=await service.trust())
    [again] = await chain_client.attempts(anchor.id)
    assert (again.hash, again.state) == (attempt.hash, TxState.MINED)


@pytest.mark.anvil
async def test_a_final_anchor_moved_by_a_deep_reorg_is_final_again_in_its_new_block(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> None:
    chain = await open_chain(ANVIL, anvil_factory)
    assert chain.node is not None
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(4)])
    client = await chain.client(log.store, confirmations=2)
    checkpoint = log.checkpoint()
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    final = await step_until_final(client, chain, record.id)
    await chain.mine()
    [attempt] = await client.attempts(record.id)
    head = await chain.backend.block("latest")
    assert head is not None
    assert final.block_number is not None
    depth = head.number - final.block_number + 1
    assert depth > client.confirmations
    # The new branch holds the same transaction, in its last block (the head, not final).
    chain.node.reorg(depth, [("0x" + attempt.raw.hex(), depth - 1)])
    await client.step()
    moved = await anchor_of(client, record.id)
    assert moved.state is AnchorState.INCLUDED
    assert moved.tx_hash == final.tx_hash
    assert moved.block_number == head.number
    assert moved.block_hash != final.block_hash
    status = await client.reorg_status()
    assert [r.anchor_id for r in status.unrecovered] == [record.id]
    with pytest.raises(NotFound):
        build_receipt(log, 3, final_only=True)
    again = await step_until_final(client, chain, record.id)
    assert (again.tx_hash, again.block_hash) == (final.tx_hash, moved.block_hash)
    assert (await client.reorg_status()).unrecovered == ()
    assert [a.hash for a in await client.attempts(record.id)] == [attempt.hash]
    await assert_receipt_sound(build_receipt(log, 3, final_only=True), chain)
    await client.close()
    await chain.close()
    log.store.close()
