"""The DID Resolution HTTP(S) binding: status codes and content negotiation, pure.

For ``GET /1.0/identifiers/{did}`` (W3C DID Resolution, "HTTP(S) Binding"; checked against
the Candidate Recommendation draft of July 2026).

Status code (:func:`status_code`), from the specification's table, in this order:

==========================================================  ======
``didResolutionMetadata.error``                             status
==========================================================  ======
``invalidDid``, ``invalidDidUrl``, ``invalidOptions``        400
``notFound``                                                 404
``representationNotSupported``                               406
``methodNotSupported``, ``featureNotSupported``              501
``invalidDidDocument``, ``internalError``                    500
any other error                                              500
no error, ``didDocumentMetadata.deactivated`` is ``true``    410
no error, a DID document                                     200
==========================================================  ======

The error may be the camelCase code (``"notFound"``, what :mod:`did_methods` produces) or
an RFC 9457 object whose ``type`` is ``https://www.w3.org/ns/did#NOT_FOUND`` (the
specification's newer form); both map alike.

Deviation, deliberate: the did:key errors ``invalidPublicKey``, ``invalidPublicKeyLength``
and ``invalidPublicKeyType`` say the DID's key material is malformed, i.e. the caller sent a
bad DID, so they get 400 like ``invalidDid`` rather than the table's "any other" 500;
``unsupportedPublicKeyType`` (a valid key of a type this resolver lacks) gets 501 like
``methodNotSupported``; did:ethr's ``unknownNetwork`` (a network this resolver is not
configured for) gets 404 like ``notFound``. Change :data:`ERROR_STATUS` to follow the table
to the letter.

Content negotiation (:func:`negotiate` on the request's ``Accept``):

* ``application/did-resolution`` -> the whole DID resolution result, with that type;
* ``application/ld+json;profile="https://w3id.org/did-resolution"`` -> the whole result,
  with that (older, Universal Resolver) type;
* ``application/did+json``, ``application/did+ld+json``, ``application/did`` -> the DID
  document alone, with the ``contentType`` the resolver reports (the resolver is asked for
  that representation through its ``accept`` option);
* no ``Accept``, ``*/*`` or ``application/*`` -> the whole result
  (``application/did-resolution``);
* the document alone is resolved in the representation asked for (``accept`` option): a
  document without ``@context`` cannot be ``application/did+ld+json`` (406);
* in a whole result resolved without an ``accept`` option, ``contentType`` names the
  document's representation as ethr-did-resolver does: ``application/did+ld+json`` when the
  document has an ``@context``, ``application/did+json`` when it has none
  (:func:`document_content_type`; the route asks :func:`resolution_options`);
* nothing acceptable -> ``None``: answer 406 with :func:`not_acceptable`.

Media ranges are taken in order of their ``q`` (ties: the order given); ``q=0`` excludes.
When the document alone was asked for but there is none (an error, or a deactivated DID),
the body is the whole result, typed ``application/did-resolution``, so the error is not
lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from did_methods.result import (
    DEFAULT_CONTENT_TYPE,
    DOCUMENT_MEDIA_TYPES,
    ERROR_TYPE_URIS,
    MEDIA_TYPE_DID_JSON,
    MEDIA_TYPE_DID_LD_JSON,
    ErrorCode,
    ResolutionResult,
)

MEDIA_TYPE_RESOLUTION = "application/did-resolution"
"""Media type of a DID resolution result (DID Resolution §7.1)."""
RESOLUTION_PROFILE = "https://w3id.org/did-resolution"
MEDIA_TYPE_RESOLUTION_LD = f'application/ld+json;profile="{RESOLUTION_PROFILE}"'
"""The older media type of a resolution result, still sent by Universal Resolver clients."""

ERROR_STATUS: Mapping[str, int] = {
    ErrorCode.INVALID_DID.value: 400,
    ErrorCode.INVALID_DID_URL.value: 400,
    ErrorCode.INVALID_OPTIONS.value: 400,
    ErrorCode.NOT_FOUND.value: 404,
    ErrorCode.REPRESENTATION_NOT_SUPPORTED.value: 406,
    ErrorCode.INVALID_DID_DOCUMENT.value: 500,
    ErrorCode.METHOD_NOT_SUPPORTED.value: 501,
    ErrorCode.FEATURE_NOT_SUPPORTED.value: 501,
    ErrorCode.INTERNAL_ERROR.value: 500,
    ErrorCode.INVALID_PUBLIC_KEY.value: 400,
    ErrorCode.INVALID_PUBLIC_KEY_LENGTH.value: 400,
    ErrorCode.INVALID_PUBLIC_KEY_TYPE.value: 400,
    ErrorCode.UNSUPPORTED_PUBLIC_KEY_TYPE.value: 501,
    ErrorCode.UNKNOWN_NETWORK.value: 404,
}
"""HTTP status per error code; an unlisted error is 500."""
_URI_NAMES: Mapping[str, str] = {uri: code for code, uri in ERROR_TYPE_URIS.items()}
STATUS_OK = 200
STATUS_DEACTIVATED = 410
STATUS_OTHER_ERROR = 500


def error_code_of(error: object) -> str | None:
    """The camelCase code of an error given as a code or as an RFC 9457 object."""
    if isinstance(error, str):
        return _URI_NAMES.get(error, error)
    if isinstance(error, Mapping):
        error_type = error.get("type")
        if isinstance(error_type, str):
            return _URI_NAMES.get(error_type, error_type)
        return ""
    return None


def error_status(error: object) -> int:
    """The HTTP status for one error (code string or RFC 9457 object)."""
    code = error_code_of(error)
    if code is None:
        return STATUS_OTHER_ERROR
    return ERROR_STATUS.get(code, STATUS_OTHER_ERROR)


def status_code(result: ResolutionResult) -> int:
    """The HTTP status of a resolution result (table in the module docstring)."""
    error = result.did_resolution_metadata.get("error")
    if error is not None:
        return error_status(error)
    if result.deactivated:
        return STATUS_DEACTIVATED
    if result.did_document is None:
        return STATUS_OTHER_ERROR
    return STATUS_OK


@dataclass(frozen=True, slots=True)
class Negotiation:
    """What to answer: the whole result or the document alone, and how to ask the resolver.

    ``content_type`` is the response's media type when the whole result is sent;
    ``accept`` is the ``accept`` resolution option to resolve with.
    """

    whole_result: bool
    content_type: str
    accept: str


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A response, ready to serialise: status, ``Content-Type`` and JSON body."""

    status: int
    content_type: str
    body: dict[str, Any]


_DEFAULT = Negotiation(True, MEDIA_TYPE_RESOLUTION, DEFAULT_CONTENT_TYPE)


def _media_ranges(header: str) -> list[tuple[str, dict[str, str], float]]:
    """``(type, params, q)`` of each media range of an ``Accept`` header, best first."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for position, part in enumerate(header.split(",")):
        pieces = [piece.strip() for piece in part.split(";")]
        media_type = pieces[0].lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        quality = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:
                    quality = 0.0
            elif name:
                params[name] = value
        ranges.append((-quality, position, media_type, params))
    ranges.sort()
    return [(media_type, params, -neg_q) for neg_q, _, media_type, params in ranges]


def negotiate(accept_header: str | None) -> Negotiation | None:
    """Choose the response form for an ``Accept`` header; ``None`` when nothing fits."""
    if accept_header is None or not accept_header.strip():
        return _DEFAULT
    for media_type, params, quality in _media_ranges(accept_header):
        if quality <= 0:
            continue
        if media_type == MEDIA_TYPE_RESOLUTION:
            return _DEFAULT
        if media_type == "application/ld+json" and params.get("profile") == RESOLUTION_PROFILE:
            return Negotiation(True, MEDIA_TYPE_RESOLUTION_LD, DEFAULT_CONTENT_TYPE)
        if media_type in DOCUMENT_MEDIA_TYPES:
            return Negotiation(False, media_type, media_type)
        if media_type in ("*/*", "application/*"):
            return _DEFAULT
    return None


def not_acceptable(accept_header: str | None) -> HttpAnswer:
    """The 406 answer for an ``Accept`` header :func:`negotiate` could not satisfy."""
    result = ResolutionResult.failure(
        ErrorCode.REPRESENTATION_NOT_SUPPORTED,
        f"none of {accept_header!r} can be served; accept {MEDIA_TYPE_RESOLUTION} for the "
        f"resolution result or one of {', '.join(sorted(DOCUMENT_MEDIA_TYPES))} for the "
        "DID document",
    )
    return HttpAnswer(error_status(result.error), MEDIA_TYPE_RESOLUTION, result.to_json())


def document_content_type(document: Mapping[str, Any]) -> str:
    """The representation a DID document is in: JSON-LD when it has an ``@context``."""
    return MEDIA_TYPE_DID_LD_JSON if "@context" in document else MEDIA_TYPE_DID_JSON


def resolution_options(negotiation: Negotiation, query: Mapping[str, str]) -> dict[str, str]:
    """The resolver's options for a request: its query parameters, and the representation
    the ``Accept`` header asked for when it asked for the document alone (a query
    ``accept`` wins)."""
    options = dict(query)
    if not negotiation.whole_result:
        options.setdefault("accept", negotiation.accept)
    return options


def render(
    result: ResolutionResult, negotiation: Negotiation, *, representation_asked: bool = True
) -> HttpAnswer:
    """The HTTP answer for ``result`` in the form ``negotiation`` chose. Unless the request
    asked for a representation (``representation_asked``), a whole result's ``contentType``
    is the document's own (:func:`document_content_type`)."""
    if (
        negotiation.whole_result
        and not representation_asked
        and result.error is None
        and result.did_document is not None
    ):
        metadata = {
            **result.did_resolution_metadata,
            "contentType": document_content_type(result.did_document),
        }
        result = replace(result, did_resolution_metadata=metadata)
    status = status_code(result)
    if negotiation.whole_result or status != STATUS_OK or result.did_document is None:
        content_type = (
            negotiation.content_type if negotiation.whole_result else MEDIA_TYPE_RESOLUTION
        )
        return HttpAnswer(status, content_type, result.to_json())
    return HttpAnswer(status, result.content_type or negotiation.accept, result.did_document)
