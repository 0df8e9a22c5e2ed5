"""The auditor's replay: from the chain alone and the public log, trusting neither the
service nor the issuers.

1. Read every ``Anchored`` event of the contract (from a block on) from the chain.
2. Read every signed checkpoint of the log; verify each signature with the log's key (pin it
   with ``expected_key``; otherwise the key the log publishes is reported and used), and
   flag two different roots signed for one size (a fork).
3. Page through every entry, decode its canonical bytes, and recompute the tree
   incrementally (``O(n)`` hashes, ``O(log n)`` memory), taking the root at every size that
   an anchor or a checkpoint names.
4. Compare: every anchored root must be the log's root at its size, every checkpoint's root
   likewise; anchored sizes must increase; consecutive anchored checkpoints are consistent
   because both roots are recomputed from one sequence of leaves (a removed, changed or
   reordered entry changes every later root and is reported at the first anchor it breaks).

Every discrepancy is reported with its location; :attr:`AuditReport.clean` is false if any.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from web3 import Web3
from web3.exceptions import Web3Exception

from anchor import data_integrity, jsonlimits, merkle
from anchor.checkpoint import NoteVerifier, open_checkpoint
from anchor.contracts import LOG_ANCHOR, load_artifact
from anchor.entry import EntryKind
from anchor.errors import (
    AnchorError,
    ChainError,
    CheckpointFormatError,
    InvalidInput,
    VerificationError,
)
from anchor.logfiles import LogSource, parse_entry_json

LOG_BLOCK_CHUNK = 5_000
"""Blocks per ``eth_getLogs`` request."""


@dataclass(frozen=True, slots=True)
class AnchorEvent:
    root: bytes
    size: int
    account: str
    timestamp: int
    block_number: int
    transaction_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str
    location: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "location": self.location, "detail": self.detail}


@dataclass
class AuditReport:
    entries: int = 0
    anchors: int = 0
    checkpoints: int = 0
    status_list_entries: int = 0
    first_anchor: str | None = None
    last_anchor: str | None = None
    log_key: str | None = None
    discrepancies: list[Discrepancy] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    def add(self, kind: str, location: str, detail: str) -> None:
        self.discrepancies.append(Discrepancy(kind, location, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "entries": self.entries,
            "anchors": self.anchors,
            "checkpoints": self.checkpoints,
            "statusListEntries": self.status_list_entries,
            "firstAnchor": self.first_anchor,
            "lastAnchor": self.last_anchor,
            "logKey": self.log_key,
            "discrepancies": [d.to_json() for d in self.discrepancies],
            "warnings": self.warnings,
        }


def read_anchor_events(
    w3: Web3, contract: str, from_block: int = 0, to_block: int | None = None
) -> list[AnchorEvent]:
    """Every ``Anchored`` event of ``contract`` in ``[from_block, to_block]``, in chain order.
    Blocking (run it in a thread): ``eth_getLogs`` in chunks of :data:`LOG_BLOCK_CHUNK`."""
    artifact = load_artifact(LOG_ANCHOR)
    try:
        address = Web3.to_checksum_address(contract)
        instance = w3.eth.contract(address=address, abi=artifact.abi)
        event = instance.events.Anchored()
        head = w3.eth.block_number if to_block is None else to_block
        out: list[AnchorEvent] = []
        for start in range(from_block, head + 1, LOG_BLOCK_CHUNK):
            end = min(head, start + LOG_BLOCK_CHUNK - 1)
            logs = w3.eth.get_logs(
                {
                    "address": address,
                    "fromBlock": start,
                    "toBlock": end,
                    "topics": [event.topic],
                }
            )
            for log in logs:
                decoded = event.process_log(log)
                args = decoded["args"]
                out.append(
                    AnchorEvent(
                        root=bytes(args["root"]),
                        size=int(args["treeSize"]),
                        account=str(args["account"]),
                        timestamp=int(args["timestamp"]),
                        block_number=int(decoded["blockNumber"]),
                        transaction_hash=decoded["transactionHash"].to_0x_hex(),
                        log_index=int(decoded["logIndex"]),
                    )
                )
    except (Web3Exception, OSError, ValueError) as exc:
        raise ChainError(f"reading anchor events of {contract} failed: {exc}") from exc
    out.sort(key=lambda e: (e.block_number, e.log_index))
    return out


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def audit(
    events: Sequence[AnchorEvent],
    source: LogSource,
    *,
    expected_key: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Replay the log from ``source`` against the anchor ``events`` (see the module doc)."""
    report = AuditReport(anchors=len(events))
    if events:
        report.first_anchor = _iso(events[0].timestamp)
        report.last_anchor = _iso(events[-1].timestamp)

    # Anchored sizes must strictly increase in chain order (the contract enforces it).
    for prev, cur in itertools.pairwise(events):
        if cur.size <= prev.size:
            report.add("anchor-order", cur.transaction_hash, f"size {cur.size} after {prev.size}")

    # Checkpoints: signatures and forks.
    notes = await source.checkpoints()
    report.checkpoints = len(notes)
    verifier = await _log_verifier(source, expected_key, report)
    checkpoint_roots: dict[int, bytes] = {}
    for i, note in enumerate(notes):
        where = f"checkpoint #{i}"
        try:
            cp = open_checkpoint(note, verifier)
        except (VerificationError, CheckpointFormatError) as err:
            report.add("checkpoint-signature", where, err.detail)
            continue
        seen = checkpoint_roots.get(cp.size)
        if seen is not None and seen != cp.root:
            report.add(
                "forked-checkpoint",
                f"size {cp.size}",
                f"two different roots signed: {seen.hex()} and {cp.root.hex()}",
            )
        checkpoint_roots.setdefault(cp.size, cp.root)

    # Replay the entries, taking the root at every size of interest.
    size = await source.tree_size()
    wanted = sorted({e.size for e in events} | set(checkpoint_roots))
    status_digests: dict[str, int] = {}
    roots = await _replay(source, size, wanted, report, progress, status_digests)
    await _check_status_versions(source, status_digests, report)

    for e in events:
        where = f"anchor tx {e.transaction_hash} (block {e.block_number})"
        got = roots.get(e.size)
        if got is None:
            report.add(
                "anchor-beyond-log", where, f"anchors size {e.size}, log has {report.entries}"
            )
        elif got != e.root:
            report.add(
                "anchor-root-mismatch",
                where,
                f"anchored root {e.root.hex()} is not the log's root {got.hex()} at size {e.size}",
            )
    for cp_size, cp_root in checkpoint_roots.items():
        got = roots.get(cp_size)
        if got is not None and got != cp_root:
            report.add(
                "checkpoint-root-mismatch",
                f"checkpoint of size {cp_size}",
                f"signed root {cp_root.hex()} is not the log's root {got.hex()}",
            )
    return report


async def _log_verifier(
    source: LogSource, expected_key: str | None, report: AuditReport
) -> NoteVerifier:
    published = await source.verifier_key()
    if expected_key is None:
        report.warnings.append(
            f"the log key was not pinned (--log-key); using the key the log publishes: {published}"
        )
        key = published
    else:
        key = expected_key
        if published != expected_key:
            report.add(
                "log-key",
                source.location,
                f"the log publishes key {published}, not the pinned {expected_key}",
            )
    report.log_key = key
    return NoteVerifier.from_vkey(key)


async def _check_status_versions(
    source: LogSource, logged: dict[str, int], report: AuditReport
) -> None:
    """Every published status list version must be the ``status-list`` entry it claims to
    be (its signed credential hashes to the logged digest), and every ``status-list`` entry
    must be a published version."""
    versions = await source.status_versions()
    if versions is None:
        if logged:
            report.warnings.append(
                f"{len(logged)} status-list entries not checked: the source does not list "
                "published versions (an export or a service of an older version)"
            )
        return
    published: set[str] = set()
    for v in versions:
        where = f"status list {v.get('listId')} version {v.get('version')}"
        try:
            document = jsonlimits.loads(
                str(v.get("credential", "")), max_bytes=jsonlimits.MAX_FILE_BYTES, what=where
            )
        except InvalidInput:  # not JSON, or over the JSON limits
            report.add("status-version", where, "the published credential is not JSON")
            continue
        digest = data_integrity.canonical_digest(document).hex()
        if digest != v.get("digest"):
            report.add(
                "status-version", where, f"credential hashes to {digest}, not {v.get('digest')}"
            )
        published.add(digest)
        index = logged.get(digest)
        if index is None:
            report.add(
                "status-version-not-logged", where, f"digest {digest} is not a status-list entry"
            )
        elif v.get("logIndex") not in (None, index):
            report.add(
                "status-version", where, f"claims log index {v.get('logIndex')}, found {index}"
            )
    for digest, index in logged.items():
        if digest not in published:
            report.add(
                "status-entry-unpublished",
                f"entry {index}",
                f"status-list digest {digest} was never published",
            )


async def _replay(
    source: LogSource,
    size: int,
    wanted: Sequence[int],
    report: AuditReport,
    progress: Callable[[int], None] | None,
    status_digests: dict[str, int],
) -> dict[int, bytes]:
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = merkle.EMPTY_ROOT
    targets = [w for w in wanted if w > 0]
    t = 0
    frontier: list[tuple[int, bytes]] = []
    expected = 0
    async for page in source.entries(0, size):
        for doc in page:
            try:
                _index, entry, raw = parse_entry_json(doc, expected)
            except AnchorError as err:
                report.add("entry", f"entry {expected}", err.detail)
                return roots  # the rest of the log cannot be placed
            if entry.kind is EntryKind.STATUS_LIST:
                report.status_list_entries += 1
                status_digests[entry.digest.hex()] = expected
            h = merkle.leaf_hash(raw)
            level = 0
            while frontier and frontier[-1][0] == level:
                h = merkle.node_hash(frontier.pop()[1], h)
                level += 1
            frontier.append((level, h))
            expected += 1
            while t < len(targets) and targets[t] == expected:
                roots[expected] = merkle.fold([fh for _, fh in frontier])
                t += 1
        report.entries = expected
        if progress is not None:
            progress(len(page))
        await asyncio.sleep(0)
    if expected != size:
        report.add(
            "entries-missing", f"entry {expected}", f"log claims {size} entries, {expected} read"
        )
    return roots
