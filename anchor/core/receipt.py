"""Receipts as typed values: a receipt document parsed once into a :class:`Receipt`, and its
offline check (pure).

A receipt (schema: ``anchor/schemas/receipt.schema.json``, JSON Schema draft 2020-12)::

    {"type": "LerAnchorReceipt", "version": 1,
     "entry": {"kind", "digest" (hex), "submitter" (DID), "bytes" (base64 canonical entry)},
     "leafIndex": n,
     "checkpoint": {"origin", "size", "root" (base64), "note" (the signed note),
                    "publicKey" (the log's verifier key, <name>+<id>+<base64 key>)},
     "inclusionProof": [base64 hashes, RFC 9162],
     "anchor": {"chain": "eip155:<id>", "contract", "transactionHash", "blockNumber",
                "blockHash", "logIndex", "blockTime" (ISO 8601 UTC)}}

:meth:`Receipt.parse` is the only way to make a :class:`Receipt`. It validates the document
against the shipped schema (with JSON Schema's own semantics: a pattern's ``$`` matches only
at the very end, ``2.0`` is not an integer) and decodes every member: base64 strictly and
canonically, hex by exact pattern, the entry bytes into an :class:`~anchor.core.entry.Entry`
equal to the members beside them, the signed note into its checkpoint (equal to the origin,
size and root stated) and its signature lines, the key into a
:class:`~anchor.core.checkpoint.NoteVerifier`; the proof's length is checked against the
leaf index and tree size before any Merkle hash is computed. Nothing is left over: no trailing
bytes, no unknown member, so :meth:`Receipt.to_json` gives the document back (a receipt the
service wrote comes back byte for byte once dumped).

What a receipt proves is checked on the typed value: :meth:`Receipt.check_proofs` (the note
is signed by the key the receipt names, the inclusion proof leads from the entry to the
signed root), and :meth:`Receipt.check`, which also requires the log, chain and contract to
be those of a trusted root (:mod:`anchor.core.trust`: a receipt never vouches for its own
log). The anchor itself is checked on chain by :mod:`anchor.verify.receipt`. A receipt is
parsed before it is checked, so a malformed member is reported before a bad signature.

Every failure raises :class:`~anchor.errors.VerificationError` whose ``what`` is
``schema``, ``entry``, ``checkpoint``, ``signature``, ``proof`` or (from the trust check,
:class:`~anchor.errors.UntrustedLog`) ``trust``.

Pure, except that the shipped schema is read from the package once per process. Cost of a
parse: one schema validation of a document of a few kilobytes and the decoding of at most
64 proof hashes (about half a millisecond); of :meth:`Receipt.check_proofs`: one Ed25519
verification and at most 65 SHA-256 hashes (about a tenth of a millisecond).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

from anchor.core import merkle
from anchor.core.checkpoint import (
    Checkpoint,
    Note,
    NoteVerifier,
    parse_checkpoint_text,
    parse_note,
    verify_note,
)
from anchor.core.entry import Entry, decode
from anchor.core.trust import MAX_VERIFIER_KEY_LENGTH, Trust, TrustRoot, TrustSet
from anchor.errors import (
    CheckpointFormatError,
    ConfigError,
    EncodingError,
    VerificationError,
    What,
)

RECEIPT_TYPE: Final = "LerAnchorReceipt"
"""The receipt's ``type`` member."""

RECEIPT_VERSION: Final = 1
"""The receipt format version this module writes and reads."""

SCHEMA_PACKAGE: Final = "anchor"
SCHEMA_PATH: Final = ("schemas", "receipt.schema.json")
"""Where the receipt's JSON Schema is shipped inside the package."""

_HEX32 = re.compile(r"0x[0-9a-f]{64}")


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


# ---- the schema, with JSON Schema's semantics -------------------------------------------------


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as ECMA-262 reads it: a final ``$`` matches only at the end of the text
    (in Python it also matches before a final newline). The schema's patterns are anchored
    with a final ``$`` and use no other construct that reads differently."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(checker: Any, instance: Any) -> bool:
    """An integer is a JSON number without a fraction or exponent, as Python reads JSON:
    ``2.0`` is not one (it would not be written back as it came)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_StrictValidator = validators.extend(
    Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@functools.cache
def _validator() -> Validator:
    validator: Validator = _StrictValidator(receipt_schema())
    return validator


# ---- decoding -----------------------------------------------------------------------------------


def _fail(what: What, detail: str, **known: str) -> VerificationError:
    return VerificationError(detail, what=what, **known)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode_b64(text: str, what: What, label: str) -> bytes:
    """Standard base64 with padding, canonical (re-encoding gives ``text`` back)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(what, f"{label} is not valid base64") from None
    if _b64(raw) != text:
        raise _fail(what, f"{label} is not canonical base64")
    return raw


def _decode_hex32(text: str, where: str) -> bytes:
    if not _HEX32.fullmatch(text):
        raise _fail(
            What.SCHEMA,
            f"the receipt does not match its schema at {where}: {text!r} is not 0x and 64 "
            "lowercase hex digits",
        )
    return bytes.fromhex(text[2:])


def _proof_problem(index: int, detail: str) -> VerificationError:
    return _fail(
        What.PROOF,
        f"the inclusion proof of leaf {index} does not lead to the checkpoint root: {detail}",
    )


# ---- the typed receipt ------------------------------------------------------------------------


def receipt_document(
    *,
    entry: Entry,
    leaf_index: int,
    checkpoint: Checkpoint,
    note: str,
    public_key: str,
    proof: Sequence[bytes],
    anchor: dict[str, Any],
) -> dict[str, Any]:
    """The receipt document, members in the order the service writes them (the one place
    that lays it out: the service builds receipts with it, :meth:`Receipt.to_json` gives a
    parsed one back with it). ``anchor`` is the ``anchor`` member as it is written."""
    return {
        "type": RECEIPT_TYPE,
        "version": RECEIPT_VERSION,
        "entry": {
            "kind": entry.kind.label,
            "digest": entry.digest.hex(),
            "submitter": entry.submitter,
            "bytes": _b64(entry.encode()),
        },
        "leafIndex": leaf_index,
        "checkpoint": {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": _b64(checkpoint.root),
            "note": note,
            "publicKey": public_key,
        },
        "inclusionProof": [_b64(h) for h in proof],
        "anchor": anchor,
    }


@dataclass(frozen=True, slots=True)
class ReceiptCheckpoint:
    """The signed checkpoint a receipt's proof leads to. ``checkpoint`` is what the note
    says (its origin, size and root are those the receipt states beside it); ``note`` is the
    note as written and ``signed`` its parsed form, not yet verified; ``verifier`` is the key
    the receipt names (``publicKey``), whose name is the checkpoint's origin."""

    checkpoint: Checkpoint
    note: str
    signed: Note
    verifier: NoteVerifier

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def public_key(self) -> str:
        """The verifier key as written (C2SP ``name+id+base64``)."""
        return self.verifier.vkey()


@dataclass(frozen=True, slots=True)
class ReceiptAnchor:
    """Where a receipt says its checkpoint is anchored: the chain (CAIP-2 ``eip155:N``), the
    LogAnchor contract (as written), the transaction, its block and the ``Anchored`` event's
    log index, and the block time (ISO 8601 UTC, as written)."""

    chain: str
    contract: str
    transaction_hash: bytes
    block_number: int
    block_hash: bytes
    log_index: int
    block_time: str

    @property
    def chain_id(self) -> int:
        return int(self.chain.removeprefix("eip155:"))

    @property
    def transaction_hex(self) -> str:
        return "0x" + self.transaction_hash.hex()

    @property
    def block_hash_hex(self) -> str:
        return "0x" + self.block_hash.hex()


_PARSED: Final = object()
"""What :meth:`Receipt.parse` hands the constructor (private to this module)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt document, validated and decoded (see the module docstring). Made only by
    :meth:`parse`; written back by :meth:`to_json`."""

    entry: Entry
    leaf_index: int
    checkpoint: ReceiptCheckpoint
    inclusion_proof: tuple[bytes, ...]
    anchor: ReceiptAnchor
    _made_by: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._made_by is not _PARSED:
            raise TypeError("a Receipt is made by Receipt.parse(document), not by its fields")

    @property
    def log_key(self) -> str:
        """The log's verifier key the receipt names (C2SP ``name+id+base64``)."""
        return self.checkpoint.public_key

    @classmethod
    def parse(cls, document: Any) -> Receipt:
        """The receipt ``document`` (parsed JSON), validated and decoded, or
        :class:`VerificationError` (``what``: ``schema``, ``entry``, ``checkpoint`` or
        ``proof``) for the first thing wrong. Verifies no signature and computes no Merkle
        hash (the proof's length is checked by arithmetic)."""
        error = best_match(_validator().iter_errors(document))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            raise _fail(
                What.SCHEMA, f"the receipt does not match its schema at {where}: {error.message}"
            )
        return cls(
            _entry(document["entry"]),
            document["leafIndex"],
            _checkpoint(document["checkpoint"]),
            _proof(document["leafIndex"], document["checkpoint"], document["inclusionProof"]),
            _anchor(document["anchor"]),
            _PARSED,
        )

    def to_json(self) -> dict[str, Any]:
        """The receipt document: members in the order the service writes them, so that
        ``json.dumps`` of a parsed service receipt is the bytes it was parsed from."""
        entry, cp, anchor = self.entry, self.checkpoint, self.anchor
        return receipt_document(
            entry=entry,
            leaf_index=self.leaf_index,
            checkpoint=cp.checkpoint,
            note=cp.note,
            public_key=cp.public_key,
            proof=self.inclusion_proof,
            anchor={
                "chain": anchor.chain,
                "contract": anchor.contract,
                "transactionHash": anchor.transaction_hex,
                "blockNumber": anchor.block_number,
                "blockHash": anchor.block_hash_hex,
                "logIndex": anchor.log_index,
                "blockTime": anchor.block_time,
            },
        )

    def check_proofs(self) -> None:
        """The receipt's internal consistency: its note is signed by the key it names
        (``what`` ``signature``, or ``checkpoint``) and its inclusion proof leads from the
        entry's leaf hash to the signed root (``proof``). This says nothing about whose log
        it is (anyone can make such a receipt): a verdict needs :meth:`check`."""
        cp = self.checkpoint
        try:
            verify_note(cp.signed, [cp.verifier])
        except VerificationError as exc:
            what = What.SIGNATURE if exc.what == What.SIGNATURE else What.CHECKPOINT
            raise _fail(what, f"the checkpoint note does not verify: {exc.detail}") from None
        leaf = merkle.leaf_hash(self.entry.encode())
        try:
            merkle.verify_inclusion(self.leaf_index, cp.size, leaf, self.inclusion_proof, cp.root)
        except VerificationError as exc:
            raise _proof_problem(self.leaf_index, exc.detail) from None

    def check(self, trust: Trust) -> TrustRoot:
        """The checks that need no chain: :meth:`check_proofs`, then that the receipt's log
        (origin, verifier key), chain and contract are those of a log in ``trust`` (else
        :class:`~anchor.errors.UntrustedLog`, ``what`` ``trust``). Returns that root."""
        self.check_proofs()
        return TrustSet.of(trust).check(self)


def _entry(doc: Mapping[str, Any]) -> Entry:
    """The entry its bytes decode to, which must be exactly the kind, digest and submitter
    stated."""
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
    return entry


def _checkpoint(doc: Mapping[str, Any]) -> ReceiptCheckpoint:
    """The checkpoint its note states, which must be the origin, size and root stated beside
    it and be for the log the key names."""
    vkey: str = doc["publicKey"]
    if len(vkey) > MAX_VERIFIER_KEY_LENGTH:  # no trust root has a longer one
        raise _fail(
            What.CHECKPOINT,
            f"the log key is malformed: it is longer than {MAX_VERIFIER_KEY_LENGTH} characters",
        )
    try:
        verifier = NoteVerifier.from_vkey(vkey)
    except CheckpointFormatError as exc:
        raise _fail(What.CHECKPOINT, f"the log key is malformed: {exc.detail}") from None
    try:
        signed = parse_note(doc["note"])
        checkpoint = parse_checkpoint_text(signed.text)
    except CheckpointFormatError as exc:
        raise _fail(What.CHECKPOINT, f"the checkpoint note is malformed: {exc.detail}") from None
    if checkpoint.origin != verifier.name:
        raise _fail(
            What.CHECKPOINT,
            "the checkpoint note does not verify: checkpoint origin "
            f"{checkpoint.origin!r} is not {verifier.name!r}",
        )
    root = _decode_b64(doc["root"], What.CHECKPOINT, "checkpoint root")
    if (checkpoint.origin, checkpoint.size, checkpoint.root) != (doc["origin"], doc["size"], root):
        raise _fail(
            What.CHECKPOINT,
            "the checkpoint's origin, size or root differ from its signed note",
            expected=f"{checkpoint.origin} {checkpoint.size} {_b64(checkpoint.root)}",
            actual=f"{doc['origin']} {doc['size']} {doc['root']}",
        )
    return ReceiptCheckpoint(checkpoint, doc["note"], signed, verifier)


def _proof(index: int, checkpoint: Mapping[str, Any], hashes: list[str]) -> tuple[bytes, ...]:
    """The proof's hashes, as many as the proof of leaf ``index`` in a tree of the
    checkpoint's size has (checked before anything is hashed)."""
    proof = tuple(_decode_b64(h, What.PROOF, "an inclusion proof hash") for h in hashes)
    size: int = checkpoint["size"]
    try:
        needed = merkle.inclusion_proof_length(index, size)
    except VerificationError as exc:  # the leaf is not in the tree
        raise _proof_problem(index, exc.detail) from None
    if len(proof) != needed:
        more_or_fewer = "more" if len(proof) > needed else "fewer"
        raise _proof_problem(
            index,
            f"proof has {more_or_fewer} hashes than a tree of size {size} needs for leaf {index}",
        )
    return proof


def _anchor(doc: Mapping[str, Any]) -> ReceiptAnchor:
    return ReceiptAnchor(
        chain=doc["chain"],
        contract=doc["contract"],
        transaction_hash=_decode_hex32(doc["transactionHash"], "anchor/transactionHash"),
        block_number=doc["blockNumber"],
        block_hash=_decode_hex32(doc["blockHash"], "anchor/blockHash"),
        log_index=doc["logIndex"],
        block_time=doc["blockTime"],
    )
