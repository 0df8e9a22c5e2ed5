"""``ler-anchor verify`` end to end: a ``ler-anchor serve`` process anchoring on a private
anvil node, an issuer using ``ler-anchor issue`` and ``ler-anchor status set``, and an
employer using ``ler-anchor verify`` with nothing but the files, the chain and the public
status lists (then an offline mirror of them)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.anvil import AnvilNode, free_port
from helpers.service import run_cli, wait_healthy

from anchor.chain.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.keys import ChainAccountKey, Ed25519Key, save_key

ACHIEVEMENT = {
    "id": "https://college.example/achievements/welding-1",
    "name": "Welding I",
    "description": "Basic shielded metal arc welding",
    "criteria": "Passed the practical and written assessments",
    "achievementType": "Certificate",
}
STOP_TIMEOUT_SECONDS = 10


def checks(out: str) -> dict[str, tuple[str, str]]:
    report = json.loads(out)
    return {c["check"]: (c["result"], c["reason"]) for c in report["checks"]}


@pytest.mark.anvil
async def test_issue_verify_revoke_verify(
    anvil_factory: Callable[..., AnvilNode], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = anvil_factory()
    account = node.accounts[0]
    contract = await asyncio.to_thread(deploy, node.web3(), load_artifact(LOG_ANCHOR), account)
    data = tmp_path / "data"
    save_key(ChainAccountKey.from_hex(account.key.hex()), data / "chain-key.hex")
    issuer = Ed25519Key.generate()
    key_file = tmp_path / "college.jwk"
    save_key(issuer, key_file)

    port = free_port()
    service = f"http://127.0.0.1:{port}"
    chain = ("--rpc-url", node.rpc_url)
    serve = [
        *(sys.executable, "-m", "anchor", "serve", "--port", str(port), "--data-dir", str(data)),
        *chain,
        *("--contract", contract.address, "--confirmations", "1", "--anchor-interval", "0.3"),
    ]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(serve, cwd=tmp_path, stdout=log, stderr=log)
    try:
        await wait_healthy(service, timeout=30)
        # the operator registers the issuer while the service runs (it created the database)
        code, _, err = await run_cli(capsys, "issuer", "--data-dir", str(data), "add", issuer.did)
        assert code == 0, err
        # The employer trusts this service's log once (the trust file of the test).
        code, out, err = await run_cli(capsys, "trust", "add", service)
        assert code == 0, err
        assert "fingerprint" in out
        signed = ("--service", service, "--key", str(key_file))
        code, _, err = await run_cli(capsys, "status", "key", *signed)
        assert code == 0, err
        achievement = tmp_path / "achievement.json"
        achievement.write_text(json.dumps(ACHIEVEMENT))
        out_dir = tmp_path / "issued"
        code, out, err = await run_cli(
            capsys,
            "issue",
            *signed,
            *("--achievement", str(achievement), "--subject", "email:learner@example.org"),
            *("--out", str(out_dir), "--wait", "30"),
            *("--status", "revocation", "--status", "suspension"),
        )
        assert code == 0, err
        credential = Path(out.split()[0])
        receipt = credential.with_name(credential.stem + ".receipt.json")
        assert receipt.exists(), out
        with_receipt = (str(credential), "--receipt", str(receipt))

        # All valid: the table, then JSON with the receipt looked up at the service.
        code, out, err = await run_cli(capsys, "verify", *with_receipt, *chain)
        assert code == 0, out + err
        lines = out.splitlines()
        # What the credential is leads, then a blank line, then the checks.
        assert lines[0].split() == ["credential", "OpenBadgeCredential"]
        assert lines[1] == f"achievement {ACHIEVEMENT['name']}: {ACHIEVEMENT['description']}"
        assert lines[2].startswith("issuer")
        assert issuer.did in lines[2]
        assert lines[3].split()[0] == "issued"
        assert lines[4].split() == ["expires", "never"]
        lines = lines[lines.index("") + 1 :]
        assert [line.split()[:2] for line in lines[:-1]] == [
            [name, "valid"]
            for name in ("format", "anchoring", "issuer", "key", "proof", "validity", "status")
        ]
        assert lines[-1].split() == ["RESULT", "VALID"]
        code, out, _ = await run_cli(
            capsys, "verify", str(credential), "--service", service, *chain
        )
        assert code == 0, out

        # No endpoint for the receipt's chain: anchoring unknown, exit 3.
        code, out, _ = await run_cli(capsys, "verify", *with_receipt, "--json")
        assert code == 3
        result, reason = checks(out)["anchoring"]
        assert result == "unknown"
        assert f"eip155:{node.chain_id}" in reason
        assert "--rpc-url" in reason

        # Suspended, then reinstated; the credential has one entry of each purpose.
        code, out, err = await run_cli(
            capsys, "status", "set", *signed, "--entry", str(credential), "--value", "1"
        )
        assert code == 2
        assert "has 2 status entries; choose one with --purpose" in err
        for value, verdict in ((1, ("invalid", "suspended")), (0, ("valid", None))):
            code, out, err = await run_cli(
                capsys,
                *("status", "set", *signed, "--entry", str(credential)),
                *("--purpose", "suspension", "--value", str(value)),
            )
            assert code == 0, err
            code, out, _ = await run_cli(capsys, "verify", *with_receipt, *chain, "--json")
            assert checks(out)["status"][0] == verdict[0], out
            if verdict[1] is not None:
                assert checks(out)["status"][1] == verdict[1]

        # Revoked by the issuer: exit 1.
        code, out, err = await run_cli(
            capsys,
            *("status", "set", *signed, "--entry", str(credential)),
            *("--purpose", "revocation", "--value", "1"),
        )
        assert code == 0, err
        code, out, _ = await run_cli(capsys, "verify", *with_receipt, *chain, "--json")
        assert code == 1
        assert checks(out)["status"] == ("invalid", "revoked")
        assert json.loads(out)["result"] == "invalid"
    finally:
        server.terminate()
        try:
            server.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    # The service is gone: its lists cannot be fetched, so the status is unknown (exit 3) ...
    code, out, _ = await run_cli(capsys, "verify", *with_receipt, *chain, "--json")
    assert code == 3, log_path.read_text()
    result, reason = checks(out)["status"]
    assert result == "unknown"
    assert "could not be retrieved" in reason
    assert checks(out)["anchoring"][0] == "valid"  # the chain alone still proves the anchor
    # ... until the employer reads them from an exported mirror.
    mirror = tmp_path / "mirror"
    code, _, err = await run_cli(
        capsys, "status", "export", "--out", str(mirror), "--data-dir", str(data)
    )
    assert code == 0, err
    code, out, _ = await run_cli(
        capsys, "verify", *with_receipt, *chain, "--status-mirror", str(mirror), "--json"
    )
    assert code == 1
    assert checks(out)["status"] == ("invalid", "revoked")


async def test_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credential = tmp_path / "credential.json"
    credential.write_text(json.dumps({"hello": "world"}))
    for argv, code_expected, text in [
        (["verify", str(tmp_path / "missing.json")], 2, "cannot read the credential"),
        (["verify", str(credential), "--receipt", str(credential) + "x"], 2, "cannot read"),
        (["verify", str(credential), "--ethr-rpc-url", "http://127.0.0.1:1"], 2, "--ethr-registry"),
        (["verify", str(credential), "--log-key", "not-a-key"], 2, "key"),
    ]:
        code, out, err = await run_cli(capsys, *argv)
        assert code == code_expected, (argv, out, err)
        assert len(err.strip().splitlines()) == 1, err
        assert text in err
    # Not a credential at all: a verdict (format invalid), exit 1.
    code, out, _ = await run_cli(capsys, "verify", str(credential))
    assert code == 1
    assert out.splitlines()[0].split() == ["credential", "(no", "type)"]
    assert out.split("\n\n")[1].splitlines()[0].split()[:2] == ["format", "invalid"]
