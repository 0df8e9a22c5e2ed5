"""N-Quads statements read into the RDF dataset form PyLD's RDFC-1.0 implementation takes.

Role: the reader in front of :mod:`anchor.vc.jsonld_contexts`' canonicalization, in place of
PyLD's own N-Quads parser, which breaks statements that hold a character Python counts as a
line break (``str.splitlines``: U+000B, U+000C, U+001C-U+001E, U+0085, U+2028, U+2029) and
which unescapes in the wrong order (``"C:\\\\new"`` came back with a newline) and never reads
``\\b``, ``\\f`` or the four- and eight-digit ``\\u`` and ``\\U`` escapes. Here only LF
ends a statement, and each escape is read once, left to right (N-Quads' ECHAR and UCHAR).
Duplicate statements in a graph are dropped, as RDF datasets are sets.

Pure. Cost: linear in the text (one regular-expression match per statement, a set for the
duplicates; PyLD compared every statement with every other).
"""

from __future__ import annotations

import re
from typing import Any, Final

from anchor.errors import InvalidInput

XSD_STRING: Final = "http://www.w3.org/2001/XMLSchema#string"
RDF_LANG_STRING: Final = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"

_IRI = r"<([^>\n]*)>"
_BLANK = r"(_:[A-Za-z0-9_][A-Za-z0-9_.-]*)"
_LITERAL = (
    r'"((?:[^"\\\n\r]|\\.)*)"'
    r"(?:\^\^" + _IRI + r"|@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*))?"
)
_WS = r"[ \t]"
_STATEMENT: Final = re.compile(
    rf"{_WS}*(?:{_IRI}|{_BLANK}){_WS}*{_IRI}{_WS}*(?:{_IRI}|{_BLANK}|{_LITERAL})"
    rf"{_WS}*(?:(?:{_IRI}|{_BLANK}){_WS}*)?\.{_WS}*(?:#[^\n]*)?"
)
_IGNORED: Final = re.compile(rf"{_WS}*(?:#[^\n]*)?")
_ESCAPE: Final = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|([tbnrf\"'\\]))")
_ECHAR: Final = {
    "t": "\t",
    "b": "\b",
    "n": "\n",
    "r": "\r",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


class NQuadsError(InvalidInput):
    """Text that is not N-Quads."""

    slug = "invalid-n-quads"
    title = "Invalid N-Quads"


def _unescape(value: str, line: int) -> str:
    def one(match: re.Match[str]) -> str:
        short, long, char = match.groups()
        if char is not None:
            return _ECHAR[char]
        point = int(short if short is not None else long, 16)
        if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
            raise NQuadsError(f"statement {line}: \\u escape {point:#x} is not a character")
        return chr(point)

    return _ESCAPE.sub(one, value) if "\\" in value else value


def _term(iri: str | None, blank: str | None, line: int) -> dict[str, str]:
    if iri is not None:
        return {"type": "IRI", "value": _unescape(iri, line)}
    assert blank is not None  # the pattern matched one of the two
    return {"type": "blank node", "value": blank}


def parse_statements(statements: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The RDF dataset of ``statements`` (one N-Quads statement per string, its LF optional;
    blank and comment-only lines are skipped), in PyLD's form: graph name (``"@default"``)
    -> triples. Raises :class:`NQuadsError` on anything else."""
    dataset: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[object, ...]] = set()
    for number, raw in enumerate(statements, 1):
        text = raw[:-1] if raw.endswith("\n") else raw
        if "\n" in text:
            raise NQuadsError(f"statement {number} holds a line feed outside a literal")
        match = _STATEMENT.fullmatch(text)
        if match is None:
            if _IGNORED.fullmatch(text):
                continue
            raise NQuadsError(f"statement {number} is not an N-Quads statement")
        g = match.groups()
        subject = _term(g[0], g[1], number)
        predicate = {"type": "IRI", "value": _unescape(g[2], number)}
        obj: dict[str, str]
        if g[3] is not None or g[4] is not None:
            obj = _term(g[3], g[4], number)
        else:
            obj = {"type": "literal", "value": _unescape(g[5], number)}
            if g[6] is not None:
                obj["datatype"] = _unescape(g[6], number)
            elif g[7] is not None:
                obj["datatype"] = RDF_LANG_STRING
                obj["language"] = g[7]
            else:
                obj["datatype"] = XSD_STRING
        graph = "@default"
        if g[8] is not None:
            graph = _unescape(g[8], number)
        elif g[9] is not None:
            graph = g[9]
        key = (graph, *subject.values(), predicate["value"], *obj.values())
        if key in seen:
            continue
        seen.add(key)
        dataset.setdefault(graph, []).append(
            {"subject": subject, "predicate": predicate, "object": obj}
        )
    return dataset
