"""Moving a running log from a LogAnchor v1 contract to a v2 contract on the same chain
(``serve --contract NEW`` on the same database), over a real socket on a real anvil: the new
contract's first anchor is the log's head, receipts issued on the old contract still verify,
and both contracts pass the audit's reading."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from helpers.service import service_config

from anchor.chain.contracts import LOG_ANCHOR, LOG_ANCHOR_V2, deploy, load_artifact
from anchor.client.api import ServiceClient, Signer
from anchor.errors import VerificationError
from anchor.http.app import create_app
from anchor.http.appkeys import CHAIN, ISSUERS
from anchor.keys import ChainAccountKey, Ed25519Key, save_key
from anchor.verify.audit import read_log_anchor
from anchor.verify.receipt import verify_receipt
from anchor.verify.trust import TrustRoot, TrustSet

pytestmark = pytest.mark.anvil

TRUST_MEMBERS = ("origin", "verifierKey", "chain", "contract")


def digests(start: int, stop: int) -> list[str]:
    return [hashlib.sha256(f"credential {n}".encode()).hexdigest() for n in range(start, stop)]


async def run_service(
    aiohttp_client: Any, tmp_path: Path, node: Any, contract: str, issuer: Ed25519Key | None
) -> Any:
    config = service_config(
        tmp_path, anchor_interval=0.2, confirmations=1, rpc_url=node.rpc_url, contract=contract
    )
    client = await aiohttp_client(create_app(config))
    if issuer is not None:
        client.app[ISSUERS].add(issuer.did, "County College")
    return client


async def test_serve_on_a_new_v2_contract_continues_the_log(
    anvil: Any, aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = anvil.snapshot()
    try:
        w3, account = anvil.web3(), anvil.accounts[6]
        save_key(ChainAccountKey.from_hex(account.key.hex()), tmp_path / "data" / "chain-key.hex")
        old = deploy(w3, load_artifact(LOG_ANCHOR), account).address
        new = deploy(w3, load_artifact(LOG_ANCHOR_V2), account).address
        issuer = Ed25519Key.generate()

        client = await run_service(aiohttp_client, tmp_path, anvil, old, issuer)
        base = str(client.make_url("")).rstrip("/")
        async with ServiceClient(base, Signer.for_key(issuer)) as service:
            await service.submit(digests(0, 4))
            old_receipt = await service.receipt(digests(0, 4)[1], wait=30)
        assert old_receipt["anchor"]["contract"] == old
        log = await (await client.get("/v1/log")).json()
        old_root = TrustRoot.from_json({k: log[k] for k in TRUST_MEMBERS})
        await verify_receipt(old_receipt, client.app[CHAIN].backend, trust=old_root)
        await client.close()

        client = await run_service(aiohttp_client, tmp_path, anvil, new, None)
        await client.app[CHAIN].start()
        assert f"the anchoring contract moved on eip155:{anvil.chain_id} from {old} to {new}" in (
            caplog.text
        )
        base = str(client.make_url("")).rstrip("/")
        async with ServiceClient(base, Signer.for_key(issuer)) as service:
            await service.submit(digests(4, 6))
            new_receipt = await service.receipt(digests(4, 6)[1], wait=30)
            moved = await service.receipt(digests(0, 4)[1], wait=30)
            every = await service.get_json("/v1/anchors?allChains=1")
        backend = client.app[CHAIN].backend
        log = await (await client.get("/v1/log")).json()
        new_root = TrustRoot.from_json({k: log[k] for k in TRUST_MEMBERS})
        assert (new_root.origin, new_root.verifier_key) == (old_root.origin, old_root.verifier_key)
        # A verifier that trusted the log before the move adds its new contract beside the
        # old one (same origin and key): receipts of both verify, of neither other contract.
        trust = TrustSet((old_root,)).added(new_root)
        assert len(trust) == 2
        with pytest.raises(VerificationError):
            await verify_receipt(new_receipt, backend, trust=old_root)
        # The old contract's receipt still verifies; the log now anchors on the new one,
        # whose first anchor covers the whole log as it was (its head, size 4) or more.
        await verify_receipt(old_receipt, backend, trust=trust)
        for receipt in (new_receipt, moved):
            assert receipt["anchor"]["contract"] == new
            await verify_receipt(receipt, backend, trust=trust)
        on_new = sorted(
            (a for a in every["anchors"] if a["contract"] == new), key=lambda a: a["treeSize"]
        )
        assert on_new[0]["treeSize"] >= 4
        assert on_new[-1]["treeSize"] == 6
        assert {a["currentChain"] for a in every["anchors"] if a["contract"] == old} == {False}

        old_state = await _read(w3, old)
        new_state = await _read(w3, new)
        assert (old_state.version, new_state.version) == (1, 2)
        assert old_state.latest_size == 4
        assert new_state.latest_size == 6
        await client.close()
    finally:
        anvil.revert(snapshot)


async def _read(w3: Any, address: str) -> Any:
    return await asyncio.to_thread(read_log_anchor, w3, address)
