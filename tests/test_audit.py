"""The auditor's replay against a real chain: a clean log replays clean; every kind of
tampering with the exported log, a forked checkpoint and a rogue anchor are reported."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from anvil import EvmChain
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3

from anchor.audit import AuditReport, audit, read_anchor_events
from anchor.checkpoint import Checkpoint, NoteSigner
from anchor.cli import main
from anchor.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.entry import Entry, EntryKind
from anchor.log import Log
from anchor.logfiles import DirectorySource, export_log
from anchor.store import SQLiteStore

ORIGIN = "audit.test/log"
SEED = hashlib.sha256(b"audit log key").digest()
ANCHOR_GAS = 120_000


def _anchor(w3: Web3, contract: Any, account: LocalAccount, root: bytes, size: int) -> None:
    tx = contract.functions.anchor(root, size).build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": w3.eth.chain_id,
            "gas": ANCHOR_GAS,
        }
    )
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    assert receipt["status"] == 1


def build_log(tmp_path: Path, chain: EvmChain, entries: int, anchors: int) -> tuple[Any, Path, Log]:
    """A log of ``entries`` entries with ``anchors`` signed and anchored checkpoints (the last
    anchor stops short of the end, leaving room for a rogue one), exported to files."""
    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner(ORIGIN, SEED))
    account = chain.accounts[0]
    contract = chain.w3.eth.contract(
        address=deploy(chain.w3, load_artifact(LOG_ANCHOR), account).address,
        abi=load_artifact(LOG_ANCHOR).abi,
    )
    step = (entries - entries // 50) // anchors
    done = 0
    for _ in range(anchors):
        batch = [
            Entry(
                EntryKind.CREDENTIAL,
                hashlib.sha256(j.to_bytes(8, "big")).digest(),
                f"did:web:issuer{j % 3}.example",
            )
            for j in range(done, done + step)
        ]
        log.append(batch)
        done += step
        cp = log.checkpoint()
        _anchor(chain.w3, contract, account, cp.root, cp.size)
    log.append(
        [
            Entry(
                EntryKind.CREDENTIAL,
                hashlib.sha256(j.to_bytes(8, "big")).digest(),
                "did:web:x.example",
            )
            for j in range(done, entries)
        ]
    )
    log.checkpoint()
    out = tmp_path / "export"
    export_log(store, out)
    return contract, out, log


async def run_audit(chain: EvmChain, contract: Any, export: Path) -> AuditReport:
    events = read_anchor_events(chain.w3, contract.address)
    vkey = NoteSigner(ORIGIN, SEED).verifier.vkey()
    return await audit(events, DirectorySource(export), expected_key=vkey)


def kinds(report: AuditReport) -> set[str]:
    return {d.kind for d in report.discrepancies}


def _pages(export: Path) -> list[Path]:
    return sorted((export / "entries").glob("*.json"))


def _edit_page(path: Path, change: Any) -> None:
    page = json.loads(path.read_text())
    change(page["entries"])
    path.write_text(json.dumps(page))


@pytest.mark.slow
async def test_clean_log_of_100000_entries_and_50_anchors(
    tmp_path: Path, embedded_w3: Web3
) -> None:
    provider = embedded_w3.provider
    assert isinstance(provider, EthereumTesterProvider)
    keys = provider.ethereum_tester.backend.account_keys  # type: ignore[union-attr]
    accounts = tuple(Account.from_key(k.to_bytes()) for k in keys[:2])
    chain = EvmChain(name="embedded", w3=embedded_w3, accounts=accounts)
    contract, export, log = build_log(tmp_path, chain, 100_000, 50)
    report = await run_audit(chain, contract, export)
    assert report.clean, report.discrepancies
    assert report.entries == 100_000
    assert report.anchors == 50
    assert report.checkpoints == 51
    assert report.status_list_entries == 0
    assert report.first_anchor is not None

    # 1. a removed entry
    removed = tmp_path / "removed"
    shutil.copytree(export, removed)
    _edit_page(_pages(removed)[3], lambda entries: entries.pop(500))
    assert "entry" in kinds(await run_audit(chain, contract, removed))

    # 2. a changed entry (bytes and fields changed consistently: only the roots can tell)
    changed = tmp_path / "changed"
    shutil.copytree(export, changed)

    def change(entries: list[dict[str, Any]]) -> None:
        e = entries[1234]
        raw = bytearray(base64.b64decode(e["entry"]))
        raw[10] ^= 1
        e["entry"] = base64.b64encode(bytes(raw)).decode()
        e["digest"] = bytes(raw[4:36]).hex()

    _edit_page(_pages(changed)[5], change)
    report = await run_audit(chain, contract, changed)
    assert "anchor-root-mismatch" in kinds(report)
    assert "checkpoint-root-mismatch" in kinds(report)

    # 3. a reordered pair (indexes kept in place, contents swapped)
    reordered = tmp_path / "reordered"
    shutil.copytree(export, reordered)

    def swap(entries: list[dict[str, Any]]) -> None:
        a, b = entries[10], entries[11]
        for key in ("entry", "digest", "submitter", "kind", "leafHash"):
            a[key], b[key] = b[key], a[key]

    _edit_page(_pages(reordered)[0], swap)
    assert "anchor-root-mismatch" in kinds(await run_audit(chain, contract, reordered))

    # 4. a forked checkpoint: a second root signed for a size already signed
    forked = tmp_path / "forked"
    shutil.copytree(export, forked)
    notes = json.loads((forked / "checkpoints.json").read_text())
    rogue = Checkpoint(ORIGIN, log.latest_checkpoint().size, hashlib.sha256(b"fork").digest())  # type: ignore[union-attr]
    notes["checkpoints"].append(rogue.sign(NoteSigner(ORIGIN, SEED)))
    (forked / "checkpoints.json").write_text(json.dumps(notes))
    assert "forked-checkpoint" in kinds(await run_audit(chain, contract, forked))

    # 5. an anchor whose root matches no state of the log
    _anchor(chain.w3, contract, chain.accounts[0], hashlib.sha256(b"rogue").digest(), 99_990)
    report = await run_audit(chain, contract, export)
    assert kinds(report) == {"anchor-root-mismatch"}
    assert "99990" in report.discrepancies[0].detail


def test_cli_audit_on_anvil(tmp_path: Path, anvil: Any, capsys: pytest.CaptureFixture[str]) -> None:
    chain = EvmChain(name="anvil", w3=anvil.web3(), accounts=anvil.accounts, anvil=anvil)
    snapshot = anvil.snapshot()
    try:
        contract, export, _log = build_log(tmp_path, chain, 3_000, 5)
        vkey = NoteSigner(ORIGIN, SEED).verifier.vkey()
        args = [
            "audit",
            "--rpc-url",
            anvil.rpc_url,
            "--contract",
            contract.address,
            "--log",
            str(export),
        ]
        assert main([*args, "--log-key", vkey]) == 0
        assert "CLEAN" in capsys.readouterr().out
        assert main([*args, "--json"]) == 0  # unpinned key: a warning, not a discrepancy
        body = json.loads(capsys.readouterr().out)
        assert body["clean"] is True
        assert body["warnings"]
        wrong = NoteSigner(ORIGIN, hashlib.sha256(b"other").digest()).verifier.vkey()
        assert main([*args, "--log-key", wrong]) == 1
        assert "DISCREPANCIES" in capsys.readouterr().out
    finally:
        anvil.revert(snapshot)


async def test_status_list_versions_are_checked_against_the_log(tmp_path: Path) -> None:
    """Published list versions must be the status-list entries they claim; a status-list
    entry that was never published, or a version altered in the export, is reported."""
    from anchor.keys import Ed25519Key
    from anchor.status_service import StatusChange, StatusService, StatusSettings, StatusSigner

    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner(ORIGIN, SEED))
    service = StatusService(store, StatusSettings(data_dir=tmp_path / "data"))
    issuer = Ed25519Key.generate()
    signer = StatusSigner(issuer.did, issuer.verification_method, issuer)
    entries = service.allocate(signer, "revocation", 3, "https://status.example").entries
    list_id = entries[0].status_list_credential.rsplit("/", 1)[1]
    service.update(list_id, signer, [StatusChange(entries[0].status_list_index, 1)])
    assert service.log_pending(log) == 2
    log.checkpoint()
    export = tmp_path / "export"
    export_log(store, export)
    vkey = NoteSigner(ORIGIN, SEED).verifier.vkey()
    report = await audit([], DirectorySource(export), expected_key=vkey)
    assert report.clean, report.discrepancies
    assert report.status_list_entries == 2

    versions = json.loads((export / "status-versions.json").read_text())
    altered = json.loads(versions["versions"][1]["credential"])
    altered["credentialSubject"]["encodedList"] = versions["versions"][0]["credential"]
    versions["versions"][1]["credential"] = json.dumps(altered)
    (export / "status-versions.json").write_text(json.dumps(versions))
    report = await audit([], DirectorySource(export), expected_key=vkey)
    assert {"status-version", "status-version-not-logged", "status-entry-unpublished"} <= kinds(
        report
    )

    rogue = Entry(EntryKind.STATUS_LIST, hashlib.sha256(b"never published").digest(), issuer.did)
    log.append([rogue])
    log.checkpoint()
    fresh = tmp_path / "export2"
    export_log(store, fresh)
    report = await audit([], DirectorySource(fresh), expected_key=vkey)
    assert kinds(report) == {"status-entry-unpublished"}
    store.close()


async def test_audit_over_http_checks_the_running_service_including_status_versions(
    aiohttp_client: Any, tmp_path: Path, anvil_factory: Any
) -> None:
    """The auditor's other source: the service's public API (entries, checkpoints and every
    published status list version, paged), against anchors read from a real chain."""
    import asyncio

    import aiohttp
    from service_helpers import service_config
    from test_status_service import allocate, list_id_of, new_issuer, set_statuses
    from test_submit import post_signed

    from anchor.app import create_app
    from anchor.keys import ChainAccountKey, save_key
    from anchor.logfiles import HttpSource
    from anchor.status_service import MAX_VERSIONS_PAGE

    node = anvil_factory()
    account = node.accounts[0]
    contract = await asyncio.to_thread(deploy, node.web3(), load_artifact(LOG_ANCHOR), account)
    save_key(ChainAccountKey.from_hex(account.key.hex()), tmp_path / "data" / "chain-key.hex")
    config = service_config(
        tmp_path,
        rpc_url=node.rpc_url,
        contract=contract.address,
        confirmations=1,
        status_list_entries=1024,
    )
    client = await aiohttp_client(create_app(config))
    issuer = await new_issuer(client)
    submitted = await post_signed(
        client, issuer, {"digests": [hashlib.sha256(bytes([i])).hexdigest() for i in range(40)]}
    )
    assert submitted.status == 201
    (entry,) = await allocate(client, issuer, "suspension")
    list_id = list_id_of(entry)
    for value in [1, 0] * (MAX_VERSIONS_PAGE // 2 + 5):  # more versions than one page holds
        change = [{"index": entry["statusListIndex"], "value": value}]
        assert (await set_statuses(client, issuer, list_id, change)).status == 200
    size = int((await (await client.get("/v1/entries?start=0&end=0")).json())["treeSize"])
    deadline = asyncio.get_running_loop().time() + 60
    while True:  # until a final anchor covers the whole log
        anchors = (await (await client.get("/v1/anchors?state=final")).json())["anchors"]
        if any(a["treeSize"] >= size for a in anchors):
            break
        assert asyncio.get_running_loop().time() < deadline, "no final anchor within 60 s"
        await asyncio.sleep(0.2)
    events = await asyncio.to_thread(read_anchor_events, node.web3(), contract.address)
    vkey = (await (await client.get("/v1/log")).json())["verifierKey"]
    async with aiohttp.ClientSession() as session:
        source = HttpSource(str(client.make_url("")), session)
        versions = await source.status_versions()
        assert versions is not None
        assert len(versions) == MAX_VERSIONS_PAGE + 11  # the first version, then each change
        report = await audit(events, source, expected_key=vkey)
    assert report.clean, report.discrepancies
    assert report.warnings == []
    assert report.status_list_entries == MAX_VERSIONS_PAGE + 11
    assert report.entries == size
