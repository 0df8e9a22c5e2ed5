"""JSON-LD processing with contexts served from the package, and RDFC-1.0 canonicalization.

Role: the only door from LER Anchor to JSON-LD (PyLD). Every ``@context`` URL a document may
name is served from ``anchor/contexts/`` (sources and commits in ``anchor/contexts/SOURCES.md``);
any other URL is refused with :class:`UnknownContext`: nothing is ever fetched from the network.
RDF Dataset Canonicalization (RDFC-1.0, identical in output to URDNA2015) comes from PyLD's
``URDNA2015`` implementation, which also exposes the map from input blank node labels to
canonical labels that ``ecdsa-sd-2023`` needs; statements are read by :mod:`anchor.vc.nquads`
(PyLD's reader splits and unescapes literals wrongly) and written in the canonical form by
:func:`canonical_escapes`.

Pure apart from reading the packaged context files once (cached, parsed JSON; PyLD also caches
resolved contexts process-wide). Cost: expansion / ``toRdf`` of a 2 kB credential takes a few
milliseconds; canonicalization is quasi-linear in the number of quads for tree-shaped data.
Blank nodes that only their neighbours tell apart cost far more (RDFC-1.0's Hash N-Degree
Quads tries every permutation of them): a 2.5 kB credential holding a clique of 8 blank nodes
took 51 s, one of 10 would take hours. RDFC-1.0's algorithm requires implementations to
defend against such poison datasets by raising an error early; PyLD does not, so
:class:`BoundedRDFC10` counts the calls to Hash N-Degree Quads and stops at the bound Digital
Bazaar's ``rdf-canonize`` applies by default (the number of blank nodes that first-degree
hashes leave undistinguished, to the power :data:`MAX_WORK_FACTOR`): whatever their verifier
canonicalizes, this one does too, and the clique is refused in milliseconds.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib import resources
from typing import Any, Final

from pyld import jsonld  # type: ignore[import-untyped]
from pyld.canon import URDNA2015  # type: ignore[import-untyped]

from anchor.errors import InvalidInput
from anchor.vc.nquads import parse_statements

CONTEXT_FILES: Final[dict[str, str]] = {
    "https://www.w3.org/ns/credentials/v2": "credentials-v2.jsonld",
    "https://w3id.org/security/data-integrity/v2": "data-integrity-v2.jsonld",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json": "ob-v3p0-3.0.3.jsonld",
    "https://w3id.org/security/multikey/v1": "multikey-v1.jsonld",
    "https://w3id.org/citizenship/v4rc1": "citizenship-v4rc1.jsonld",
}
"""Every context URL this service knows, and the packaged file that serves it."""

MAX_QUADS: Final = 10_000
"""Refuse documents that expand to more statements than this (canonicalization cost bound)."""

MAX_VALUES_PER_PROPERTY: Final = 256
"""Most values one node may hold for one property, wherever in the document they are given
(nodes with one ``@id`` are merged). PyLD compares each new value with all the node's earlier
ones when it builds the node map: 30,000 numbers of one property (200 kB) took 288 s."""

MAX_WORK_FACTOR: Final = 1
"""Hash N-Degree Quads may run at most ``n ** MAX_WORK_FACTOR`` times, ``n`` being the number
of blank nodes left undistinguished by their first-degree hashes (``rdf-canonize``'s
``maxWorkFactor``, whose default is 1)."""


class UnknownContext(InvalidInput):
    """A document names a JSON-LD context this service does not ship (never fetched)."""

    slug = "unknown-context"
    title = "Unknown JSON-LD context"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"JSON-LD context {url!r} is not one this service knows",
            hint="use only these contexts: " + ", ".join(sorted(CONTEXT_FILES)),
            url=url,
        )
        self.url = url


class JsonLdError(InvalidInput):
    """A document is not valid JSON-LD (expansion or RDF conversion failed)."""

    slug = "invalid-json-ld"
    title = "Invalid JSON-LD"


class PoisonDataset(JsonLdError):
    """Canonicalizing a document would take more work than :data:`MAX_WORK_FACTOR` allows:
    its blank nodes are told apart only by trying permutations of their neighbours (RDFC-1.0,
    "Dataset Poisoning")."""

    slug = "poison-dataset"
    title = "Dataset too costly to canonicalize"


class BoundedRDFC10(URDNA2015):  # type: ignore[misc]
    """PyLD's RDFC-1.0 (URDNA2015, the same output) with a bound on its costly step, and its
    first-degree hashes taken over canonical statements (:meth:`hash_nquads`). The bound: the
    calls to Hash N-Degree Quads, at most ``n ** work_factor`` for ``n`` blank nodes that the
    first-degree hashes leave undistinguished; one more raises :class:`PoisonDataset`.

    The bound is fixed at the first call, when the hash to blank nodes map holds exactly the
    groups of undistinguished blank nodes (RDFC-1.0 step 6). Data whose blank nodes all
    differ in their own statements never makes that call."""

    def __init__(self, work_factor: int = MAX_WORK_FACTOR) -> None:
        super().__init__()
        self._work_factor = work_factor
        self._remaining: int | None = None

    def hash_n_degree_quads(self, id_: str, issuer: Any) -> Any:
        if self._remaining is None:
            undistinguished = sum(len(ids) for ids in self.hash_to_blank_nodes.values())
            self._remaining = undistinguished**self._work_factor
        if self._remaining <= 0:
            raise PoisonDataset(
                "canonicalizing the document would take too long: its blank nodes are told "
                "apart only by their neighbours' permutations (RDFC-1.0 dataset poisoning)",
                hint="give the document's nodes ids, or fewer interlinked nodes without one",
            )
        self._remaining -= 1
        return super().hash_n_degree_quads(id_, issuer)

    def hash_nquads(self, nquads: list[str]) -> str:
        """Hash First Degree Quads' last step, over the statements in the canonical form
        (:func:`canonical_escapes`), sorted again in that form: PyLD serializes them with
        control characters raw, and the hashes, hence the labels, then differ from every
        other implementation's for a blank node whose statements hold one."""
        digest: str = super().hash_nquads(sorted(canonical_escapes(q) for q in nquads))
        return digest


@cache
def _context_document(url: str) -> Any:
    name = CONTEXT_FILES[url]
    text = resources.files("anchor").joinpath("contexts", name).read_text(encoding="utf-8")
    return json.loads(text)


def document_loader(url: str, options: Any = None) -> dict[str, Any]:
    """PyLD document loader: packaged contexts only; :class:`UnknownContext` otherwise."""
    if url not in CONTEXT_FILES:
        raise UnknownContext(url)
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": copy.deepcopy(_context_document(url)),
        # "static": PyLD keeps the processed context in its process-wide cache, so each
        # context is parsed and processed once per process, not once per operation
        "tag": "static",
    }


def _unwrap(exc: BaseException) -> BaseException:
    """The first :class:`anchor.errors.AnchorError` in a PyLD error's cause chain, else exc."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, InvalidInput):
            return seen
        details = getattr(seen, "details", None)
        cause = details.get("cause") if isinstance(details, dict) else None
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return exc


def _options(**extra: Any) -> dict[str, Any]:
    return {"documentLoader": document_loader, "safe": True, **extra}


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except jsonld.JsonLdError as exc:
        inner = _unwrap(exc)
        if isinstance(inner, InvalidInput):
            raise inner from exc
        innermost: BaseException = exc
        while True:  # PyLD wraps the error that says what is wrong in generic ones
            details = getattr(innermost, "details", None)
            cause = details.get("cause") if isinstance(details, dict) else None
            cause = cause if isinstance(cause, BaseException) else innermost.__cause__
            if not isinstance(cause, jsonld.JsonLdError):
                break
            innermost = cause
        message = str(innermost.args[0]) if innermost.args else type(innermost).__name__
        message = message.splitlines()[0][:200]
        code = getattr(innermost, "code", None)
        detail = f"JSON-LD processing failed: {message}" + (f" ({code})" if code else "")
        raise JsonLdError(detail) from exc


def expand(document: dict[str, Any]) -> list[Any]:
    """JSON-LD expansion (JSON-LD 1.1 safe mode: dropped terms are an error)."""
    result: list[Any] = _call(jsonld.expand, document, _options())
    return result


def compact(expanded: list[Any], context: Any) -> dict[str, Any]:
    """JSON-LD compaction of ``expanded`` with ``context`` (the original ``@context`` value)."""
    result: dict[str, Any] = _call(jsonld.compact, expanded, context, _options())
    return result


_UCHAR_ESCAPED: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ECHAR: Final = {"\b": "\\b", "\f": "\\f"}


def canonical_escapes(statement: str) -> str:
    """``statement`` as RDFC-1.0's canonical N-Quads write it. PyLD escapes only ``\\``,
    ``"``, LF, CR and TAB in literals and leaves the other control characters raw; the
    canonical form writes U+0008 as ``\\b``, U+000C as ``\\f`` and the rest of U+0000-U+001F
    and U+007F as ``\\u`` and four upper-case hex digits (``\\u001F``), as Digital Bazaar's
    implementation does, so the statements hashed and signed are the same bytes on both
    sides. Raw control characters occur only in literals. Linear."""
    return _UCHAR_ESCAPED.sub(
        lambda m: _ECHAR.get(m.group(), f"\\u{ord(m.group()):04X}"), statement
    )


def _statements(text: str) -> list[str]:
    """N-Quads text as one string per statement, each ending in ``\\n``. Only LF ends a
    statement: ``str.splitlines`` would also cut a literal at U+000B, U+000C, U+001C-U+001E,
    U+0085, U+2028 or U+2029, which a literal holds raw."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def check_size(expanded: list[Any]) -> None:
    """Refuse an expanded document before PyLD builds its node map (whose cost is quadratic
    in the values of one property of one node): more than :data:`MAX_VALUES_PER_PROPERTY`
    values of one property of one node, or more than :data:`MAX_QUADS` statements (counted
    from above: a value, a type or a reverse link is one, a list item two). Iterative,
    linear."""
    statements = 0
    held: dict[tuple[object, str], int] = {}

    def hold(node: object, prop: str, count: int) -> None:
        total = held[node, prop] = held.get((node, prop), 0) + count
        if total > MAX_VALUES_PER_PROPERTY:
            raise JsonLdError(
                f"a node has {total} values of {prop[:200]}, more than {MAX_VALUES_PER_PROPERTY}"
            )

    stack: list[Any] = [expanded]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict) or "@value" in item:
            continue
        if "@list" in item:
            statements += 2 * len(item["@list"]) if isinstance(item["@list"], list) else 2
            stack.append(item["@list"])
            continue
        node: object = item.get("@id", id(item))  # nodes without an @id are never merged
        for prop, value in item.items():
            values = value if isinstance(value, list) else [value]
            if prop == "@reverse" and isinstance(value, dict):
                for reverse, sources in value.items():
                    for source in sources if isinstance(sources, list) else [sources]:
                        key = (
                            source.get("@id", id(source))
                            if isinstance(source, dict)
                            else id(source)
                        )
                        hold(key, reverse, 1)
                        statements += 1
                        stack.append(source)
            elif prop in ("@graph", "@included"):
                stack.append(values)
            elif prop == "@type" or not prop.startswith("@"):
                hold(node, prop, len(values))
                statements += len(values)
                if prop != "@type":
                    stack.append(values)
        if statements > MAX_QUADS:
            raise JsonLdError(f"document has more than {MAX_QUADS} statements")


def to_nquads(document: Any) -> list[str]:
    """The N-Quads of a JSON-LD document, one statement per string, each ending in ``\\n``, as
    PyLD writes them (control characters raw: :func:`canonical_escapes` makes them canonical).
    The document is expanded (unless it is already: a list) and sized (:func:`check_size`)
    before PyLD turns it into RDF."""
    expanded = document if isinstance(document, list) else expand(document)
    check_size(expanded)
    text: str = _call(jsonld.to_rdf, expanded, _options(format="application/n-quads"))
    lines = _statements(text)
    if len(lines) > MAX_QUADS:
        raise JsonLdError(f"document has {len(lines)} statements, more than {MAX_QUADS}")
    return lines


def canonicalize_nquads(
    nquads: list[str], work_factor: int = MAX_WORK_FACTOR
) -> tuple[list[str], dict[str, str]]:
    """RDFC-1.0 of N-Quads: sorted canonical statements and input label -> ``c14nN`` label.

    Labels in the map carry no ``_:`` prefix (``"b0" -> "c14n0"``); statements are in the
    canonical form (:func:`canonical_escapes`). Raises :class:`PoisonDataset` beyond the
    work bound (:class:`BoundedRDFC10`).
    """
    if len(nquads) > MAX_QUADS:
        raise JsonLdError(f"document has {len(nquads)} statements, more than {MAX_QUADS}")
    dataset = parse_statements(nquads)
    algorithm = BoundedRDFC10(work_factor)
    text: str = algorithm.main(dataset, {"format": "application/n-quads"})
    issued: dict[str, str] = algorithm.canonical_issuer.existing
    mapping = {old.removeprefix("_:"): new.removeprefix("_:") for old, new in issued.items()}
    return sorted(canonical_escapes(line) for line in _statements(text)), mapping


def canonicalize(document: dict[str, Any]) -> list[str]:
    """RDFC-1.0 canonical N-Quads of a JSON-LD document (sorted, one statement per string)."""
    return canonicalize_nquads(to_nquads(document))[0]
