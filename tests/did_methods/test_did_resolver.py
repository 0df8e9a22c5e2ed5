"""The resolver: registry, options, result shape, cache, dereferencing and authorisation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from did_methods import (
    Authorization,
    ErrorCode,
    MethodDriver,
    ParsedDid,
    ResolutionResult,
    Resolver,
    absolute_did_url,
    build_resolver,
    check_authorization,
    dereference_verification_method,
    expand_relative_urls,
    format_version_time,
)

DID = "did:example:alice"
KEY1 = DID + "#key-1"


def _document(did: str = DID) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [
            {
                "id": "#key-1",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            },
            {
                "id": f"{did}#key-2",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
            },
        ],
        "assertionMethod": ["#key-1"],
        "authentication": [
            f"{did}#key-2",
            {
                "id": f"{did}#key-3",
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": "zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv",
            },
        ],
        "capabilityInvocation": [f"{did}#missing"],
        "service": [{"id": "#hub", "type": "LinkedDomains", "serviceEndpoint": "https://x.test"}],
    }


class TableDriver:
    """A DID method backed by a dict: a real driver for registry and cache behaviour.

    Records how often it ran and the options it was given; ``history`` maps a
    ``versionTime`` to an older document.
    """

    def __init__(self, documents: Mapping[str, dict[str, Any]], delay: float = 0.0) -> None:
        self.documents = dict(documents)
        self.history: dict[str, dict[str, Any]] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.options: list[dict[str, Any]] = []
        self.delay = delay

    async def resolve(self, did: ParsedDid, options: Mapping[str, Any]) -> ResolutionResult:
        self.calls += 1
        self.options.append(dict(options))
        if self.delay:
            await asyncio.sleep(self.delay)
        version_time = options.get("versionTime")
        if isinstance(version_time, str) and version_time in self.history:
            return ResolutionResult.success(self.history[version_time])
        document = self.documents.get(did.did)
        if document is None:
            return ResolutionResult.failure(ErrorCode.NOT_FOUND, f"{did.did} is not in the table")
        return ResolutionResult.success(
            json.loads(json.dumps(document)), document_metadata=self.metadata.get(did.did)
        )


class BrokenDriver:
    def __init__(self, answer: object = None, error: Exception | None = None) -> None:
        self.answer = answer
        self.error = error

    async def resolve(self, did: ParsedDid, options: Mapping[str, Any]) -> Any:
        if self.error is not None:
            raise self.error
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _resolver(driver: TableDriver, **kwargs: Any) -> Resolver:
    resolver = Resolver(**kwargs)
    resolver.register("example", driver)
    return resolver


# -- registry and result shape -------------------------------------------------------------


async def test_success_result_shape() -> None:
    resolver = _resolver(TableDriver({DID: _document()}))
    result = await resolver.resolve(DID)
    assert result.ok
    assert result.did_resolution_metadata == {"contentType": "application/did+json"}
    assert result.to_json() == {
        "@context": "https://w3id.org/did-resolution/v1",
        "didDocument": _document(),
        "didResolutionMetadata": {"contentType": "application/did+json"},
        "didDocumentMetadata": {},
    }
    assert ResolutionResult.loads(result.dumps()) == result
    with pytest.raises(AttributeError):
        result.did_document = None  # type: ignore[misc]


@pytest.mark.parametrize(
    ("did", "code", "message"),
    [
        ("not a did", ErrorCode.INVALID_DID, "must start with 'did:'"),
        ("did:example:alice#key-1", ErrorCode.INVALID_DID, "is a DID URL, not a DID"),
        ("did:nope:alice", ErrorCode.METHOD_NOT_SUPPORTED, "did:nope is not supported"),
        ("did:example:bob", ErrorCode.NOT_FOUND, "not in the table"),
    ],
)
async def test_errors_are_data(did: str, code: ErrorCode, message: str) -> None:
    resolver = _resolver(TableDriver({DID: _document()}))
    result = await resolver.resolve(did)
    assert not result.ok
    assert result.error == code.value
    assert result.error_message is not None
    assert message in result.error_message
    assert result.did_document is None
    assert result.did_document_metadata == {}
    assert result.to_json()["didResolutionMetadata"] == {
        "error": code.value,
        "errorMessage": result.error_message,
    }
    problem = result.error_problem()
    assert problem is not None
    assert problem["type"].startswith("https://www.w3.org/ns/did#")


def test_error_problem_type_uris() -> None:
    result = ResolutionResult.failure(ErrorCode.REPRESENTATION_NOT_SUPPORTED, "no")
    assert result.error_problem() == {
        "type": "https://www.w3.org/ns/did#REPRESENTATION_NOT_SUPPORTED",
        "title": "representationNotSupported",
        "detail": "no",
    }
    assert ResolutionResult.success({"id": DID}).error_problem() is None


def test_registry_rules() -> None:
    resolver = Resolver()
    driver = TableDriver({})
    assert isinstance(driver, MethodDriver)
    resolver.register("example", driver)
    assert resolver.methods == ("example",)
    assert resolver.driver("example") is driver
    with pytest.raises(ValueError, match="already registered"):
        resolver.register("example", TableDriver({}))
    resolver.register("example", TableDriver({}), replace=True)
    assert resolver.driver("example") is not driver
    with pytest.raises(ValueError, match="lowercase letters and digits"):
        resolver.register("Ethr", TableDriver({}))
    with pytest.raises(TypeError, match="no resolve"):
        resolver.register("ethr", object())  # type: ignore[arg-type]
    resolver.unregister("example")
    assert not resolver.methods
    assert resolver.driver("example") is None


async def test_a_later_method_plugs_in() -> None:
    """did:ethr (or any method) is one ``register`` call away."""
    resolver = build_resolver()
    assert resolver.methods == ("key",)
    ethr_did = "did:ethr:0x1:0xb9c5714089478a327f09197987f16f9e5d936e8a"
    assert (await resolver.resolve(ethr_did)).error == "methodNotSupported"
    resolver.register("ethr", TableDriver({ethr_did: _document(ethr_did)}))
    assert (await resolver.resolve(ethr_did)).ok


@pytest.mark.parametrize(
    ("answer", "error", "code", "message"),
    [
        (None, RuntimeError("boom"), ErrorCode.INTERNAL_ERROR, "RuntimeError: boom"),
        ("not a result", None, ErrorCode.INTERNAL_ERROR, "returned str"),
        (
            ResolutionResult(None, {}, {}),
            None,
            ErrorCode.INTERNAL_ERROR,
            "neither a document nor an error",
        ),
        (
            ResolutionResult.success({"id": "did:example:mallory"}),
            None,
            ErrorCode.INVALID_DID_DOCUMENT,
            "is not the DID",
        ),
        (
            ResolutionResult.success({"id": DID, "x": {1, 2}}),
            None,
            ErrorCode.INTERNAL_ERROR,
            "not JSON",
        ),
        (
            ResolutionResult({"id": DID}, {"error": "notFound"}, {}),
            None,
            ErrorCode.NOT_FOUND,
            "resolution failed: notFound",
        ),
    ],
)
async def test_driver_misbehaviour_becomes_data(
    answer: object, error: Exception | None, code: ErrorCode, message: str
) -> None:
    resolver = Resolver()
    resolver.register("example", BrokenDriver(answer, error))
    result = await resolver.resolve(DID)
    assert result.error == code.value
    assert result.error_message is not None
    assert message in result.error_message
    assert result.did_document is None


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        ({"accept": "text/html"}, ErrorCode.REPRESENTATION_NOT_SUPPORTED, "not supported"),
        ({"accept": "application/json"}, ErrorCode.REPRESENTATION_NOT_SUPPORTED, "ask for one"),
        ({"accept": 5}, ErrorCode.INVALID_OPTIONS, "'accept' must be a string"),
        ({"noCache": "maybe"}, ErrorCode.INVALID_OPTIONS, "'noCache' must be a boolean"),
        ({"noCache": 1}, ErrorCode.INVALID_OPTIONS, "'noCache' must be a boolean"),
        ({"expandRelativeUrls": None}, ErrorCode.INVALID_OPTIONS, "must be a boolean"),
        ({"versionId": 3}, ErrorCode.INVALID_OPTIONS, "'versionId' must be a non-empty string"),
        ({"versionTime": "yesterday"}, ErrorCode.INVALID_OPTIONS, "'versionTime' must be"),
        ({"versionTime": "2024-05-10T17:00:00"}, ErrorCode.INVALID_OPTIONS, "time zone"),
        ({"versionTime": datetime(2024, 5, 10)}, ErrorCode.INVALID_OPTIONS, "'versionTime'"),
        (
            {"versionId": "1", "versionTime": "2024-05-10T17:00:00Z"},
            ErrorCode.INVALID_OPTIONS,
            "mutually exclusive",
        ),
        ({"custom": object()}, ErrorCode.INVALID_OPTIONS, "'custom' must be a JSON value"),
        ({"custom": float("nan")}, ErrorCode.INVALID_OPTIONS, "'custom' must be a JSON value"),
    ],
)
async def test_invalid_options(options: dict[str, Any], code: ErrorCode, message: str) -> None:
    driver = TableDriver({DID: _document()})
    result = await _resolver(driver).resolve(DID, **options)
    assert result.error == code.value
    assert result.error_message is not None
    assert message in result.error_message
    assert driver.calls == 0


async def test_accepted_representations_and_option_normalisation() -> None:
    driver = TableDriver({DID: _document()})
    resolver = _resolver(driver, cache_ttl=0)
    for accept in ("application/did+json", "application/did+ld+json", " Application/DID "):
        result = await resolver.resolve(DID, accept=accept)
        assert result.content_type == accept.strip().lower()
    await resolver.resolve(
        DID,
        noCache="true",
        versionTime=datetime(2024, 5, 10, 19, 0, tzinfo=timezone(timedelta(hours=2))),
        custom={"a": [1, 2]},
    )
    assert driver.options[-1] == {
        "accept": "application/did+json",
        "noCache": True,
        "versionTime": "2024-05-10T17:00:00Z",
        "custom": {"a": [1, 2]},
    }
    await resolver.resolve(DID, versionTime="2024-05-10T19:00:00.5+02:00")
    assert driver.options[-1]["versionTime"] == "2024-05-10T17:00:00.500000Z"


async def test_json_ld_representation_needs_a_context() -> None:
    bare = {"id": DID, "verificationMethod": []}
    resolver = _resolver(TableDriver({DID: bare}))
    assert (await resolver.resolve(DID, accept="application/did+json")).ok
    result = await resolver.resolve(DID, accept="application/did+ld+json")
    assert result.error == "representationNotSupported"
    assert result.error_message is not None
    assert "no @context" in result.error_message


async def test_expand_relative_urls_option() -> None:
    resolver = _resolver(TableDriver({DID: _document()}))
    plain = await resolver.resolve(DID)
    assert plain.did_document is not None
    assert plain.did_document["assertionMethod"] == ["#key-1"]
    expanded = await resolver.resolve(DID, expandRelativeUrls=True)
    document = expanded.did_document
    assert document is not None
    assert document["assertionMethod"] == [KEY1]
    assert document["verificationMethod"][0]["id"] == KEY1
    assert document["verificationMethod"][1]["id"] == DID + "#key-2"
    assert document["service"][0]["id"] == DID + "#hub"
    assert document["authentication"][1]["id"] == DID + "#key-3"


def test_format_version_time() -> None:
    assert format_version_time(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"
    with pytest.raises(ValueError, match="aware datetime"):
        format_version_time(datetime(2024, 1, 2))


# -- cache --------------------------------------------------------------------------------


async def test_cache_serves_repeats_until_the_ttl() -> None:
    clock = Clock()
    driver = TableDriver({DID: _document()})
    resolver = _resolver(driver, cache_ttl=60, clock=clock)
    first = await resolver.resolve(DID)
    second = await resolver.resolve(DID)
    assert driver.calls == 1
    assert first == second
    assert resolver.cache_stats.hits == 1
    assert resolver.cache_stats.misses == 1
    clock.now += 59.9
    await resolver.resolve(DID)
    assert driver.calls == 1
    clock.now += 0.2
    await resolver.resolve(DID)
    assert driver.calls == 2


async def test_cached_results_are_copies() -> None:
    resolver = _resolver(TableDriver({DID: _document()}))
    first = await resolver.resolve(DID)
    assert first.did_document is not None
    first.did_document["id"] = "did:example:mallory"
    first.did_resolution_metadata["contentType"] = "text/evil"
    second = await resolver.resolve(DID)
    assert second.did_document is not None
    assert second.did_document["id"] == DID
    assert second.content_type == "application/did+json"


async def test_errors_are_never_cached() -> None:
    driver = TableDriver({})
    resolver = _resolver(driver)
    assert (await resolver.resolve(DID)).error == "notFound"
    assert (await resolver.resolve(DID)).error == "notFound"
    assert driver.calls == 2
    driver.documents[DID] = _document()
    assert (await resolver.resolve(DID)).ok
    assert resolver.cache_stats.entries == 1


async def test_no_cache_option_bypasses_and_refreshes() -> None:
    driver = TableDriver({DID: _document()})
    resolver = _resolver(driver)
    await resolver.resolve(DID)
    driver.documents[DID] = {**_document(), "alsoKnownAs": ["https://alice.test"]}
    stale = await resolver.resolve(DID)
    assert stale.did_document is not None
    assert "alsoKnownAs" not in stale.did_document
    fresh = await resolver.resolve(DID, noCache=True)
    assert driver.calls == 2
    assert fresh.did_document is not None
    assert "alsoKnownAs" in fresh.did_document
    # The fresh result replaced the cached one.
    again = await resolver.resolve(DID)
    assert driver.calls == 2
    assert again.did_document is not None
    assert "alsoKnownAs" in again.did_document


async def test_cache_is_keyed_by_options() -> None:
    driver = TableDriver({DID: _document()})
    resolver = _resolver(driver)
    await resolver.resolve(DID)
    await resolver.resolve(DID, accept="application/did+ld+json")
    await resolver.resolve(DID, accept="application/did+ld+json")
    await resolver.resolve(DID, accept="application/did+json", noCache=False)
    assert driver.calls == 2


async def test_cache_size_is_bounded_least_recently_used_first() -> None:
    dids = [f"did:example:{name}" for name in "abcd"]
    driver = TableDriver({did: _document(did) for did in dids})
    resolver = _resolver(driver, cache_max_entries=2)
    await resolver.resolve(dids[0])
    await resolver.resolve(dids[1])
    await resolver.resolve(dids[0])  # a is now the most recently used
    await resolver.resolve(dids[2])  # evicts b
    assert resolver.cache_stats.entries == 2
    calls = driver.calls
    await resolver.resolve(dids[0])
    assert driver.calls == calls
    await resolver.resolve(dids[1])
    assert driver.calls == calls + 1


async def test_uncacheable_methods_and_disabled_cache() -> None:
    driver = TableDriver({DID: _document()})
    resolver = Resolver()
    resolver.register("example", driver, cacheable=False)
    await resolver.resolve(DID)
    await resolver.resolve(DID)
    assert driver.calls == 2
    off = _resolver(TableDriver({DID: _document()}), cache_ttl=0)
    await off.resolve(DID)
    await off.resolve(DID)
    assert off.cache_stats.entries == 0
    with pytest.raises(ValueError, match="negative"):
        Resolver(cache_ttl=-1)


async def test_concurrent_resolutions_share_one_driver_call() -> None:
    driver = TableDriver({DID: _document()}, delay=0.05)
    resolver = _resolver(driver)
    results = await asyncio.gather(*(resolver.resolve(DID) for _ in range(5)))
    assert driver.calls == 1
    assert all(result == results[0] for result in results)
    documents = [result.did_document for result in results]
    assert len({id(document) for document in documents}) == 5  # each caller its own copy


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    driver = TableDriver({DID: _document()}, delay=0.05)
    resolver = _resolver(driver)
    first = asyncio.ensure_future(resolver.resolve(DID))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(resolver.resolve(DID))
    await asyncio.sleep(0)
    first.cancel()
    result = await second
    assert result.ok
    assert driver.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first


# -- dereferencing and authorisation -------------------------------------------------------


def test_absolute_did_url() -> None:
    assert absolute_did_url("#k", DID) == DID + "#k"
    assert absolute_did_url("?service=x", DID) == DID + "?service=x"
    assert absolute_did_url("/p", DID) == DID + "/p"
    assert absolute_did_url("did:other:x#k", DID) == "did:other:x#k"


def test_dereference_verification_method() -> None:
    document = _document()
    listed_relative = dereference_verification_method(document, KEY1)
    assert listed_relative is not None
    assert listed_relative["id"] == KEY1  # made absolute
    assert listed_relative["publicKeyMultibase"].startswith("z6Mkha")
    assert dereference_verification_method(document, "#key-1") == listed_relative
    embedded = dereference_verification_method(document, DID + "#key-3")
    assert embedded is not None
    assert embedded["publicKeyMultibase"].startswith("zDna")
    assert dereference_verification_method(document, DID + "#missing") is None
    assert dereference_verification_method(document, "did:example:bob#key-1") is None
    result = ResolutionResult.success(document)
    assert dereference_verification_method(result, "#key-2") is not None
    assert dereference_verification_method(ResolutionResult.failure("notFound", "x"), KEY1) is None


@pytest.mark.parametrize(
    ("did_url", "purpose", "authorized", "reason"),
    [
        (KEY1, "assertionMethod", True, "listed under assertionMethod"),
        ("#key-1", "assertionMethod", True, "listed under assertionMethod"),
        (DID + "#key-2", "authentication", True, "listed under authentication"),
        (DID + "#key-3", "authentication", True, "embedded under authentication"),
        (KEY1, "authentication", False, "not listed under authentication"),
        (DID + "#key-3", "assertionMethod", False, "not listed under assertionMethod"),
        (DID + "#missing", "capabilityInvocation", False, "defines no such verification method"),
        (DID + "#nothing", "keyAgreement", False, "has no verification method"),
    ],
)
def test_check_authorization(did_url: str, purpose: str, authorized: bool, reason: str) -> None:
    answer = check_authorization(_document(), did_url, purpose)
    assert answer.authorized is authorized
    assert reason in answer.reason
    if authorized:
        assert answer.verification_method is not None
        assert answer.verification_method["id"] == absolute_did_url(did_url, DID)
    else:
        assert answer.verification_method is None


def test_check_authorization_unknown_purpose_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown verification relationship"):
        check_authorization(_document(), KEY1, "signing")


async def test_authorize_through_the_resolver() -> None:
    driver = TableDriver({DID: _document()})
    resolver = _resolver(driver)
    answer = await resolver.authorize(KEY1, "assertionMethod")
    assert isinstance(answer, Authorization)
    assert answer.authorized
    assert answer.verification_method is not None
    assert answer.verification_method["id"] == KEY1
    assert answer.resolution is not None
    assert answer.resolution.ok
    assert await resolver.is_authorized(KEY1, "assertionMethod")
    assert not await resolver.is_authorized(KEY1, "authentication")
    assert not await resolver.is_authorized("did:example:bob#key-1", "assertionMethod")
    unresolved = await resolver.authorize("did:example:bob#key-1", "assertionMethod")
    assert "resolving did:example:bob failed: notFound" in unresolved.reason


@pytest.mark.parametrize(
    ("did_url", "reason"),
    [
        ("did:example:alice", "has no fragment"),
        ("did:example:alice#", "has no fragment"),
        ("did:example:alice/keys#k", "has a path or query"),
        ("not-a-did#k", "must start with 'did:'"),
    ],
)
async def test_authorize_needs_a_key_did_url(did_url: str, reason: str) -> None:
    driver = TableDriver({DID: _document()})
    answer = await _resolver(driver).authorize(did_url, "assertionMethod")
    assert not answer.authorized
    assert reason in answer.reason
    assert answer.resolution is None
    assert driver.calls == 0


async def test_authorize_at_a_time_passes_version_time() -> None:
    driver = TableDriver({DID: _document()})
    old = _document()
    old["assertionMethod"] = [DID + "#key-2"]
    driver.history["2020-01-01T00:00:00Z"] = old
    resolver = _resolver(driver)
    then = datetime(2020, 1, 1, tzinfo=UTC)
    assert await resolver.is_authorized(DID + "#key-2", "assertionMethod", at=then)
    assert not await resolver.is_authorized(KEY1, "assertionMethod", at=then)
    assert driver.options[-1]["versionTime"] == "2020-01-01T00:00:00Z"
    # Now: the current document.
    assert await resolver.is_authorized(KEY1, "assertionMethod")
    assert "versionTime" not in driver.options[-1]
    with pytest.raises(ValueError, match="aware"):
        await resolver.is_authorized(KEY1, "assertionMethod", at=datetime(2020, 1, 1))


async def test_did_key_without_history_answers_with_the_current_document() -> None:
    resolver = build_resolver()
    did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    key = f"{did}#z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    assert await resolver.is_authorized(key, "assertionMethod", at=datetime(2001, 1, 1, tzinfo=UTC))
    assert await resolver.is_authorized(key, "capabilityDelegation")
    assert not await resolver.is_authorized(key, "keyAgreement")


async def test_deactivated_dids_authorise_nothing() -> None:
    driver = TableDriver({DID: _document()})
    driver.metadata[DID] = {"deactivated": True}
    resolver = _resolver(driver)
    result = await resolver.resolve(DID)
    assert result.deactivated
    assert not result.ok
    assert result.error is None
    answer = await resolver.authorize(KEY1, "assertionMethod")
    assert not answer.authorized
    assert "deactivated" in answer.reason


def test_expand_relative_urls_leaves_the_input_alone() -> None:
    document = _document()
    expanded = expand_relative_urls(document)
    assert document == _document()
    assert expanded["assertionMethod"] == [KEY1]
    assert expand_relative_urls({"assertionMethod": ["#k"]}) == {"assertionMethod": ["#k"]}
