"""Verifying credentials: every check's outcomes, from real resolution, real chains and real
signatures.

Most tests run the service on the embedded chain over a socket (``aiohttp_client``): did:key
issuers that uploaded their status key allocate entries, sign Open Badges 3.0 credentials
and anchor their digests; the credentials are then verified through ``POST /v1/verify``
(the service's resolver, chain backend and log) or by a :class:`CredentialVerifier` of the
test's own (its own session and resolver). did:web issuers are served over HTTPS by a local
server; the did:ethr key rotation and the reorganised receipt run on private anvil nodes
with a log anchored by the real chain client and batcher.

Decision (see :mod:`anchor.verify.verifier`): a receipt whose block was reorganised away is
``invalid``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from helpers.anvil import AnvilNode, free_port
from helpers.chain import (
    ANVIL,
    Chain,
    Running,
    all_final,
    fast,
    open_chain,
    open_log,
    trust_root,
    wait_for,
)
from helpers.service import (
    WebDidHost,
    allocate,
    list_id_of,
    new_issuer,
    ok_json,
    service_config,
    set_statuses,
    signed_post,
)
from pytest_aiohttp import AiohttpClient

from anchor.chain.batcher import Batcher
from anchor.chain.contracts import DID_REGISTRY, deploy, load_artifact
from anchor.cli.main import main
from anchor.core.checkpoint import NoteSigner
from anchor.core.entry import Entry, EntryKind
from anchor.errors import NotFound
from anchor.http.app import create_app
from anchor.http.appkeys import CHAIN, ISSUERS, MERKLE_LOG, STATUS
from anchor.keys import Ed25519Key
from anchor.log.log import Log
from anchor.log.receipts import build_receipt
from anchor.status.check import StatusChecker
from anchor.vc import credentials
from anchor.vc.data_integrity import ed25519_public_key_to_multibase
from anchor.verify.trust import TrustRoot
from anchor.verify.verifier import (
    CredentialVerifier,
    ServiceReceipts,
    Verdict,
    check_format,
    check_validity,
)
from did_methods import build_resolver
from did_methods.ethr import EthrNetwork

ACHIEVEMENT = credentials.Achievement(
    id="https://college.example/achievements/welding-1",
    name="Welding I",
    description="Basic shielded metal arc welding",
    criteria="Passed the practical and written assessments",
    achievement_type="Certificate",
)
LEARNER = "learner@example.org"
ALL_VALID = dict.fromkeys(
    ("format", "anchoring", "issuer", "key", "proof", "validity", "status"), "valid"
)
ETHR_NETWORK = "dev"
ED25519_VERI_KEY = b"did/pub/Ed25519/veriKey/base58".ljust(32, b"\0")
ETHR_KEY_VALIDITY = 10**6
SPACING_SECONDS = 100


# ---- helpers -----------------------------------------------------------------------------------


def seed_of(key: Ed25519Key) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def badge(
    issuer: str,
    seed: bytes,
    keyid: str,
    *,
    status: tuple[Mapping[str, Any], ...] = (),
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> dict[str, Any]:
    """A signed Open Badges 3.0 credential for a hashed learner e-mail."""
    unsigned = credentials.open_badge(
        issuer=issuer,
        issuer_name="County College",
        achievement=ACHIEVEMENT,
        subject=credentials.hashed_identity(LEARNER),
        status=status,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    return credentials.sign(unsigned, seed, keyid)


def badge_by(key: Ed25519Key, **options: Any) -> dict[str, Any]:
    return badge(key.did, seed_of(key), key.verification_method, **options)


def results(report: Mapping[str, Any]) -> dict[str, str]:
    return {c["check"]: c["result"] for c in report["checks"]}


def reason(report: Mapping[str, Any], name: str) -> str:
    return str(next(c["reason"] for c in report["checks"] if c["check"] == name))


def details(report: Mapping[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in report["checks"] if c["check"] == name)
    return dict(found.get("details", {}))


async def anchor(client: TestClient, key: Ed25519Key, credential: Mapping[str, Any]) -> Any:
    """Submit the credential's digest as ``key``'s issuer and wait for its final receipt."""
    digest = credentials.digest(credential).hex()
    await ok_json(await signed_post(client, key, "/v1/entries", {"digests": [digest]}), (200, 201))
    query = {"submitter": key.did, "wait": "30"}
    return await ok_json(await client.get(f"/v1/receipts/{digest}", params=query))


async def verify_on_service(
    client: TestClient, credential: Any, receipt: Any = None
) -> dict[str, Any]:
    body = {"credential": credential}
    if receipt is not None:
        body["receipt"] = receipt
    report: dict[str, Any] = await ok_json(await client.post("/v1/verify", json=body))
    return report


def verifier(
    session: aiohttp.ClientSession,
    chain: Any,
    *,
    ca_file: Path | None = None,
    mirror: Path | None = None,
    ethr: tuple[EthrNetwork, ...] = (),
    **options: Any,
) -> CredentialVerifier:
    """A verifier of the test's own: its session, a fresh resolver and status checker."""
    resolver = build_resolver(
        session, ca_file=ca_file, ethr_networks=ethr, ethr_default_network=ETHR_NETWORK
    )
    checker = StatusChecker(resolver, session, mirror=mirror)
    return CredentialVerifier(resolver, checker, chain, **options)


def service_trust(client: TestClient) -> TrustRoot:
    """The service's log as a verifier pins it: origin, key, chain, contract."""
    log = client.app[MERKLE_LOG]
    chain = client.app[CHAIN]
    assert chain.identity is not None
    return TrustRoot(log.origin, log.verifier.vkey(), chain.identity.caip2, chain.contract_address)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path) -> TestClient:
    # ttl 1 ms: the service's status checker sees every status change at once
    # it listens on its configured port, as in production: its own status lists are the one
    # non-public address its client may fetch
    port = free_port()
    config = service_config(
        tmp_path, port=port, anchor_interval=0.2, confirmations=1, status_ttl_ms=1
    )
    return await aiohttp_client(create_app(config), server_kwargs={"port": port})


@pytest.fixture
async def issuer(client: TestClient) -> Ed25519Key:
    return await new_issuer(client)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


# ---- the checks without I/O --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "verdict", "text"),
    [
        ({}, Verdict.VALID, "VC Data Model 2.0"),
        ({"@context": ["https://www.w3.org/2018/credentials/v1"]}, Verdict.INVALID, "issuanceDate"),
        ({"type": ["OpenBadgeCredential"]}, Verdict.INVALID, "VerifiableCredential"),
        ({"issuer": 7}, Verdict.INVALID, "no issuer"),
        ({"validUntil": "2030-01-01"}, Verdict.INVALID, "validUntil is not"),
        ({"proof": None}, Verdict.INVALID, "no proof"),
        ({"evidence": float("nan")}, Verdict.INVALID, "RFC 8785"),
    ],
)
def test_format(change: dict[str, Any], verdict: Verdict, text: str) -> None:
    credential = badge_by(Ed25519Key.generate())
    credential.update(change)
    check, _version = check_format(credential)
    assert check.verdict is verdict
    assert text in check.reason


def test_validity_window() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    window = {"validFrom": "2026-01-01T00:00:00Z", "validUntil": "2027-01-01T00:00:00Z"}
    assert check_validity(window, 2, now).verdict is Verdict.VALID
    early = check_validity(window, 2, datetime(2025, 6, 1, tzinfo=UTC))
    assert (early.verdict, early.reason) == (
        Verdict.INVALID,
        "not yet valid: validFrom is 2026-01-01T00:00:00Z",
    )
    late = check_validity(window, 2, datetime(2027, 6, 1, tzinfo=UTC))
    assert (late.verdict, late.reason) == (
        Verdict.INVALID,
        "expired: validUntil was 2027-01-01T00:00:00Z",
    )
    old = {"issuanceDate": "2020-01-01T00:00:00Z", "expirationDate": "2021-01-01T00:00:00Z"}
    assert check_validity(old, 1, now).verdict is Verdict.INVALID


# ---- through the service and the test's own verifier -------------------------------------------


async def test_an_anchored_credential_passes_every_check(
    client: TestClient, issuer: Ed25519Key, session: aiohttp.ClientSession
) -> None:
    cid = "urn:uuid:all-valid"
    status = [
        *await allocate(client, issuer, "revocation", credentialIds=[cid]),
        *await allocate(client, issuer, "suspension", credentialIds=[cid]),
    ]
    credential = badge_by(issuer, status=tuple(status))
    receipt = await anchor(client, issuer, credential)

    looked_up = await verify_on_service(client, credential)  # the service finds the receipt
    assert results(looked_up) == ALL_VALID, looked_up
    assert looked_up["result"] == "valid"
    assert looked_up["digest"] == credentials.digest(credential).hex()
    assert details(looked_up, "anchoring")["leafIndex"] == receipt["leafIndex"]
    assert "at the time of anchoring" in reason(looked_up, "key")
    assert len(details(looked_up, "status")["entries"]) == 2
    given = await verify_on_service(client, credential, receipt)
    assert results(given) == ALL_VALID

    # A verifier of its own, asking the service over HTTP for the receipt.
    backend = client.app[CHAIN].backend
    base = str(client.make_url("")).rstrip("/")
    trust = service_trust(client)
    mine = verifier(session, backend, receipts=ServiceReceipts(session, base), trust=trust)
    report = await mine.verify(credential)
    assert report.valid
    assert report.table().splitlines()[-1].split() == ["RESULT", "VALID"]
    assert results(report.to_json()) == ALL_VALID

    # Anchoring it cannot settle is unknown, never valid; the rest still holds.
    offline = await verifier(session, None, trust=trust).verify(credential, receipt)
    assert offline.check("anchoring").verdict is Verdict.UNKNOWN
    assert receipt["anchor"]["chain"] in offline.check("anchoring").reason
    assert "--rpc-url" in offline.check("anchoring").reason
    assert offline.verdict is Verdict.UNKNOWN
    assert {c.name for c in offline.checks if c.verdict is Verdict.VALID} == set(ALL_VALID) - {
        "anchoring"
    }
    shallow = await verifier(session, backend, trust=trust, min_confirmations=1000).verify(
        credential, receipt
    )
    assert shallow.check("anchoring").verdict is Verdict.UNKNOWN
    assert "fewer than the 1000 required" in shallow.check("anchoring").reason
    down = await verifier(session, f"http://127.0.0.1:{free_port()}", trust=trust).verify(
        credential, receipt
    )
    assert down.check("anchoring").verdict is Verdict.UNKNOWN
    assert "could not be asked" in down.check("anchoring").reason
    nothing = await verifier(session, backend).verify(credential)
    assert nothing.check("anchoring").reason == "no receipt given and no service to look it up"
    assert "now (no anchor time known)" in nothing.check("key").reason
    other_log = NoteSigner("other.example/log", hashlib.sha256(b"another log").digest())
    other_key = dataclasses.replace(trust, verifier_key=other_log.verifier.vkey())
    refused = await verifier(session, backend, trust=other_key).verify(credential, receipt)
    assert refused.check("anchoring").verdict is Verdict.INVALID
    assert refused.check("anchoring").details["differs"] == ["key"]
    assert "trusted with another key" in refused.check("anchoring").reason
    # Nothing trusted: the receipt does not vouch for itself.
    untrusted = await verifier(session, backend).verify(credential, receipt)
    assert untrusted.check("anchoring").verdict is Verdict.UNKNOWN
    assert "no trusted log" in untrusted.check("anchoring").reason
    # Not a receipt (a fraction for an integer, a newline after a hash): refused when it is
    # parsed, an invalid anchoring and never a server error.
    for member, value in [
        ("leafIndex", float(receipt["leafIndex"])),
        ("anchor", receipt["anchor"] | {"blockHash": receipt["anchor"]["blockHash"] + "\n"}),
    ]:
        malformed = copy.deepcopy(receipt) | {member: value}
        report_json = await verify_on_service(client, credential, malformed)
        assert details(report_json, "anchoring")["what"] == "schema", (member, report_json)
        assert report_json["result"] == "invalid"


async def test_a_credential_not_anchored_yet_is_unknown(
    aiohttp_client: AiohttpClient, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    # Five confirmations on the embedded chain, which mines only when it is sent something:
    # the anchor is included and then waits.
    config = service_config(tmp_path, anchor_interval=0.2, confirmations=5)
    client: TestClient = await aiohttp_client(create_app(config))
    issuer = Ed25519Key.generate()
    client.app[ISSUERS].add(issuer.did, "Patient College")
    credential = badge_by(issuer)
    digest = credentials.digest(credential)
    await ok_json(
        await signed_post(client, issuer, "/v1/entries", {"digests": [digest.hex()]}), 201
    )
    log = client.app[MERKLE_LOG]

    async def included() -> bool:
        try:
            await asyncio.to_thread(build_receipt, log, 0)
        except NotFound:
            return False
        return True

    await wait_for(included, what="the anchor to be included")
    report = await verify_on_service(client, credential)
    assert results(report)["anchoring"] == "unknown"
    assert "final" in reason(report, "anchoring")
    base = str(client.make_url("")).rstrip("/")
    asking = verifier(session, None, receipts=ServiceReceipts(session, base))
    pending = (await asking.verify(credential)).check("anchoring")
    assert pending.verdict is Verdict.UNKNOWN
    assert "not anchored yet" in pending.reason
    # An included (not final) receipt, given: too shallow for the service, unknown.
    receipt = await asyncio.to_thread(build_receipt, log, 0)
    report = await verify_on_service(client, credential, receipt)
    assert results(report)["anchoring"] == "unknown"
    assert "fewer than the 5 required" in reason(report, "anchoring")
    assert {results(report)[n] for n in ("issuer", "key", "proof", "validity")} == {"valid"}


async def test_a_tampered_credential_fails_its_proof(
    client: TestClient, issuer: Ed25519Key
) -> None:
    credential = badge_by(issuer)
    receipt = await anchor(client, issuer, credential)
    tampered = copy.deepcopy(credential)
    tampered["credentialSubject"]["achievement"]["name"] = "Welding III"

    report = await verify_on_service(client, tampered)
    assert results(report)["proof"] == "invalid"
    assert "signature" in reason(report, "proof")
    assert results(report)["anchoring"] == "unknown"  # the log has no such digest
    assert "no entry" in reason(report, "anchoring")
    assert report["result"] == "invalid"
    with_receipt = await verify_on_service(client, tampered, receipt)
    assert results(with_receipt)["anchoring"] == "invalid"
    assert "another document" in reason(with_receipt, "anchoring")

    # The same digest anchored by another registered issuer does not anchor it for this one.
    other = Ed25519Key.generate()
    client.app[ISSUERS].add(other.did, "Another College")
    foreign = await anchor(client, other, credential)
    report = await verify_on_service(client, credential, foreign)
    assert results(report)["anchoring"] == "invalid"
    assert f"anchored by {other.did}" in reason(report, "anchoring")
    assert results(report)["proof"] == "valid"


async def test_expired_and_not_yet_valid(client: TestClient, issuer: Ed25519Key) -> None:
    now = datetime.now(UTC)
    expired = badge_by(
        issuer, valid_from=now - timedelta(days=400), valid_until=now - timedelta(days=35)
    )
    early = badge_by(issuer, valid_from=now + timedelta(days=30))
    for credential, text in [(expired, "expired: validUntil was"), (early, "not yet valid")]:
        report = await verify_on_service(client, credential)
        assert results(report)["validity"] == "invalid"
        assert reason(report, "validity").startswith(text)
        assert results(report)["proof"] == "valid"
        assert report["result"] == "invalid"


async def test_revoked_and_suspended(client: TestClient, issuer: Ed25519Key) -> None:
    cid = "urn:uuid:status"
    (revocation,) = await allocate(client, issuer, "revocation", credentialIds=[cid])
    (suspension,) = await allocate(client, issuer, "suspension", credentialIds=[cid])
    credential = badge_by(issuer, status=(revocation, suspension))
    await anchor(client, issuer, credential)

    async def status_after(entry: dict[str, Any], value: int) -> tuple[str, str, str]:
        change = [{"index": entry["statusListIndex"], "value": value}]
        await ok_json(await set_statuses(client, issuer, list_id_of(entry), change))
        report = await verify_on_service(client, credential)
        return results(report)["status"], reason(report, "status"), report["result"]

    assert results(await verify_on_service(client, credential)) == ALL_VALID
    assert await status_after(suspension, 1) == ("invalid", "suspended", "invalid")
    assert await status_after(suspension, 0) == ("valid", "not revoked or suspended", "valid")
    assert await status_after(revocation, 1) == ("invalid", "revoked", "invalid")


async def test_an_unreachable_status_list_is_unknown(
    client: TestClient, issuer: Ed25519Key, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    (entry,) = await allocate(client, issuer, "revocation")
    gone = {**entry, "statusListCredential": f"http://127.0.0.1:{free_port()}/v1/status-lists/x"}
    report = await verify_on_service(client, badge_by(issuer, status=(gone,)))
    assert results(report)["status"] == "unknown"
    assert "could not be retrieved" in reason(report, "status")
    assert results(report)["proof"] == "valid"
    assert report["result"] == "unknown"
    # The service never reads its own files for a caller, whatever the URL says.
    secret = tmp_path / "operator-secret.json"
    secret.write_text(
        json.dumps(client.app[STATUS].current_version(list_id_of(entry)).credential())
    )
    local = {**entry, "statusListCredential": secret.as_uri()}
    report = await verify_on_service(client, badge_by(issuer, status=(local,)))
    assert results(report)["status"] == "unknown"
    assert "the scheme 'file' cannot be dereferenced" in reason(report, "status")

    # A verifier reading lists from a mirror that lacks this one: unknown as well.
    (tmp_path / "mirror").mkdir()
    mirrored = verifier(session, None, mirror=tmp_path / "mirror")
    report_obj = await mirrored.verify(badge_by(issuer, status=(entry,)))
    assert report_obj.check("status").verdict is Verdict.UNKNOWN
    # A status mechanism this verifier does not know is not taken as "not revoked".
    other = {"type": "StatusList2021Entry", "statusListCredential": "https://x.example/1"}
    report = await verify_on_service(client, badge_by(issuer, status=(other,)))
    assert results(report)["status"] == "unknown"
    assert "StatusList2021Entry cannot be checked" in reason(report, "status")


async def test_a_proof_by_a_key_the_issuer_does_not_list(
    client: TestClient, issuer: Ed25519Key
) -> None:
    other = Ed25519Key.generate()
    # Claims to be a key of the issuer's did:key, which lists exactly one key.
    fragment = other.did.removeprefix("did:key:")
    claimed = badge(issuer.did, seed_of(other), f"{issuer.did}#{fragment}")
    report = await verify_on_service(client, claimed)
    assert results(report)["issuer"] == "valid"
    assert results(report)["key"] == "invalid"
    assert "not an Ed25519 key listed under assertionMethod" in reason(report, "key")
    assert results(report)["proof"] == "unknown"
    # Signed by another DID's key altogether.
    foreign = badge(issuer.did, seed_of(other), other.verification_method)
    report = await verify_on_service(client, foreign)
    assert results(report)["key"] == "invalid"
    assert "is not a key of the issuer" in reason(report, "key")
    assert report["result"] == "invalid"


async def test_a_did_the_verifier_cannot_resolve_is_unknown(client: TestClient) -> None:
    key = Ed25519Key.generate()
    for did, code in [
        ("did:ion:EiClkZMDxPKqC9c-umQfTkR8vvZ9JPhl_xLDI9Nfk38w5w", "methodNotSupported"),
        # the service knows did:ethr on its own chain only (network "anchor")
        ("did:ethr:mainnet:0x" + "11" * 20, "unknownNetwork"),
    ]:
        report = await verify_on_service(client, badge(did, seed_of(key), f"{did}#key-1"))
        assert results(report)["issuer"] == "unknown", report
        assert code in reason(report, "issuer")
        assert "not configured" in reason(report, "issuer")
        assert (results(report)["key"], results(report)["proof"]) == ("unknown", "unknown")
        assert report["result"] == "unknown"
    # the resolver's own answer: ethr-did-resolver's code, HTTP 404 as notFound
    resolved = await client.get("/1.0/identifiers/did:ethr:mainnet:0x" + "11" * 20)
    assert resolved.status == 404
    metadata = (await resolved.json(content_type=None))["didResolutionMetadata"]
    assert metadata["error"] == "unknownNetwork"


@asynccontextmanager
async def serving(host: WebDidHost) -> AsyncIterator[TestServer]:
    """``host``'s DID document over HTTPS at /.well-known/did.json (nothing else)."""
    app = web.Application()
    app.router.add_get("/.well-known/did.json", host.serve)
    server = TestServer(app)
    await server.start_server(ssl=host.tls)
    host.port = server.port or 0
    try:
        yield server
    finally:
        await server.close()


async def test_did_web_issuers(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    host = WebDidHost(tmp_path)
    signing = Ed25519Key.generate()
    async with serving(host):
        did = host.did
        keyid = f"{did}#key-1"
        host.document = {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "verificationMethod": [
                {
                    "id": keyid,
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": ed25519_public_key_to_multibase(signing.public_bytes),
                }
            ],
            "authentication": [keyid],  # may sign requests, not credentials
        }
        credential = badge(did, seed_of(signing), keyid)
        check = verifier(session, None, ca_file=host.ca_file)
        report = await check.verify(credential)
        assert report.check("issuer").verdict is Verdict.VALID
        assert report.check("key").verdict is Verdict.INVALID
        assert "assertionMethod" in report.check("key").reason
        assert report.check("proof").verdict is Verdict.UNKNOWN

        host.document["assertionMethod"] = [keyid]
        check.resolver.clear_cache()
        report = await check.verify(credential)
        assert [report.check(n).verdict for n in ("issuer", "key", "proof")] == [Verdict.VALID] * 3

        # A did:web DID whose host answers 404: the issuer DID does not exist.
        nobody = f"{did}:people:nobody"
        report = await check.verify(badge(nobody, seed_of(signing), f"{nobody}#key-1"))
        assert report.check("issuer").verdict is Verdict.INVALID
        assert "notFound" in report.check("issuer").reason
        assert report.check("key").verdict is Verdict.UNKNOWN
        assert report.verdict is Verdict.INVALID
    # The host is down: the issuer cannot be resolved now, which is unknown, not invalid.
    check.resolver.clear_cache()
    report = await check.verify(credential)
    assert report.check("issuer").verdict is Verdict.UNKNOWN
    assert "internalError" in report.check("issuer").reason
    assert report.verdict is Verdict.UNKNOWN


@pytest.mark.anvil
async def test_a_receipt_for_another_chain_is_invalid(
    client: TestClient, issuer: Ed25519Key, anvil: AnvilNode, session: aiohttp.ClientSession
) -> None:
    credential = badge_by(issuer)
    receipt = await anchor(client, issuer, credential)  # on the embedded chain
    trusted = verifier(session, anvil.rpc_url, trust=service_trust(client))
    report = await trusted.verify(credential, receipt)
    anchoring = report.check("anchoring")
    assert anchoring.verdict is Verdict.INVALID
    assert f"the endpoint serves eip155:{anvil.chain_id}" in anchoring.reason
    assert anchoring.details["what"] == "chain"


# ---- on private anvil nodes: a standalone log anchored by the chain client and batcher ---------


@pytest.fixture
async def anvil_chain(anvil_factory: Callable[..., AnvilNode]) -> AsyncIterator[Chain]:
    chain = await open_chain(ANVIL, anvil_factory)
    try:
        yield chain
    finally:
        await chain.close()


@contextmanager
def opened_log(path: Path) -> Iterator[Log]:
    log = open_log(path)
    try:
        yield log
    finally:
        log.store.close()


async def anchor_all(chain: Chain, log: Log, anchors: int) -> None:
    """Run the batcher until ``anchors`` anchors (one per call here) are final."""
    client = await chain.client(log.store)
    try:
        async with Running(Batcher(log, client, fast(anchor_size=1))):
            await wait_for(all_final(log, anchors), what=f"{anchors} final anchor(s)")
    finally:
        await client.close()


def log_credential(log: Log, credential: Mapping[str, Any]) -> int:
    submitter = str(credentials.issuer_id(credential))
    result = log.append([Entry(EntryKind.CREDENTIAL, credentials.digest(credential), submitter)])
    return result.indexes[0]


@pytest.mark.anvil
async def test_a_receipt_whose_block_was_reorganised_away_is_invalid(
    anvil_chain: Chain, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    node = anvil_chain.node
    assert node is not None
    key = Ed25519Key.generate()
    credential = badge_by(key)
    with opened_log(tmp_path / "db") as log:
        index = log_credential(log, credential)
        await anchor_all(anvil_chain, log, 1)
        receipt = build_receipt(log, index)
    check = verifier(session, node.rpc_url, trust=await trust_root(anvil_chain))
    assert (await check.verify(credential, receipt)).valid

    node.reorg(node.block_number() - receipt["anchor"]["blockNumber"] + 1)
    report = await check.verify(credential, receipt)
    anchoring = report.check("anchoring")
    assert anchoring.verdict is Verdict.INVALID
    assert anchoring.details["what"] in ("transaction", "block")
    assert "reorganised away" in anchoring.reason
    assert report.check("proof").verdict is Verdict.VALID
    assert report.verdict is Verdict.INVALID


@pytest.mark.anvil
async def test_a_key_rotated_out_before_the_anchor_but_not_after(
    anvil_chain: Chain,
    tmp_path: Path,
    session: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """did:ethr: the issuer publishes an Ed25519 assertion key, a credential signed with it
    is anchored, the key is revoked, and a second credential signed with the old key is
    anchored after that. The first stays valid (the key was the issuer's when it was
    anchored); the second is refused (the key was gone before its anchor)."""
    node = anvil_chain.node
    assert node is not None
    w3 = node.web3()
    artifact = load_artifact(DID_REGISTRY)
    deployment = await asyncio.to_thread(deploy, w3, artifact, node.accounts[1])
    registry = w3.eth.contract(address=deployment.address, abi=artifact.abi)
    identity = node.accounts[2].address
    did = f"did:ethr:{ETHR_NETWORK}:{identity}"
    keyid = f"{did}#delegate-1"
    signing = Ed25519Key.generate()

    def transact(call: Any) -> int:
        node.rpc("evm_increaseTime", [SPACING_SECONDS])
        receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": identity}))
        assert receipt["status"] == 1
        return int(w3.eth.get_block(receipt["blockNumber"])["timestamp"])

    functions = registry.functions
    added = await asyncio.to_thread(
        transact,
        functions.setAttribute(identity, ED25519_VERI_KEY, signing.public_bytes, ETHR_KEY_VALIDITY),
    )
    before = badge(did, seed_of(signing), keyid)
    after = badge(did, seed_of(signing), keyid)
    with opened_log(tmp_path / "db") as log:
        first = log_credential(log, before)
        node.rpc("evm_increaseTime", [SPACING_SECONDS])
        await anchor_all(anvil_chain, log, 1)
        revoked = await asyncio.to_thread(
            transact, functions.revokeAttribute(identity, ED25519_VERI_KEY, signing.public_bytes)
        )
        second = log_credential(log, after)
        node.rpc("evm_increaseTime", [SPACING_SECONDS])
        await anchor_all(anvil_chain, log, 2)
        receipts = build_receipt(log, first), build_receipt(log, second)
    anchored = [int(datetime.fromisoformat(r["anchor"]["blockTime"]).timestamp()) for r in receipts]
    assert added < anchored[0] < revoked < anchored[1]

    network = EthrNetwork(ETHR_NETWORK, node.chain_id, deployment.address, node.rpc_url)
    trust = await trust_root(anvil_chain)
    check = verifier(session, node.rpc_url, ethr=(network,), trust=trust)
    kept = await check.verify(before, receipts[0])
    assert kept.valid, kept.table()
    assert "at the time of anchoring" in kept.check("key").reason
    refused = await check.verify(after, receipts[1])
    assert refused.check("anchoring").verdict is Verdict.VALID
    assert refused.check("key").verdict is Verdict.INVALID
    assert "not an Ed25519 key listed under assertionMethod at the time of anchoring" in (
        refused.check("key").reason
    )
    assert refused.check("proof").verdict is Verdict.UNKNOWN
    assert refused.verdict is Verdict.INVALID
    # Without its receipt the first one is judged by today's document, which lacks the key.
    unanchored = await check.verify(before)
    assert unanchored.check("key").verdict is Verdict.INVALID

    # The command line agrees (exit 0, then 1).
    ethr = [
        *("--rpc-url", node.rpc_url, "--ethr-rpc-url", node.rpc_url),
        *("--ethr-registry", deployment.address, "--ethr-chain-id", str(node.chain_id)),
        *("--ethr-network", ETHR_NETWORK, "--json"),
        *("--log-key", trust.verifier_key, "--contract", trust.contract),
    ]
    for name, credential, receipt, code in [
        ("before", before, receipts[0], 0),
        ("after", after, receipts[1], 1),
    ]:
        (tmp_path / f"{name}.json").write_text(json.dumps(credential))
        (tmp_path / f"{name}.receipt.json").write_text(json.dumps(receipt))
        argv = ["verify", str(tmp_path / f"{name}.json")]
        argv += ["--receipt", str(tmp_path / f"{name}.receipt.json"), *ethr]
        assert await asyncio.to_thread(main, argv) == code
        out, _ = capsys.readouterr()
        assert json.loads(out)["result"] == ("valid" if code == 0 else "invalid")


# ---- the endpoint's contract -------------------------------------------------------------------


async def test_the_endpoint_refuses_bodies_of_another_shape(client: TestClient) -> None:
    for body in [
        b"",
        b"not json",
        b"[1, 2]",
        b"{}",
        b'{"credential": "text"}',
        b'{"credential": {}, "receipt": [1]}',
        b'{"credential": {}, "extra": 1}',
    ]:
        response = await client.post(
            "/v1/verify", data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 400, body
        assert response.content_type == "application/problem+json"
    # A JSON object that is no credential is a verdict, not a bad request.
    report = await verify_on_service(client, {"hello": "world"})
    assert report["result"] == "invalid"
    assert results(report)["format"] == "invalid"
    assert set(results(report).values()) == {"invalid", "unknown"}
