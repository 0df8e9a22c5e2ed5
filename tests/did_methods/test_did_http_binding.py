"""The DID Resolution HTTP(S) binding: status codes and content negotiation."""

from __future__ import annotations

from typing import Any

import pytest

from did_methods import ErrorCode, ResolutionResult
from did_methods.http_binding import (
    ERROR_STATUS,
    MEDIA_TYPE_RESOLUTION,
    MEDIA_TYPE_RESOLUTION_LD,
    Negotiation,
    document_content_type,
    error_code_of,
    error_status,
    negotiate,
    not_acceptable,
    render,
    resolution_options,
    status_code,
)
from did_methods.result import DEFAULT_CONTENT_TYPE as DEFAULT

DID = "did:example:123"
DOCUMENT = {"@context": ["https://www.w3.org/ns/did/v1"], "id": DID}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalidDid", 400),
        ("invalidDidUrl", 400),
        ("invalidOptions", 400),
        ("notFound", 404),
        ("representationNotSupported", 406),
        ("methodNotSupported", 501),
        ("featureNotSupported", 501),
        ("invalidDidDocument", 500),
        ("internalError", 500),
        ("invalidPublicKey", 400),
        ("invalidPublicKeyLength", 400),
        ("invalidPublicKeyType", 400),
        ("unsupportedPublicKeyType", 501),
        ("somethingNew", 500),
    ],
)
def test_error_status(code: str, status: int) -> None:
    result = ResolutionResult.failure(code, "message")
    assert status_code(result) == status
    assert error_status(code) == status


def test_every_error_code_has_a_status() -> None:
    assert set(ERROR_STATUS) == {code.value for code in ErrorCode}


def test_an_unknown_did_ethr_network_is_not_found() -> None:
    """ethr-did-resolver's ``unknownNetwork``: the DID may exist, not on a network known here."""
    assert error_status(ErrorCode.UNKNOWN_NETWORK) == 404
    assert status_code(ResolutionResult.failure(ErrorCode.UNKNOWN_NETWORK, "sepolia")) == 404


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("https://www.w3.org/ns/did#INVALID_DID", 400),
        ("https://www.w3.org/ns/did#INVALID_DID_URL", 400),
        ("https://www.w3.org/ns/did#NOT_FOUND", 404),
        ("https://www.w3.org/ns/did#REPRESENTATION_NOT_SUPPORTED", 406),
        ("https://www.w3.org/ns/did#METHOD_NOT_SUPPORTED", 501),
        ("https://www.w3.org/ns/did#INVALID_DID_DOCUMENT", 500),
        ("https://example.test/errors#WHATEVER", 500),
    ],
)
def test_problem_details_errors_map_alike(uri: str, status: int) -> None:
    result = ResolutionResult(None, {"error": {"type": uri, "title": "t"}}, {})
    assert status_code(result) == status


def test_error_code_of() -> None:
    assert error_code_of("notFound") == "notFound"
    assert error_code_of("https://www.w3.org/ns/did#NOT_FOUND") == "notFound"
    assert error_code_of({"type": "https://www.w3.org/ns/did#INVALID_OPTIONS"}) == "invalidOptions"
    assert error_code_of({"title": "no type"}) == ""
    assert error_code_of(42) is None
    assert error_status(42) == 500


def test_success_deactivated_and_empty() -> None:
    assert status_code(ResolutionResult.success(DOCUMENT)) == 200
    deactivated = ResolutionResult.success(DOCUMENT, document_metadata={"deactivated": True})
    assert status_code(deactivated) == 410
    deactivated_without_document = ResolutionResult(
        None, {"contentType": "application/did+json"}, {"deactivated": True}
    )
    assert status_code(deactivated_without_document) == 410
    not_deactivated = ResolutionResult.success(DOCUMENT, document_metadata={"deactivated": False})
    assert status_code(not_deactivated) == 200
    assert status_code(ResolutionResult(None, {}, {})) == 500
    # An error wins over deactivation.
    both = ResolutionResult(None, {"error": "notFound"}, {"deactivated": True})
    assert status_code(both) == 404


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, Negotiation(True, MEDIA_TYPE_RESOLUTION, "application/did+json")),
        ("", Negotiation(True, MEDIA_TYPE_RESOLUTION, "application/did+json")),
        ("*/*", Negotiation(True, MEDIA_TYPE_RESOLUTION, "application/did+json")),
        ("application/*", Negotiation(True, MEDIA_TYPE_RESOLUTION, "application/did+json")),
        (
            "application/did-resolution",
            Negotiation(True, MEDIA_TYPE_RESOLUTION, "application/did+json"),
        ),
        (
            'application/ld+json;profile="https://w3id.org/did-resolution"',
            Negotiation(True, MEDIA_TYPE_RESOLUTION_LD, "application/did+json"),
        ),
        (
            "application/ld+json; profile=https://w3id.org/did-resolution; charset=utf-8",
            Negotiation(True, MEDIA_TYPE_RESOLUTION_LD, "application/did+json"),
        ),
        (
            "application/did+ld+json",
            Negotiation(False, "application/did+ld+json", "application/did+ld+json"),
        ),
        (
            "Application/DID+JSON",
            Negotiation(False, "application/did+json", "application/did+json"),
        ),
        ("application/did", Negotiation(False, "application/did", "application/did")),
        (
            "text/html, application/did+json;q=0.5, application/did-resolution;q=0.9",
            Negotiation(True, MEDIA_TYPE_RESOLUTION, "application/did+json"),
        ),
        (
            "application/did-resolution;q=0, application/did+ld+json",
            Negotiation(False, "application/did+ld+json", "application/did+ld+json"),
        ),
        (
            "application/did+json, application/did+ld+json",
            Negotiation(False, "application/did+json", "application/did+json"),
        ),
        ("text/html, */*;q=0.1", Negotiation(True, MEDIA_TYPE_RESOLUTION, "application/did+json")),
    ],
)
def test_negotiate(accept: str | None, expected: Negotiation) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/json",
        "application/ld+json",
        "application/did+json;q=0",
        "application/did+json;q=bogus",
        "application/did+json;q=2",
    ],
)
def test_nothing_acceptable(accept: str) -> None:
    assert negotiate(accept) is None
    answer = not_acceptable(accept)
    assert answer.status == 406
    assert answer.content_type == MEDIA_TYPE_RESOLUTION
    assert answer.body["didResolutionMetadata"]["error"] == "representationNotSupported"


def test_render_whole_result() -> None:
    result = ResolutionResult.success(DOCUMENT)
    answer = render(result, negotiate("application/did-resolution"))  # type: ignore[arg-type]
    assert (answer.status, answer.content_type) == (200, MEDIA_TYPE_RESOLUTION)
    assert answer.body == result.to_json()
    legacy = render(result, negotiate(MEDIA_TYPE_RESOLUTION_LD))  # type: ignore[arg-type]
    assert legacy.content_type == MEDIA_TYPE_RESOLUTION_LD
    assert legacy.body["@context"] == "https://w3id.org/did-resolution/v1"


def test_render_document_alone() -> None:
    result = ResolutionResult.success(DOCUMENT, content_type="application/did+ld+json")
    answer = render(result, negotiate("application/did+ld+json"))  # type: ignore[arg-type]
    assert (answer.status, answer.content_type, answer.body) == (
        200,
        "application/did+ld+json",
        DOCUMENT,
    )


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (ResolutionResult.failure("notFound", "gone"), 404),
        (ResolutionResult.failure("invalidDid", "bad"), 400),
        (ResolutionResult.success(DOCUMENT, document_metadata={"deactivated": True}), 410),
    ],
)
def test_render_document_request_without_a_document(result: ResolutionResult, status: int) -> None:
    """Asked for the document alone, an error or deactivation still reaches the client."""
    answer = render(result, negotiate("application/did+json"))  # type: ignore[arg-type]
    assert answer.status == status
    assert answer.content_type == MEDIA_TYPE_RESOLUTION
    body: dict[str, Any] = answer.body
    assert body == result.to_json()


def test_whole_result_content_type_follows_the_document() -> None:
    """Without an asked-for representation, ``contentType`` is the document's own: JSON-LD
    when it has an ``@context`` (as ethr-did-resolver says), JSON when it has none."""
    whole = negotiate(None)
    assert whole is not None
    plain = {"id": DID}
    for document, expected in ((DOCUMENT, "application/did+ld+json"), (plain, DEFAULT)):
        result = ResolutionResult.success(document)
        answer = render(result, whole, representation_asked=False)
        assert answer.body["didResolutionMetadata"]["contentType"] == expected
        assert document_content_type(document) == expected
        asked = render(result, whole)  # asked for: the resolver's contentType stands
        assert asked.body["didResolutionMetadata"]["contentType"] == DEFAULT
    failed = ResolutionResult.failure("notFound", "gone")
    assert (
        "contentType"
        not in render(failed, whole, representation_asked=False).body["didResolutionMetadata"]
    )


def test_resolution_options_carry_the_accepted_representation() -> None:
    ld, whole = negotiate("application/did+ld+json"), negotiate(None)
    assert ld is not None
    assert whole is not None
    assert resolution_options(ld, {}) == {"accept": "application/did+ld+json"}
    assert resolution_options(ld, {"accept": "application/did+json"}) == {
        "accept": "application/did+json"
    }
    assert resolution_options(whole, {"noCache": "true"}) == {"noCache": "true"}
