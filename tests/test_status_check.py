"""The verifier side: checking credentials against status lists the verifier fetches itself.

The main test never contacts the service: the service publishes its lists under the URL of
a plain aiohttp static file server (``status_url``), ``ler-anchor status export`` writes
them to that server's directory, the service is shut down, and the checker fetches the
lists from the static server and verifies their proofs against the did:key issuer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from helpers.service import (
    allocate,
    list_id_of,
    new_issuer,
    ok_json,
    run_cli,
    service_config,
    set_statuses,
)
from pytest_aiohttp import AiohttpClient

from anchor.http.app import create_app
from anchor.http.appkeys import STATUS
from anchor.keys import Ed25519Key
from anchor.status.bitstring import Bitstring
from anchor.status.check import Outcome, StatusChecker, summarize
from anchor.status.credential import (
    build_status_list_credential,
    parse_status_entry,
    parse_status_list_credential,
)
from anchor.vc.data_integrity import create_proof
from did_methods import build_resolver

RETRIEVAL_ERROR = "https://www.w3.org/ns/credentials/status-list#STATUS_RETRIEVAL_ERROR"
VERIFICATION_ERROR = "https://www.w3.org/ns/credentials/status-list#STATUS_VERIFICATION_ERROR"
LIST_PATH = "v1/status-lists"


class StaticHost:
    """A plain static file server (another app, another port) and what it was asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: list[tuple[str, int]] = []
        (root / LIST_PATH).mkdir(parents=True)

        async def record(request: web.Request, response: web.StreamResponse) -> None:
            self.seen.append((request.path, response.status))

        app = web.Application()
        app.on_response_prepare.append(record)
        app.router.add_static("/" + LIST_PATH, root / LIST_PATH)
        self.server = TestServer(app)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def static_host(tmp_path: Path) -> AsyncIterator[StaticHost]:
    host = StaticHost(tmp_path / "export")
    await host.server.start_server()
    try:
        yield host
    finally:
        await host.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def checker_for(session: aiohttp.ClientSession, **options: Any) -> StatusChecker:
    return StatusChecker(build_resolver(session), session, **options)


def credential(issuer: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": issuer,
        "validFrom": "2025-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:learner"},
        "credentialStatus": list(entries),
    }


async def service_on(
    aiohttp_client: AiohttpClient, tmp_path: Path, host: StaticHost, **overrides: Any
) -> TestClient:
    config = service_config(tmp_path, status_url=host.url, **overrides)
    return await aiohttp_client(create_app(config))


async def test_verifier_checks_a_static_export_without_the_service(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    static_host: StaticHost,
    session: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await service_on(aiohttp_client, tmp_path, static_host)
    issuer = await new_issuer(client)
    ids = ["urn:uuid:revoked", "urn:uuid:suspended", "urn:uuid:valid"]
    revocation = await allocate(client, issuer, "revocation", credentialIds=ids)
    suspension = await allocate(client, issuer, "suspension", credentialIds=ids)
    assert all(e["statusListCredential"].startswith(static_host.url) for e in revocation)
    revoke = [{"index": revocation[0]["statusListIndex"], "value": 1}]
    suspend = [{"index": suspension[1]["statusListIndex"], "value": 1}]
    await ok_json(await set_statuses(client, issuer, list_id_of(revocation[0]), revoke))
    await ok_json(await set_statuses(client, issuer, list_id_of(suspension[1]), suspend))
    data_dir = str(tmp_path / "data")
    code, out, _ = await run_cli(
        capsys, "status", "export", "--out", str(static_host.root), "--data-dir", data_dir
    )
    assert code == 0
    assert "exported 2 status list(s)" in out
    assert "expires" not in out  # lists without a validity period
    index = json.loads((static_host.root / LIST_PATH / "index.json").read_text())
    assert {item["statusPurpose"] for item in index["lists"]} == {"revocation", "suspension"}
    await client.close()  # from here on, the service is gone

    creds = [credential(issuer.did, r, s) for r, s in zip(revocation, suspension, strict=True)]
    checker = checker_for(session)
    results = [await checker.check_credential(c) for c in creds]
    assert [[r.outcome for r in rs] for rs in results] == [
        [Outcome.REVOKED, Outcome.VALID],
        [Outcome.VALID, Outcome.SUSPENDED],
        [Outcome.VALID, Outcome.VALID],
    ]
    assert [summarize(rs) for rs in results] == [Outcome.REVOKED, Outcome.SUSPENDED, Outcome.VALID]
    assert checker.fetches == 2  # one fetch per list, cached for its ttl
    assert all(path.startswith("/" + LIST_PATH) for path, _ in static_host.seen)

    paths = []
    for number, c in enumerate(creds):
        path = tmp_path / f"credential-{number}.json"
        path.write_text(json.dumps(c))
        paths.append(str(path))
    expected = [(1, "revoked"), (1, "suspended"), (0, "valid")]
    for path, (code_expected, outcome) in zip(paths, expected, strict=True):
        code, out, err = await run_cli(capsys, "status", "check", path, "--json")
        assert (code, json.loads(out)["outcome"]) == (code_expected, outcome), err
    code, out, _ = await run_cli(capsys, "status", "check", paths[0])
    assert out.splitlines()[0].startswith("revoked")
    assert out.splitlines()[-1] == "status: revoked"

    # A tampered list (the revocation cleared by hand) does not verify: unknown, not valid.
    revocation_file = static_host.root / LIST_PATH / list_id_of(revocation[0])
    doc = json.loads(revocation_file.read_text())
    doc["credentialSubject"]["encodedList"] = Bitstring.zeros(131_072).encode()
    revocation_file.write_text(json.dumps(doc))
    tampered = await checker_for(session).check_credential(creds[0])
    assert tampered[0].outcome is Outcome.UNKNOWN
    assert tampered[0].error is not None
    assert tampered[0].error["type"] == VERIFICATION_ERROR
    assert "does not verify" in tampered[0].error["detail"]
    code, out, _ = await run_cli(capsys, "status", "check", paths[0], "--json")
    assert code == 3
    assert json.loads(out)["outcome"] == "unknown"

    # The list host is down: unknown, with a retrieval error.
    await static_host.server.close()
    down = await checker_for(session).check_credential(creds[2])
    assert [r.outcome for r in down] == [Outcome.UNKNOWN, Outcome.UNKNOWN]
    assert down[0].error is not None
    assert down[0].error["type"] == RETRIEVAL_ERROR
    code, out, _ = await run_cli(capsys, "status", "check", paths[2], "--json")
    assert code == 3


async def test_cache_honours_ttl_and_revalidates_with_etag(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    static_host: StaticHost,
    session: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await service_on(aiohttp_client, tmp_path, static_host, status_ttl_ms=300)
    issuer = await new_issuer(client)
    entries = await allocate(client, issuer, count=2)
    list_id = list_id_of(entries[0])
    export = [
        "status",
        "export",
        "--out",
        str(static_host.root),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    assert (await run_cli(capsys, *export))[0] == 0
    cred = credential(issuer.did, entries[0])
    checker = checker_for(session)
    for _ in range(3):
        (result,) = await checker.check_credential(cred)
        assert result.outcome is Outcome.VALID
    assert checker.fetches == 1
    await asyncio.sleep(0.35)  # past the list's ttl: revalidate, 304 keeps the decoded list
    (result,) = await checker.check_credential(cred)
    assert result.outcome is Outcome.VALID
    assert (checker.fetches, checker.not_modified) == (2, 1)
    assert static_host.seen[-1][1] == 304
    await ok_json(
        await set_statuses(
            client, issuer, list_id, [{"index": entries[0]["statusListIndex"], "value": 1}]
        )
    )
    assert (await run_cli(capsys, *export))[0] == 0
    (result,) = await checker.check_credential(cred)
    assert result.outcome is Outcome.VALID  # still cached: the ttl has not run out
    await asyncio.sleep(0.35)
    (result,) = await checker.check_credential(cred)
    assert result.outcome is Outcome.REVOKED
    assert checker.fetches == 3
    current = client.app[STATUS].current_version(list_id)
    assert result.list_digest == current.digest.hex()  # the version the verifier holds


async def test_lists_that_must_not_be_trusted_give_unknown(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    static_host: StaticHost,
    session: aiohttp.ClientSession,
) -> None:
    client = await service_on(aiohttp_client, tmp_path, static_host, status_valid_days=1)
    issuer = await new_issuer(client)
    (entry,) = await allocate(client, issuer)
    list_id = list_id_of(entry)
    published = json.loads(client.app[STATUS].current_version(list_id).document)
    mirror = tmp_path / "mirror"
    (mirror / LIST_PATH).mkdir(parents=True)
    (mirror / LIST_PATH / list_id).write_text(json.dumps(published))
    checker = checker_for(session, mirror=mirror)  # local files instead of the network

    async def outcome(cred: dict[str, Any], **options: Any) -> tuple[Outcome, str]:
        (result,) = await checker.check_credential(cred, **options)
        error = result.error or {}
        return result.outcome, f"{error.get('type', '')} {error.get('detail', '')}"

    assert (await outcome(credential(issuer.did, entry)))[0] is Outcome.VALID
    # Past validUntil (1 day): the list is expired.
    later = datetime.now(UTC) + timedelta(days=2)
    state, why = await outcome(credential(issuer.did, entry), at=later)
    assert state is Outcome.UNKNOWN
    assert "not valid at" in why
    # The list's issuer is not the credential's issuer.
    state, why = await outcome(credential(Ed25519Key.generate().did, entry))
    assert state is Outcome.UNKNOWN
    assert "not by the credential's issuer" in why
    # The entry's purpose is not the list's; the index is outside the list; malformed.
    state, why = await outcome(credential(issuer.did, {**entry, "statusPurpose": "suspension"}))
    assert state is Outcome.UNKNOWN
    assert "not a purpose of the status list" in why
    state, why = await outcome(credential(issuer.did, {**entry, "statusListIndex": "131072"}))
    assert state is Outcome.UNKNOWN
    assert "RANGE_ERROR" in why
    state, why = await outcome(credential(issuer.did, {**entry, "statusListIndex": 5}))
    assert state is Outcome.UNKNOWN
    assert "MALFORMED_VALUE_ERROR" in why

    # Signed by a key the issuer's DID document does not list: forged lists.
    forger = Ed25519Key.generate()
    unsigned = {k: v for k, v in published.items() if k != "proof"}
    seed = forger.private_key.private_bytes_raw()
    for vm in (issuer.verification_method, forger.verification_method):
        forged = create_proof(unsigned, seed, vm)
        checker.forget()
        (mirror / LIST_PATH / list_id).write_text(json.dumps(forged))
        state, why = await outcome(credential(issuer.did, entry))
        assert state is Outcome.UNKNOWN, vm
        assert VERIFICATION_ERROR in why
    # No proof at all; a list that is not JSON; a list that is too short.
    for body in (
        json.dumps(unsigned),
        "not json",
        json.dumps(
            create_proof(
                build_status_list_credential(
                    credential_id=entry["statusListCredential"],
                    issuer=issuer.did,
                    status_purpose="revocation",
                    bitstring=Bitstring.zeros(8, min_entries=0),
                    valid_from="2025-01-01T00:00:00Z",
                    min_entries=0,
                ),
                issuer.private_key.private_bytes_raw(),
                issuer.verification_method,
            )
        ),
    ):
        checker.forget()
        (mirror / LIST_PATH / list_id).write_text(body)
        state, _why = await outcome(credential(issuer.did, {**entry, "statusListIndex": "1"}))
        assert state is Outcome.UNKNOWN, body[:40]
    # A file: URL is read directly (its id need not be the file's URL).
    (mirror / LIST_PATH / list_id).write_text(json.dumps(published))
    local = {**entry, "statusListCredential": (mirror / LIST_PATH / list_id).as_uri()}
    (result,) = await checker_for(session).check_credential(credential(issuer.did, local))
    assert result.outcome is Outcome.VALID
    # ... except by a checker of credentials that others send (the service's /v1/verify)
    no_files = checker_for(session, local_files=False)
    (result,) = await no_files.check_credential(credential(issuer.did, local))
    assert result.outcome is Outcome.UNKNOWN
    assert result.error is not None
    assert "the scheme 'file' cannot be dereferenced" in str(result.error["detail"])
    # Over HTTP(S) (or a mirror of it), a list must be the one the entry names: another
    # list of the same issuer served in its place is refused.
    (other,) = await allocate(client, issuer, "suspension")
    other_id = list_id_of(other)
    swapped = client.app[STATUS].current_version(other_id).document
    (mirror / LIST_PATH / list_id).write_bytes(swapped)
    checker.forget()
    state, why = await outcome(credential(issuer.did, entry))
    assert state is Outcome.UNKNOWN
    assert "is not the list" in why


async def test_checking_against_a_cached_list_is_fast(session: aiohttp.ClientSession) -> None:
    issuer = Ed25519Key.generate()
    url = "https://status.example/v1/status-lists/bench"
    builder = Bitstring.zeros(131_072).builder()
    builder.set_many(range(0, 131_072, 7), 1)
    doc = create_proof(
        build_status_list_credential(
            credential_id=url,
            issuer=issuer.did,
            status_purpose="revocation",
            bitstring=builder.build(),
            valid_from="2025-01-01T00:00:00Z",
            ttl=300_000,
        ),
        issuer.private_key.private_bytes_raw(),
        issuer.verification_method,
    )
    checker = checker_for(session)
    start = time.perf_counter()
    parse_status_list_credential(doc)
    decode_ms = (time.perf_counter() - start) * 1000
    listing = await checker.accept(url, doc)
    entries = [
        parse_status_entry(
            {
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": str(i),
                "statusListCredential": url,
            }
        )
        for i in range(1000)
    ]
    start = time.perf_counter()
    outcomes = [checker.check_cached(e, listing, issuer.did).outcome for e in entries]
    per_check_ms = (time.perf_counter() - start) * 1000 / len(entries)
    assert outcomes[0] is Outcome.REVOKED
    assert outcomes[1] is Outcome.VALID
    assert per_check_ms < 5, per_check_ms  # the target is < 1 ms; generous for slow CI
    assert decode_ms < 1000
