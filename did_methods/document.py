"""Reading DID documents: verification methods, relationships, relative DID URLs; pure.

* :func:`absolute_did_url` resolves a relative DID URL (``#key-1``, ``?service=x``,
  ``/path``) against the document's DID (DID Core §3.2.2).
* :func:`dereference_verification_method` finds a verification method by DID URL, whether
  listed under ``verificationMethod`` or embedded in a verification relationship.
* :func:`check_authorization` answers "is this key authorised for this verification
  relationship of this document", with the method found or the reason it is not.
* :func:`expand_relative_urls` implements the ``expandRelativeUrls`` resolution option.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from did_methods.syntax import DidSyntaxError, parse_did_url

if TYPE_CHECKING:
    from did_methods.result import ResolutionResult

VERIFICATION_RELATIONSHIPS = (
    "authentication",
    "assertionMethod",
    "keyAgreement",
    "capabilityInvocation",
    "capabilityDelegation",
)
"""The verification relationships of DID Core §5.3."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """Whether ``did_url`` is authorised for ``purpose``: the method found, or why not.

    ``resolution`` is the resolution result the answer is based on (``None`` when no
    resolution was attempted, e.g. for a malformed DID URL).
    """

    authorized: bool
    reason: str
    did_url: str
    purpose: str
    verification_method: dict[str, Any] | None = None
    resolution: ResolutionResult | None = None


def absolute_did_url(ref: str, base_did: str) -> str:
    """``ref`` made absolute against ``base_did`` when it is a relative DID URL."""
    if ref.startswith(("#", "?", "/")):
        return base_did + ref
    return ref


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    return [value]


def _document_of(source: ResolutionResult | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source
    return source.did_document


def _defined_methods(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every verification method object of the document, listed or embedded."""
    for item in _as_list(document.get("verificationMethod")):
        if isinstance(item, Mapping):
            yield item
    for relationship in VERIFICATION_RELATIONSHIPS:
        for item in _as_list(document.get(relationship)):
            if isinstance(item, Mapping):
                yield item


def _base(document: Mapping[str, Any]) -> str:
    doc_id = document.get("id")
    return doc_id if isinstance(doc_id, str) else ""


def dereference_verification_method(
    source: ResolutionResult | Mapping[str, Any] | None, did_url: str
) -> dict[str, Any] | None:
    """The verification method whose id is ``did_url`` (absolute or ``#fragment``), or
    ``None``.

    ``source`` is a resolution result or a DID document. Methods under
    ``verificationMethod`` and those embedded in verification relationships are searched;
    ids are compared after making relative ones absolute against the document ``id``. The
    returned dict is a copy whose ``id`` is absolute.
    """
    document = _document_of(source)
    if document is None or not isinstance(did_url, str):
        return None
    base = _base(document)
    target = absolute_did_url(did_url, base)
    for method in _defined_methods(document):
        method_id = method.get("id")
        if isinstance(method_id, str) and absolute_did_url(method_id, base) == target:
            return {**method, "id": target}
    return None


def check_authorization(
    source: ResolutionResult | Mapping[str, Any] | None, did_url: str, purpose: str
) -> Authorization:
    """Is ``did_url`` listed (by reference or embedded) under the relationship ``purpose``?

    ``purpose`` must be one of :data:`VERIFICATION_RELATIONSHIPS` (else ``ValueError``: a
    programming error, not data). A reference to a method the document does not define is
    not an authorisation.
    """
    if purpose not in VERIFICATION_RELATIONSHIPS:
        raise ValueError(
            f"unknown verification relationship {purpose!r}; "
            f"use one of {', '.join(VERIFICATION_RELATIONSHIPS)}"
        )
    document = _document_of(source)
    if document is None:
        return Authorization(False, "there is no DID document", did_url, purpose)
    base = _base(document)
    target = absolute_did_url(did_url, base)
    for entry in _as_list(document.get(purpose)):
        if isinstance(entry, str) and absolute_did_url(entry, base) == target:
            method = dereference_verification_method(document, target)
            if method is None:
                return Authorization(
                    False,
                    f"{purpose} lists {target} but the document defines no such "
                    "verification method",
                    did_url,
                    purpose,
                )
            return Authorization(
                True, f"{target} is listed under {purpose}", did_url, purpose, method
            )
        if isinstance(entry, Mapping):
            entry_id = entry.get("id")
            if isinstance(entry_id, str) and absolute_did_url(entry_id, base) == target:
                method = {**entry, "id": target}
                return Authorization(
                    True, f"{target} is embedded under {purpose}", did_url, purpose, method
                )
    if dereference_verification_method(document, target) is not None:
        reason = f"{target} is a verification method of {base} but is not listed under {purpose}"
    else:
        reason = f"{base} has no verification method {target}"
    return Authorization(False, reason, did_url, purpose)


def key_did_url_error(did_url: str) -> str | None:
    """Why ``did_url`` cannot identify a verification method (``None`` when it can).

    Accepted: an absolute DID URL made of a DID and a non-empty fragment, nothing else.
    """
    try:
        parsed = parse_did_url(did_url)
    except DidSyntaxError as exc:
        return str(exc)
    if parsed.path or parsed.query is not None:
        return (
            f"{did_url!r} has a path or query; a key is named by a DID and a fragment "
            "(did:...#key-1)"
        )
    if not parsed.fragment:
        return (
            f"{did_url!r} has no fragment; a key is named by a DID and a fragment (did:...#key-1)"
        )
    return None


def expand_relative_urls(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` with relative DID URLs made absolute against its ``id``.

    Rewritten: the ``id`` of verification methods and services, and the references and
    embedded methods of the verification relationships.
    """
    base = _base(document)
    out = dict(document)
    if not base:
        return out

    def fix_object(item: Any) -> Any:
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            return {**item, "id": absolute_did_url(item["id"], base)}
        return item

    for name in ("verificationMethod", "service"):
        if isinstance(out.get(name), list):
            out[name] = [fix_object(item) for item in out[name]]
    for relationship in VERIFICATION_RELATIONSHIPS:
        if isinstance(out.get(relationship), list):
            out[relationship] = [
                absolute_did_url(item, base) if isinstance(item, str) else fix_object(item)
                for item in out[relationship]
            ]
    return out
