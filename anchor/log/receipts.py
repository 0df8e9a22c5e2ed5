"""Receipts on the service's side: built from the log and the anchor ledger (I/O: reads the
log's store).

A receipt (the document and its typed form :class:`~anchor.core.receipt.Receipt`, see
:mod:`anchor.core.receipt`) proves that an entry is in the log and that a checkpoint covering
it is anchored on chain. :func:`build_receipt` makes one for a leaf from the anchored
checkpoint with the smallest size above the leaf whose anchor is ``included`` or ``final`` on
the current chain (only ``final`` ones with ``final_only``); :func:`receipt_for_digest` finds
the leaf by digest; :func:`refresh_receipt` moves a receipt to the newest anchored checkpoint
(a later checkpoint covers every earlier entry; its new inclusion proof implies consistency
with the old one). Verifying a receipt is the verifier's side: :mod:`anchor.verify.receipt`.

Cost: a receipt reads one leaf, one signed checkpoint, one anchor and the ``O(log n)`` node
hashes of its inclusion proof (verified against the signed root before it is handed out).
"""

from __future__ import annotations

from typing import Any

from anchor.chain import AnchorRecord, anchor_covering, iso_time
from anchor.core.receipt import Receipt, receipt_document
from anchor.errors import NotFound, StoreError, VerificationError, What
from anchor.log.log import Log


def _receipt(log: Log, index: int, anchor: AnchorRecord) -> dict[str, Any]:
    stored = log.store.entries(index, index + 1)
    if not stored:
        raise NotFound(f"the log has no leaf {index}")
    signed = log.checkpoint_at(anchor.size)
    if signed is None or signed.root != anchor.root:
        raise StoreError(
            f"anchor {anchor.id} is for tree size {anchor.size}, which has no matching signed "
            "checkpoint",
            hint="the database is inconsistent; restore it from a backup",
        )
    if anchor.tx_hash is None or anchor.block_hash is None:
        raise StoreError(f"anchor {anchor.id} is {anchor.state} but has no transaction")
    if anchor.block_number is None or anchor.log_index is None or anchor.block_time is None:
        raise StoreError(f"anchor {anchor.id} is {anchor.state} but has no block")
    entry = stored[0].entry
    # verified against the signed root, the leaf hash recomputed from the stored entry
    proof, _leaf = log.verified_inclusion(index, anchor.size, signed.root)
    return receipt_document(
        entry=entry,
        leaf_index=index,
        checkpoint=signed.checkpoint,
        note=signed.note,
        public_key=log.verifier.vkey(),
        proof=proof,
        anchor={
            "chain": anchor.chain.caip2,
            "contract": anchor.chain.contract,
            "transactionHash": "0x" + anchor.tx_hash.hex(),
            "blockNumber": anchor.block_number,
            "blockHash": "0x" + anchor.block_hash.hex(),
            "logIndex": anchor.log_index,
            "blockTime": iso_time(anchor.block_time),
        },
    )


def build_receipt(log: Log, index: int, *, final_only: bool = False) -> dict[str, Any]:
    """The receipt of leaf ``index``: the smallest anchored checkpoint above it whose anchor
    is included (or, with ``final_only``, final) on the current chain.

    Raises :class:`NotFound` when no such anchor exists yet."""
    if index < 0:
        raise NotFound(f"there is no leaf {index}")
    anchor = anchor_covering(log.store, index, final_only=final_only)
    if anchor is None:
        state = "final" if final_only else "included"
        raise NotFound(
            f"leaf {index} is not covered by an anchor {state} on the current chain yet",
            hint="retry after the next anchor is confirmed (see GET /v1/anchors)",
        )
    return _receipt(log, index, anchor)


def receipt_for_digest(
    log: Log, digest: bytes, submitter: str, *, final_only: bool = False
) -> dict[str, Any]:
    """The receipt of the entry with ``digest`` submitted by ``submitter``."""
    found = log.find(digest, submitter)  # in the failed state: IntegrityFailure, not 404
    if not found:
        raise NotFound(f"no entry with digest {digest.hex()} from {submitter}")
    return build_receipt(log, found[0].index, final_only=final_only)


def refresh_receipt(log: Log, receipt: Receipt) -> dict[str, Any]:
    """``receipt`` moved to the newest anchored checkpoint on the current chain.

    The receipt's proofs are checked first (offline) and its entry must be the log's leaf at
    its index. If no newer anchor exists the receipt comes back as a new receipt for the same
    checkpoint (anchored on the current chain)."""
    receipt.check_proofs()
    if receipt.log_key != log.verifier.vkey():
        raise VerificationError(
            "the receipt's checkpoint is signed by another key than this log's",
            what=What.TRUST,
            expected=log.verifier.vkey(),
            actual=receipt.log_key,
        )
    stored = log.store.entries(receipt.leaf_index, receipt.leaf_index + 1)
    if not stored or stored[0].entry != receipt.entry:
        raise VerificationError(
            f"leaf {receipt.leaf_index} of this log is not the receipt's entry",
            what=What.ENTRY,
        )
    if receipt.checkpoint.origin != log.origin:
        raise VerificationError(
            f"the receipt is for log {receipt.checkpoint.origin!r}, not {log.origin!r}",
            what=What.CHECKPOINT,
        )
    anchor = anchor_covering(log.store, receipt.leaf_index, newest=True)
    if anchor is None:
        raise NotFound(
            f"leaf {receipt.leaf_index} is not covered by an anchor on the current chain",
            hint="retry after the next anchor is confirmed",
        )
    return _receipt(log, receipt.leaf_index, anchor)
