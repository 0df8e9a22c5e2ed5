"""Trust roots: a receipt never vouches for itself.

A second log, with its own key and its own LogAnchor deployed on the same anvil chain, anchors
a credential; its receipt is internally sound, and it is judged against what the verifier
trusts: the first log (invalid), nothing (unknown), the right key with the first log's
contract (invalid), its own root (valid), through the Python API, ``ler-anchor verify`` and
``ler-anchor receipt verify``. ``trust add/list/remove`` run against a real service over a
socket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from helpers.anvil import AnvilNode
from helpers.chain import ANVIL, LOG_ORIGIN, Chain, open_chain, trust_root, wait_for
from helpers.service import MakeClient, run_cli

from anchor.chain import AnchorState, ChainClient, Web3Backend, list_anchors
from anchor.chain.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.cli.commands.trust_cmd import MAX_LOG_INFO_BYTES
from anchor.core.checkpoint import NoteSigner
from anchor.core.entry import Entry, EntryKind
from anchor.core.receipt import Receipt
from anchor.errors import ConfigError, Conflict, InvalidInput, NotFound, UntrustedLog
from anchor.http.appkeys import CHAIN, MERKLE_LOG
from anchor.keys import Ed25519Key
from anchor.log.log import Log
from anchor.log.receipts import build_receipt
from anchor.log.store import SQLiteStore
from anchor.status.check import StatusChecker
from anchor.vc import credentials
from anchor.verify.receipt import verify_receipt
from anchor.verify.trust import (
    TrustRoot,
    TrustSet,
    default_trust_path,
    load_trust_file,
    save_trust_file,
)
from anchor.verify.verifier import CredentialVerifier, Verdict
from did_methods import build_resolver

ACHIEVEMENT = credentials.Achievement(
    id="https://college.example/achievements/welding-1",
    name="Welding I",
    description="Basic shielded metal arc welding",
    criteria="Passed the practical and written assessments",
)
KEY = "ler-anchor.test/log+01234567+" + "A" * 44
ADDRESS = "0x" + "ab" * 20


def a_root(**changes: str) -> TrustRoot:
    signer = NoteSigner(LOG_ORIGIN, hashlib.sha256(b"a root").digest())
    root = TrustRoot(LOG_ORIGIN, signer.verifier.vkey(), "eip155:31337", ADDRESS)
    return dataclasses.replace(root, **changes)


# ---- the values -------------------------------------------------------------------------------


def test_a_trust_root_is_validated_and_fingerprinted() -> None:
    root = a_root()
    assert root.contract == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"  # EIP-55
    assert dataclasses.replace(root, contract=ADDRESS.upper().replace("0X", "0x")) == root
    groups = root.fingerprint.split(" ")
    assert [len(g) for g in groups] == [4] * 16
    assert all(c in "0123456789abcdef" for c in "".join(groups))
    others = [
        a_root(origin="other.example/log"),
        a_root(chain="eip155:1"),
        a_root(contract="0x" + "cd" * 20),
        a_root(verifier_key=NoteSigner(LOG_ORIGIN, b"\x01" * 32).verifier.vkey()),
    ]
    assert len({root.fingerprint, *(o.fingerprint for o in others)}) == 5
    for bad, word in [
        ({"chain": "eip155:0"}, "CAIP-2"),
        ({"chain": "31337"}, "CAIP-2"),
        ({"contract": "0x1234"}, "address"),
        ({"verifier_key": "not-a-key"}, "verifier key"),
        ({"verifier_key": KEY}, "verifier key"),
        ({"origin": ""}, "origin"),
        ({"origin": "x" * 300}, "origin"),
    ]:
        with pytest.raises(InvalidInput, match=word):
            a_root(**bad)
    pinned = TrustRoot.pinned(root.verifier_key, root.contract, root.chain)
    assert pinned == root  # the origin is the key's name


def test_a_trust_set_adds_refuses_replaces_and_removes() -> None:
    root = a_root()
    trusted = TrustSet().added(root)
    assert trusted.added(root) is trusted
    # The same log (origin and key) anchoring on another contract: added beside, so receipts
    # of both contracts verify (a log moving from LogAnchor v1 to v2).
    moved = a_root(contract="0x" + "cd" * 20)
    beside = trusted.added(moved)
    assert list(beside) == [root, moved]
    assert beside.roots_of(LOG_ORIGIN) == [root, moved]
    # Another key for a trusted origin is refused unless replaced.
    rekeyed = a_root(verifier_key=NoteSigner(LOG_ORIGIN, b"\x07" * 32).verifier.vkey())
    with pytest.raises(Conflict, match=rekeyed.fingerprint) as caught:
        beside.added(rekeyed)
    assert "--replace" in (caught.value.hint or "")
    replaced = beside.added(rekeyed, replace=True)
    assert list(replaced) == [rekeyed]
    both = replaced.added(a_root(origin="other.example/log"))
    assert len(both) == 2
    rest, gone = both.removed(rekeyed.fingerprint.replace(" ", ":").upper())
    assert gone == rekeyed
    assert [r.origin for r in rest] == ["other.example/log"]
    rest, gone = both.removed("other.example/log")
    assert gone.origin == "other.example/log"
    rest, gone = beside.removed(LOG_ORIGIN)  # an origin: every contract of that log
    assert (len(rest), gone) == (0, root)
    with pytest.raises(NotFound):
        both.removed("no.such/log")
    with pytest.raises(InvalidInput, match="two keys"):
        TrustSet((root, rekeyed))
    with pytest.raises(InvalidInput, match="twice"):
        TrustSet((root, root))


def test_the_trust_file(tmp_path: Path) -> None:
    path = tmp_path / "config" / "ler-anchor" / "trust.json"
    assert len(load_trust_file(path)) == 0  # absent: nothing trusted
    trusted = TrustSet((a_root(), a_root(origin="other.example/log")))
    save_trust_file(path, trusted)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_trust_file(path) == trusted
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert doc["logs"][0] == a_root().to_json()
    for broken, text in [
        ("not json", "not JSON"),
        (json.dumps({"version": 2, "logs": []}), "version 2"),
        (json.dumps({"version": 1, "logs": [{"origin": "x"}]}), "lacks"),
        (json.dumps({"version": 1, "logs": [], "x": 1}), "unknown member"),
        (json.dumps({"version": 1, "logs": [a_root().to_json() | {"chain": "1"}]}), "CAIP-2"),
        ("[" * 10 + " " * (1024 * 1024), "larger than"),
    ]:
        path.write_text(broken)
        with pytest.raises(ConfigError, match=text):
            load_trust_file(path)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    assert default_trust_path(env) == tmp_path / "xdg" / "ler-anchor" / "trust.json"
    assert default_trust_path(env | {"LER_ANCHOR_TRUST_FILE": "/x/t.json"}) == Path("/x/t.json")
    assert default_trust_path({}).parts[-3:] == (".config", "ler-anchor", "trust.json")


# ---- two logs on one anvil chain ---------------------------------------------------------------


@dataclass
class TwoLogs:
    """Log A (the one to trust) and log B (someone else's: same origin, its own key, its own
    LogAnchor) on one anvil node; a credential anchored in B."""

    node: AnvilNode
    a: TrustRoot
    b: TrustRoot
    credential: dict[str, Any]
    receipt: dict[str, Any]


async def anchor_log(log: Log, client: ChainClient) -> None:
    checkpoint = log.checkpoint()
    await client.enqueue(checkpoint.size, checkpoint.root)

    async def final() -> bool:
        await client.step()
        return all(a.state is AnchorState.FINAL for a in list_anchors(log.store))

    await wait_for(final, what=f"tree size {checkpoint.size} to be anchored")


@pytest.fixture
async def two_logs(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path
) -> AsyncIterator[TwoLogs]:
    chain_a = await open_chain(ANVIL, anvil_factory)
    node = chain_a.node
    assert node is not None
    owner_b = node.accounts[2]
    deployed = await asyncio.to_thread(deploy, node.web3(), load_artifact(LOG_ANCHOR), owner_b)
    chain_b = Chain(
        name=ANVIL,
        owner_key=bytes(owner_b.key),
        other_key=bytes(node.accounts[3].key),
        contract=deployed.address,
        backend=chain_a.backend,
        node=node,
    )
    log_b = Log(
        SQLiteStore(tmp_path / "b.db"),
        NoteSigner(LOG_ORIGIN, hashlib.sha256(b"someone else's log key").digest()),
    )
    issuer = Ed25519Key.generate()
    unsigned = credentials.open_badge(
        issuer=issuer.did,
        issuer_name="County College",
        achievement=ACHIEVEMENT,
        subject=credentials.hashed_identity("learner@example.org"),
    )
    credential = credentials.sign(unsigned, issuer.seed(), issuer.verification_method)
    entry = Entry(EntryKind.CREDENTIAL, credentials.digest(credential), issuer.did)
    index = log_b.append([entry]).indexes[0]
    client = await chain_b.client(log_b.store)
    try:
        await anchor_log(log_b, client)
        receipt = build_receipt(log_b, index)
        yield TwoLogs(
            node,
            await trust_root(chain_a),
            await trust_root(chain_b, log_b),
            credential,
            receipt,
        )
    finally:
        await client.close()
        log_b.store.close()
        await chain_a.close()


@pytest.mark.anvil
async def test_a_receipt_of_another_log_on_the_same_chain(
    two_logs: TwoLogs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, receipt = two_logs.a, two_logs.b, two_logs.receipt
    assert (a.origin, a.chain) == (b.origin, b.chain)  # only the key and contract differ
    rpc_url = two_logs.node.rpc_url
    backend = await Web3Backend.connect(rpc_url)
    right_key_wrong_contract = dataclasses.replace(b, contract=a.contract)
    wrong_chain = dataclasses.replace(b, chain="eip155:1")
    try:
        # The Python API.
        checked = await verify_receipt(receipt, backend, trust=b)
        assert checked.receipt.anchor.contract == b.contract
        assert await verify_receipt(receipt, backend, trust=TrustSet((a_root(origin="x"), b)))
        for trust, differs in [
            (a, ("key", "contract")),
            (right_key_wrong_contract, ("contract",)),
            (wrong_chain, ("chain",)),
        ]:
            with pytest.raises(UntrustedLog) as caught:
                await verify_receipt(receipt, backend, trust=trust)
            assert (caught.value.what, caught.value.differs) == ("trust", differs)
            assert " and ".join(differs) in caught.value.detail
        with pytest.raises(UntrustedLog, match="not a trusted log"):
            Receipt.parse(receipt).check(TrustSet())

        # The credential verifier.
        async with aiohttp.ClientSession() as session:
            resolver = build_resolver(session)
            checker = StatusChecker(resolver, session)

            async def anchoring(trust: TrustRoot | None) -> tuple[Verdict, str]:
                verifier = CredentialVerifier(resolver, checker, backend, trust=trust)
                report = await verifier.verify(two_logs.credential, receipt)
                if trust is b:
                    assert report.valid, report.table()
                check = report.check("anchoring")
                return check.verdict, check.reason

            assert (await anchoring(a))[0] is Verdict.INVALID
            assert "another key and contract" in (await anchoring(a))[1]
            verdict, reason = await anchoring(None)
            assert verdict is Verdict.UNKNOWN
            assert "no trusted log" in reason
            assert "ler-anchor trust add" in reason
            verdict, reason = await anchoring(right_key_wrong_contract)
            assert verdict is Verdict.INVALID
            assert f"contract {b.contract} is not the trusted {a.contract}" in reason
            assert (await anchoring(b))[0] is Verdict.VALID
    finally:
        await backend.close()

    # The command line: `verify` and `receipt verify`, pinned by flags or by the trust file.
    credential_file = tmp_path / "credential.json"
    credential_file.write_text(json.dumps(two_logs.credential))
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(json.dumps(receipt))
    trust_file = tmp_path / "trust.json"
    chain = ("--rpc-url", rpc_url)
    verify = ("verify", str(credential_file), "--receipt", str(receipt_file), *chain)
    check = ("receipt", "verify", str(receipt_file), *chain)
    file = ("--trust-file", str(trust_file))

    def pin(root: TrustRoot) -> tuple[str, ...]:
        return ("--log-key", root.verifier_key, "--contract", root.contract)

    cases: list[tuple[tuple[str, ...], int, str]] = [
        ((), 3, "no trusted log: run `ler-anchor trust add SERVICE_URL`"),
        (pin(a), 1, "another key and contract"),
        (pin(right_key_wrong_contract), 1, "another contract"),
        ((*pin(b), "--chain", "eip155:1"), 1, "another chain"),
        (pin(b), 0, ""),
        ((*pin(b), "--chain", b.chain), 0, ""),
    ]
    for extra, code, text in cases:
        got, out, err = await run_cli(capsys, *check, *extra)
        assert (got, err) == (code, ""), (extra, out, err)
        assert text in out
        got, out, err = await run_cli(capsys, *verify, *extra, "--json")
        assert got == code, (extra, out, err)
        anchoring_check = next(c for c in json.loads(out)["checks"] if c["check"] == "anchoring")
        assert text in anchoring_check["reason"]
    # What a valid receipt proves, one line each.
    got, out, _ = await run_cli(capsys, *check, *pin(b))
    assert got == 0
    for label in ("entry", "leaf", "checkpoint", "chain", "block", "time", "confirmations"):
        assert any(line.split()[0] == label for line in out.splitlines()), label
    assert b.fingerprint in out
    assert out.splitlines()[-1].startswith("RESULT         VALID")
    # The trust file: log A only, then B too.
    save_trust_file(trust_file, TrustSet((a,)))
    got, out, _ = await run_cli(capsys, *check, *file)
    assert (got, out.split(":")[0]) == (1, "invalid")
    save_trust_file(trust_file, TrustSet((dataclasses.replace(a, origin="a.example/log"), b)))
    got, out, _ = await run_cli(capsys, *check, *file)
    assert got == 0, out
    # Without an endpoint the anchor is not checked: unknown; too shallow: unknown.
    got, out, _ = await run_cli(capsys, "receipt", "verify", str(receipt_file), *pin(b))
    assert got == 2  # the pinned chain needs --chain or --rpc-url
    got, out, _ = await run_cli(
        capsys, "receipt", "verify", str(receipt_file), *pin(b), "--chain", b.chain
    )
    assert (got, out.split(":")[0]) == (3, "unknown")
    assert "give --rpc-url" in out
    got, out, _ = await run_cli(capsys, *check, *pin(b), "--min-confirmations", "1000")
    assert got == 3
    assert "fewer than the 1000 required" in out
    got, out, _ = await run_cli(capsys, *check, *pin(b), "--json")
    proven = json.loads(out)["proven"]
    assert (proven["leafIndex"], proven["fingerprint"]) == (receipt["leafIndex"], b.fingerprint)
    assert proven["confirmations"] >= 1
    # A tampered receipt of a trusted log: invalid, saying what failed.
    tampered = json.loads(json.dumps(receipt))
    tampered["anchor"]["blockNumber"] += 1
    receipt_file.write_text(json.dumps(tampered))
    got, out, _ = await run_cli(capsys, *check, *pin(b), "--json")
    assert (got, json.loads(out)["result"]) == (1, "invalid")
    assert json.loads(out)["reason"].startswith("block:")


async def test_receipt_verify_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt = tmp_path / "receipt.json"
    receipt.write_text("[]")
    key = a_root().verifier_key
    for argv, text in [
        (["receipt", "verify"], "give the receipt file"),
        (["receipt", "verify", str(tmp_path / "missing.json")], "cannot read the receipt"),
        (["receipt", "verify", str(receipt)], "not a JSON object"),
        (["receipt", "0" * 64], "needs --service"),
        (["receipt", "0" * 64, str(receipt), "--service", "http://x"], "receipt verify"),
    ]:
        code, out, err = await run_cli(capsys, *argv)
        assert (code, out) == (2, ""), (argv, err)
        assert len(err.strip().splitlines()) == 1, err
        assert text in err
    receipt.write_text("{}")
    for flags, text in [
        (["--log-key", key], "go together"),
        (["--contract", ADDRESS], "go together"),
        (["--log-key", "nope", "--contract", ADDRESS], "log key is malformed"),
        (["--log-key", key, "--contract", "0x12"], "not a 0x-prefixed address"),
        (["--log-key", key, "--contract", ADDRESS, "--chain", "1"], "CAIP-2"),
        (["--chain", "eip155:1"], "goes with --log-key"),
        (["--min-confirmations", "0"], "at least 1"),
    ]:
        code, out, err = await run_cli(capsys, "receipt", "verify", str(receipt), *flags)
        assert (code, out) == (2, ""), (flags, err)
        assert text in err
    # A malformed receipt, trusted or not, is a verdict: invalid (schema).
    code, out, _ = await run_cli(
        capsys, "receipt", "verify", str(receipt), "--log-key", key, "--contract", ADDRESS,
        "--chain", "eip155:1",
    )  # fmt: skip
    assert (code, out.split(":")[0:2]) == (1, ["invalid", " schema"])


# ---- trust add / list / remove against a running service --------------------------------------


@pytest.fixture
async def service(make_client: MakeClient) -> TestClient:
    return await make_client(anchor_interval=0.2, confirmations=1)


async def test_trust_add_list_remove(
    service: TestClient,
    private_trust_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = str(service.make_url("")).rstrip("/")
    log = service.app[MERKLE_LOG]
    chain = service.app[CHAIN]
    assert chain.identity is not None
    info = await (await service.get("/v1/log")).json()
    assert (info["chain"], info["contract"]) == (chain.identity.caip2, chain.contract_address)
    assert info["verifierKey"] == log.verifier.vkey()  # the existing members stay
    expected = TrustRoot(log.origin, log.verifier.vkey(), info["chain"], info["contract"])
    started = "\n".join(r.getMessage() for r in caplog.get_records("setup"))
    assert f"trust root fingerprint {expected.fingerprint}" in started  # for the operator

    code, out, err = await run_cli(capsys, "trust", "list")
    assert (code, err) == (0, "")
    assert "no trusted logs" in out
    code, out, err = await run_cli(capsys, "trust", "add", base + "/")
    assert code == 0, err
    assert f"fingerprint  {expected.fingerprint}" in out
    assert str(private_trust_file) in out
    assert stat.S_IMODE(private_trust_file.stat().st_mode) == 0o600
    assert load_trust_file(private_trust_file) == TrustSet((expected,))
    code, out, _ = await run_cli(capsys, "trust", "add", base)
    assert (code, out.splitlines()[-1]) == (0, f"already trusted ({private_trust_file})")
    code, out, _ = await run_cli(capsys, "trust", "list")
    assert out == expected.describe() + "\n"
    code, out, _ = await run_cli(capsys, "trust", "list", "--json")
    assert json.loads(out) == TrustSet((expected,)).to_json()

    # The same origin with another key on file: the service's root is not silently put in
    # its place.
    moved = dataclasses.replace(
        expected, verifier_key=NoteSigner(expected.origin, b"\x07" * 32).verifier.vkey()
    )
    save_trust_file(private_trust_file, TrustSet((moved,)))
    code, out, err = await run_cli(capsys, "trust", "add", base)
    assert (code, out) == (4, "")
    assert moved.fingerprint in err
    assert "--replace" in err
    assert load_trust_file(private_trust_file) == TrustSet((moved,))
    code, out, err = await run_cli(capsys, "trust", "add", base, "--replace")
    assert code == 0, err
    assert "replaced" in out
    assert load_trust_file(private_trust_file) == TrustSet((expected,))

    # Another file with --trust-file; removal by fingerprint and by origin.
    other = tmp_path / "elsewhere" / "trust.json"
    code, _, err = await run_cli(capsys, "trust", "add", base, "--trust-file", str(other))
    assert code == 0, err
    assert stat.S_IMODE(other.parent.stat().st_mode) == 0o700
    code, out, err = await run_cli(
        capsys, "trust", "remove", expected.fingerprint, "--trust-file", str(other)
    )
    assert code == 0, err
    assert len(load_trust_file(other)) == 0
    code, out, err = await run_cli(capsys, "trust", "remove", log.origin)
    assert code == 0, err
    code, out, err = await run_cli(capsys, "trust", "remove", log.origin)
    assert (code, out) == (3, "")
    assert "trust list" in err
    assert os.path.exists(private_trust_file)

    # A service that is not there, or not a LER Anchor service: one line, non-zero.
    code, out, err = await run_cli(capsys, "trust", "add", "http://127.0.0.1:9")
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "cannot reach" in err
    code, out, err = await run_cli(capsys, "trust", "add", base + "/v1/nothing")
    assert (code, out) == (3, "")
    code, out, err = await run_cli(capsys, "trust", "add", "ftp://example.org")
    assert code == 2
    assert "http(s)" in err


async def test_trust_add_reads_a_bounded_answer(
    aiohttp_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service that answers too much, or no trust root, is refused in one line."""
    root = a_root()

    async def huge(_request: web.Request) -> web.Response:
        return web.Response(body=b" " * (MAX_LOG_INFO_BYTES + 1), content_type="application/json")

    async def old(_request: web.Request) -> web.Response:
        return web.json_response({"origin": root.origin, "verifierKey": root.verifier_key})

    async def bad(_request: web.Request) -> web.Response:
        return web.json_response(root.to_json() | {"chain": "eip155:x"})

    for handler, text in [(huge, "more than"), (old, "names no chain"), (bad, "CAIP-2")]:
        app = web.Application()
        app.router.add_get("/v1/log", handler)
        server = await aiohttp_server(app)
        code, out, err = await run_cli(capsys, "trust", "add", str(server.make_url("")))
        assert (code, out) == (13, ""), err
        assert len(err.strip().splitlines()) == 1
        assert text in err
        await server.close()
