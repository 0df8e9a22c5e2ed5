"""RDFC-1.0 as LER Anchor runs it (PyLD's algorithm, :mod:`anchor.vc.nquads` reading the
statements, the canonical escapes and the poison bound of :mod:`anchor.vc.jsonld_contexts`)
against the W3C test suite (``tests/vectors/rdf-canon``, source in its ``SOURCE.md``).

Every evaluation and map test passes with a work factor of 3, which the suite's costliest
("poison - evil") datasets need; with the service's own bound (``MAX_WORK_FACTOR``, as
Digital Bazaar's default) each gives the expected answer or is refused as too costly, never a
wrong one, and every low-complexity test passes. The negative test, a 10-node clique of blank
nodes, is refused at once under both bounds (unbounded, one of 8 nodes took 51 s).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from anchor.vc.jsonld_contexts import (
    MAX_WORK_FACTOR,
    PoisonDataset,
    canonical_escapes,
    canonicalize_nquads,
)
from anchor.vc.nquads import NQuadsError, parse_statements

SUITE = Path(__file__).parent / "vectors" / "rdf-canon"
MANIFEST: list[dict[str, Any]] = json.loads((SUITE / "manifest.jsonld").read_text())["entries"]
SUITE_WORK_FACTOR = 3
# test075: the same dataset hashed with SHA-384, an option of RDFC-1.0 this service never uses
ENTRIES = [e for e in MANIFEST if e.get("hashAlgorithm") in (None, "SHA256")]


def statements(name: str) -> list[str]:
    text = (SUITE / name).read_text(encoding="utf-8")
    return [line + "\n" for line in text.split("\n") if line]


def of_type(kind: str) -> list[dict[str, Any]]:
    return [e for e in ENTRIES if e["type"] == f"rdfc:{kind}"]


def test_the_suite_is_all_here() -> None:
    assert len(of_type("RDFC10EvalTest")) == 63
    assert len(of_type("RDFC10MapTest")) == 20
    assert len(of_type("RDFC10NegativeEvalTest")) == 1


@pytest.mark.parametrize("entry", of_type("RDFC10EvalTest"), ids=lambda e: e["id"][1:])
def test_evaluation(entry: dict[str, Any]) -> None:
    expected = (SUITE / entry["result"]).read_text(encoding="utf-8")
    canonical, _ = canonicalize_nquads(statements(entry["action"]), SUITE_WORK_FACTOR)
    assert "".join(canonical) == expected
    try:
        bounded, _ = canonicalize_nquads(statements(entry["action"]))
    except PoisonDataset:
        assert entry["computationalComplexity"] != "low"
    else:
        assert "".join(bounded) == expected


@pytest.mark.parametrize("entry", of_type("RDFC10MapTest"), ids=lambda e: e["id"][1:])
def test_issued_identifiers(entry: dict[str, Any]) -> None:
    expected = json.loads((SUITE / entry["result"]).read_text(encoding="utf-8"))
    _, mapping = canonicalize_nquads(statements(entry["action"]), SUITE_WORK_FACTOR)
    assert mapping == expected


@pytest.mark.parametrize("work_factor", [MAX_WORK_FACTOR, SUITE_WORK_FACTOR])
def test_the_poison_clique_is_refused_at_once(work_factor: int) -> None:
    (entry,) = of_type("RDFC10NegativeEvalTest")
    started = time.perf_counter()
    with pytest.raises(PoisonDataset) as refused:
        canonicalize_nquads(statements(entry["action"]), work_factor)
    assert time.perf_counter() - started < 5
    assert refused.value.status == 400
    assert "dataset poisoning" in refused.value.detail


def test_canonical_escapes_follow_the_suite() -> None:
    """The literal escapes of RDFC-1.0's canonical form, character by character (the suite's
    test060 holds them all): two-character escapes for BS, TAB, LF, FF, CR, quote and
    backslash, ``\\uXXXX`` for the other controls and DEL, everything else raw."""
    assert canonical_escapes('"\x08\x0c\x00\x0b\x1f\x7f\x80\u2028"') == (
        '"\\b\\f\\u0000\\u000B\\u001F\\u007F\x80\u2028"'
    )


def test_statements_are_read_once_and_strictly() -> None:
    """The reader in front of the algorithm (:mod:`anchor.vc.nquads`): a literal may hold
    any character raw but LF and CR, each escape is read once, duplicates go, and anything
    that is not a statement is a 400 naming its line."""
    dataset = parse_statements(
        [
            '_:b0 <urn:p> "a\u2028b\x85c\x0cd" .\n',
            '_:b0 <urn:p> "C:\\\\new \\u0041\\U0001F303\\t" .\n',
            '_:b0 <urn:p> "C:\\\\new \\u0041\\U0001F303\\t" .\n',
            "# a comment\n",
            '<urn:\\u0073> <urn:p> "x"@en-GB <urn:g> .\n',
        ]
    )
    default = dataset["@default"]
    assert [t["object"]["value"] for t in default] == [
        "a\u2028b\x85c\x0cd",
        "C:\\new A\U0001f303\t",
    ]
    (named,) = dataset["urn:g"]
    assert named["subject"] == {"type": "IRI", "value": "urn:s"}
    assert named["object"]["language"] == "en-GB"
    for bad, line in (
        (["<urn:s> <urn:p> .\n"], 1),
        (['_:b0 <urn:p> "x" .\n', '<urn:s> "p" "o" .\n'], 2),
    ):
        with pytest.raises(NQuadsError, match=f"statement {line} "):
            parse_statements(bad)
    with pytest.raises(NQuadsError, match="not a character"):
        parse_statements(['_:b0 <urn:p> "\\uD800" .\n'])
