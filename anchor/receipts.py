"""Receipts: one JSON document that proves an entry is in the log and the log is anchored.

A receipt (schema: ``anchor/schemas/receipt.schema.json``, JSON Schema draft 2020-12)::

    {"type": "LerAnchorReceipt", "version": 1,
     "entry": {"kind", "digest" (hex), "submitter" (DID), "bytes" (base64 canonical entry)},
     "leafIndex": n,
     "checkpoint": {"origin", "size", "root" (base64), "note" (the signed note),
                    "publicKey" (the log's verifier key, <name>+<id>+<base64 key>)},
     "inclusionProof": [base64 hashes, RFC 9162],
     "anchor": {"chain": "eip155:<id>", "contract", "transactionHash", "blockNumber",
                "blockHash", "logIndex", "blockTime" (ISO 8601 UTC)}}

:func:`build_receipt` makes one for a leaf from the anchored checkpoint with the smallest
size above the leaf whose anchor is ``included`` or ``final`` on the current chain (only
``final`` ones with ``final_only``); :func:`refresh_receipt` moves a receipt to the newest
anchored checkpoint (a later checkpoint covers every earlier entry; its new inclusion proof
implies consistency with the old one). :func:`verify_receipt` checks a receipt with the
receipt, the verifier's trust roots (:mod:`anchor.trust`: a receipt never vouches for its
own log key, chain or contract) and a chain endpoint; :func:`check_receipt` does the checks
that need no chain. Every failed check raises :class:`~anchor.errors.VerificationError`
whose ``what`` is ``schema``, ``entry``, ``checkpoint``, ``signature``, ``proof``, ``trust``
(:class:`~anchor.errors.UntrustedLog`), ``chain``, ``transaction``, ``block`` or ``event``.
An endpoint that does not answer raises :class:`~anchor.errors.ChainError` instead: the
receipt could not be checked, which is not the same as a receipt that does not verify.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from anchor import merkle
from anchor.chain import (
    ANCHORED_TOPIC,
    RECEIPT_STATUS_SUCCESS,
    AnchorRecord,
    ChainBackend,
    Web3Backend,
    anchor_covering,
    iso_time,
)
from anchor.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from anchor.entry import Entry, decode
from anchor.errors import (
    CheckpointFormatError,
    ConfigError,
    EncodingError,
    NotFound,
    StoreError,
    VerificationError,
    What,
)
from anchor.log import Log
from anchor.trust import Trust, TrustSet

RECEIPT_TYPE: Final = "LerAnchorReceipt"
"""The receipt's ``type`` member."""

RECEIPT_VERSION: Final = 1
"""The receipt format version this module writes and reads."""

SCHEMA_PACKAGE: Final = "anchor"
SCHEMA_PATH: Final = ("schemas", "receipt.schema.json")
"""Where the receipt's JSON Schema is shipped inside the package."""


@functools.cache
def receipt_schema() -> dict[str, Any]:
    """The receipt's JSON Schema (draft 2020-12), as shipped in the package."""
    resource = resources.files(SCHEMA_PACKAGE).joinpath(*SCHEMA_PATH)
    try:
        schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"the receipt schema is missing or malformed: {exc}", hint="reinstall the package"
        ) from exc
    return schema


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """What a verified receipt proves. ``confirmations`` is the anchor's depth when checked
    on chain (the including block counts as one), None after the offline checks only."""

    entry: Entry
    leaf_index: int
    checkpoint: Checkpoint
    log_key: str
    chain: str
    contract: str
    transaction_hash: str
    block_number: int
    block_hash: str
    log_index: int
    block_time: str
    confirmations: int | None


# ---- building ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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
    return {
        "type": RECEIPT_TYPE,
        "version": RECEIPT_VERSION,
        "entry": {
            "kind": entry.kind.label,
            "digest": entry.digest.hex(),
            "submitter": entry.submitter,
            "bytes": _b64(entry.encode()),
        },
        "leafIndex": index,
        "checkpoint": {
            "origin": signed.checkpoint.origin,
            "size": signed.size,
            "root": _b64(signed.root),
            "note": signed.note,
            "publicKey": log.verifier.vkey(),
        },
        "inclusionProof": [_b64(h) for h in proof],
        "anchor": {
            "chain": anchor.chain.caip2,
            "contract": anchor.chain.contract,
            "transactionHash": "0x" + anchor.tx_hash.hex(),
            "blockNumber": anchor.block_number,
            "blockHash": "0x" + anchor.block_hash.hex(),
            "logIndex": anchor.log_index,
            "blockTime": iso_time(anchor.block_time),
        },
    }


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


def refresh_receipt(log: Log, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """``receipt`` moved to the newest anchored checkpoint on the current chain.

    The receipt is checked first (offline) and its entry must be the log's leaf at its
    index. If no newer anchor exists the receipt comes back as a new receipt for the same
    checkpoint (anchored on the current chain)."""
    checked = check_receipt_proofs(receipt)
    if checked.log_key != log.verifier.vkey():
        raise VerificationError(
            "the receipt's checkpoint is signed by another key than this log's",
            what=What.TRUST,
            expected=log.verifier.vkey(),
            actual=checked.log_key,
        )
    stored = log.store.entries(checked.leaf_index, checked.leaf_index + 1)
    if not stored or stored[0].entry != checked.entry:
        raise VerificationError(
            f"leaf {checked.leaf_index} of this log is not the receipt's entry",
            what=What.ENTRY,
        )
    if checked.checkpoint.origin != log.origin:
        raise VerificationError(
            f"the receipt is for log {checked.checkpoint.origin!r}, not {log.origin!r}",
            what=What.CHECKPOINT,
        )
    anchor = anchor_covering(log.store, checked.leaf_index, newest=True)
    if anchor is None:
        raise NotFound(
            f"leaf {checked.leaf_index} is not covered by an anchor on the current chain",
            hint="retry after the next anchor is confirmed",
        )
    return _receipt(log, checked.leaf_index, anchor)


# ---- verification -----------------------------------------------------------------------------


def _fail(what: What, detail: str, **known: str) -> VerificationError:
    return VerificationError(detail, what=what, **known)


def _decode_b64(text: str, what: What, label: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(what, f"{label} is not valid base64") from None


def _verifier(key: str | NoteVerifier, what: What) -> NoteVerifier:
    if isinstance(key, NoteVerifier):
        return key
    try:
        return NoteVerifier.from_vkey(key)
    except CheckpointFormatError as exc:
        raise _fail(what, f"the log key is malformed: {exc.detail}") from None


def check_receipt(receipt: Mapping[str, Any], *, trust: Trust) -> ReceiptCheck:
    """The checks that need no chain: :func:`check_receipt_proofs`, then that the receipt's
    log (origin, verifier key), chain and contract are those of a log in ``trust`` (else
    :class:`~anchor.errors.UntrustedLog`, ``what`` ``trust``)."""
    checked = check_receipt_proofs(receipt)
    TrustSet.of(trust).check(checked)
    return checked


def check_receipt_proofs(receipt: Mapping[str, Any]) -> ReceiptCheck:
    """The receipt's internal consistency: schema, entry, checkpoint signed by the key the
    receipt names, inclusion proof. This says nothing about whose log it is (anyone can make
    such a receipt): a verdict needs :func:`check_receipt` with trust roots."""
    error = best_match(Draft202012Validator(receipt_schema()).iter_errors(receipt))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise _fail(
            What.SCHEMA, f"the receipt does not match its schema at {where}: {error.message}"
        )

    # The entry: its bytes decode to exactly the fields stated.
    doc = receipt["entry"]
    entry_bytes = _decode_b64(doc["bytes"], What.ENTRY, "entry bytes")
    try:
        entry = decode(entry_bytes)
    except EncodingError as exc:
        raise _fail(What.ENTRY, f"the entry bytes do not decode: {exc.detail}") from None
    stated = (doc["kind"], doc["digest"], doc["submitter"])
    actual = (entry.kind.label, entry.digest.hex(), entry.submitter)
    if stated != actual:
        raise _fail(
            What.ENTRY,
            "the entry bytes do not match the entry's kind, digest and submitter",
            expected=" ".join(actual),
            actual=" ".join(stated),
        )

    # The checkpoint: a note signed by the log key given, saying what the receipt says.
    cp = receipt["checkpoint"]
    verifier = _verifier(cp["publicKey"], What.CHECKPOINT)
    try:
        checkpoint = open_checkpoint(cp["note"], verifier)
    except CheckpointFormatError as exc:
        raise _fail(What.CHECKPOINT, f"the checkpoint note is malformed: {exc.detail}") from None
    except VerificationError as exc:
        what = What.SIGNATURE if exc.what == What.SIGNATURE else What.CHECKPOINT
        raise _fail(what, f"the checkpoint note does not verify: {exc.detail}") from None
    root = _decode_b64(cp["root"], What.CHECKPOINT, "checkpoint root")
    if (checkpoint.origin, checkpoint.size, checkpoint.root) != (cp["origin"], cp["size"], root):
        raise _fail(
            What.CHECKPOINT,
            "the checkpoint's origin, size or root differ from its signed note",
            expected=f"{checkpoint.origin} {checkpoint.size} {_b64(checkpoint.root)}",
            actual=f"{cp['origin']} {cp['size']} {cp['root']}",
        )

    # The inclusion proof: from the entry's leaf hash up to the signed root.
    index = receipt["leafIndex"]
    proof = [
        _decode_b64(p, What.PROOF, "an inclusion proof hash") for p in receipt["inclusionProof"]
    ]
    try:
        merkle.verify_inclusion(index, checkpoint.size, merkle.leaf_hash(entry_bytes), proof, root)
    except VerificationError as exc:
        raise _fail(
            What.PROOF,
            f"the inclusion proof of leaf {index} does not lead to the checkpoint root: "
            f"{exc.detail}",
        ) from None

    anchor = receipt["anchor"]
    return ReceiptCheck(
        entry=entry,
        leaf_index=index,
        checkpoint=checkpoint,
        log_key=verifier.vkey(),
        chain=anchor["chain"],
        contract=anchor["contract"],
        transaction_hash=anchor["transactionHash"],
        block_number=anchor["blockNumber"],
        block_hash=anchor["blockHash"],
        log_index=anchor["logIndex"],
        block_time=anchor["blockTime"],
        confirmations=None,
    )


async def verify_receipt(
    receipt: Mapping[str, Any],
    chain: str | ChainBackend,
    *,
    trust: Trust,
    min_confirmations: int = 1,
) -> ReceiptCheck:
    """Check ``receipt`` completely: :func:`check_receipt` against ``trust``, then on the
    chain (a JSON-RPC
    URL, or a backend) that the transaction succeeded, sits in block ``blockNumber`` whose
    canonical hash is ``blockHash`` and which is at least ``min_confirmations`` deep and
    was made at ``blockTime``, and emitted at ``logIndex`` the ``Anchored`` event of the
    named contract for exactly the checkpoint's root and size."""
    checked = check_receipt(receipt, trust=trust)
    if isinstance(chain, str):
        backend: ChainBackend = await Web3Backend.connect(chain)
        try:
            return await _verify_on_chain(checked, backend, min_confirmations)
        finally:
            await backend.close()
    return await _verify_on_chain(checked, chain, min_confirmations)


async def _verify_on_chain(
    checked: ReceiptCheck, backend: ChainBackend, min_confirmations: int
) -> ReceiptCheck:
    chain_id = await backend.chain_id()
    if checked.chain != f"eip155:{chain_id}":
        raise _fail(
            What.CHAIN,
            f"the receipt is for chain {checked.chain}, the endpoint serves eip155:{chain_id}",
            expected=checked.chain,
            actual=f"eip155:{chain_id}",
        )
    tx_hash = bytes.fromhex(checked.transaction_hash[2:])
    tx = await backend.transaction_receipt(tx_hash)
    if tx is None:
        raise _fail(
            What.TRANSACTION,
            f"transaction {checked.transaction_hash} is not in the canonical chain",
        )
    if tx.status != RECEIPT_STATUS_SUCCESS:
        raise _fail(What.TRANSACTION, f"transaction {checked.transaction_hash} reverted")
    stated_hash = bytes.fromhex(checked.block_hash[2:])
    if tx.block_number != checked.block_number or tx.block_hash != stated_hash:
        raise _fail(
            What.BLOCK,
            f"the transaction is in block {tx.block_number}, not in the receipt's block",
            expected=f"{checked.block_number} {checked.block_hash}",
            actual=f"{tx.block_number} 0x{tx.block_hash.hex()}",
        )
    block = await backend.block(checked.block_number)
    if block is None or block.hash != stated_hash:
        raise _fail(What.BLOCK, f"block {checked.block_number} is not canonical any more")
    head = await backend.block("latest")
    depth = 0 if head is None else head.number - block.number + 1
    if depth < min_confirmations:
        raise _fail(
            What.BLOCK,
            f"block {block.number} has {depth} confirmations, fewer than {min_confirmations}",
            hint="retry later",
        )
    if iso_time(block.timestamp) != checked.block_time:
        raise _fail(
            What.BLOCK,
            "the block time differs from the receipt's",
            expected=checked.block_time,
            actual=iso_time(block.timestamp),
        )
    event = next((e for e in tx.logs if e.log_index == checked.log_index), None)
    if event is None:
        raise _fail(
            What.EVENT, f"the transaction emitted no event at log index {checked.log_index}"
        )
    size = checked.checkpoint.size
    if (
        event.address.lower() != checked.contract.lower()
        or len(event.topics) < 3
        or event.topics[0] != ANCHORED_TOPIC
        or event.topics[1] != checked.checkpoint.root
        or int.from_bytes(event.topics[2], "big") != size
    ):
        raise _fail(
            What.EVENT,
            f"event {checked.log_index} is not Anchored(root, {size}) from {checked.contract}",
        )
    return dataclasses.replace(checked, confirmations=depth)
