"""RFC 9162 Merkle hashing and proofs: public vectors and properties against a naive tree."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from helpers.system import missing
from hypothesis import given, settings
from hypothesis import strategies as st

from anchor.core import merkle
from anchor.errors import VerificationError

VECTORS = Path(__file__).parent / "vectors" / "merkle-rfc6962"
_BUILT_ACCEL = merkle._accel


@pytest.fixture(autouse=True, params=["accelerated", "pure-python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs against both the C accelerator and the pure-Python code paths."""
    if request.param == "pure-python":
        monkeypatch.setattr(merkle, "_accel", None)
    elif _BUILT_ACCEL is None:
        missing(
            "the C accelerator anchor.core._merklehash",
            "install gcc and OpenSSL's headers (apt-get install gcc libssl-dev), then"
            " pip install -e . again",
        )
    return str(request.param)


# --- A naive reference: RFC 9162 §2.1 read literally --------------------------------------


@cache
def ref_mth(leaves: tuple[bytes, ...]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


@cache
def ref_path(m: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


@cache
def ref_subproof(m: int, leaves: tuple[bytes, ...], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


class Memory:
    """A HashReader over leaves held in memory (subtree hashes from the naive tree)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = tuple(leaves)
        self.batches: list[int] = []

    def read_hashes(self, nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        self.batches.append(len(nodes))
        return [cached_mth(self.leaves, i << lvl, (i + 1) << lvl) for lvl, i in nodes]


@cache
def cached_mth(lv: tuple[bytes, ...], lo: int, hi: int) -> bytes:
    return ref_mth(lv[lo:hi])


@cache
def leaves(n: int) -> tuple[bytes, ...]:
    return tuple(merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(n))


# --- Public vectors (transparency-dev/merkle testdata) ------------------------------------


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _vectors(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert len(files) > 50, f"vectors missing under {VECTORS / kind}"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


# One vector expects success for two equal 12-byte "roots" ("don't care 2"). LER Anchor is
# stricter than the vector's origin: every hash must be 32 bytes (issue #2), so that vector is
# rejected for its root length and checked again below with real 32-byte roots.
LENGTH_STRICT = {"sizes are equal (one) and proof is empty"}


@pytest.mark.parametrize("v", _vectors("inclusion"))
def test_inclusion_vectors(v: dict[str, Any]) -> None:
    args = (v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), [_b64(p) for p in v["proof"] or []])
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*args, _b64(v["root"]))
    else:
        merkle.verify_inclusion(*args, _b64(v["root"]))


@pytest.mark.parametrize("v", _vectors("consistency"))
def test_consistency_vectors(v: dict[str, Any]) -> None:
    args = (v["size1"], v["size2"], [_b64(p) for p in v["proof"] or []], _b64(v["root1"]))
    if v["wantErr"] or v["desc"] in LENGTH_STRICT:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*args, _b64(v["root2"]))
    else:
        merkle.verify_consistency(*args, _b64(v["root2"]))


def test_length_strict_vector_passes_with_real_hashes() -> None:
    r = merkle.leaf_hash(b"x")
    merkle.verify_consistency(1, 1, [], r, r)
    with pytest.raises(VerificationError, match="root1 is 12 bytes"):
        merkle.verify_consistency(1, 1, [], b"don't care 2", b"don't care 2")


def test_happy_paths_reproduce_from_the_vectors_leaves() -> None:
    """Our proof builder yields the vectors' happy-path proofs (tree of the 8 RFC leaves)."""
    rfc_leaves = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    hashes = [merkle.leaf_hash(x) for x in rfc_leaves]
    checked = 0
    for f in sorted(VECTORS.glob("inclusion/*/happy-path.json")):
        v = json.loads(f.read_text())
        if v["treeSize"] > len(hashes):
            continue
        got = merkle.inclusion_proof(v["leafIdx"], v["treeSize"], Memory(hashes))
        assert got == [_b64(p) for p in v["proof"] or []]
        assert merkle.root(hashes[: v["treeSize"]]) == _b64(v["root"])
        checked += 1
    for f in sorted(VECTORS.glob("consistency/*/happy-path.json")):
        v = json.loads(f.read_text())
        if v["size2"] > len(hashes) or v["size1"] == 0:
            continue
        got = merkle.consistency_proof(v["size1"], v["size2"], Memory(hashes))
        assert got == [_b64(p) for p in v["proof"] or []]
        checked += 1
    assert checked >= 4


# --- Exhaustive agreement with the naive tree ------------------------------------------------

MAX_EXHAUSTIVE = 300


def test_root_matches_reference_for_every_size() -> None:
    for n in range(MAX_EXHAUSTIVE + 1):
        lv = leaves(n)
        assert merkle.root(lv) == ref_mth(lv), n
        if n:
            assert merkle.tree_root(n, Memory(leaves(MAX_EXHAUSTIVE))) == ref_mth(lv), n


def test_inclusion_for_every_index_and_size() -> None:
    all_leaves = leaves(MAX_EXHAUSTIVE)
    mem = Memory(all_leaves)
    roots = [ref_mth(all_leaves[:n]) for n in range(MAX_EXHAUSTIVE + 1)]
    for n in range(1, MAX_EXHAUSTIVE + 1):
        for m in range(n):
            mem.batches.clear()
            proof = merkle.inclusion_proof(m, n, mem)
            assert mem.batches == [len(merkle.inclusion_plan(m, n).needed())]
            assert proof == ref_path(m, all_leaves[:n]), (m, n)
            merkle.verify_inclusion(m, n, all_leaves[m], proof, roots[n])


def test_consistency_for_every_pair_of_sizes() -> None:
    all_leaves = leaves(MAX_EXHAUSTIVE)
    mem = Memory(all_leaves)
    roots = [ref_mth(all_leaves[:n]) for n in range(MAX_EXHAUSTIVE + 1)]
    for n in range(1, MAX_EXHAUSTIVE + 1):
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, n, mem)
            assert proof == ref_subproof(m, all_leaves[:n], True), (m, n)
            merkle.verify_consistency(m, n, proof, roots[m], roots[n])


def test_the_proof_length_is_known_before_hashing() -> None:
    """``inclusion_proof_length`` is the length of the proof the reference builds, for every
    leaf of small trees, and of the plan's proof for large ones."""
    all_leaves = leaves(MAX_EXHAUSTIVE)
    for n in range(1, MAX_EXHAUSTIVE + 1):
        for m in range(n):
            assert merkle.inclusion_proof_length(m, n) == len(ref_path(m, all_leaves[:n])), (m, n)
    for n in (2**20 + 7, 2**40 + 12345, merkle.MAX_TREE_SIZE):
        for m in (0, n // 3, n - 2, n - 1):
            assert merkle.inclusion_proof_length(m, n) == len(merkle.inclusion_plan(m, n).elements)
    for m, n in ((5, 5), (0, 0), (-1, 3)):
        with pytest.raises(VerificationError, match="not below tree size"):
            merkle.inclusion_proof_length(m, n)


def test_proofs_are_logarithmic() -> None:
    for n in (1, 2, 3, 1000, 2**20 + 7, 2**40 + 12345):
        for m in (0, n // 3, n - 1):
            plan = merkle.inclusion_plan(m, n)
            assert len(plan.elements) <= (n - 1).bit_length()
            assert len(plan.needed()) <= 2 * max(1, n.bit_length())
        if n > 1:
            assert len(merkle.consistency_plan(n // 2 + 1, n).needed()) <= 2 * n.bit_length()


# --- Any single flipped bit is rejected ------------------------------------------------------


def _flip(b: bytes, bit: int) -> bytes:
    arr = bytearray(b)
    arr[bit // 8] ^= 1 << (bit % 8)
    return bytes(arr)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_inclusion_rejects_any_flipped_bit(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, MAX_EXHAUSTIVE))
    m = data.draw(st.integers(0, n - 1))
    lv = leaves(n)
    proof = merkle.inclusion_proof(m, n, Memory(lv))
    r = ref_mth(lv)
    targets = ["leaf", "root"] + (["proof"] if proof else [])
    target = data.draw(st.sampled_from(targets))
    bit = data.draw(st.integers(0, 255))
    leaf, rt = lv[m], r
    if target == "leaf":
        leaf = _flip(leaf, bit)
    elif target == "root":
        rt = _flip(rt, bit)
    else:
        i = data.draw(st.integers(0, len(proof) - 1))
        proof[i] = _flip(proof[i], bit)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(m, n, leaf, proof, rt)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_consistency_rejects_any_flipped_bit(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, MAX_EXHAUSTIVE))
    m = data.draw(st.integers(1, n - 1))
    lv = leaves(n)
    proof = merkle.consistency_proof(m, n, Memory(lv))
    r1, r2 = ref_mth(lv[:m]), ref_mth(lv)
    target = data.draw(st.sampled_from(["root1", "root2", "proof"]))
    bit = data.draw(st.integers(0, 255))
    if target == "root1":
        r1 = _flip(r1, bit)
    elif target == "root2":
        r2 = _flip(r2, bit)
    else:
        i = data.draw(st.integers(0, len(proof) - 1))
        proof[i] = _flip(proof[i], bit)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, proof, r1, r2)


# --- Malformed input ----------------------------------------------------------------------


def test_rejects_index_not_below_size() -> None:
    h = merkle.leaf_hash(b"a")
    with pytest.raises(VerificationError, match="not below tree size"):
        merkle.verify_inclusion(1, 1, h, [], h)
    with pytest.raises(VerificationError, match="not below tree size"):
        merkle.inclusion_plan(5, 5)


def test_rejects_overlong_proof() -> None:
    h = merkle.leaf_hash(b"a")
    with pytest.raises(VerificationError, match="more than 64"):
        merkle.verify_inclusion(0, 2**62, h, [h] * 65, h)
    with pytest.raises(VerificationError, match="more than 64"):
        merkle.verify_consistency(1, 2**62, [h] * 65, h, h)


def test_rejects_wrong_hash_lengths() -> None:
    h = merkle.leaf_hash(b"a")
    with pytest.raises(VerificationError, match="leaf_hash is 31 bytes"):
        merkle.verify_inclusion(0, 1, h[:31], [], h)
    with pytest.raises(VerificationError, match=r"proof\[0\] is 33 bytes"):
        merkle.verify_inclusion(0, 2, h, [h + b"\x00"], h)
    with pytest.raises(VerificationError, match="root is 0 bytes"):
        merkle.verify_inclusion(0, 1, h, [], b"")


def test_mismatch_error_names_what_and_values() -> None:
    lv = leaves(5)
    proof = merkle.inclusion_proof(2, 5, Memory(lv))
    wrong = merkle.leaf_hash(b"other")
    with pytest.raises(VerificationError) as err:
        merkle.verify_inclusion(2, 5, lv[2], proof, wrong)
    assert err.value.what == "root"
    assert err.value.expected == wrong.hex()
    assert err.value.actual == ref_mth(lv).hex()
    assert err.value.problem()["what"] == "root"


def test_consistency_plan_refuses_bad_sizes() -> None:
    with pytest.raises(VerificationError, match="0 < size1 <= size2"):
        merkle.consistency_plan(0, 5)
    with pytest.raises(VerificationError, match="0 < size1 <= size2"):
        merkle.consistency_plan(6, 5)
    assert merkle.consistency_plan(5, 5).elements == ()


def test_stored_index_is_append_order() -> None:
    order: list[tuple[int, int]] = []
    for m in range(64):
        order.append((0, m))
        level, idx = 0, m
        while idx & 1:
            level, idx = level + 1, idx >> 1
            order.append((level, idx))
    assert [merkle.stored_index(lv, i) for lv, i in order] == list(range(len(order)))


def test_empty_tree_root() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert merkle.tree_root(0, Memory([])) == merkle.EMPTY_ROOT
