"""The auditor's replay against a real chain: a clean log replays clean; every kind of
tampering with the exported log, a forked checkpoint and a rogue anchor are reported."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from helpers.anvil import AnvilNode, EvmChain, free_port
from web3 import EthereumTesterProvider, Web3

from anchor.chain.contracts import DID_REGISTRY, LOG_ANCHOR, LOG_ANCHOR_V2, deploy, load_artifact
from anchor.cli.main import main
from anchor.core.checkpoint import Checkpoint, NoteSigner
from anchor.core.entry import Entry, EntryKind
from anchor.db.backup import backup
from anchor.errors import CannotAudit, InvalidInput, NoMatchingAnchor, NotALogAnchor
from anchor.log.log import Log
from anchor.log.logfiles import DirectorySource, export_log
from anchor.log.store import SQLiteStore
from anchor.verify.audit import (
    AuditReport,
    audit,
    check_log_anchor_code,
    identify_log_anchor,
    read_anchor_events,
    read_log_anchor,
)

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


def build_log(
    tmp_path: Path, chain: EvmChain, entries: int, anchors: int, salt: bytes = b""
) -> tuple[Any, Path, Log]:
    """A log of ``entries`` entries with ``anchors`` signed and anchored checkpoints (the last
    anchor stops short of the end, leaving room for a rogue one), exported to files. Another
    ``salt`` gives a log with other entries (and roots)."""
    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner(ORIGIN, SEED))
    account = chain.accounts[0]
    contract = chain.w3.eth.contract(
        address=deploy(chain.w3, load_artifact(LOG_ANCHOR_V2), account).address,
        abi=load_artifact(LOG_ANCHOR_V2).abi,
    )
    step = (entries - entries // 50) // anchors
    done = 0
    for _ in range(anchors):
        batch = [
            Entry(
                EntryKind.CREDENTIAL,
                hashlib.sha256(salt + j.to_bytes(8, "big")).digest(),
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
                hashlib.sha256(salt + j.to_bytes(8, "big")).digest(),
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
    assert report.entries == report.log_size == 100_000
    assert report.anchors == report.matched == 50
    assert report.newest_anchored_size == 98_000
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
    from anchor.status.custody import StatusSigner
    from anchor.status.model import StatusChange, StatusSettings
    from anchor.status.repository import StatusRepository

    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner(ORIGIN, SEED))
    service = StatusRepository(store, StatusSettings(data_dir=tmp_path / "data"))
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
    assert report.discrepancies == []
    assert report.status_list_entries == 2
    # no chain: nothing vouches for the log, so the report is never "clean"
    assert not report.clean
    assert report.verdict == "cannot-audit"
    assert isinstance(report.obstacle(), NoMatchingAnchor)

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
    from helpers.service import (
        allocate,
        list_id_of,
        new_issuer,
        post_signed,
        service_config,
        set_statuses,
    )

    from anchor.http.app import create_app
    from anchor.keys import ChainAccountKey, save_key
    from anchor.log.logfiles import HttpSource
    from anchor.status.model import MAX_VERSIONS_PAGE

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
    assert report.matched == len(events) > 0


def _alter_first_entry(entries: list[dict[str, Any]]) -> None:
    """Change entry 0's digest, bytes and fields alike (only the roots can tell)."""
    raw = bytearray(base64.b64decode(entries[0]["entry"]))
    raw[10] ^= 1
    entries[0]["entry"] = base64.b64encode(bytes(raw)).decode()
    entries[0]["digest"] = bytes(raw[4:36]).hex()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    """A static web server that does not log requests on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str, command: str = "audit") -> str:
    """``err`` is exactly one line from ``ler-anchor COMMAND`` (no traceback, no internals)."""
    assert err.endswith("\n"), err
    assert err.count("\n") == 1, err
    assert err.startswith(f"ler-anchor {command}: "), err
    for internal in ("Traceback", "web3", "HTTPConnectionPool", "object at 0x"):
        assert internal not in err, err
    return err


def test_audit_refuses_a_contract_that_is_not_this_logs_anchor(
    tmp_path: Path, anvil: AnvilNode, capsys: pytest.CaptureFixture[str]
) -> None:
    """The right LogAnchor audits clean and says how much of the log it vouches for; another
    log's LogAnchor, an empty one, an account and another contract never do (exit 4)."""
    chain = EvmChain(name="anvil", w3=anvil.web3(), accounts=anvil.accounts, anvil=anvil)
    snapshot = anvil.snapshot()
    try:
        ours, export, _log = build_log(tmp_path / "ours", chain, 300, 3)
        theirs, _export, _other = build_log(tmp_path / "theirs", chain, 200, 2, salt=b"other")
        empty = deploy(chain.w3, load_artifact(LOG_ANCHOR), chain.accounts[1]).address
        registry = deploy(chain.w3, load_artifact(DID_REGISTRY), chain.accounts[1]).address
        vkey = NoteSigner(ORIGIN, SEED).verifier.vkey()
        args = ["audit", "--rpc-url", anvil.rpc_url, "--log", str(export), "--log-key", vkey]

        code, out, err = _cli([*args, "--contract", ours.address], capsys)
        assert (code, err) == (0, "")
        assert f"{ours.address} (LogAnchor, owner {chain.accounts[0].address})" in out
        assert "log size              300" in out
        assert "anchors matched       3 of 3" in out
        assert "newest anchored size  294" in out
        assert "warning: entries 294 to 299 are not anchored yet" in out
        assert out.rstrip().endswith(
            "CLEAN: every anchored root and signed checkpoint matches the log"
        )
        code, out, _err = _cli([*args, "--contract", ours.address, "--json"], capsys)
        body = json.loads(out)
        assert code == 0
        assert (body["verdict"], body["clean"], body["reason"]) == ("clean", True, None)
        assert (body["logSize"], body["anchors"], body["anchorsMatched"]) == (300, 3, 3)
        assert body["newestAnchoredSize"] == body["contract"]["latestSize"] == 294
        assert body["contract"]["owner"] == chain.accounts[0].address

        # entries altered before the first anchor: no anchor matches the replay, but the log's
        # signed checkpoints link them to it: a discrepancy (1), not "cannot audit" (4)
        altered = tmp_path / "altered"
        shutil.copytree(export, altered)
        _edit_page(_pages(altered)[0], _alter_first_entry)
        on_altered = [*args[:3], "--log", str(altered), *args[5:], "--contract", ours.address]
        code, out, err = _cli(on_altered, capsys)
        assert (code, err) == (1, "")
        assert "anchors matched       0 of 3 (3 in checkpoints signed by the log)" in out
        assert "DISCREPANCIES: 7" in out  # 3 anchors, 4 checkpoints
        assert "CANNOT AUDIT" not in out
        # without its checkpoints, nothing links the contract to this log any more
        (altered / "checkpoints.json").write_text(json.dumps({"checkpoints": []}))
        code, out, err = _cli(on_altered, capsys)
        assert code == 4
        assert "none of the contract's 3 anchors is a root of this log" in _one_line(err)

        # another log's LogAnchor: each anchor is a discrepancy, and none matching is not an audit
        code, out, err = _cli([*args, "--contract", theirs.address], capsys)
        assert code == 4
        assert "none of the contract's 2 anchors is a root of this log of 300 entries" in (
            _one_line(err)
        )
        assert "anchors matched       0 of 2" in out
        assert out.count("anchor-root-mismatch") == 2
        assert "CANNOT AUDIT: none of" in out
        assert "CLEAN" not in out
        code, out, err = _cli([*args, "--contract", theirs.address, "--json"], capsys)
        body = json.loads(out)
        assert code == 4
        assert (body["verdict"], body["clean"], body["anchorsMatched"]) == (
            "cannot-audit",
            False,
            0,
        )
        assert body["reason"] in err

        # a LogAnchor holding no anchor: refused before the replay
        code, out, err = _cli([*args, "--contract", empty.lower()], capsys)
        assert (code, out) == (4, "")
        assert "the contract holds no anchor while the log has 300 entries" in _one_line(err)

        # an account without code, and a contract that is not a LogAnchor
        code, out, err = _cli([*args, "--contract", chain.accounts[2].address], capsys)
        assert (code, out) == (4, "")
        assert f"there is no contract at {chain.accounts[2].address}" in _one_line(err)
        code, out, err = _cli([*args, "--contract", registry], capsys)
        assert (code, out) == (4, "")
        assert f"the contract at {registry} is not the LogAnchor this version ships" in (
            _one_line(err)
        )

        # events read from after the anchors do not reach latest(): not an audit either
        head = chain.w3.eth.block_number
        code, out, err = _cli(
            [*args, "--contract", ours.address, "--from-block", str(head)], capsys
        )
        assert (code, out) == (4, "")
        assert "latest anchor is of size 294" in _one_line(err)
        assert "the events read are incomplete" in err
    finally:
        anvil.revert(snapshot)


def test_audit_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed arguments exit 2; an unreachable chain or log exits 4; always one line."""
    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner(ORIGIN, SEED))
    log.append([Entry(EntryKind.CREDENTIAL, hashlib.sha256(b"one").digest(), "did:web:a.example")])
    log.checkpoint()
    export_log(store, tmp_path / "export")
    store.close()
    contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    down = f"http://127.0.0.1:{free_port()}"
    args = ["audit", "--rpc-url", down, "--contract", contract, "--log", str(tmp_path / "export")]

    cases = [
        (["--contract", "notanaddress"], 2, "'notanaddress' is not a contract address"),
        (["--contract", contract.replace("F", "f", 1)], 2, "has a wrong EIP-55 checksum"),
        (["--rpc-url", "localhost:8545"], 2, "is not an http:// or https:// URL"),
        (["--log-key", "not+a+key"], 2, "Malformed checkpoint"),
        (["--log", "ftp://example.org/log"], 2, "only http:// and https:// URLs are read"),
        (["--log", str(tmp_path / "missing")], 4, "missing: no such folder"),
        (["--log", down], 4, f"the log service at {down} cannot be read: cannot connect"),
        (["--log", down, "--contract", "0x12"], 2, "'0x12' is not a contract address"),
        (["--from-block", "-1"], 2, "--from-block -1 is negative"),
        ([], 4, "cannot be read: the JSON-RPC endpoint failed: Connection refused"),
    ]
    # a web server that is not the service; an export whose log.json lacks its size
    site = tmp_path / "site"
    (site / "v1").mkdir(parents=True)
    (site / "v1" / "entries").write_text("<html>not the service</html>")
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "export", broken)
    meta = json.loads((broken / "log.json").read_text())
    del meta["treeSize"]
    (broken / "log.json").write_text(json.dumps(meta))
    handler = functools.partial(_QuietFiles, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    web = f"http://127.0.0.1:{server.server_address[1]}"
    cases += [
        (["--log", web], 4, f"{web}/v1/entries did not answer JSON"),
        (["--log", f"{web}/elsewhere"], 4, "/elsewhere/v1/entries answered 404"),
        (["--log", str(broken)], 2, "log.json: 'treeSize' must be of type int"),
    ]
    try:
        for extra, status, message in cases:
            code, out, err = _cli([*args, *extra], capsys)
            assert (code, out) == (status, ""), (extra, err)
            assert message in _one_line(err), (extra, err)
    finally:
        server.shutdown()
        server.server_close()

    # and as a process: one line on stderr, nothing on stdout
    done = subprocess.run(
        [sys.executable, "-m", "anchor", *args, "--contract", "notanaddress"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert "is not a contract address" in _one_line(done.stderr)


def test_restore_refuses_a_contract_that_vouches_for_nothing(
    tmp_path: Path, anvil: AnvilNode, capsys: pytest.CaptureFixture[str]
) -> None:
    """``restore`` reads the chain with the audit's check: no code, another contract or a
    LogAnchor holding no anchor refuse a non-empty backup, and nothing is installed."""
    snapshot = anvil.snapshot()
    try:
        w3 = anvil.web3()
        empty = deploy(w3, load_artifact(LOG_ANCHOR), anvil.accounts[0]).address
        registry = deploy(w3, load_artifact(DID_REGISTRY), anvil.accounts[0]).address
        store = SQLiteStore(tmp_path / "log.db")
        Log(store, NoteSigner(ORIGIN, SEED)).append(
            [Entry(EntryKind.CREDENTIAL, hashlib.sha256(b"x").digest(), "did:web:a.example")]
        )
        store.close()
        backup(tmp_path / "log.db", tmp_path / "b.db")
        target = tmp_path / "restored" / "ler-anchor.db"
        args = ["restore", str(tmp_path / "b.db"), "--db", str(target), "--rpc-url", anvil.rpc_url]
        cases = [
            (anvil.accounts[3].address, 4, "there is no contract at"),
            (registry, 4, "is not the LogAnchor this version ships"),
            (empty, 4, "the contract holds no anchor while this backup has 1 entries"),
            ("notanaddress", 2, "is not a contract address"),
        ]
        for contract, status, message in cases:
            code, _out, err = _cli([*args, "--contract", contract], capsys)
            assert code == status, err
            assert message in _one_line(err, "restore")
            assert not target.exists()
    finally:
        anvil.revert(snapshot)


def test_read_log_anchor_accepts_only_the_shipped_code(evm_chain: EvmChain) -> None:
    """On both chains: the shipped LogAnchor is read with its owner and ``latest()``; any
    change to its code (one byte, or one immutable placeholder holding another address), an
    account and another contract are refused, each with its typed reason."""
    w3, owner, other = evm_chain.w3, evm_chain.accounts[0], evm_chain.accounts[1]
    address = deploy(w3, load_artifact(LOG_ANCHOR), owner).address
    state = read_log_anchor(w3, address)
    assert (state.address, state.owner) == (address, owner.address)
    assert (state.latest_size, state.latest_root, state.events) == (0, None, ())
    contract = w3.eth.contract(address=address, abi=load_artifact(LOG_ANCHOR).abi)
    root = hashlib.sha256(b"a root").digest()
    _anchor(w3, contract, owner, root, 7)
    state = read_log_anchor(w3, address.lower())
    assert (state.latest_size, state.latest_root) == (7, root)
    assert [(e.size, e.root) for e in state.events] == [(7, root)]

    code = bytes(w3.eth.get_code(address))
    assert check_log_anchor_code(code, address) == owner.address
    word = bytes(12) + bytes.fromhex(owner.address[2:])
    assert code.count(word) == 7  # the owner's reads, one per placeholder
    other_word = bytes(12) + bytes.fromhex(other.address[2:])
    changed = {
        "one byte": code[:100] + bytes([code[100] ^ 1]) + code[101:],
        "one placeholder": code.replace(word, other_word, 1),
        "every placeholder, padding too": code.replace(word, b"\x01" + other_word[1:]),
        "cut short": code[:-60],
    }
    for what, variant in changed.items():
        with pytest.raises(NotALogAnchor) as caught:
            check_log_anchor_code(variant, address)
        assert caught.value.found == "other-code", what
    # another owner everywhere is just another deployment
    assert check_log_anchor_code(code.replace(word, other_word), address) == other.address

    registry = deploy(w3, load_artifact(DID_REGISTRY), owner).address
    for target, found in ((registry, "other-code"), (other.address, "no-code")):
        with pytest.raises(NotALogAnchor) as caught:
            read_log_anchor(w3, target)
        assert (caught.value.found, caught.value.address) == (found, target)
    with pytest.raises(InvalidInput, match="is after the chain's head block"):
        read_log_anchor(w3, address, w3.eth.block_number + 1)


def test_read_log_anchor_accepts_version_2(evm_chain: EvmChain) -> None:
    """LogAnchorV2 is read too: its version and owner from the code, the latest root's 24-byte
    head from ``latest()`` completed by the last event; a changed byte or an event log that
    misses the latest anchor is refused."""
    w3, owner = evm_chain.w3, evm_chain.accounts[0]
    v2 = load_artifact(LOG_ANCHOR_V2)
    address = deploy(w3, v2, owner).address
    v1_address = deploy(w3, load_artifact(LOG_ANCHOR), owner).address
    state = read_log_anchor(w3, address)
    assert (state.version, state.owner, state.latest_size, state.latest_root) == (
        2,
        owner.address,
        0,
        None,
    )
    assert read_log_anchor(w3, v1_address).version == 1
    contract = w3.eth.contract(address=address, abi=v2.abi)
    roots = [hashlib.sha256(bytes([n])).digest() for n in range(2)]
    _anchor(w3, contract, owner, roots[0], 3)
    _anchor(w3, contract, owner, roots[1], 9)
    state = read_log_anchor(w3, address)
    assert (state.latest_size, state.latest_root) == (9, roots[1])
    assert [(e.size, e.root) for e in state.events] == [(3, roots[0]), (9, roots[1])]
    assert state.to_json()["version"] == 2

    code = bytes(w3.eth.get_code(address))
    assert identify_log_anchor(code, address) == (2, owner.address)
    with pytest.raises(NotALogAnchor):
        identify_log_anchor(code[:90] + bytes([code[90] ^ 1]) + code[91:], address)
    after = w3.eth.block_number + 1
    deploy(w3, v2, owner)  # one more block, without an anchor of this contract
    with pytest.raises(CannotAudit, match="the events read are incomplete"):
        read_log_anchor(w3, address, after)
