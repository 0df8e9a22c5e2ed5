"""Helpers for the contract tests: deploy, send signed transactions, expect custom errors."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_utils.abi import function_signature_to_4byte_selector
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError
from web3.types import BlockIdentifier, TxReceipt

from anchor.chain.contracts import deploy, load_artifact
from helpers.anvil import EvmChain

RECEIPT_TIMEOUT_SECONDS = 30
RECEIPT_SUCCESS = 1
RECEIPT_FAILURE = 0


def deploy_contract(chain: EvmChain, name: str, deployer: LocalAccount) -> Contract:
    """Deploy artifact ``name`` with ``deployer`` and return a bound contract object."""
    artifact = load_artifact(name)
    deployment = deploy(chain.w3, artifact, deployer)
    return chain.w3.eth.contract(address=deployment.address, abi=artifact.abi)


def send(
    chain: EvmChain,
    account: LocalAccount,
    call: ContractFunction,
    *,
    gas: int | None = None,
    expect_status: int = RECEIPT_SUCCESS,
) -> TxReceipt:
    """Sign ``call`` with ``account``, send it, wait for it and check the receipt status.

    With ``gas`` given no estimate is made, so a reverting transaction is really mined.
    Otherwise gas is estimated against the *pending* block: an estimate against ``latest``
    (web3's default) runs with the latest block's number, so a write of ``block.number`` that
    the next block will change (ERC-1056 ``changed``) looks free there and the estimate falls
    short (seen on anvil 1.7.1: 33,953 estimated, 34,557 needed). eth-tester has no
    ``pending`` estimate but estimates on top of the latest block already.
    """
    w3 = chain.w3
    if gas is None:
        block: BlockIdentifier | None = None if chain.anvil is None else "pending"
        gas = call.estimate_gas({"from": account.address}, block_identifier=block)
    params: dict[str, Any] = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        "gas": gas,
    }
    transaction = call.build_transaction(params)  # type: ignore[arg-type]
    signed = account.sign_transaction(transaction)  # type: ignore[arg-type]
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_SECONDS)
    assert receipt["status"] == expect_status, receipt
    return receipt


def custom_error_data(signature: str, types: list[str], values: list[Any]) -> str:
    """Revert data of a Solidity custom error, e.g. ``("NotOwner(address)", ["address"], [a])``."""
    selector = function_signature_to_4byte_selector(signature)
    return "0x" + (selector + encode(types, values)).hex()


def revert_data(exc: BaseException) -> str:
    """The revert data (``0x`` hex) carried by a failed call on either kind of chain.

    Over JSON-RPC (anvil) web3 raises ``ContractCustomError`` with the data. On the embedded
    chain eth-tester raises ``TransactionFailed(str(Revert(data)))``, i.e. the ``repr`` of the
    data bytes as text (which web3's provider wraps once more): parse it back.
    """
    if isinstance(exc, ContractCustomError):
        assert isinstance(exc.data, str)
        return exc.data
    original = exc.__context__ if exc.__context__ is not None else exc
    assert isinstance(original, TransactionFailed), exc
    raw = ast.literal_eval(original.args[0])
    assert isinstance(raw, bytes), raw
    return "0x" + raw.hex()


@contextlib.contextmanager
def reverts_with(signature: str, types: list[str], values: list[Any]) -> Iterator[None]:
    """Expect the block to revert with exactly this custom error and arguments."""
    with pytest.raises((ContractCustomError, TransactionFailed)) as caught:
        yield
    assert revert_data(caught.value) == custom_error_data(signature, types, values)
