"""Proofs against the latest anchored root (``anchored=latest``), served by the real service
over a socket and checked by LogAnchorV2 on a real anvil: inclusion of a credential's entry
and consistency from an earlier anchor's size to the latest."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers.service import service_config
from web3.contract import Contract

from anchor.chain.contracts import LOG_ANCHOR_V2, deploy, load_artifact
from anchor.client.api import ServiceClient, Signer
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS
from anchor.keys import ChainAccountKey, Ed25519Key, save_key

pytestmark = pytest.mark.anvil


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture
async def served(anvil: Any, aiohttp_client: Any, tmp_path: Path) -> Any:
    snapshot = anvil.snapshot()
    account = anvil.accounts[4]
    artifact = load_artifact(LOG_ANCHOR_V2)
    address = deploy(anvil.web3(), artifact, account).address
    save_key(ChainAccountKey.from_hex(account.key.hex()), tmp_path / "data" / "chain-key.hex")
    config = service_config(
        tmp_path, anchor_interval=0.2, confirmations=1, rpc_url=anvil.rpc_url, contract=address
    )
    client = await aiohttp_client(create_app(config))
    contract = anvil.web3().eth.contract(address=address, abi=artifact.abi)
    try:
        yield client, contract
    finally:
        anvil.revert(snapshot)


async def test_contract_checks_proofs_the_service_serves(served: Any, tmp_path: Path) -> None:
    client, contract = served
    assert isinstance(client, TestClient)
    assert isinstance(contract, Contract)
    issuer = Ed25519Key.generate()
    client.app[ISSUERS].add(issuer.did, "County College")
    base = str(client.make_url("")).rstrip("/")
    first = [hashlib.sha256(f"credential {n}".encode()).hexdigest() for n in range(3)]
    later = [hashlib.sha256(f"credential {n}".encode()).hexdigest() for n in range(3, 8)]

    response = await client.get("/v1/proofs/inclusion", params={"index": 0, "anchored": "latest"})
    assert response.status == 404  # nothing anchored yet
    async with ServiceClient(base, Signer.for_key(issuer)) as service:
        await service.submit(first)
        await service.receipt(first[-1], wait=30)
        first_size = contract.functions.latest().call()[1]
        await service.submit(later)
        await service.receipt(later[-1], wait=30)
    head, latest_size = contract.functions.latest().call()
    assert latest_size == 8
    assert first_size >= 3

    # Inclusion of a credential's entry, by digest, against the latest anchored root.
    response = await client.get(
        "/v1/proofs/inclusion", params={"digest": first[1], "anchored": "latest"}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["treeSize"] == latest_size
    assert b64(body["root"])[:24] == head
    assert body["anchor"]["treeSize"] == latest_size
    assert body["anchor"]["contract"] == contract.address
    proof = [b64(p) for p in body["proof"]]
    leaf = b64(body["leafHash"])
    in_latest = contract.functions.verifyInclusionInLatest
    assert in_latest(body["index"], leaf, proof).call() is True
    assert in_latest(body["index"] + 1, leaf, proof).call() is False
    assert in_latest(body["index"], hashlib.sha256(leaf).digest(), proof).call() is False

    # Consistency from the first anchor's size to the latest anchored size.
    response = await client.get(
        "/v1/proofs/consistency", params={"size1": first_size, "anchored": "latest"}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["size1"], body["size2"]) == (first_size, latest_size)
    proof = [b64(p) for p in body["proof"]]
    consistency = contract.functions.verifyConsistency
    assert consistency(first_size, b64(body["root1"]), proof).call() is True
    assert consistency(first_size, b64(body["root2"]), proof).call() is False
    assert consistency(first_size, b64(body["root1"]), proof[:-1]).call() is False

    # Boundary checks: one problem+json line each, never a traceback.
    bad = [
        ({"index": 0, "anchored": "newest"}, 400, "must be 'latest'"),
        ({"index": 0, "size": 3, "anchored": "latest"}, 400, "not both"),
        ({"index": 9, "anchored": "latest"}, 404, "not covered by the latest anchor"),
    ]
    for params, status, text in bad:
        response = await client.get("/v1/proofs/inclusion", params=params)
        assert response.status == status
        assert response.content_type == "application/problem+json"
        assert text in (await response.json())["detail"]
    response = await client.get(
        "/v1/proofs/consistency", params={"size1": 1, "size2": 2, "anchored": "latest"}
    )
    assert response.status == 400
    # size1 beyond the anchored size names no proof (404, as for size1 > size2)
    response = await client.get("/v1/proofs/consistency", params={"size1": 9, "anchored": "latest"})
    assert response.status == 404
