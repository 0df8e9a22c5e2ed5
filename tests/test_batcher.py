"""The batcher: when it anchors, running in the background, restarts on the same database, a
chain change, and an RPC endpoint that goes away and comes back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account import Account
from helpers.anvil import AnvilNode, free_port
from helpers.chain import (
    ANVIL,
    Chain,
    Running,
    TcpProxy,
    all_final,
    assert_receipt_sound,
    entry,
    fast,
    holds,
    open_chain,
    open_log,
    trust_root,
    wait_for,
)

from anchor.chain import (
    AnchorRecord,
    AnchorState,
    ChainClient,
    ChainConfig,
    ChainUnavailable,
    ExecutionReverted,
    list_anchors,
)
from anchor.chain.batcher import Batcher, BatcherConfig
from anchor.errors import AnchorError, ConfigError, NotFound, VerificationError
from anchor.log.log import Log
from anchor.log.receipts import build_receipt
from anchor.verify.receipt import verify_receipt


def sizes(log: Log, *, all_chains: bool = False) -> list[int]:
    return sorted(a.size for a in list_anchors(log.store, all_chains=all_chains))


def test_batcher_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        BatcherConfig(anchor_size=0)
    with pytest.raises(ConfigError):
        BatcherConfig(anchor_interval=-1)
    with pytest.raises(ConfigError):
        BatcherConfig(poll_interval=5, max_backoff=1)


async def test_anchors_after_anchor_size_entries_or_the_interval_never_when_idle(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "db")
    client = await chain.client(log.store)
    batcher = Batcher(log, client, fast(anchor_size=3))
    await batcher.tick()
    assert sizes(log) == []  # an empty log is not anchored
    log.append([entry(i) for i in range(2)])
    await batcher.tick()
    assert sizes(log) == [2]  # the first anchor does not wait
    for _ in range(3):
        await batcher.tick()
    assert sizes(log) == [2]  # not grown: nothing
    log.append([entry(2)])
    await batcher.tick()
    assert sizes(log) == [2]  # 1 new entry, interval not over
    log.append([entry(3), entry(4)])
    await batcher.tick()
    assert sizes(log) == [2, 5]  # anchor_size new entries
    batcher.wake(anchor_now=True)
    await batcher.tick()
    assert sizes(log) == [2, 5]  # forced, but nothing new
    log.append([entry(5)])
    batcher.wake(anchor_now=True)
    await batcher.tick()
    assert sizes(log) == [2, 5, 6]
    # The interval: one new entry is anchored once anchor_interval has passed.
    by_time = Batcher(log, client, fast(anchor_interval=1.0))
    log.append([entry(6)])
    await by_time.tick()
    assert sizes(log) == [2, 5, 6]
    await asyncio.sleep(1.0)
    await by_time.tick()
    assert sizes(log) == [2, 5, 6, 7]
    for _ in range(3):
        await by_time.tick()
    await wait_for(all_final(log, 4), what="four final anchors")
    assert len(await chain.anchored_events()) == 4
    await assert_receipt_sound(build_receipt(log, 6), chain)
    await client.close()
    log.store.close()


async def test_an_anchor_request_made_during_a_round_is_not_lost(
    chain: Chain, tmp_path: Path
) -> None:
    """``wake(anchor_now=True)`` right after an append, while a round has already read the
    log's size (nothing new then), is answered by the next round, not dropped by this one
    (which would leave the entries waiting for the whole anchor interval)."""
    log = open_log(tmp_path / "db")
    client = await chain.client(log.store)
    batcher = Batcher(log, client, fast())  # an interval of 1,000 s: only requests anchor
    log.append([entry(0)])
    await batcher.tick()
    assert sizes(log) == [1]
    asked = batcher._anchor_requests  # what a round snapshots before it reads the size
    batcher.wake(anchor_now=True)  # a request comes in after that snapshot
    assert await batcher._due(asked) is False  # the round read the size: nothing new yet
    log.append([entry(1)])  # the entry the request is about lands just after that read
    await batcher.tick()
    assert sizes(log) == [1, 2]  # the next round answers the request
    await batcher.tick()
    log.append([entry(2)])
    await batcher.tick()
    assert sizes(log) == [1, 2]  # answered requests are not carried over
    await client.close()
    log.store.close()


async def test_runs_in_the_background_until_closed(chain: Chain, tmp_path: Path) -> None:
    log = open_log(tmp_path / "db")
    client = await chain.client(log.store)
    batcher = Batcher(log, client, fast())
    async with Running(batcher):
        await wait_for(holds(lambda: batcher.status().running), what="start")
        log.append([entry(i) for i in range(4)])
        batcher.wake()
        await wait_for(all_final(log, 1), what="the first anchor to be final")
        listed = await batcher.anchors()
        assert [(a.size, a.state) for a in listed] == [(4, AnchorState.FINAL)]
        status = batcher.status()
        assert (status.anchors_queued, status.total_errors) == (1, 0)
    assert not batcher.status().running
    await assert_receipt_sound(build_receipt(log, 0), chain)
    await client.close()
    log.store.close()


async def test_a_restarted_service_resumes_without_double_anchoring(
    chain: Chain, tmp_path: Path
) -> None:
    path = tmp_path / "db"
    log = open_log(path)
    log.append([entry(i) for i in range(3)])
    client = await chain.client(log.store)
    async with Running(Batcher(log, client, fast())):
        await wait_for(all_final(log, 1), what="the first anchor")
    first = build_receipt(log, 1)
    await client.close()
    log.store.close()

    # New objects on the same SQLite file.
    log = open_log(path)
    client = await chain.client(log.store)
    batcher = Batcher(log, client, fast())
    for _ in range(5):
        await batcher.tick()
    assert len(await chain.anchored_events()) == 1  # nothing anchored twice
    assert build_receipt(log, 1) == first
    log.append([entry(3), entry(4)])
    async with Running(batcher):
        batcher.wake(anchor_now=True)
        await wait_for(all_final(log, 2), what="the second anchor")
    assert len(await chain.anchored_events()) == 2
    await assert_receipt_sound(first, chain)
    await assert_receipt_sound(build_receipt(log, 4), chain)
    await client.close()
    log.store.close()


async def test_a_new_chain_is_announced_and_the_latest_checkpoint_anchored_there(
    chain: Chain,
    tmp_path: Path,
    anvil_factory: Callable[..., AnvilNode],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "db"
    log = open_log(path)
    log.append([entry(i) for i in range(3)])
    client = await chain.client(log.store)
    async with Running(Batcher(log, client, fast())):
        await wait_for(all_final(log, 1), what="the anchor on the first chain")
    old_receipt = build_receipt(log, 0)
    await client.close()
    log.store.close()

    # The service restarts on another chain (a fresh embedded chain, another anvil node).
    # (a later genesis time makes sure a second anvil has another genesis block)
    later_genesis = ("--timestamp", str(int(time.time()) + 3600))
    second = await open_chain(chain.name, anvil_factory, *later_genesis)
    try:
        log = open_log(path)
        client = await second.client(log.store)
        caplog.set_level(logging.WARNING, logger="anchor.chain")
        batcher = Batcher(log, client, fast())
        async with Running(batcher):
            on_new_chain = all_final(log, 1)

            async def anchored_on_new_chain() -> bool:
                return len(list_anchors(log.store, all_chains=True)) == 2 and await on_new_chain()

            await wait_for(anchored_on_new_chain, what="the anchor on the new chain")
        assert "the chain changed" in caplog.text
        assert "anchored again" in caplog.text
        everything = list_anchors(log.store, all_chains=True)
        assert [(a.size, a.current_chain) for a in everything] == [(3, True), (3, False)]
        assert everything[0].chain.genesis_hash != everything[1].chain.genesis_hash
        receipt = build_receipt(log, 0)
        # (the transaction itself may be the same: same key, nonce, fees and data)
        assert receipt["anchor"]["blockHash"] != old_receipt["anchor"]["blockHash"]
        await assert_receipt_sound(receipt, second)
        await assert_receipt_sound(old_receipt, chain)  # still true on the old chain
        with pytest.raises(VerificationError) as caught:
            await verify_receipt(old_receipt, second.backend, trust=await trust_root(chain))
        assert caught.value.what in ("chain", "transaction", "block")
        await client.close()
        log.store.close()
    finally:
        await second.close()


# ---- failures never stop it -------------------------------------------------------------------


async def test_a_closed_port_never_crashes_the_batcher(tmp_path: Path) -> None:
    log = open_log(tmp_path / "db")
    log.append([entry(0)])
    config = ChainConfig(
        chain_key=b"\x01" * 32,
        rpc_url=f"http://127.0.0.1:{free_port()}",
        contract_address="0x" + "22" * 20,
        rpc_timeout=1.0,
    )
    client = await ChainClient.open(log.store, config)
    seen: list[AnchorError] = []
    batcher = Batcher(log, client, fast(max_backoff=0.1), on_error=seen.append)
    async with Running(batcher) as running:
        await wait_for(holds(lambda: running.status().consecutive_errors >= 4), what="retries")
        status = running.status()
        assert status.running
        assert status.last_error is not None
        assert "did not answer" in status.last_error
    assert all(isinstance(e, ChainUnavailable) for e in seen)
    assert list_anchors(log.store) == []
    await client.close()
    log.store.close()


async def test_a_refused_anchor_is_retried_once_per_interval_and_recovers(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(3)])
    client = await chain.client(log.store, chain_key=chain.other_key)  # not authorised
    seen: list[AnchorError] = []
    batcher = Batcher(log, client, fast(anchor_interval=1.5), on_error=seen.append)
    async with Running(batcher) as running:
        await wait_for(holds(lambda: len(seen) >= 1), what="the refusal")
        await asyncio.sleep(0.2)  # about ten rounds: no new attempt before the interval
        assert [a.state for a in list_anchors(log.store)] == [AnchorState.FAILED]
        assert isinstance(seen[0], ExecutionReverted)
        assert seen[0].reason is not None
        assert seen[0].reason.name == "NotAuthorised"
        last_error = running.status().last_error
        assert last_error is not None
        assert "NotAuthorised" in last_error
        # The owner authorises the account: the next retry goes through.
        other = Account.from_key(chain.other_key).address
        await chain.send_call(chain.owner_key, "authorize", ["address"], [other])

        def recovered() -> bool:
            return AnchorState.FINAL in [a.state for a in list_anchors(log.store)]

        await wait_for(holds(recovered), what="the anchor after authorisation")
    states = [a.state for a in list_anchors(log.store)]
    assert states[0] is AnchorState.FINAL
    assert set(states[1:]) == {AnchorState.FAILED}
    assert len(states) <= 4  # retried once per interval, not once per round
    await assert_receipt_sound(build_receipt(log, 2), chain)
    await client.close()
    log.store.close()


@pytest.mark.anvil
async def test_a_missing_contract_is_reported_not_fatal(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> None:
    node = anvil_factory()
    log = open_log(tmp_path / "db")
    log.append([entry(0)])
    config = ChainConfig(
        chain_key=bytes(node.accounts[0].key),
        rpc_url=node.rpc_url,
        contract_address="0x" + "33" * 20,
    )
    client = await ChainClient.open(log.store, config)
    seen: list[AnchorError] = []
    batcher = Batcher(log, client, fast(max_backoff=0.1), on_error=seen.append)
    async with Running(batcher) as running:
        await wait_for(holds(lambda: len(seen) >= 2), what="two reported errors")
        assert running.status().running
    assert isinstance(seen[0], ConfigError)
    assert "there is no contract" in seen[0].detail
    await client.close()
    log.store.close()


@pytest.mark.anvil
async def test_the_rpc_endpoint_goes_away_and_comes_back(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> None:
    chain = await open_chain(ANVIL, anvil_factory)
    node = chain.node
    assert node is not None
    proxy = TcpProxy(node.port)
    await proxy.open_port()
    log = open_log(tmp_path / "db")
    config = chain.config(rpc_url=proxy.url, confirmations=2, rpc_timeout=2.0)
    client = await ChainClient.open(log.store, config)
    seen: list[AnchorError] = []
    batcher = Batcher(log, client, fast(max_backoff=0.2), on_error=seen.append)

    def anchors() -> list[AnchorRecord]:
        return list_anchors(log.store)

    try:
        async with Running(batcher) as running:
            log.append([entry(i) for i in range(3)])
            running.wake()
            await wait_for(
                holds(lambda: [a.state for a in anchors()] == [AnchorState.INCLUDED]),
                what="the first anchor to be included",
            )
            # The endpoint goes away while that anchor waits for its confirmations.
            await proxy.close_port()
            node.mine(1)
            log.append([entry(3), entry(4)])
            running.wake(anchor_now=True)
            await wait_for(
                holds(lambda: running.status().consecutive_errors >= 3),
                what="failed rounds while the endpoint is away",
            )
            assert running.status().running
            # state kept: the first anchor still included; the second at most on its way (a
            # round that began before the endpoint went away may have queued or sent it)
            states = [a.state for a in sorted(anchors(), key=lambda a: a.size)]
            assert states[0] is AnchorState.INCLUDED
            assert all(s in (AnchorState.PENDING, AnchorState.SUBMITTED) for s in states[1:])
            assert isinstance(seen[-1], ChainUnavailable)

            await proxy.open_port()

            async def both_final() -> bool:
                states = [a.state for a in anchors()]
                if states == [AnchorState.FINAL, AnchorState.FINAL]:
                    return True
                if AnchorState.INCLUDED in states:
                    node.mine(1)
                return False

            await wait_for(both_final, what="both anchors to be final after the outage")
            assert running.status().consecutive_errors == 0
        first, second = sorted(anchors(), key=lambda a: a.size)
        assert (first.size, second.size) == (3, 5)
        assert len(await client.attempts(first.id)) == 1  # nothing was sent twice
        assert len(await chain.anchored_events()) == 2
        await assert_receipt_sound(build_receipt(log, 2), chain)
        await assert_receipt_sound(build_receipt(log, 4), chain)
    finally:
        await proxy.close_port()
        await client.close()
        await chain.close()
        log.store.close()


@pytest.mark.anvil
async def test_a_node_reset_to_the_same_genesis_is_noticed_and_reanchored(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    genesis_time = ("--timestamp", "1700000000")
    path = tmp_path / "db"
    first = await open_chain(ANVIL, anvil_factory, *genesis_time)
    log = open_log(path)
    log.append([entry(i) for i in range(3)])
    client = await first.client(log.store)
    async with Running(Batcher(log, client, fast())):
        await wait_for(all_final(log, 1), what="the first anchor")
    lost = list_anchors(log.store)[0]
    await client.close()
    log.store.close()
    await first.close()
    assert first.node is not None
    first.node.stop()

    # The node restarts without its state: same chain id, genesis and contract address.
    second = await open_chain(ANVIL, anvil_factory, *genesis_time)
    try:
        log = open_log(path)
        client = await second.client(log.store)
        caplog.set_level(logging.WARNING, logger="anchor.chain")
        identity = await client.start()
        assert identity == lost.chain  # the very same identity
        assert "no longer on it" in caplog.text
        reorgs = await client.reorg_status()
        assert (reorgs.count, [r.anchor_id for r in reorgs.unrecovered]) == (1, [lost.id])
        [again] = list_anchors(log.store)
        assert (again.id, again.state, again.reorgs) == (lost.id, AnchorState.PENDING, 1)
        with pytest.raises(NotFound):
            build_receipt(log, 2)  # not from the lost anchor

        def anchored_again() -> bool:
            return [a.state for a in list_anchors(log.store)] == [AnchorState.FINAL]

        async with Running(Batcher(log, client, fast())):
            await wait_for(holds(anchored_again), what="the anchor on the reset node")
        assert (await client.reorg_status()).unrecovered == ()
        assert len(await second.anchored_events()) == 1
        await assert_receipt_sound(build_receipt(log, 2), second)
        await client.close()
        log.store.close()
    finally:
        await second.close()
