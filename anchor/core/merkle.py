"""RFC 9162 §2.1 Merkle tree hashing, proofs and their verification (pure, no I/O).

Hashing: ``leaf = SHA-256(0x00 || entry)``, ``node = SHA-256(0x01 || left || right)``, the
tree over ``n`` leaves split at the largest power of two strictly below ``n``; the empty
tree's root is ``SHA-256()``.

Proofs are built in three steps, in the style of Go's ``sumdb/tlog``:

1. :func:`inclusion_plan` / :func:`consistency_plan` say which *stored* node hashes a proof
   needs (pure; at most ``2 * log2(n)`` of them);
2. the caller reads them in one batch (see ``anchor.log.store``);
3. :func:`build_proof` folds them into the proof (pure).

A log stores the hash of every *complete* subtree: ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)``. :func:`stored_index` numbers them in the
order an append-only log completes them, so appending never writes before the end.

The verifiers raise :class:`~anchor.errors.VerificationError` naming what did not match;
they never return a boolean that could be ignored.

Hot loops (a whole tree level, an inclusion proof's fold) run in the optional C accelerator
``anchor.core._merklehash`` over OpenSSL's SHA-256 when it was built; otherwise in Python. Both
compute identical values (the tests run both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from anchor.errors import VerificationError

try:
    from anchor.core import _merklehash as _accel
except ImportError:  # no compiler at install time: the pure-Python paths below are used
    _accel = None  # type: ignore[assignment]

HASH_SIZE = 32
"""Bytes in a SHA-256 hash: every leaf, node, root and proof element."""

MAX_PROOF_LENGTH = 64
"""Longest proof accepted: a tree of ``2**64`` leaves needs at most 64 hashes (consistency
proofs at most 64 too for sizes below ``2**63``). Anything longer is refused unread."""

MAX_TREE_SIZE = 2**63 - 1
"""Largest tree size accepted (it fits a signed 64-bit integer, as SQLite and Solidity
``uint64`` hold it)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of the empty tree: SHA-256 of nothing (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``. One hash."""
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``. One hash."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 tree head over ``leaf_hashes``.

    Cost: ``n - 1`` node hashes, computed level by level with the odd last node of a level
    carried up unchanged, which gives exactly RFC 9162's split at the largest power of two.
    Memory: one level (``n / 2`` hashes).
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if _accel is not None:
        buf = b"".join(leaf_hashes)
        if len(buf) == HASH_SIZE * n:
            while len(buf) > HASH_SIZE:
                buf = _accel.hash_level(buf)
            return buf
    level: Sequence[bytes] = leaf_hashes
    prefixed = _sha256(_NODE_PREFIX)  # copying a primed hash beats concatenating inputs
    while len(level) > 1:
        nxt: list[bytes] = []
        append = nxt.append
        it = iter(level)
        for left, right in zip(it, it, strict=False):
            h = prefixed.copy()
            h.update(left)
            h.update(right)
            append(h.digest())
        if len(level) & 1:
            append(level[-1])
        level = nxt
    return bytes(level[0])


# --- Stored complete subtrees --------------------------------------------------------------


def stored_index(level: int, index: int) -> int:
    """Position of the complete subtree ``(level, index)`` in append order.

    Appending leaf ``m`` writes its own hash, then the hashes of the subtrees it completes,
    bottom up. Before leaf ``m`` come ``sum(m >> l for l >= 0) = 2m - popcount(m)`` hashes, so
    the subtree completed by leaf ``m = (index + 1) * 2**level - 1`` sits at
    ``2m - popcount(m) + level``. O(1).
    """
    last_leaf = ((index + 1) << level) - 1
    return 2 * last_leaf - last_leaf.bit_count() + level


def subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees ``(level, index)`` that make up leaves ``[start, end)``, left to
    right, for a range that is a node of an RFC 9162 tree (``start`` aligned to the largest
    power of two not above ``end - start``). At most 64 subtrees."""
    out: list[tuple[int, int]] = []
    size = end - start
    while size:
        level = size.bit_length() - 1
        out.append((level, start >> level))
        start += 1 << level
        size -= 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Root of a range from its complete subtrees, left to right: the rightmost pair is
    joined first, as RFC 9162's split does. ``len(hashes) - 1`` node hashes."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """What a proof needs from storage: each proof element is the root of a leaf range,
    given as the complete subtrees of that range. Build the proof with :func:`build_proof`."""

    elements: tuple[tuple[tuple[int, int], ...], ...]

    def needed(self) -> list[tuple[int, int]]:
        """Every stored ``(level, index)`` the proof reads, each once, in a stable order."""
        seen: dict[tuple[int, int], None] = {}
        for element in self.elements:
            for node in element:
                seen.setdefault(node, None)
        return list(seen)


def _ranges_to_plan(ranges: Iterable[tuple[int, int]]) -> ProofPlan:
    return ProofPlan(tuple(tuple(subtrees(a, b)) for a, b in ranges))


def _check_size(size: int, name: str = "size") -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise VerificationError(
            f"{name} {size} is outside 0..{MAX_TREE_SIZE}", what=name, actual=str(size)
        )


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The stored subtrees an RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` in the tree
    of ``size`` leaves needs. Pure; ``O(log size)`` ranges, deepest first.

    Raises :class:`VerificationError` when ``index >= size``.
    """
    _check_size(size)
    if not 0 <= index < size:
        raise VerificationError(
            f"leaf index {index} is not below tree size {size}",
            what="index",
            actual=str(index),
            expected=f"< {size}",
        )
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
    ranges.reverse()
    return _ranges_to_plan(ranges)


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes the inclusion proof of leaf ``index`` in the tree of ``size`` leaves
    has (``len(inclusion_plan(index, size).elements)``), by arithmetic alone: a verifier
    checks a proof's length with it before hashing anything. Pure, ``O(1)``.

    Raises :class:`VerificationError` when ``index >= size``.
    """
    _check_size(size)
    if not 0 <= index < size:
        raise VerificationError(
            f"leaf index {index} is not below tree size {size}",
            what="index",
            actual=str(index),
            expected=f"< {size}",
        )
    inner = (index ^ (size - 1)).bit_length()  # levels where the paths to index, size-1 differ
    return inner + (index >> inner).bit_count()  # then one hash per left sibling on the border


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """The stored subtrees an RFC 9162 §2.1.4.1 consistency proof from ``size1`` to ``size2``
    needs. Pure; ``O(log size2)`` ranges. Empty when ``size1 == size2``.

    Requires ``0 < size1 <= size2``: a proof from the empty tree proves nothing.
    """
    _check_size(size2, "size2")
    if not 0 < size1 <= size2:
        raise VerificationError(
            f"a consistency proof needs 0 < size1 <= size2, got {size1} and {size2}",
            what="size1",
            actual=str(size1),
        )
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size2
    complete = True  # SUBPROOF's flag b: the node [lo, hi) is itself a root of the old tree
    while size1 != hi:  # every step keeps lo < size1 <= hi and shrinks [lo, hi)
        k = _split(hi - lo)
        if size1 - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return _ranges_to_plan(ranges)


def build_proof(
    plan: ProofPlan, hashes: Mapping[tuple[int, int], bytes] | Callable[[tuple[int, int]], bytes]
) -> list[bytes]:
    """Fold the stored hashes read for ``plan`` into the proof. Pure.

    ``hashes`` maps each ``(level, index)`` of :meth:`ProofPlan.needed` to its hash. Costs one
    node hash per subtree beyond the first in each element.
    """
    get = hashes if callable(hashes) else hashes.__getitem__
    return [fold([get(node) for node in element]) for element in plan.elements]


class HashReader(Protocol):
    """Reads stored complete-subtree hashes in one batch (a store, or anything in memory)."""

    def read_hashes(self, nodes: Sequence[tuple[int, int]]) -> Sequence[bytes]:
        """The hashes of ``nodes`` (``(level, index)`` pairs), in the same order."""
        ...


def _read(reader: HashReader, nodes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    hashes = reader.read_hashes(nodes)
    if len(hashes) != len(nodes):
        raise VerificationError(
            f"storage returned {len(hashes)} hashes for {len(nodes)} requested",
            what="storage",
        )
    return dict(zip(nodes, hashes, strict=True))


def tree_root(size: int, reader: HashReader) -> bytes:
    """Root of the first ``size`` leaves from stored subtrees: one batched read of at most
    64 hashes, then at most 63 node hashes."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    nodes = subtrees(0, size)
    got = _read(reader, nodes)
    return fold([got[n] for n in nodes])


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` in the tree of ``size`` leaves:
    :func:`inclusion_plan`, one batched read, :func:`build_proof`. ``O(log size)``."""
    plan = inclusion_plan(index, size)
    return build_proof(plan, _read(reader, plan.needed()))


def consistency_proof(size1: int, size2: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof from ``size1`` to ``size2``:
    :func:`consistency_plan`, one batched read, :func:`build_proof`. ``O(log size2)``."""
    plan = consistency_plan(size1, size2)
    return build_proof(plan, _read(reader, plan.needed()))


# --- Verification (RFC 9162 §2.1.3.2 and §2.1.4.2) --------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(
            f"{what} is {len(value)} bytes, not {HASH_SIZE}",
            what=what,
            expected=str(HASH_SIZE),
            actual=str(len(value)),
        )


def _check_proof(proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_LENGTH:
        raise VerificationError(
            f"proof has {len(proof)} hashes, more than {MAX_PROOF_LENGTH}",
            what="proof",
            actual=str(len(proof)),
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")


def _mismatch(what: str, expected: bytes, actual: bytes) -> VerificationError:
    return VerificationError(
        f"computed {what} does not match the {what} given",
        what=what,
        expected=expected.hex(),
        actual=actual.hex(),
    )


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for ``leaf_hash`` at ``index`` in a tree of ``size``.

    RFC 9162 §2.1.3.2 steps 1–3. Cost: ``len(proof)`` node hashes.
    Raises :class:`VerificationError` on a malformed proof (wrong length or hash sizes).
    """
    _check_size(size)
    _check_hash(leaf_hash, "leaf_hash")
    _check_proof(proof)
    if not 0 <= index < size:
        raise VerificationError(
            f"leaf index {index} is not below tree size {size}",
            what="index",
            actual=str(index),
            expected=f"< {size}",
        )
    if _accel is not None:
        try:
            return _accel.inclusion_root(index, size, leaf_hash, b"".join(proof))
        except ValueError:
            pass  # fall through: the Python loop says precisely what is wrong
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError(
                f"proof has more hashes than a tree of size {size} needs for leaf {index}",
                what="proof",
                actual=str(len(proof)),
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(
            f"proof has fewer hashes than a tree of size {size} needs for leaf {index}",
            what="proof",
            actual=str(len(proof)),
        )
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. Cost: ``len(proof)`` node hashes (at most 64).
    Raises :class:`VerificationError` naming what did not match.
    """
    _check_hash(root, "root")
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if computed != root:
        raise _mismatch("root", root, computed)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the tree of ``size1``
    leaves with ``root1``.

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; ``size1 == 0`` is
    refused (the empty tree is a prefix of every tree, so such a proof proves nothing).
    Cost: at most ``2 * len(proof)`` node hashes.
    Raises :class:`VerificationError` naming what did not match.
    """
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    _check_proof(proof)
    if size1 > size2:
        raise VerificationError(
            f"size1 {size1} is larger than size2 {size2}", what="size1", actual=str(size1)
        )
    if size1 == 0:
        raise VerificationError(
            "a consistency proof from the empty tree proves nothing",
            what="size1",
            actual="0",
            hint="every tree extends the empty tree; check root2 by other means",
        )
    if size1 == size2:
        if proof:
            raise VerificationError(
                "sizes are equal, so the proof must be empty",
                what="proof",
                actual=str(len(proof)),
                expected="0",
            )
        if root1 != root2:
            raise _mismatch("root2", root1, root2)
        return
    if not proof:
        raise VerificationError(
            f"an empty proof cannot show {size1} -> {size2}", what="proof", actual="0"
        )
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is a node of the new tree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(
                f"proof has more hashes than {size1} -> {size2} needs",
                what="proof",
                actual=str(len(proof)),
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(
            f"proof has fewer hashes than {size1} -> {size2} needs",
            what="proof",
            actual=str(len(proof)),
        )
    if fr != root1:
        raise _mismatch("root1", root1, fr)
    if sr != root2:
        raise _mismatch("root2", root2, sr)
