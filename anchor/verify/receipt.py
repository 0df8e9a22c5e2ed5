"""Verifying a receipt completely: offline against the verifier's trust roots, then its anchor
on the chain (I/O: a few JSON-RPC calls).

:class:`ReceiptVerifier`, built with its trust roots (:mod:`anchor.core.trust`: a receipt
never vouches for its own log key, chain or contract) and a chain backend, is the one entry
point: :meth:`ReceiptVerifier.verify` takes a parsed :class:`~anchor.core.receipt.Receipt`,
runs its offline check (:meth:`~anchor.core.receipt.Receipt.check`), then asks the chain
that the transaction succeeded, sits in the block the receipt names, which is canonical, deep
enough and made at the time stated, and emitted the ``Anchored`` event of the named contract
for exactly the checkpoint's root and size. :func:`verify_receipt` does the same for a
receipt document (or a parsed one) and a chain given by JSON-RPC URL or backend.

Every failed check raises :class:`~anchor.errors.VerificationError` whose ``what`` is one of
the offline check's (``schema``, ``entry``, ``checkpoint``, ``signature``, ``proof``,
``trust``) or ``chain``, ``transaction``, ``block`` or ``event``. An endpoint that does not
answer raises :class:`~anchor.errors.ChainError` instead: the receipt could not be checked,
which is not the same as a receipt that does not verify.

Cost: the offline check (one Ed25519 verification, at most 65 hashes) and four JSON-RPC
reads (chain id, transaction receipt, the block, the head).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anchor.chain import (
    ANCHORED_TOPIC,
    RECEIPT_STATUS_SUCCESS,
    ChainBackend,
    Web3Backend,
    iso_time,
)
from anchor.core.receipt import Receipt
from anchor.core.trust import Trust, TrustRoot
from anchor.errors import InvalidInput, VerificationError, What


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a verified receipt proves: the receipt, the trusted root of its log, and how deep
    its anchor's block was when checked (the including block counts as one)."""

    receipt: Receipt
    root: TrustRoot
    confirmations: int


def _fail(what: What, detail: str, **known: str) -> VerificationError:
    return VerificationError(detail, what=what, **known)


@dataclass(frozen=True, slots=True)
class ReceiptVerifier:
    """Verifies receipts against ``trust`` (one trusted log or several) on ``chain``,
    requiring their anchor's block to be at least ``min_confirmations`` deep."""

    trust: Trust
    chain: ChainBackend
    min_confirmations: int = 1

    def __post_init__(self) -> None:
        if self.min_confirmations < 1:
            raise InvalidInput("min_confirmations must be at least 1")

    def check(self, receipt: Receipt) -> TrustRoot:
        """The offline check alone (:meth:`Receipt.check <anchor.core.receipt.Receipt.check>`):
        the receipt's trusted root."""
        return receipt.check(self.trust)

    async def verify(self, receipt: Receipt) -> VerifiedReceipt:
        """The offline check, then the anchor on the chain (see the module docstring)."""
        root = receipt.check(self.trust)
        depth = await self._on_chain(receipt)
        return VerifiedReceipt(receipt, root, depth)

    async def _on_chain(self, receipt: Receipt) -> int:
        """The anchor's depth, once the chain holds it as the receipt says."""
        anchor = receipt.anchor
        backend = self.chain
        chain_id = await backend.chain_id()
        if anchor.chain != f"eip155:{chain_id}":
            raise _fail(
                What.CHAIN,
                f"the receipt is for chain {anchor.chain}, the endpoint serves eip155:{chain_id}",
                expected=anchor.chain,
                actual=f"eip155:{chain_id}",
            )
        tx = await backend.transaction_receipt(anchor.transaction_hash)
        if tx is None:
            raise _fail(
                What.TRANSACTION,
                f"transaction {anchor.transaction_hex} is not in the canonical chain",
            )
        if tx.status != RECEIPT_STATUS_SUCCESS:
            raise _fail(What.TRANSACTION, f"transaction {anchor.transaction_hex} reverted")
        if tx.block_number != anchor.block_number or tx.block_hash != anchor.block_hash:
            raise _fail(
                What.BLOCK,
                f"the transaction is in block {tx.block_number}, not in the receipt's block",
                expected=f"{anchor.block_number} {anchor.block_hash_hex}",
                actual=f"{tx.block_number} 0x{tx.block_hash.hex()}",
            )
        block = await backend.block(anchor.block_number)
        if block is None or block.hash != anchor.block_hash:
            raise _fail(What.BLOCK, f"block {anchor.block_number} is not canonical any more")
        head = await backend.block("latest")
        depth = 0 if head is None else head.number - block.number + 1
        if depth < self.min_confirmations:
            raise _fail(
                What.BLOCK,
                f"block {block.number} has {depth} confirmations, fewer than "
                f"{self.min_confirmations}",
                hint="retry later",
            )
        if iso_time(block.timestamp) != anchor.block_time:
            raise _fail(
                What.BLOCK,
                "the block time differs from the receipt's",
                expected=anchor.block_time,
                actual=iso_time(block.timestamp),
            )
        event = next((e for e in tx.logs if e.log_index == anchor.log_index), None)
        if event is None:
            raise _fail(
                What.EVENT, f"the transaction emitted no event at log index {anchor.log_index}"
            )
        checkpoint = receipt.checkpoint
        size = checkpoint.size
        if (
            event.address.lower() != anchor.contract.lower()
            or len(event.topics) < 3
            or event.topics[0] != ANCHORED_TOPIC
            or event.topics[1] != checkpoint.root
            or int.from_bytes(event.topics[2], "big") != size
        ):
            raise _fail(
                What.EVENT,
                f"event {anchor.log_index} is not Anchored(root, {size}) from {anchor.contract}",
            )
        return depth


async def verify_receipt(
    receipt: Receipt | Mapping[str, Any],
    chain: str | ChainBackend,
    *,
    trust: Trust,
    min_confirmations: int = 1,
) -> VerifiedReceipt:
    """:meth:`ReceiptVerifier.verify` for a receipt document (parsed here) or a parsed
    receipt, on a chain given by JSON-RPC URL (connected after the offline check holds, and
    closed) or by backend."""
    parsed = receipt if isinstance(receipt, Receipt) else Receipt.parse(receipt)
    if not isinstance(chain, str):
        return await ReceiptVerifier(trust, chain, min_confirmations).verify(parsed)
    parsed.check(trust)  # a receipt that does not hold needs no connection
    backend = await Web3Backend.connect(chain)
    try:
        return await ReceiptVerifier(trust, backend, min_confirmations).verify(parsed)
    finally:
        await backend.close()
