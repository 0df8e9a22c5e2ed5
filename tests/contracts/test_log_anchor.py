"""LogAnchor on the embedded chain and on anvil: access control, monotonic sizes, records, gas,
and RFC 9162 inclusion proofs against the RFC 6962 test vectors."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.anvil import EvmChain
from helpers.contracts import deploy_contract, reverts_with, send
from web3.contract import Contract

from anchor.chain.contracts import LOG_ANCHOR

VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors" / "merkle-rfc6962" / "inclusion"
HASH_SIZE = 32
ZERO_ROOT = bytes(HASH_SIZE)
ZERO_ADDRESS = "0x" + "00" * 20
UINT64_MAX = 2**64 - 1

GAS_HARD_LIMIT = 55_000
"""No anchor may cost more than this (the brief's hard limit)."""
GAS_OWNER_BUDGET = 51_700
"""Measured 51,626 for the owner's anchors (first and later ones alike): a regression guard."""
GAS_ACCOUNT_BUDGET = 54_050
"""Measured 53,970 for another authorised account (one more cold SLOAD, 2,100 + ~250 gas)."""
GAS_FIRST_ANCHOR_SURCHARGE = 0
"""The constructor pre-fills the latest-anchor slot, so the first anchor costs no more."""


def root_for(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@pytest.fixture
def log_anchor(evm_chain: EvmChain) -> Contract:
    return deploy_contract(evm_chain, LOG_ANCHOR, evm_chain.accounts[0])


def block_timestamp(chain: EvmChain, receipt: Any) -> int:
    timestamp: int = chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    return timestamp


# ---- deployment and access control ----------------------------------------------------------


def test_deployer_owns_and_is_authorised(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner, other = evm_chain.accounts[0], evm_chain.accounts[1]
    assert log_anchor.functions.owner().call() == owner.address
    assert log_anchor.functions.isAuthorised(owner.address).call() is True
    assert log_anchor.functions.isAuthorised(other.address).call() is False
    assert log_anchor.functions.latest().call() == [ZERO_ROOT, 0, 0]
    assert log_anchor.functions.anchorOf(root_for("never")).call() == [0, 0, ZERO_ADDRESS]


def test_unauthorised_account_cannot_anchor(evm_chain: EvmChain, log_anchor: Contract) -> None:
    stranger = evm_chain.accounts[2]
    call = log_anchor.functions.anchor(root_for("a"), 1)
    with reverts_with("NotAuthorised(address)", ["address"], [stranger.address]):
        call.call({"from": stranger.address})
    # Mined for real (explicit gas skips the estimate): reverted, nothing recorded.
    send(evm_chain, stranger, call, gas=100_000, expect_status=0)
    assert log_anchor.functions.latest().call() == [ZERO_ROOT, 0, 0]
    assert log_anchor.functions.anchorOf(root_for("a")).call() == [0, 0, ZERO_ADDRESS]


def test_owner_authorises_and_revokes_accounts(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner, anchorer = evm_chain.accounts[0], evm_chain.accounts[1]
    receipt = send(evm_chain, owner, log_anchor.functions.authorize(anchorer.address))
    (event,) = log_anchor.events.AccountAuthorised().process_receipt(receipt)
    assert event["args"]["account"] == anchorer.address
    assert log_anchor.functions.isAuthorised(anchorer.address).call() is True

    send(evm_chain, anchorer, log_anchor.functions.anchor(root_for("r1"), 1))
    assert log_anchor.functions.anchorOf(root_for("r1")).call()[2] == anchorer.address

    receipt = send(evm_chain, owner, log_anchor.functions.revoke(anchorer.address))
    (event,) = log_anchor.events.AccountRevoked().process_receipt(receipt)
    assert event["args"]["account"] == anchorer.address
    assert log_anchor.functions.isAuthorised(anchorer.address).call() is False
    with reverts_with("NotAuthorised(address)", ["address"], [anchorer.address]):
        log_anchor.functions.anchor(root_for("r2"), 2).call({"from": anchorer.address})
    # The record keeps naming the (now revoked) account that anchored it.
    assert log_anchor.functions.anchorOf(root_for("r1")).call()[2] == anchorer.address

    send(evm_chain, owner, log_anchor.functions.authorize(anchorer.address))
    send(evm_chain, anchorer, log_anchor.functions.anchor(root_for("r2"), 2))
    assert log_anchor.functions.anchorOf(root_for("r1")).call()[2] == anchorer.address
    assert log_anchor.functions.anchorOf(root_for("r2")).call()[2] == anchorer.address


def test_idempotent_authorise_and_revoke_emit_nothing(
    evm_chain: EvmChain, log_anchor: Contract
) -> None:
    owner, anchorer, stranger = evm_chain.accounts[:3]
    send(evm_chain, owner, log_anchor.functions.authorize(anchorer.address))
    again = send(evm_chain, owner, log_anchor.functions.authorize(anchorer.address))
    assert again["logs"] == []
    assert send(evm_chain, owner, log_anchor.functions.authorize(owner.address))["logs"] == []
    assert send(evm_chain, owner, log_anchor.functions.revoke(stranger.address))["logs"] == []
    assert log_anchor.functions.isAuthorised(anchorer.address).call() is True
    assert log_anchor.functions.isAuthorised(stranger.address).call() is False


def test_only_owner_manages_accounts(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner, anchorer, stranger = evm_chain.accounts[:3]
    send(evm_chain, owner, log_anchor.functions.authorize(anchorer.address))
    for actor in (anchorer, stranger):
        with reverts_with("NotOwner(address)", ["address"], [actor.address]):
            log_anchor.functions.authorize(stranger.address).call({"from": actor.address})
        with reverts_with("NotOwner(address)", ["address"], [actor.address]):
            log_anchor.functions.revoke(anchorer.address).call({"from": actor.address})
    with reverts_with("OwnerAlwaysAuthorised()", [], []):
        log_anchor.functions.revoke(owner.address).call({"from": owner.address})
    with reverts_with("ZeroAddress()", [], []):
        log_anchor.functions.authorize(ZERO_ADDRESS).call({"from": owner.address})


# ---- anchoring ------------------------------------------------------------------------------


def test_anchor_records_size_timestamp_account(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner = evm_chain.accounts[0]
    root = root_for("checkpoint 1")
    receipt = send(evm_chain, owner, log_anchor.functions.anchor(root, 42))
    timestamp = block_timestamp(evm_chain, receipt)

    assert log_anchor.functions.anchorOf(root).call() == [42, timestamp, owner.address]
    assert log_anchor.functions.latest().call() == [root, 42, timestamp]
    (event,) = log_anchor.events.Anchored().process_receipt(receipt)
    assert event["args"] == {
        "root": root,
        "treeSize": 42,
        "account": owner.address,
        "timestamp": timestamp,
    }
    assert event["address"] == log_anchor.address


def test_latest_follows_each_anchor(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner, anchorer = evm_chain.accounts[:2]
    send(evm_chain, owner, log_anchor.functions.authorize(anchorer.address))
    history = []
    for size, account in [(1, owner), (2, anchorer), (1000, owner), (UINT64_MAX, anchorer)]:
        root = root_for(f"size {size}")
        receipt = send(evm_chain, account, log_anchor.functions.anchor(root, size))
        timestamp = block_timestamp(evm_chain, receipt)
        assert log_anchor.functions.latest().call() == [root, size, timestamp]
        history.append((root, size, timestamp, account.address))
    for root, size, timestamp, address in history:
        assert log_anchor.functions.anchorOf(root).call() == [size, timestamp, address]


def test_tree_size_must_strictly_increase(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner = evm_chain.accounts[0]
    error = ("TreeSizeNotIncreasing(uint64,uint64)", ["uint64", "uint64"])
    with reverts_with(*error, [0, 0]):
        log_anchor.functions.anchor(root_for("empty"), 0).call({"from": owner.address})
    send(evm_chain, owner, log_anchor.functions.anchor(root_for("ten"), 10))
    for size in (10, 9, 1):
        with reverts_with(*error, [10, size]):
            log_anchor.functions.anchor(root_for(f"size {size}"), size).call(
                {"from": owner.address}
            )
    send(evm_chain, owner, log_anchor.functions.anchor(root_for("eleven"), 11))
    assert log_anchor.functions.latest().call()[1] == 11


def test_same_root_cannot_be_anchored_twice(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner = evm_chain.accounts[0]
    root = root_for("once")
    send(evm_chain, owner, log_anchor.functions.anchor(root, 5))
    with reverts_with("RootAlreadyAnchored(bytes32)", ["bytes32"], [root]):
        log_anchor.functions.anchor(root, 6).call({"from": owner.address})


def test_root_sharing_a_24_byte_prefix_is_refused_and_never_matched(
    evm_chain: EvmChain, log_anchor: Contract
) -> None:
    owner = evm_chain.accounts[0]
    root = root_for("prefix")
    twin = root[:24] + bytes(b ^ 0xFF for b in root[24:])
    send(evm_chain, owner, log_anchor.functions.anchor(root, 5))
    assert log_anchor.functions.anchorOf(twin).call() == [0, 0, ZERO_ADDRESS]
    with reverts_with("RootPrefixTaken(bytes32)", ["bytes32"], [twin]):
        log_anchor.functions.anchor(twin, 6).call({"from": owner.address})
    # Differing only in the first 24 bytes: independent records.
    cousin = bytes(b ^ 0xFF for b in root[:24]) + root[24:]
    assert log_anchor.functions.anchorOf(cousin).call() == [0, 0, ZERO_ADDRESS]
    send(evm_chain, owner, log_anchor.functions.anchor(cousin, 6))
    assert log_anchor.functions.anchorOf(cousin).call()[0] == 6
    assert log_anchor.functions.anchorOf(root).call()[0] == 5


def test_zero_root_is_refused(evm_chain: EvmChain, log_anchor: Contract) -> None:
    owner = evm_chain.accounts[0]
    with reverts_with("ZeroRoot()", [], []):
        log_anchor.functions.anchor(ZERO_ROOT, 1).call({"from": owner.address})


def test_anchor_gas(
    evm_chain: EvmChain, log_anchor: Contract, record_property: Callable[[str, object], None]
) -> None:
    owner, anchorer = evm_chain.accounts[:2]
    send(evm_chain, owner, log_anchor.functions.authorize(anchorer.address))
    owner_gas = [
        send(evm_chain, owner, log_anchor.functions.anchor(root_for(f"o{n}"), n))["gasUsed"]
        for n in (1, 2, 3)
    ]
    account_gas = [
        send(evm_chain, anchorer, log_anchor.functions.anchor(root_for(f"a{n}"), n))["gasUsed"]
        for n in (4, 5)
    ]
    # A huge size: more non-zero calldata bytes (12 gas each), still within budget.
    big = send(evm_chain, owner, log_anchor.functions.anchor(root_for("big"), UINT64_MAX))
    record_property("anchor_gas_owner", owner_gas)
    record_property("anchor_gas_other_account", account_gas)
    record_property("anchor_gas_owner_uint64_max_size", big["gasUsed"])
    print(f"{evm_chain.name}: owner {owner_gas}, other {account_gas}, max size {big['gasUsed']}")

    first, *later = owner_gas
    assert all(gas == first + GAS_FIRST_ANCHOR_SURCHARGE for gas in later)
    assert max(owner_gas) <= GAS_OWNER_BUDGET
    assert big["gasUsed"] <= GAS_OWNER_BUDGET + 12 * 7
    assert max(account_gas) <= GAS_ACCOUNT_BUDGET
    assert max(*owner_gas, *account_gas, big["gasUsed"]) <= GAS_HARD_LIMIT


# ---- RFC 9162 inclusion proofs --------------------------------------------------------------


def load_inclusion_vectors() -> list[tuple[str, dict[str, Any]]]:
    paths = sorted(VECTORS_DIR.rglob("*.json"))
    assert paths, f"no inclusion vectors under {VECTORS_DIR}"
    return [(str(p.relative_to(VECTORS_DIR)), json.loads(p.read_text())) for p in paths]


def test_verify_inclusion_rfc6962_vectors(log_anchor: Contract) -> None:
    verify = log_anchor.functions.verifyInclusion
    mismatches = []
    accepted = rejected = rejected_by_type = 0
    for name, vector in load_inclusion_vectors():
        root = base64.b64decode(vector["root"])
        leaf_hash = base64.b64decode(vector["leafHash"])
        proof = [base64.b64decode(p) for p in vector["proof"] or []]
        if any(len(h) != HASH_SIZE for h in (root, leaf_hash, *proof)):
            # Not representable as bytes32: the ABI refuses it before the contract runs.
            if not vector["wantErr"]:
                mismatches.append(f"{name}: valid vector with a non-32-byte hash")
            rejected_by_type += 1
            continue
        ok = verify(vector["leafIdx"], vector["treeSize"], leaf_hash, proof, root).call()
        if ok == vector["wantErr"]:
            mismatches.append(f"{name}: verifyInclusion returned {ok}")
        accepted += ok
        rejected += not ok
    assert mismatches == []
    assert accepted == 6  # the five happy paths and the single-entry match
    assert rejected > 60
    assert rejected_by_type > 0


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))


def audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 PATH(m, D[n]), leaf to root."""
    if len(leaves) == 1:
        return []
    k = split_point(len(leaves))
    if index < k:
        return [*audit_path(index, leaves[:k]), tree_hash(leaves[k:])]
    return [*audit_path(index - k, leaves[k:]), tree_hash(leaves[:k])]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 13])
def test_verify_inclusion_every_leaf_of_a_tree(log_anchor: Contract, size: int) -> None:
    verify = log_anchor.functions.verifyInclusion
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(size)]
    root = tree_hash(leaves)
    for index in range(size):
        proof = audit_path(index, leaves)
        assert verify(index, size, leaves[index], proof, root).call() is True
        assert verify(index, size, leaves[(index + 1) % size], proof, root).call() is (size == 1)
        if index ^ 1 < size:  # the sibling's index: same hashes, the other order
            assert verify(index ^ 1, size, leaves[index], proof, root).call() is False
        assert verify(index, size, leaves[index], proof, node_hash(root, root)).call() is False
        if proof:
            assert verify(index, size, leaves[index], proof[:-1], root).call() is False
    assert verify(size, size, leaves[0], [], root).call() is False
