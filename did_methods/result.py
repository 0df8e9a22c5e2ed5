"""The DID Resolution result (W3C DID Resolution §4.1, §7) and its error codes, pure.

A resolution never raises for a bad DID: it returns a :class:`ResolutionResult` whose
``did_resolution_metadata`` carries ``error`` (one of :class:`ErrorCode`) and a human
``errorMessage``. On success the metadata carries ``contentType``.

Error representation: ``error`` is the camelCase code string used by DID Core 1.0, the
did:key specification and the Universal Resolver (``"notFound"``). The 2025+ DID Resolution
drafts describe the error as an RFC 9457 object whose ``type`` is
``https://www.w3.org/ns/did#NOT_FOUND``; :meth:`ResolutionResult.error_problem` gives that
form and :data:`ERROR_TYPE_URIS` maps one to the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

RESOLUTION_CONTEXT = "https://w3id.org/did-resolution/v1"
"""``@context`` of the JSON form of a resolution result (:meth:`ResolutionResult.to_json`)."""

MEDIA_TYPE_DID_JSON = "application/did+json"
MEDIA_TYPE_DID_LD_JSON = "application/did+ld+json"
MEDIA_TYPE_DID = "application/did"
DEFAULT_CONTENT_TYPE = MEDIA_TYPE_DID_JSON
"""Representation returned when the caller does not ask for one (``accept`` option)."""
DOCUMENT_MEDIA_TYPES = frozenset({MEDIA_TYPE_DID_JSON, MEDIA_TYPE_DID_LD_JSON, MEDIA_TYPE_DID})
"""DID document representations a resolver here can return (the ``accept`` option)."""


class ErrorCode(StrEnum):
    """``didResolutionMetadata.error`` values (DID Core §7.1.2, DID Resolution, did:key)."""

    INVALID_DID = "invalidDid"
    INVALID_DID_URL = "invalidDidUrl"
    INVALID_DID_DOCUMENT = "invalidDidDocument"
    NOT_FOUND = "notFound"
    METHOD_NOT_SUPPORTED = "methodNotSupported"
    REPRESENTATION_NOT_SUPPORTED = "representationNotSupported"
    INVALID_OPTIONS = "invalidOptions"
    FEATURE_NOT_SUPPORTED = "featureNotSupported"
    INTERNAL_ERROR = "internalError"
    # did:key specification (w3c-ccg/did-method-key, "Document Creation Algorithm").
    INVALID_PUBLIC_KEY = "invalidPublicKey"
    INVALID_PUBLIC_KEY_LENGTH = "invalidPublicKeyLength"
    INVALID_PUBLIC_KEY_TYPE = "invalidPublicKeyType"
    UNSUPPORTED_PUBLIC_KEY_TYPE = "unsupportedPublicKeyType"
    # did:ethr (ethr-did-resolver): the DID names a network the resolver is not configured for.
    UNKNOWN_NETWORK = "unknownNetwork"


ERROR_TYPE_BASE = "https://www.w3.org/ns/did#"
ERROR_TYPE_URIS: Mapping[str, str] = {
    code.value: ERROR_TYPE_BASE
    + "".join("_" + c if c.isupper() else c.upper() for c in code.value).lstrip("_")
    for code in ErrorCode
}
"""camelCase code -> RFC 9457 ``type`` URI of the DID Resolution drafts
(``notFound`` -> ``https://www.w3.org/ns/did#NOT_FOUND``)."""


@dataclass(frozen=True, slots=True)
class ResolutionResult:
    """The outcome of resolving one DID: document, resolution metadata, document metadata.

    The three members hold JSON values. Results handed out by :class:`~did_methods.Resolver`
    are the caller's own copies: mutating them never changes what the cache serves.
    """

    did_document: dict[str, Any] | None
    did_resolution_metadata: dict[str, Any]
    did_document_metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def success(
        cls,
        document: dict[str, Any],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        document_metadata: dict[str, Any] | None = None,
        resolution_metadata: dict[str, Any] | None = None,
    ) -> ResolutionResult:
        """A successful result carrying ``document`` in the ``content_type`` representation."""
        metadata = {"contentType": content_type, **(resolution_metadata or {})}
        return cls(document, metadata, dict(document_metadata or {}))

    @classmethod
    def failure(cls, error: ErrorCode | str, message: str) -> ResolutionResult:
        """A failed result: no document, ``error`` and ``errorMessage`` in the metadata."""
        return cls(None, {"error": str(error), "errorMessage": message}, {})

    @property
    def error(self) -> str | None:
        """The error code, or ``None`` on success."""
        value = self.did_resolution_metadata.get("error")
        return value if isinstance(value, str) else None

    @property
    def error_message(self) -> str | None:
        """The human explanation of :attr:`error`, when there is one."""
        value = self.did_resolution_metadata.get("errorMessage")
        return value if isinstance(value, str) else None

    @property
    def content_type(self) -> str | None:
        """``didResolutionMetadata.contentType``."""
        value = self.did_resolution_metadata.get("contentType")
        return value if isinstance(value, str) else None

    @property
    def deactivated(self) -> bool:
        """True when ``didDocumentMetadata.deactivated`` is ``true``."""
        return self.did_document_metadata.get("deactivated") is True

    @property
    def ok(self) -> bool:
        """True when there is no error, a document, and the DID is not deactivated."""
        return self.error is None and self.did_document is not None and not self.deactivated

    def error_problem(self) -> dict[str, str] | None:
        """The error as an RFC 9457 problem object (DID Resolution 2025+ form), or ``None``."""
        if self.error is None:
            return None
        problem = {
            "type": ERROR_TYPE_URIS.get(self.error, ERROR_TYPE_BASE + self.error),
            "title": self.error,
        }
        if self.error_message:
            problem["detail"] = self.error_message
        return problem

    def to_json(self) -> dict[str, Any]:
        """The DID Resolution result as a JSON object."""
        return {
            "@context": RESOLUTION_CONTEXT,
            "didDocument": self.did_document,
            "didResolutionMetadata": self.did_resolution_metadata,
            "didDocumentMetadata": self.did_document_metadata,
        }

    def dumps(self) -> str:
        """:meth:`to_json` serialised (compact, key order kept)."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResolutionResult:
        """Read a result in the :meth:`to_json` form (e.g. from a remote resolver).

        Raises ``ValueError`` when a member has the wrong JSON type.
        """
        document = data.get("didDocument")
        resolution_metadata = data.get("didResolutionMetadata", {})
        document_metadata = data.get("didDocumentMetadata", {})
        if document is not None and not isinstance(document, dict):
            raise ValueError("didDocument must be a JSON object or null")
        if not isinstance(resolution_metadata, dict):
            raise ValueError("didResolutionMetadata must be a JSON object")
        if not isinstance(document_metadata, dict):
            raise ValueError("didDocumentMetadata must be a JSON object")
        return cls(document, resolution_metadata, document_metadata)

    @classmethod
    def loads(cls, text: str | bytes) -> ResolutionResult:
        """Inverse of :meth:`dumps`."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a DID resolution result must be a JSON object")
        return cls.from_json(data)
