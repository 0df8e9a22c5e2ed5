"""The chain client's state machine, on the embedded chain and on a real anvil node: anchoring,
fee-bumped replacement, the fee cap, restarts, reorgs, nonce conflicts and decoded reverts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak
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

from anchor.chain import (
    DEFAULT_CONFIRMATIONS_EMBEDDED,
    DEFAULT_CONFIRMATIONS_REMOTE,
    GWEI,
    AnchorRecord,
    AnchorState,
    ChainClient,
    ChainConfig,
    ChainUnavailable,
    ExecutionReverted,
    Fees,
    RevertDecoder,
    TxState,
    list_anchors,
)
from anchor.chain.contracts import LOG_ANCHOR, load_artifact
from anchor.errors import ChainError, ConfigError, NotFound, VerificationError
from anchor.log.log import Log
from anchor.log.receipts import build_receipt
from anchor.verify.receipt import verify_receipt

KEY = hashlib.sha256(b"a chain key").digest()


async def anchor_of(client: ChainClient, anchor_id: int) -> AnchorRecord:
    [found] = [a for a in await client.anchors(all_chains=True) if a.id == anchor_id]
    return found


async def step_until(
    client: ChainClient, anchor_id: int, state: AnchorState, *, mine: Chain | None = None
) -> AnchorRecord:
    """Step the client until the anchor reaches ``state`` (mining a block per round when
    ``mine`` is given, for confirmations)."""

    async def reached() -> bool:
        await client.step()
        if (await anchor_of(client, anchor_id)).state is state:
            return True
        if mine is not None:
            await mine.mine()
        return False

    await wait_for(reached, what=f"anchor {anchor_id} to become {state}")
    return await anchor_of(client, anchor_id)


async def anchored(chain: Chain, log: Log, **overrides: object) -> tuple[ChainClient, AnchorRecord]:
    """A client that anchored the log's current checkpoint to ``final``."""
    client = await chain.client(log.store, **overrides)
    checkpoint = log.checkpoint()
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    return client, await step_until(client, record.id, AnchorState.FINAL, mine=chain)


# ---- configuration and pure parts ------------------------------------------------------------


def test_config_validates_and_never_shows_the_key() -> None:
    config = ChainConfig(chain_key=KEY, contract_address="0x" + "ab" * 20)
    assert KEY.hex() not in repr(config)
    assert str(list(KEY)) not in repr(config)
    address = "0x" + "ab" * 20
    assert config.contract_address is not None
    assert config.contract_address != address  # EIP-55 mixed case
    assert config.contract_address.lower() == address
    assert config.embedded
    assert config.effective_confirmations == DEFAULT_CONFIRMATIONS_EMBEDDED
    remote = ChainConfig(chain_key=KEY, rpc_url="http://127.0.0.1:8545")
    assert remote.effective_confirmations == DEFAULT_CONFIRMATIONS_REMOTE
    assert ChainConfig(chain_key=KEY, confirmations=3).effective_confirmations == 3
    for bad in (b"short", bytes(32), b"\xff" * 32):
        with pytest.raises(ConfigError, match="chain key") as caught:
            ChainConfig(chain_key=bad)
        assert bad.hex() not in caught.value.diagnostics()
    with pytest.raises(ConfigError, match="not an http"):
        ChainConfig(chain_key=KEY, rpc_url="ftp://example.org/secret-api-key")
    with pytest.raises(ConfigError, match="not a contract address"):
        ChainConfig(chain_key=KEY, contract_address="0x1234")
    with pytest.raises(ConfigError, match="confirmations"):
        ChainConfig(chain_key=KEY, confirmations=0)
    with pytest.raises(ConfigError, match="fee cap"):
        ChainConfig(chain_key=KEY, max_fee_cap_wei=GWEI, priority_fee_floor_wei=2 * GWEI)


def test_replacement_bump_raises_both_fees_by_more_than_ten_percent() -> None:
    for max_fee, tip in [(1, 1), (7, 3), (3 * GWEI, GWEI), (10**12 + 1, 10**9 - 1)]:
        bumped = Fees(max_fee, tip).bumped()
        assert bumped.max_fee * 100 >= max_fee * 112
        assert bumped.max_priority_fee * 100 >= tip * 112


def test_revert_decoder_names_the_custom_errors() -> None:
    decoder = RevertDecoder(load_artifact(LOG_ANCHOR).abi)
    account = Account.from_key(KEY).address

    def data(signature: str, types: list[str], values: list[object]) -> bytes:
        return keccak(text=signature)[:4] + encode(types, values)

    size = decoder.decode(data("TreeSizeNotIncreasing(uint64,uint64)", ["uint64"] * 2, [7, 7]))
    assert (size.name, size.args, str(size)) == (
        "TreeSizeNotIncreasing",
        (7, 7),
        "TreeSizeNotIncreasing(7, 7)",
    )
    refused = decoder.decode(data("NotAuthorised(address)", ["address"], [account]))
    assert str(refused) == f"NotAuthorised({account})"
    root = hashlib.sha256(b"r").digest()
    taken = decoder.decode(data("RootAlreadyAnchored(bytes32)", ["bytes32"], [root]))
    assert str(taken) == f"RootAlreadyAnchored(0x{root.hex()})"
    assert str(decoder.decode(data("Error(string)", ["string"], ["no"]))) == "Error(no)"
    assert decoder.decode(b"").name == "Reverted"
    assert decoder.decode(b"\x01\x02\x03\x04").name == "UnknownError"


async def test_a_closed_port_is_a_chain_error(tmp_path: Path) -> None:
    from helpers.anvil import free_port

    log = open_log(tmp_path / "db")
    config = ChainConfig(
        chain_key=KEY,
        rpc_url=f"http://127.0.0.1:{free_port()}",
        contract_address="0x" + "11" * 20,
        rpc_timeout=2.0,
    )
    client = await ChainClient.open(log.store, config)
    try:
        with pytest.raises(ChainUnavailable, match="did not answer"):
            await client.step()
    finally:
        await client.close()
        log.store.close()


# ---- anchoring ------------------------------------------------------------------------------


async def test_anchors_end_to_end(
    chain: Chain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(5)])
    client, final = await anchored(chain, log, confirmations=2)
    assert (final.size, final.root, final.nonce) == (5, log.store.root(5), final.nonce)
    assert final.chain == client.identity
    assert final.current_chain
    assert final.tx_hash is not None
    assert final.block_hash is not None
    [attempt] = await client.attempts(final.id)
    assert (attempt.hash, attempt.state) == (final.tx_hash, TxState.MINED)
    [event] = await chain.anchored_events()
    assert (event.transaction_hash, event.block_hash) == (final.tx_hash, final.block_hash)
    assert event.topics[1] == final.root
    doc = final.to_json()
    assert doc["state"] == "final"
    assert doc["chain"] == f"eip155:{await chain.backend.chain_id()}"
    assert doc["transactionHash"] == "0x" + final.tx_hash.hex()
    await assert_receipt_sound(build_receipt(log, 3), chain)
    # Nothing new: more steps send nothing.
    for _ in range(3):
        await client.step()
    assert len(await chain.anchored_events()) == 1
    # The chain key never reaches the logs or a repr.
    key_hex = client.config.chain_key.hex()
    assert key_hex not in caplog.text
    assert key_hex not in repr(client)
    await client.close()
    log.store.close()


async def test_unmined_transaction_is_replaced_with_higher_fees(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(4)])
    checkpoint = log.checkpoint()
    client = await chain.client(log.store, replace_after_seconds=1.0)
    await chain.set_automine(False)
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    await client.step()
    await client.step()  # not yet: the replacement waits replace_after_seconds
    [first] = await client.attempts(record.id)
    assert first.state is TxState.SENT
    assert (await anchor_of(client, record.id)).state is AnchorState.SUBMITTED
    await asyncio.sleep(1.0)
    await client.step()
    first, second = await client.attempts(record.id)
    assert second.nonce == first.nonce
    assert second.fees.max_fee * 10 >= first.fees.max_fee * 11
    assert second.fees.max_priority_fee * 10 >= first.fees.max_priority_fee * 11
    await chain.mine()
    final = await step_until(client, record.id, AnchorState.FINAL)
    attempts = await client.attempts(record.id)
    states = sorted(a.state for a in attempts)
    assert states == sorted([TxState.MINED, TxState.DROPPED])
    receipts = [await chain.backend.transaction_receipt(a.hash) for a in attempts]
    assert len([r for r in receipts if r is not None]) == 1  # only one attempt was mined
    [mined] = [a for a in attempts if a.state is TxState.MINED]
    assert final.tx_hash == mined.hash
    assert len(await chain.anchored_events()) == 1
    await chain.set_automine(True)
    await assert_receipt_sound(build_receipt(log, 0), chain)
    await client.close()
    log.store.close()


async def test_at_the_fee_cap_it_waits_and_a_restarted_client_resumes(
    chain: Chain, tmp_path: Path
) -> None:
    path = tmp_path / "db"
    log = open_log(path)
    log.append([entry(i) for i in range(3)])
    checkpoint = log.checkpoint()
    client = await chain.client(log.store, replace_after_seconds=0.2)
    await chain.set_automine(False)
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    await client.step()
    [first] = await client.attempts(record.id)
    await client.close()
    log.store.close()

    # A new service on the same database: it finds the unmined attempt and does not anchor
    # again; a replacement would pass the cap, so it keeps waiting and says so.
    log = open_log(path)
    cap = first.fees.max_fee * 21 // 20
    client = await chain.client(log.store, replace_after_seconds=0.2, max_fee_cap_wei=cap)
    await asyncio.sleep(0.25)
    await client.step()
    assert client.at_fee_cap
    assert [a.hash for a in await client.attempts(record.id)] == [first.hash]
    await chain.mine()
    final = await step_until(client, record.id, AnchorState.FINAL)
    assert final.tx_hash == first.hash
    assert len(await chain.anchored_events()) == 1
    await chain.set_automine(True)
    await assert_receipt_sound(build_receipt(log, 2), chain)
    await client.close()
    log.store.close()


@pytest.mark.anvil
@pytest.mark.parametrize("forgotten_by", ["dropped", "reorged"])
async def test_a_forgotten_transaction_is_broadcast_again_at_once(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path, forgotten_by: str
) -> None:
    chain = await open_chain(ANVIL, anvil_factory)
    assert chain.node is not None
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(2)])
    checkpoint = log.checkpoint()
    client = await chain.client(log.store, replace_after_seconds=180.0)
    await chain.set_automine(False)
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    await client.step()
    [first] = await client.attempts(record.id)
    pooled = await chain.backend.transaction(first.hash)
    assert pooled is not None
    assert (pooled.hash, pooled.nonce, pooled.block_number) == (first.hash, first.nonce, None)
    await client.step()
    assert client.rebroadcasts == 0  # the node holds it: nothing is sent again
    if forgotten_by == "dropped":
        chain.node.drop_all_transactions()
    else:  # mined, then reorganised away before the client saw it mined
        await chain.mine()
        chain.node.reorg(1)
    assert await chain.backend.transaction(first.hash) is None
    await client.step()  # the next step sends the very same transaction again
    assert client.rebroadcasts == 1
    assert [(a.hash, a.state) for a in await client.attempts(record.id)] == [
        (first.hash, TxState.SENT)
    ]
    again = await chain.backend.transaction(first.hash)
    assert again is not None
    assert again.block_number is None
    await client.step()
    assert client.rebroadcasts == 1
    await chain.mine()
    final = await step_until(client, record.id, AnchorState.FINAL)
    assert final.tx_hash == first.hash
    mined = await chain.backend.transaction(first.hash)
    assert mined is not None
    assert mined.block_number == final.block_number
    await chain.set_automine(True)
    await assert_receipt_sound(build_receipt(log, 1), chain)
    await client.close()
    await chain.close()
    log.store.close()


@pytest.mark.anvil
async def test_a_dropped_transaction_refused_again_is_sent_again_with_current_fees(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> None:
    chain = await open_chain(ANVIL, anvil_factory)
    assert chain.node is not None
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(3)])
    checkpoint = log.checkpoint()
    client = await chain.client(log.store, replace_after_seconds=180.0)
    await chain.set_automine(False)
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    await client.step()
    [first] = await client.attempts(record.id)
    chain.node.drop_all_transactions()
    # The base fee rises above the dropped attempt's fee cap: the node refuses it now.
    chain.node.rpc("anvil_setNextBlockBaseFeePerGas", [hex(4 * first.fees.max_fee)])
    await chain.mine()
    await client.step()  # no error: sent again at once, as a new transaction
    assert client.rebroadcasts == 1
    old, new = await client.attempts(record.id)
    assert (old.hash, old.state, new.state) == (first.hash, TxState.DROPPED, TxState.SENT)
    assert new.nonce == first.nonce
    assert new.fees.max_fee > 4 * first.fees.max_fee
    await chain.mine()
    final = await step_until(client, record.id, AnchorState.FINAL)
    assert final.tx_hash == new.hash
    await chain.set_automine(True)
    await assert_receipt_sound(build_receipt(log, 2), chain)
    await client.close()
    await chain.close()
    log.store.close()


@pytest.mark.anvil
async def test_nonce_taken_by_an_unrecorded_transaction(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> None:
    chain = await open_chain(ANVIL, anvil_factory)
    assert chain.node is not None
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(2)])
    checkpoint = log.checkpoint()
    client = await chain.client(log.store)
    await chain.set_automine(False)
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    await client.step()
    [first] = await client.attempts(record.id)
    # Another program uses the same key and nonce, and its transaction is mined instead.
    chain.node.drop_transaction("0x" + first.hash.hex())
    owner = Account.from_key(chain.owner_key)
    other = owner.sign_transaction(
        {
            "type": 2,
            "chainId": chain.node.chain_id,
            "nonce": first.nonce,
            "to": owner.address,
            "value": 0,
            "gas": 21_000,
            "maxFeePerGas": 10 * GWEI,
            "maxPriorityFeePerGas": GWEI,
        }
    )
    await chain.backend.send_raw_transaction(bytes(other.raw_transaction))
    await chain.mine()
    with pytest.raises(ChainError, match="did not record"):
        await client.step()
    await chain.set_automine(True)
    final = await step_until(client, record.id, AnchorState.FINAL)
    attempts = await client.attempts(record.id)
    assert [(a.nonce, a.state) for a in attempts] == [
        (first.nonce, TxState.DROPPED),
        (first.nonce + 1, TxState.MINED),
    ]
    assert final.nonce == first.nonce + 1
    await assert_receipt_sound(build_receipt(log, 0), chain)
    await client.close()
    await chain.close()
    log.store.close()


async def test_a_reorg_that_removes_an_anchor_leads_to_reanchoring(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(6)])
    checkpoint = log.checkpoint()
    client = await chain.client(log.store, confirmations=3)
    snapshot = await chain.snapshot()
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    included = await step_until(client, record.id, AnchorState.INCLUDED)
    before = build_receipt(log, 4)  # an included (not yet final) anchor gives a receipt
    await assert_receipt_sound(before, chain)

    await chain.reorg(snapshot, depth=1)
    await client.step()  # sees the reorg, re-sends on the same nonce with higher fees
    moved = await anchor_of(client, record.id)
    assert moved.state is not AnchorState.INCLUDED
    assert moved.reorgs == 1
    with pytest.raises(NotFound):
        build_receipt(log, 4)  # never a receipt pointing at a removed block
    with pytest.raises(VerificationError) as caught:
        await verify_receipt(before, chain.backend, trust=await trust_root(chain))
    assert caught.value.what in ("transaction", "block")

    final = await step_until(client, record.id, AnchorState.FINAL, mine=chain)
    assert final.tx_hash != included.tx_hash
    assert final.block_hash != included.block_hash
    old, new = await client.attempts(record.id)
    assert (old.state, new.state) == (TxState.REORGED, TxState.MINED)
    assert new.nonce == old.nonce
    assert new.fees.max_fee >= old.fees.bumped().max_fee
    assert new.fees.max_priority_fee >= old.fees.bumped().max_priority_fee
    assert len(await chain.anchored_events()) == 1
    after = build_receipt(log, 4)
    assert after["anchor"]["transactionHash"] == "0x" + new.hash.hex()
    await assert_receipt_sound(after, chain)
    check = await verify_receipt(
        after, chain.backend, trust=await trust_root(chain), min_confirmations=3
    )
    assert check.confirmations >= 3
    await client.close()
    log.store.close()


# ---- the contract refuses ---------------------------------------------------------------------


async def test_an_unauthorised_account_is_refused_with_the_decoded_error(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(3)])
    checkpoint = log.checkpoint()
    other = Account.from_key(chain.other_key).address
    client = await chain.client(log.store, chain_key=chain.other_key)
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    with pytest.raises(ExecutionReverted) as caught:
        await client.step()
    reason = caught.value.reason
    assert reason is not None
    assert reason.name == "NotAuthorised"
    assert [str(a).lower() for a in reason.args] == [other.lower()]
    assert "authorise the anchoring account" in caught.value.diagnostics()
    failed = await anchor_of(client, record.id)
    assert (failed.state, failed.error) == (AnchorState.FAILED, f"NotAuthorised({other})")
    assert await client.attempts(record.id) == []  # refused before anything was sent
    assert await chain.anchored_events() == []
    await client.close()
    log.store.close()


async def test_a_non_increasing_tree_size_is_refused_with_the_decoded_error(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "first.db")
    log.append([entry(i) for i in range(5)])
    client, _ = await anchored(chain, log)
    await client.close()
    # Another database (e.g. an old backup) with a log that is not larger than the chain's.
    behind = open_log(tmp_path / "second.db")
    other = await chain.client(behind.store)
    for size in (3, 5):
        have = behind.store.size()
        behind.append([entry(100 + i) for i in range(have, size)])
        checkpoint = behind.checkpoint()
        record = await other.enqueue(checkpoint.size, checkpoint.root)
        with pytest.raises(ExecutionReverted) as caught:
            await other.step()
        assert caught.value.reason is not None
        assert caught.value.reason.name == "TreeSizeNotIncreasing"
        assert caught.value.reason.args == (5, size)
        assert "larger tree" in caught.value.diagnostics()
        failed = await anchor_of(other, record.id)
        assert failed.error == f"TreeSizeNotIncreasing(5, {size})"
    assert len(await chain.anchored_events()) == 1
    await other.close()
    log.store.close()
    behind.store.close()


async def test_a_mined_revert_is_recorded_with_its_decoded_reason(
    chain: Chain, tmp_path: Path
) -> None:
    log = open_log(tmp_path / "db")
    log.append([entry(i) for i in range(5)])
    checkpoint = log.checkpoint()
    client = await chain.client(log.store)
    other = Account.from_key(chain.other_key).address
    await chain.send_call(chain.owner_key, "authorize", ["address"], [other])
    await chain.set_automine(False)
    # An authorised competitor anchors a larger size first in the same block.
    competitor_root = hashlib.sha256(b"competitor").digest()
    await chain.send_call(
        chain.other_key, "anchor", ["bytes32", "uint64"], [competitor_root, 9], tip=50 * GWEI
    )
    record = await client.enqueue(checkpoint.size, checkpoint.root)
    await client.step()  # the pre-flight passes on the latest block: it is sent
    [attempt] = await client.attempts(record.id)
    await chain.mine()
    with pytest.raises(ExecutionReverted) as caught:
        await client.step()
    assert caught.value.reason is not None
    assert str(caught.value.reason) == "TreeSizeNotIncreasing(9, 5)"
    failed = await anchor_of(client, record.id)
    assert (failed.state, failed.error) == (AnchorState.FAILED, "TreeSizeNotIncreasing(9, 5)")
    [attempt] = await client.attempts(record.id)
    assert attempt.state is TxState.REVERTED
    receipt = await chain.backend.transaction_receipt(attempt.hash)
    assert receipt is not None
    assert receipt.status == 0
    with pytest.raises(NotFound):
        build_receipt(log, 0)
    await chain.set_automine(True)
    await client.close()
    log.store.close()


async def test_an_already_anchored_root_is_adopted_not_sent_again(
    chain: Chain, tmp_path: Path
) -> None:
    first = open_log(tmp_path / "first.db")
    first.append([entry(i) for i in range(4)])
    client, original = await anchored(chain, first)
    await client.close()
    # A database restored without its anchors, holding the same entries: same root.
    restored = open_log(tmp_path / "restored.db")
    restored.append([entry(i) for i in range(4)])
    other, adopted = await anchored(chain, restored)
    assert adopted.tx_hash == original.tx_hash
    assert await other.attempts(adopted.id) == []
    assert len(await chain.anchored_events()) == 1
    await assert_receipt_sound(build_receipt(restored, 1), chain)
    assert list_anchors(restored.store)[0].state is AnchorState.FINAL
    await other.close()
    first.store.close()
    restored.store.close()


async def test_embedded_identity_is_recorded(tmp_path: Path) -> None:
    log = open_log(tmp_path / "db")
    client = await ChainClient.open(log.store, ChainConfig(chain_key=KEY))
    try:
        identity = await client.start()
        assert client.embedded is not None
        assert identity.contract == client.embedded.contract_address
        assert identity.caip2 == f"eip155:{identity.chain_id}"
        genesis = await client.backend.block(0)
        assert genesis is not None
        assert identity.genesis_hash == genesis.hash
        assert EMBEDDED in repr(client.backend) or "embedded" in repr(client.backend)
    finally:
        await client.close()
        log.store.close()
