"""The README walk-through over a real socket, on the embedded chain and on a real anvil:
keygen → issuer add → submit a credential file → receipt → verify the receipt on the chain;
then the anchors, health and metrics views, and a verifier that checks the credential."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from aiohttp.test_utils import TestClient
from helpers.service import service_config
from pytest_aiohttp import AiohttpClient

from anchor.chain.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.client.api import ServiceClient, Signer
from anchor.errors import VerificationError
from anchor.http.app import create_app
from anchor.http.appkeys import CHAIN, ISSUERS
from anchor.keys import ChainAccountKey, Ed25519Key, save_key
from anchor.verify.receipt import verify_receipt
from anchor.verify.trust import TrustRoot

CREDENTIAL = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential"],
    "issuer": "did:example:college",
    "credentialSubject": {"id": "did:example:learner"},
}


@pytest.fixture(params=["embedded", "anvil"])
async def client(
    request: pytest.FixtureRequest, aiohttp_client: AiohttpClient, tmp_path: Path
) -> TestClient:
    overrides: dict[str, Any] = {"anchor_interval": 0.3, "confirmations": 1}
    if request.param == "anvil":
        node = request.getfixturevalue("anvil")
        account = node.accounts[3]
        contract = deploy(node.web3(), load_artifact(LOG_ANCHOR), account).address
        key = ChainAccountKey.from_hex(account.key.hex())
        save_key(key, tmp_path / "data" / "chain-key.hex")
        overrides.update(rpc_url=node.rpc_url, contract=contract)
    app = create_app(service_config(tmp_path, **overrides))
    return await aiohttp_client(app)


async def test_walkthrough(client: TestClient, tmp_path: Path) -> None:
    issuer = Ed25519Key.generate()
    save_key(issuer, tmp_path / "college.jwk")
    client.app[ISSUERS].add(issuer.did, "County College")
    digest = hashlib.sha256(rfc8785.dumps(CREDENTIAL)).hexdigest()
    base = str(client.make_url("")).rstrip("/")
    async with ServiceClient(base, Signer.for_key(issuer)) as service:
        (record,) = await service.submit([digest])
        assert record["new"] is True
        receipt = await service.receipt(digest, wait=30)
        assert receipt.get("status") != "pending", receipt
        anchors = await service.get_json("/v1/anchors")
        log_info = await service.get_json("/v1/log")
        health = await service.get_json("/healthz")
    assert receipt["entry"]["digest"] == digest
    assert receipt["entry"]["submitter"] == issuer.did
    assert any(a["state"] == "final" for a in anchors["anchors"])
    assert health["chain"]["ok"] is True
    assert health["chain"]["anchoredTreeSize"] >= 1
    backend = client.app[CHAIN].backend
    # The verifier pins the log from GET /v1/log (once, out of band), not from the receipt.
    trust = TrustRoot.from_json(
        {k: log_info[k] for k in ("origin", "verifierKey", "chain", "contract")}
    )
    checked = await verify_receipt(receipt, backend, trust=trust)
    assert checked.receipt.leaf_index == record["index"]
    tampered = json.loads(json.dumps(receipt))
    tampered["anchor"]["blockNumber"] += 1
    with pytest.raises(VerificationError):
        await verify_receipt(tampered, backend, trust=trust)
    metrics = await (await client.get("/metrics")).text()
    assert 'ler_anchor_anchors{state="final"}' in metrics
