"""The anvil test helper (tests/helpers/anvil.py) against real anvil processes."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from helpers.anvil import (
    AnvilError,
    AnvilNode,
    find_anvil,
    running_anvil,
)
from web3.exceptions import TransactionNotFound

pytestmark = pytest.mark.anvil

ANVIL_CHAIN_ID = 31337
FIRST_ANVIL_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
"""Published first account of anvil's default mnemonic."""
FIRST_ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEFAULT_BALANCE_WEI = 10_000 * 10**18
TRANSFER_GAS = 21_000
MAX_FEE_WEI = 10**11
PRIORITY_FEE_WEI = 10**9


def transfer(node: AnvilNode, sender: LocalAccount, nonce: int) -> SignedTransaction:
    """A signed 1-wei transfer from ``sender`` to the second account."""
    return sender.sign_transaction(
        {
            "type": 2,
            "chainId": node.chain_id,
            "nonce": nonce,
            "to": node.accounts[1].address,
            "value": 1,
            "gas": TRANSFER_GAS,
            "maxFeePerGas": MAX_FEE_WEI,
            "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
        }
    )


def test_session_node_has_the_default_funded_accounts(anvil: AnvilNode) -> None:
    assert anvil.chain_id == ANVIL_CHAIN_ID
    assert anvil.rpc_url == f"http://127.0.0.1:{anvil.port}"
    assert len(anvil.accounts) == len(anvil.private_keys) == 10
    assert anvil.accounts[0].address == FIRST_ANVIL_ADDRESS
    assert anvil.private_keys[0] == FIRST_ANVIL_KEY
    w3 = anvil.web3()
    assert w3.eth.chain_id == ANVIL_CHAIN_ID
    for account in anvil.accounts:
        assert w3.eth.get_balance(account.address) >= DEFAULT_BALANCE_WEI // 2
    assert anvil.rpc("eth_accounts")[0].lower() == FIRST_ANVIL_ADDRESS.lower()


def test_snapshot_and_revert(anvil: AnvilNode) -> None:
    start = anvil.block_number()
    snapshot = anvil.snapshot()
    anvil.mine(3)
    assert anvil.block_number() == start + 3
    anvil.revert(snapshot)
    assert anvil.block_number() == start
    with pytest.raises(AnvilError):
        anvil.revert(snapshot)  # a snapshot is used up by reverting to it


def test_rpc_errors_are_raised(anvil: AnvilNode) -> None:
    with pytest.raises(AnvilError, match="no_such_method"):
        anvil.rpc("no_such_method")


def test_manual_mining_and_dropping_transactions(
    anvil_factory: Callable[..., AnvilNode],
) -> None:
    node = anvil_factory("--no-mining")
    assert node.port != 0
    w3 = node.web3()
    sender = node.accounts[0]
    start = node.block_number()

    kept = transfer(node, sender, 0)
    w3.eth.send_raw_transaction(kept.raw_transaction)
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(kept.hash)
    node.mine()
    assert w3.eth.get_transaction_receipt(kept.hash)["blockNumber"] == start + 1

    dropped = transfer(node, sender, 1)
    w3.eth.send_raw_transaction(dropped.raw_transaction)
    node.drop_transaction(dropped.hash.to_0x_hex())
    node.mine()
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(dropped.hash)
    assert w3.eth.get_transaction_count(sender.address) == 1

    node.set_automine(True)
    again = transfer(node, sender, 1)
    w3.eth.send_raw_transaction(again.raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(again.hash, timeout=10)["status"] == 1


def test_reorg_replaces_blocks_and_drops_their_transactions(
    anvil_factory: Callable[..., AnvilNode],
) -> None:
    node = anvil_factory()
    w3 = node.web3()
    sender = node.accounts[0]
    first = transfer(node, sender, 0)
    w3.eth.send_raw_transaction(first.raw_transaction)
    included = w3.eth.wait_for_transaction_receipt(first.hash, timeout=10)
    node.mine(2)
    height = node.block_number()
    old_hash = w3.eth.get_block(included["blockNumber"])["hash"]

    replacement = transfer(node, sender, 0)
    node.reorg(3, [(replacement.raw_transaction.to_0x_hex(), 1)])

    assert node.block_number() == height
    assert w3.eth.get_block(included["blockNumber"])["hash"] != old_hash
    # Same nonce, so the same signed bytes: included again, one block later.
    assert w3.eth.get_transaction_receipt(replacement.hash)["blockNumber"] == (
        included["blockNumber"] + 1
    )


def test_stop_ends_the_process_and_closes_the_port() -> None:
    with running_anvil("--block-time", "1") as node:
        port = node.port
        assert node.web3().eth.chain_id == ANVIL_CHAIN_ID
    assert node.process.poll() is not None
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe,
        pytest.raises(ConnectionRefusedError),
    ):
        probe.connect(("127.0.0.1", port))  # nothing listens any more
    node.stop()  # idempotent


def test_bad_flags_fail_with_anvil_output(anvil_factory: Callable[..., AnvilNode]) -> None:
    with pytest.raises(AnvilError, match="--no-such-flag"):
        anvil_factory("--no-such-flag")


def test_missing_install_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import helpers.anvil as anvil_module

    monkeypatch.setattr(anvil_module, "ANVIL_WRAPPER", anvil_module.NODE_MODULES / "absent")
    with pytest.raises(AnvilError, match=r"npm ci --prefix contracts"):
        find_anvil()
