"""JSON-LD processing with contexts served from the package, and RDFC-1.0 canonicalization.

Role: the only door from LER Anchor to JSON-LD (PyLD). Every ``@context`` URL a document may
name is served from ``anchor/contexts/`` (sources and commits in ``anchor/contexts/SOURCES.md``);
any other URL is refused with :class:`UnknownContext`: nothing is ever fetched from the network.
RDF Dataset Canonicalization (RDFC-1.0, identical in output to URDNA2015) comes from PyLD's
``URDNA2015`` implementation, which also exposes the map from input blank node labels to
canonical labels that ``ecdsa-sd-2023`` needs.

Pure apart from reading the packaged context files once (cached, parsed JSON; PyLD also caches
resolved contexts process-wide). Cost: expansion / ``toRdf`` of a 2 kB credential takes a few
milliseconds; canonicalization is quasi-linear in the number of quads for tree-shaped data.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any, Final

from pyld import jsonld  # type: ignore[import-untyped]
from pyld.canon import URDNA2015  # type: ignore[import-untyped]
from pyld.nquads import parse_nquads  # type: ignore[import-untyped]

from anchor.errors import InvalidInput

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


def to_nquads(document: Any) -> list[str]:
    """The N-Quads of a JSON-LD document, one statement per string, each ending in ``\\n``."""
    text: str = _call(jsonld.to_rdf, document, _options(format="application/n-quads"))
    lines = text.splitlines(keepends=True)
    if len(lines) > MAX_QUADS:
        raise JsonLdError(f"document has {len(lines)} statements, more than {MAX_QUADS}")
    return lines


def canonicalize_nquads(nquads: list[str]) -> tuple[list[str], dict[str, str]]:
    """RDFC-1.0 of N-Quads: sorted canonical statements and input label -> ``c14nN`` label.

    Labels in the map carry no ``_:`` prefix (``"b0" -> "c14n0"``).
    """
    if len(nquads) > MAX_QUADS:
        raise JsonLdError(f"document has {len(nquads)} statements, more than {MAX_QUADS}")
    dataset = parse_nquads("".join(nquads))
    algorithm = URDNA2015()
    text: str = algorithm.main(dataset, {"format": "application/n-quads"})
    issued: dict[str, str] = algorithm.canonical_issuer.existing
    mapping = {old.removeprefix("_:"): new.removeprefix("_:") for old, new in issued.items()}
    return text.splitlines(keepends=True), mapping


def canonicalize(document: dict[str, Any]) -> list[str]:
    """RDFC-1.0 canonical N-Quads of a JSON-LD document (sorted, one statement per string)."""
    return canonicalize_nquads(to_nquads(document))[0]
