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

An audit cannot pass by mistake. :func:`read_log_anchor` is the one way to read a contract's
anchors (``ler-anchor audit`` and ``ler-anchor restore`` use it); it refuses, raising
:class:`~anchor.errors.NotALogAnchor`, an address without code and any contract that is not
a LogAnchor this version ships (version 1, a record per root, or version 2, the latest root
only). The check is on the runtime code (``eth_getCode``), which is what runs whatever an ABI
claims: it must equal one artifact's ``deployedBytecode`` except

* solc's CBOR metadata trailer (its length is in the last two bytes), which hashes the source
  text, comments included: a LogAnchor compiled from the same code with other comments is
  still a LogAnchor;
* the immutable ``owner``: solc leaves each read of an immutable as ``PUSH32 0`` in the
  artifact (the optimizer writes a real zero as ``PUSH0``) and the constructor fills in the
  deployer; every placeholder must hold the same left-padded address, reported as the owner.

Then ``latest()`` is called and must agree with the last ``Anchored`` event read (a node
that serves incomplete event logs, or a ``--from-block`` after the anchors, is refused), all
at one block. Version 2 stores the latest root's first 24 bytes only: the last event's root
must start with them, and is then the latest root. Finally a report links the chain to the
log only if at least one anchor is the log's root at its size, recomputed from the entries
or in a checkpoint signed with the log's key (or the log and the contract are both empty): a
contract holding no anchor, or only anchors of another log, makes
:meth:`AuditReport.obstacle` a :class:`~anchor.errors.NoMatchingAnchor` and the report never
``clean``. A log whose entries were altered before its first anchor still links through its
signed checkpoints: that is a discrepancy (exit 1), not a failure to audit (exit 4).

Cost: the replay is ``O(n)`` hashes for ``n`` entries (about 170,000 entries/s) and
``O(log n)`` memory; reading the chain is one ``eth_getLogs`` per :data:`LOG_BLOCK_CHUNK`
blocks plus three calls. :func:`parse_address`, :func:`check_log_anchor_code`,
:func:`identify_log_anchor` and :func:`unlinked` are pure; the rest reads the chain or the log.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.exceptions import Web3Exception

from anchor.chain.contracts import LOG_ANCHOR, LOG_ANCHOR_VERSIONS, load_artifact
from anchor.core import jsonlimits, merkle
from anchor.core.checkpoint import NoteVerifier, open_checkpoint
from anchor.core.entry import EntryKind
from anchor.errors import (
    AnchorError,
    CannotAudit,
    ChainError,
    CheckpointFormatError,
    InvalidInput,
    NoMatchingAnchor,
    NotALogAnchor,
    VerificationError,
)
from anchor.log.logfiles import LogSource, parse_entry_json
from anchor.vc import data_integrity

LOG_BLOCK_CHUNK = 5_000
"""Blocks per ``eth_getLogs`` request."""

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PUSH1, _PUSH32 = 0x60, 0x7F
_WORD = 32
_ADDRESS_PADDING = 12


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


@dataclass(frozen=True, slots=True)
class LogAnchorState:
    """What a LogAnchor contract holds, read at block ``block_number``: its anchors in chain
    order (from the first block asked for) and its ``latest()`` anchor."""

    address: str
    owner: str
    block_number: int
    latest_size: int
    """Tree size of the newest anchor, 0 when nothing is anchored."""
    latest_root: bytes | None
    events: tuple[AnchorEvent, ...]
    version: int = 1
    """The LogAnchor version whose code the contract runs (1 or 2)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "version": self.version,
            "owner": self.owner,
            "block": self.block_number,
            "latestSize": self.latest_size,
            "latestRoot": None if self.latest_root is None else self.latest_root.hex(),
        }


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
    log_size: int = 0
    """The size the log claims (``entries`` is how many were read)."""
    matched: int = 0
    """Anchors whose root is the log's root at their size, as recomputed from the entries."""
    recognised: int = 0
    """Anchors whose root is the recomputed root or a checkpoint root signed with the log's key
    at their size: anchors of this log, even where its entries were altered since."""
    newest_anchored_size: int | None = None

    @property
    def clean(self) -> bool:
        """No discrepancy, and the chain vouches for this log (see :meth:`obstacle`)."""
        return not self.discrepancies and self.obstacle() is None

    def obstacle(self) -> NoMatchingAnchor | None:
        """Why nothing links the chain to this log, or ``None`` when at least one anchor is
        recognised (or the log and the contract are both empty)."""
        return unlinked(self.anchors, self.recognised, self.log_size)

    @property
    def verdict(self) -> str:
        """``clean``, ``discrepancies`` or ``cannot-audit`` (exit 0, 1 or 4)."""
        if self.obstacle() is not None:
            return "cannot-audit"
        return "discrepancies" if self.discrepancies else "clean"

    def add(self, kind: str, location: str, detail: str) -> None:
        self.discrepancies.append(Discrepancy(kind, location, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "verdict": self.verdict,
            "reason": None if (why := self.obstacle()) is None else why.detail,
            "logSize": self.log_size,
            "entries": self.entries,
            "anchors": self.anchors,
            "anchorsMatched": self.matched,
            "anchorsRecognised": self.recognised,
            "newestAnchoredSize": self.newest_anchored_size,
            "checkpoints": self.checkpoints,
            "statusListEntries": self.status_list_entries,
            "firstAnchor": self.first_anchor,
            "lastAnchor": self.last_anchor,
            "logKey": self.log_key,
            "discrepancies": [d.to_json() for d in self.discrepancies],
            "warnings": self.warnings,
        }


def unlinked(anchors: int, recognised: int, log_size: int) -> NoMatchingAnchor | None:
    """Why ``anchors`` anchors of which ``recognised`` are roots of a log of ``log_size``
    entries (recomputed or signed) vouch for nothing, or ``None`` when they do. Pure."""
    if recognised > 0 or (anchors == 0 and log_size == 0):
        return None
    if anchors == 0:
        return NoMatchingAnchor(
            f"the contract holds no anchor while the log has {log_size:,} entries: "
            "nothing on the chain vouches for this log",
            anchors=anchors,
            log_size=log_size,
            hint="check --contract (the LogAnchor this log anchors to) and --from-block",
        )
    return NoMatchingAnchor(
        f"none of the contract's {anchors:,} anchors is a root of this log of {log_size:,} "
        "entries, recomputed or signed: the contract anchors another log, or this log was "
        "replaced entirely (entries and checkpoints)",
        anchors=anchors,
        log_size=log_size,
        hint="check --contract and --log; each anchor is listed as a discrepancy",
    )


def parse_address(text: str) -> ChecksumAddress:
    """``text`` as a checksummed address: 40 hex digits after ``0x``, and when written in
    mixed case, with a valid EIP-55 checksum. Raises :class:`InvalidInput`. Pure."""
    if not _ADDRESS.match(text):
        raise InvalidInput(
            f"{text[:60]!r} is not a contract address",
            hint="give 0x followed by 40 hex digits",
        )
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper() and not Web3.is_checksum_address(text):
        raise InvalidInput(
            f"{text} has a wrong EIP-55 checksum (a mistyped letter?)",
            hint="copy the address again, or give it all in lowercase",
        )
    return Web3.to_checksum_address(text)


def _strip_metadata(code: bytes) -> bytes:
    """``code`` without solc's CBOR metadata trailer (its length is in the last two bytes)."""
    if len(code) < 2:
        return code
    length = int.from_bytes(code[-2:], "big") + 2
    return code[:-length] if length <= len(code) else code


def _immutable_slots(code: bytes) -> list[int]:
    """Offsets of the data of every ``PUSH32 0`` in ``code``, walking the instructions (so
    push data is never read as an opcode)."""
    slots = []
    i = 0
    while i < len(code):
        op = code[i]
        if _PUSH1 <= op <= _PUSH32:
            width = op - _PUSH1 + 1
            if op == _PUSH32 and code[i + 1 : i + 1 + _WORD] == bytes(_WORD):
                slots.append(i + 1)
            i += width
        i += 1
    return slots


def check_log_anchor_code(code: bytes, address: str) -> ChecksumAddress:
    """The owner baked into ``code`` if it is the runtime code of a shipped LogAnchor (see
    the module doc); raises :class:`NotALogAnchor` otherwise. Pure."""
    return identify_log_anchor(code, address)[1]


def identify_log_anchor(code: bytes, address: str) -> tuple[int, ChecksumAddress]:
    """The LogAnchor version (1 or 2) whose runtime code ``code`` is, and the owner baked into
    it; raises :class:`NotALogAnchor` if it is neither (see the module doc). Pure."""
    if not code:
        raise NotALogAnchor(
            f"there is no contract at {address} (eth_getCode is empty): an account, or a "
            "contract of another chain",
            address=address,
            found="no-code",
            hint="check --contract and that --rpc-url is the chain it was deployed on",
        )
    found = _strip_metadata(code)
    for version, name in sorted(LOG_ANCHOR_VERSIONS.items()):
        owner = _owner_if_shipped(found, name)
        if owner is not None:
            return version, owner
    raise NotALogAnchor(
        f"the contract at {address} is not the LogAnchor this version ships "
        f"({len(code):,} bytes of other runtime code)",
        address=address,
        found="other-code",
        hint="give the address of the log's LogAnchor (every receipt of the log names it)",
    )


def _owner_if_shipped(found: bytes, name: str) -> ChecksumAddress | None:
    """The owner if ``found`` (metadata stripped) is artifact ``name``'s runtime code with
    every immutable placeholder holding one left-padded address, else ``None``. Pure."""
    shipped = _strip_metadata(bytes.fromhex(load_artifact(name).deployed_bytecode[2:]))
    slots = _immutable_slots(shipped)
    owner = found[slots[0] : slots[0] + _WORD] if slots else bytes(_WORD)
    masked = bytearray(found)
    for slot in slots:
        if found[slot : slot + _WORD] != owner:
            return None
        masked[slot : slot + _WORD] = bytes(_WORD)
    if bytes(masked) == shipped and owner[:_ADDRESS_PADDING] == bytes(_ADDRESS_PADDING):
        return Web3.to_checksum_address(owner[_ADDRESS_PADDING:])
    return None


def read_log_anchor(w3: Web3, contract: str, from_block: int = 0) -> LogAnchorState:
    """Read and validate the LogAnchor at ``contract``: its code (:func:`check_log_anchor_code`),
    its ``latest()`` anchor and every ``Anchored`` event from ``from_block``, all at the head
    block, and check that the last event read is ``latest()``. Raises :class:`InvalidInput`
    (a malformed address or block), :class:`NotALogAnchor`, :class:`CannotAudit` (events
    missing) or :class:`ChainError` (the RPC endpoint failed). Blocking: run it in a thread."""
    address = parse_address(contract)
    if from_block < 0:
        raise InvalidInput(f"--from-block {from_block} is negative")
    try:
        head = w3.eth.block_number
        code = bytes(w3.eth.get_code(address, head))
    except (Web3Exception, OSError, ValueError) as exc:
        raise ChainError(
            f"the JSON-RPC endpoint failed: {_brief(exc)}",
            hint="check --rpc-url and that the node is running",
        ) from exc
    if from_block > head:
        raise InvalidInput(f"--from-block {from_block} is after the chain's head block {head}")
    version, owner = identify_log_anchor(code, address)
    abi = load_artifact(LOG_ANCHOR_VERSIONS[version]).abi
    instance = w3.eth.contract(address=address, abi=abi)
    try:
        # v1: (root, size, timestamp); v2: (first 24 bytes of the root, size)
        root, size, *_rest = instance.functions.latest().call(block_identifier=head)
    except (Web3Exception, OSError, ValueError) as exc:
        raise ChainError(f"calling latest() on {address} failed: {_brief(exc)}") from exc
    events = read_anchor_events(w3, address, from_block, head)
    latest_root = bytes(root) if int(size) > 0 else None
    newest = events[-1] if events else None
    if latest_root is not None and newest is not None and newest.root.startswith(latest_root):
        latest_root = newest.root  # v2: the whole root, from the event its head matches
    state = LogAnchorState(
        address, owner, head, int(size), latest_root, tuple(events), version=version
    )
    _check_events_complete(state, from_block)
    return state


def _check_events_complete(state: LogAnchorState, from_block: int) -> None:
    newest = state.events[-1] if state.events else None
    if newest is None and state.latest_size == 0:
        return
    if newest is not None and (newest.size, newest.root) == (
        state.latest_size,
        state.latest_root,
    ):
        return
    got = "none" if newest is None else f"the last is of size {newest.size}"
    raise CannotAudit(
        f"the contract's latest anchor is of size {state.latest_size} at block "
        f"{state.block_number}, but of the Anchored events from block {from_block} {got}: "
        "the events read are incomplete",
        hint="start earlier (--from-block), or use a node that keeps event logs",
    )


def _brief(exc: BaseException) -> str:
    """A short reason for a transport or provider failure: the innermost operating-system
    reason when there is one (``Connection refused``), else the exception's type
    (``HTTPError``, ``Web3RPCError``): never the provider's internals."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return str(seen.strerror)
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def read_anchor_events(
    w3: Web3, contract: str, from_block: int = 0, to_block: int | None = None
) -> list[AnchorEvent]:
    """Every ``Anchored`` event of ``contract`` in ``[from_block, to_block]``, in chain order.
    Blocking (run it in a thread): ``eth_getLogs`` in chunks of :data:`LOG_BLOCK_CHUNK`. It
    reads whatever the address logged: :func:`read_log_anchor` checks the contract first."""
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
        raise ChainError(f"reading anchor events of {contract} failed: {_brief(exc)}") from exc
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
        report.newest_anchored_size = max(e.size for e in events)

    # Anchored sizes must strictly increase in chain order (the contract enforces it).
    for prev, cur in itertools.pairwise(events):
        if cur.size <= prev.size:
            report.add("anchor-order", cur.transaction_hash, f"size {cur.size} after {prev.size}")

    # Checkpoints: signatures and forks.
    notes = await source.checkpoints()
    report.checkpoints = len(notes)
    verifier = await _log_verifier(source, expected_key, report)
    checkpoint_roots: dict[int, bytes] = {}
    signed: set[tuple[int, bytes]] = set()
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
        signed.add((cp.size, cp.root))

    # Replay the entries, taking the root at every size of interest.
    size = await source.tree_size()
    report.log_size = size
    wanted = sorted({e.size for e in events} | set(checkpoint_roots))
    status_digests: dict[str, int] = {}
    roots = await _replay(source, size, wanted, report, progress, status_digests)
    await _check_status_versions(source, status_digests, report)

    for e in events:
        where = f"anchor tx {e.transaction_hash} (block {e.block_number})"
        got = roots.get(e.size)
        if got == e.root or (e.size, e.root) in signed:
            report.recognised += 1
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
        else:
            report.matched += 1
    newest = report.newest_anchored_size
    if newest is not None and report.matched and newest < report.entries:
        report.warnings.append(
            f"entries {newest:,} to {report.entries - 1:,} are not anchored yet "
            "(only signed checkpoints cover them)"
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
