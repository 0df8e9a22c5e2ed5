"""Receipts: built from anchored checkpoints, valid against their JSON Schema, parsed strictly
into typed values and written back byte for byte, verified on the embedded chain and on anvil,
refused after any single change, refreshed to later anchors."""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers.anvil import AnvilNode
from helpers.chain import (
    CHAINS,
    EMBEDDED,
    RECEIPT_MUTATIONS,
    SUBMITTER,
    Chain,
    assert_receipt_sound,
    entry,
    open_chain,
    open_log,
    trust_root,
    wait_for,
)

from anchor.chain import AnchorState, ChainClient, list_anchors
from anchor.core.checkpoint import Checkpoint, NoteSigner
from anchor.core.receipt import Receipt, receipt_schema
from anchor.core.trust import TrustSet
from anchor.errors import NotFound, UntrustedLog, VerificationError, What
from anchor.log.log import Log
from anchor.log.receipts import build_receipt, receipt_for_digest, refresh_receipt
from anchor.verify.receipt import verify_receipt

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "anchor" / "schemas" / "receipt.schema.json"


@dataclass
class Anchored:
    """A log of 8 entries with final anchors at sizes 5 and 8 on ``chain``."""

    chain: Chain
    log: Log
    client: ChainClient


async def anchor_now(anchored: Anchored) -> None:
    checkpoint = anchored.log.checkpoint()
    await anchored.client.enqueue(checkpoint.size, checkpoint.root)

    async def final() -> bool:
        await anchored.client.step()
        return all(a.state is AnchorState.FINAL for a in list_anchors(anchored.log.store))

    await wait_for(final, what=f"tree size {checkpoint.size} to be anchored")


@contextlib.asynccontextmanager
async def anchored_log(
    name: str, anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> AsyncIterator[Anchored]:
    chain = await open_chain(name, anvil_factory)
    log = open_log(tmp_path / "db")
    client = await chain.client(log.store)
    result = Anchored(chain, log, client)
    try:
        log.append([entry(i) for i in range(5)])
        await anchor_now(result)
        log.append([entry(i) for i in range(5, 8)])
        await anchor_now(result)
        yield result
    finally:
        await client.close()
        log.store.close()
        await chain.close()


@pytest.fixture(params=CHAINS)
async def anchored(
    request: pytest.FixtureRequest, anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> AsyncIterator[Anchored]:
    async with anchored_log(request.param, anvil_factory, tmp_path) as result:
        yield result


@pytest.fixture
async def on_embedded(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> AsyncIterator[Anchored]:
    """:func:`anchored` on the embedded chain only (for checks that need no chain)."""
    async with anchored_log(EMBEDDED, anvil_factory, tmp_path) as result:
        yield result


def mutated(receipt: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(receipt)
    change(copied)
    return copied


def flip_signature(r: dict[str, Any]) -> None:
    """One bit of the checkpoint note's signature flipped."""
    note: str = r["checkpoint"]["note"]
    head, _, signature = note.rpartition(" ")
    raw = bytearray(base64.b64decode(signature.strip()))
    raw[-1] ^= 1
    r["checkpoint"]["note"] = f"{head} {base64.b64encode(bytes(raw)).decode()}\n"


async def refused(receipt: dict[str, Any], chain: Chain, **options: Any) -> str:
    """The ``what`` of the VerificationError that verifying ``receipt`` raises (against the
    chain's trust root unless ``trust`` is given)."""
    options.setdefault("trust", await trust_root(chain))
    with pytest.raises(VerificationError) as caught:
        await verify_receipt(receipt, chain.backend, **options)
    return caught.value.what


# ---- the document ----------------------------------------------------------------------------


def test_the_schema_is_valid_draft_2020_12_and_shipped() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert receipt_schema() == schema


async def test_receipts_have_the_documented_shape(anchored: Anchored) -> None:
    log = anchored.log
    receipt = build_receipt(log, 6)
    jsonschema.Draft202012Validator(receipt_schema()).validate(receipt)
    assert (receipt["type"], receipt["version"], receipt["leafIndex"]) == (
        "LerAnchorReceipt",
        1,
        6,
    )
    stored = entry(6)
    assert receipt["entry"] == {
        "kind": "credential",
        "digest": stored.digest.hex(),
        "submitter": SUBMITTER,
        "bytes": base64.b64encode(stored.encode()).decode(),
    }
    checkpoint = log.checkpoint_at(8)
    assert checkpoint is not None
    assert receipt["checkpoint"] == {
        "origin": log.origin,
        "size": 8,
        "root": base64.b64encode(checkpoint.root).decode(),
        "note": checkpoint.note,
        "publicKey": log.verifier.vkey(),
    }
    proof = [base64.b64encode(h).decode() for h in log.store.inclusion_proof(6, 8)]
    assert receipt["inclusionProof"] == proof
    anchor = receipt["anchor"]
    assert anchor["chain"] == f"eip155:{await anchored.chain.backend.chain_id()}"
    assert anchor["contract"] == anchored.chain.contract
    block = await anchored.chain.backend.block(anchor["blockNumber"])
    assert block is not None
    assert anchor["blockHash"] == "0x" + block.hash.hex()
    assert anchor["blockTime"].endswith("Z")
    json.dumps(receipt)  # plain JSON
    await assert_receipt_sound(receipt, anchored.chain)
    trust = await trust_root(anchored.chain, log)
    check = await verify_receipt(receipt, anchored.chain.backend, trust=trust)
    parsed = check.receipt
    assert (parsed.leaf_index, parsed.checkpoint.size, parsed.entry) == (6, 8, stored)
    assert check.confirmations >= 1


async def test_the_smallest_anchored_checkpoint_covers_a_leaf(anchored: Anchored) -> None:
    log = anchored.log
    assert build_receipt(log, 0)["checkpoint"]["size"] == 5
    assert build_receipt(log, 4)["checkpoint"]["size"] == 5
    assert build_receipt(log, 5)["checkpoint"]["size"] == 8
    assert build_receipt(log, 7, final_only=True)["checkpoint"]["size"] == 8
    log.append([entry(8)])
    with pytest.raises(NotFound):
        build_receipt(log, 8)  # not anchored yet
    with pytest.raises(NotFound):
        build_receipt(log, -1)
    by_digest = receipt_for_digest(log, entry(3).digest, SUBMITTER)
    assert by_digest == build_receipt(log, 3)
    with pytest.raises(NotFound):
        receipt_for_digest(log, entry(3).digest, "did:web:someone-else.example")
    for index in range(8):
        await assert_receipt_sound(build_receipt(log, index), anchored.chain)


async def test_every_single_change_is_refused(anchored: Anchored) -> None:
    receipt = build_receipt(anchored.log, 2)
    await assert_receipt_sound(receipt, anchored.chain)
    chain = anchored.chain
    other_signer = NoteSigner(anchored.log.origin, hashlib.sha256(b"another key").digest())
    size, root = receipt["checkpoint"]["size"], base64.b64decode(receipt["checkpoint"]["root"])
    forged_note = Checkpoint(anchored.log.origin, size, root).sign(other_signer)

    def forged_by_another_key(r: dict[str, Any]) -> None:
        r["checkpoint"]["note"] = forged_note

    def resigned_with_its_key(r: dict[str, Any]) -> None:
        r["checkpoint"]["note"] = forged_note
        r["checkpoint"]["publicKey"] = other_signer.verifier.vkey()

    cases: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
        ("kind", lambda r: r["entry"].update(kind="status-list"), "entry"),
        ("submitter", lambda r: r["entry"].update(submitter="did:web:x.example"), "entry"),
        ("undecodable entry", lambda r: r["entry"].update(bytes="AAAA"), "entry"),
        ("leaf index", lambda r: r.update(leafIndex=3), "proof"),
        ("proof too short", lambda r: r["inclusionProof"].pop(), "proof"),
        ("size", lambda r: r["checkpoint"].update(size=size + 1), "checkpoint"),
        ("origin", lambda r: r["checkpoint"].update(origin="other.example/log"), "checkpoint"),
        ("signature", flip_signature, "signature"),
        ("note by another key", forged_by_another_key, "signature"),
        ("chain", lambda r: r["anchor"].update(chain="eip155:1"), "trust"),
        ("block number", lambda r: r["anchor"].update(blockNumber=0), "block"),
        ("block time", lambda r: r["anchor"].update(blockTime="2000-01-01T00:00:00Z"), "block"),
        ("log index", lambda r: r["anchor"].update(logIndex=7), "event"),
        ("contract", lambda r: r["anchor"].update(contract="0x" + "12" * 20), "trust"),
        ("missing member", lambda r: r.pop("anchor"), "schema"),
        ("extra member", lambda r: r.update(note="hello"), "schema"),
        ("wrong type", lambda r: r.update(leafIndex="2"), "schema"),
        ("wrong version", lambda r: r.update(version=2), "schema"),
    ]
    for label, change, what in cases:
        assert await refused(mutated(receipt, change), chain) == what, label
    # Self-consistent, but signed by a key other than the log's: only trust tells.
    forged = mutated(receipt, resigned_with_its_key)
    forged_root = dataclasses.replace(
        await trust_root(chain), verifier_key=other_signer.verifier.vkey()
    )
    await verify_receipt(forged, chain.backend, trust=forged_root)
    assert await refused(forged, chain) == "trust"
    # The chain the receipt names is the trusted one, but not the endpoint's.
    elsewhere = mutated(receipt, lambda r: r["anchor"].update(chain="eip155:1"))
    on_one = dataclasses.replace(await trust_root(chain), chain="eip155:1")
    assert await refused(elsewhere, chain, trust=on_one) == "chain"
    assert await refused(receipt, chain, min_confirmations=1_000) == "block"
    # Another contract, trusted: the event is not from it.
    renamed = mutated(receipt, lambda r: r["anchor"].update(contract="0x" + "12" * 20))
    other_contract = dataclasses.replace(await trust_root(chain), contract="0x" + "12" * 20)
    assert await refused(renamed, chain, trust=other_contract) == "event"
    # Another anchor's transaction: a real Anchored event, but not for this checkpoint.
    other = build_receipt(anchored.log, 6)["anchor"]
    moved = mutated(receipt, lambda r: r["anchor"].update(other))
    assert await refused(moved, chain) == "event"


async def test_a_reverted_transaction_is_refused(anchored: Anchored) -> None:
    chain = anchored.chain
    receipt = build_receipt(anchored.log, 1)
    # An unauthorised anchor, sent without a pre-flight: mined, and reverted.
    reverted = await chain.send_call(
        chain.other_key, "anchor", ["bytes32", "uint64"], [hashlib.sha256(b"x").digest(), 99]
    )
    status = await chain.backend.transaction_receipt(reverted)
    assert status is not None
    assert status.status == 0
    changed = mutated(receipt, lambda r: r["anchor"].update(transactionHash="0x" + reverted.hex()))
    assert await refused(changed, chain) == "transaction"


@pytest.mark.anvil
async def test_a_receipt_verifies_against_a_json_rpc_url(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> None:
    chain = await open_chain("anvil", anvil_factory)
    assert chain.node is not None
    log = open_log(tmp_path / "db")
    client = await chain.client(log.store)
    anchored = Anchored(chain, log, client)
    try:
        log.append([entry(i) for i in range(3)])
        await anchor_now(anchored)
        receipt = build_receipt(log, 2)
        trust = await trust_root(chain, log)
        check = await verify_receipt(receipt, chain.node.rpc_url, trust=trust)
        assert check.receipt.leaf_index == 2
        for change, what in RECEIPT_MUTATIONS.values():
            with pytest.raises(VerificationError) as caught:
                await verify_receipt(mutated(receipt, change), chain.node.rpc_url, trust=trust)
            assert caught.value.what == what
    finally:
        await client.close()
        log.store.close()
        await chain.close()


def test_offline_checks_need_no_chain(tmp_path: Path) -> None:
    with pytest.raises(VerificationError) as caught:
        Receipt.parse({"type": "LerAnchorReceipt"})
    assert caught.value.what == "schema"


# ---- the typed receipt -------------------------------------------------------------------------


def parse_refusal(document: Any) -> VerificationError:
    """The VerificationError that parsing ``document`` raises."""
    with pytest.raises(VerificationError) as caught:
        Receipt.parse(document)
    return caught.value


async def test_a_receipt_parses_into_typed_parts_and_back_byte_for_byte(
    anchored: Anchored,
) -> None:
    log, chain = anchored.log, anchored.chain
    trust = await trust_root(chain, log)
    documents = [build_receipt(log, index) for index in range(8)]
    documents.append(refresh_receipt(log, Receipt.parse(documents[0])))
    for document in documents:
        parsed = Receipt.parse(document)
        assert json.dumps(parsed.to_json()) == json.dumps(document)  # what the service sends
        assert json.dumps(parsed.to_json(), indent=2) == json.dumps(document, indent=2)
        index = document["leafIndex"]
        assert (parsed.leaf_index, parsed.entry) == (index, entry(index))
        cp = parsed.checkpoint
        signed = log.checkpoint_at(cp.size)
        assert signed is not None
        assert (cp.origin, cp.root, cp.note) == (log.origin, signed.root, signed.note)
        assert cp.verifier == log.verifier
        assert list(parsed.inclusion_proof) == log.store.inclusion_proof(index, cp.size)
        block = await chain.backend.block(parsed.anchor.block_number)
        assert block is not None
        assert parsed.anchor.block_hash == block.hash
        assert parsed.anchor.chain_id == await chain.backend.chain_id()
        assert parsed.check(trust) == trust  # offline: proofs, then the trusted root
    with pytest.raises(TypeError, match=r"Receipt\.parse"):
        dataclasses.replace(Receipt.parse(documents[0]), _made_by=None)


async def test_the_parser_refuses_trailing_garbage_unknown_members_and_a_mismatched_entry(
    on_embedded: Anchored,
) -> None:
    receipt = build_receipt(on_embedded.log, 6)
    stored = entry(6)
    encoded = receipt["entry"]["bytes"]
    assert encoded.endswith("==")  # its last character carries 2 bits and 4 unused ones
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    loose = encoded[:-3] + alphabet[alphabet.index(encoded[-3]) | 1] + "=="
    assert base64.b64decode(loose) == base64.b64decode(encoded)  # a lenient decoder agrees
    longer = base64.b64encode(stored.encode() + b"\x00").decode()
    other = entry(7)
    renamed = NoteSigner("other.example/log", hashlib.sha256(b"key").digest()).verifier.vkey()
    cases: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
        (
            "newline after the entry bytes",
            lambda r: r["entry"].update(bytes=encoded + "\n"),
            "schema",
            "at entry/bytes",
        ),
        (
            "unused bits set in the entry bytes",
            lambda r: r["entry"].update(bytes=loose),
            "entry",
            "entry bytes is not canonical base64",
        ),
        (
            "a byte after the entry",
            lambda r: r["entry"].update(bytes=longer),
            "entry",
            "1 trailing bytes after the entry",
        ),
        (
            "newline after a proof hash",
            lambda r: r["inclusionProof"].__setitem__(0, r["inclusionProof"][0] + "\n"),
            "schema",
            "at inclusionProof/0",
        ),
        (
            "newline after the root",
            lambda r: r["checkpoint"].update(root=r["checkpoint"]["root"] + "\n"),
            "schema",
            "at checkpoint/root",
        ),
        (
            "newline after the transaction hash",
            lambda r: r["anchor"].update(transactionHash=r["anchor"]["transactionHash"] + "\n"),
            "schema",
            "at anchor/transactionHash",
        ),
        (
            "newline after the digest",
            lambda r: r["entry"].update(digest=r["entry"]["digest"] + "\n"),
            "schema",
            "at entry/digest",
        ),
        ("a leaf index written 6.0", lambda r: r.update(leafIndex=6.0), "schema", "at leafIndex"),
        (
            "a block number written true",
            lambda r: r["anchor"].update(blockNumber=True),
            "schema",
            "at anchor/blockNumber",
        ),
        ("unknown member", lambda r: r.update(comment="hi"), "schema", "at (top level)"),
        ("unknown entry member", lambda r: r["entry"].update(index=6), "schema", "at entry"),
        (
            "unknown checkpoint member",
            lambda r: r["checkpoint"].update(extensions=[]),
            "schema",
            "at checkpoint",
        ),
        ("unknown anchor member", lambda r: r["anchor"].update(gasUsed=1), "schema", "at anchor"),
        (
            "another digest",
            lambda r: r["entry"].update(digest=other.digest.hex()),
            "entry",
            "do not match the entry's kind, digest and submitter",
        ),
        (
            "another kind",
            lambda r: r["entry"].update(kind="status-list"),
            "entry",
            "do not match the entry's kind, digest and submitter",
        ),
        (
            "another entry's bytes",
            lambda r: r["entry"].update(bytes=base64.b64encode(other.encode()).decode()),
            "entry",
            "do not match the entry's kind, digest and submitter",
        ),
        (
            "an oversized log key",
            lambda r: r["checkpoint"].update(publicKey="k+01234567+" + "A" * 600),
            "checkpoint",
            "longer than 512 characters",
        ),
        (
            "the key of a log of another name",
            lambda r: r["checkpoint"].update(publicKey=renamed),
            "checkpoint",
            f"checkpoint origin {on_embedded.log.origin!r} is not 'other.example/log'",
        ),
        ("not an object", lambda r: r.clear(), "schema", "at (top level)"),
    ]
    for label, change, what, said in cases:
        err = parse_refusal(mutated(receipt, change))
        assert (err.what, said in err.detail) == (what, True), (label, err.detail)
    mismatch = parse_refusal(
        mutated(receipt, lambda r: r["entry"].update(digest=other.digest.hex()))
    )
    assert mismatch.expected == f"credential {stored.digest.hex()} {SUBMITTER}"
    assert mismatch.actual == f"credential {other.digest.hex()} {SUBMITTER}"
    for document in (None, [], "receipt", 7):
        assert parse_refusal(document).what == "schema"


async def test_a_proof_of_the_wrong_length_is_refused_before_anything_is_hashed(
    on_embedded: Anchored,
) -> None:
    receipt = build_receipt(on_embedded.log, 6)
    assert (receipt["checkpoint"]["size"], len(receipt["inclusionProof"])) == (8, 3)
    prefix = "the inclusion proof of leaf 6 does not lead to the checkpoint root: "
    extra = mutated(receipt, lambda r: r["inclusionProof"].append(r["inclusionProof"][0]))
    zero = base64.b64encode(bytes(32)).decode()
    sixty_four = mutated(receipt, lambda r: r.update(inclusionProof=[zero] * 64))
    assert len(sixty_four["inclusionProof"]) == 64
    more = prefix + "proof has more hashes than a tree of size 8 needs for leaf 6"
    fewer = prefix + "proof has fewer hashes than a tree of size 8 needs for leaf 6"
    cases = [
        (extra, more),
        (mutated(extra, flip_signature), more),  # parsed before any signature is checked
        (sixty_four, more),
        (mutated(receipt, lambda r: r["inclusionProof"].pop()), fewer),
        (mutated(receipt, lambda r: r.update(inclusionProof=[])), fewer),
        (
            mutated(receipt, lambda r: r.update(leafIndex=8)),
            "the inclusion proof of leaf 8 does not lead to the checkpoint root: leaf index 8 "
            "is not below tree size 8",
        ),
    ]
    for document, detail in cases:
        err = parse_refusal(document)
        assert (err.what, err.detail) == ("proof", detail)
    # Well formed but false: parsed, then refused by the offline check on the typed value.
    for change, what in [(flip_signature, "signature"), (RECEIPT_MUTATIONS["proof"][0], "proof")]:
        parsed = Receipt.parse(mutated(receipt, change))
        with pytest.raises(VerificationError) as caught:
            parsed.check_proofs()
        assert caught.value.what == what
    with pytest.raises(UntrustedLog, match="is not a trusted log"):
        Receipt.parse(receipt).check(TrustSet())


async def test_a_receipt_is_refreshed_to_the_newest_anchor(anchored: Anchored) -> None:
    log = anchored.log
    old = build_receipt(log, 3)
    assert old["checkpoint"]["size"] == 5
    refreshed = refresh_receipt(log, Receipt.parse(old))
    assert refreshed["checkpoint"]["size"] == 8
    assert refreshed["entry"] == old["entry"]
    assert refreshed["leafIndex"] == 3
    assert refreshed["inclusionProof"] != old["inclusionProof"]
    await assert_receipt_sound(refreshed, anchored.chain)
    await assert_receipt_sound(old, anchored.chain)  # the old one stays valid
    assert refresh_receipt(log, Receipt.parse(refreshed)) == refreshed  # nothing newer
    log.append([entry(i) for i in range(8, 11)])
    await anchor_now(anchored)
    newest = refresh_receipt(log, Receipt.parse(old))
    assert newest["checkpoint"]["size"] == 11
    await assert_receipt_sound(newest, anchored.chain)
    # A receipt whose entry is not this log's leaf cannot be refreshed by it.
    other = open_log(log.store.path.parent / "other.db")
    other.append([entry(100 + i) for i in range(8)])
    with pytest.raises(VerificationError) as caught:
        refresh_receipt(other, Receipt.parse(old))
    assert caught.value.what == "entry"
    other.store.close()


def test_what_is_typed_and_its_problem_member_stays_a_plain_string() -> None:
    err = VerificationError("block 7 is not canonical any more", what="block")
    assert err.what is What.BLOCK
    assert json.dumps(err.problem()) == (
        '{"type": "https://ler-anchor.org/problems/verification-failed", "title":'
        ' "Verification failed", "status": 422, "detail": "block 7 is not canonical any more",'
        ' "what": "block"}'
    )
    assert VerificationError("no purpose", what="statusPurpose").what == "statusPurpose"
