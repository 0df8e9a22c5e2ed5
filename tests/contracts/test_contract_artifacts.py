"""Committed artifacts match the sources; the loader and the deploy helper behave."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_typing import HexStr
from helpers.anvil import EvmChain

from anchor.chain.contracts import (
    DID_REGISTRY,
    LOG_ANCHOR,
    LOG_ANCHOR_V2,
    Artifact,
    deploy,
    load_artifact,
)
from anchor.errors import ChainError, ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
COMPILE_SCRIPT = REPO_ROOT / "scripts" / "compile_contracts.py"
CONTRACTS_DIR = REPO_ROOT / "contracts"
ARTIFACTS_DIR = REPO_ROOT / "anchor" / "artifacts"
SOLC_PACKAGE = CONTRACTS_DIR / "node_modules" / "solc" / "package.json"
INSTALL_HINT = "the pinned solc is missing: run `npm ci --prefix contracts`"
CONTRACT_NAMES = (LOG_ANCHOR, LOG_ANCHOR_V2, DID_REGISTRY)
COMPILE_TIMEOUT_SECONDS = 300
EXIT_STALE = 1
# Creation code that reverts at once: PUSH1 0, PUSH1 0, REVERT.
REVERTING_CREATION_CODE = HexStr("0x60006000fd")
DEPLOY_GAS_LIMIT = 100_000


def run_compiler(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not SOLC_PACKAGE.is_file():
        pytest.fail(INSTALL_HINT)
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=COMPILE_TIMEOUT_SECONDS,
        check=False,
    )


def test_committed_artifacts_match_a_fresh_compile() -> None:
    result = run_compiler(COMPILE_SCRIPT, "--check")
    assert result.returncode == 0, result.stderr
    assert f"{len(CONTRACT_NAMES)} artifacts up to date" in result.stdout


def test_check_reports_stale_artifacts_and_rebuild_is_location_independent(
    tmp_path: Path,
) -> None:
    """In a copy of the repository layout: --check fails on a changed artifact, a rebuild
    restores exactly the committed bytes (nothing depends on where the checkout lives)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(COMPILE_SCRIPT, tmp_path / "scripts" / COMPILE_SCRIPT.name)
    (tmp_path / "contracts").mkdir()
    for path in [*CONTRACTS_DIR.glob("*.sol"), CONTRACTS_DIR / "package.json"]:
        shutil.copy2(path, tmp_path / "contracts" / path.name)
    (tmp_path / "contracts" / "node_modules").symlink_to(CONTRACTS_DIR / "node_modules")
    shutil.copytree(ARTIFACTS_DIR, tmp_path / "anchor" / "artifacts")
    copied = tmp_path / "anchor" / "artifacts" / f"{LOG_ANCHOR}.json"
    document = json.loads(copied.read_text())
    document["bytecode"] = document["bytecode"][:-2] + "00"
    copied.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    script = tmp_path / "scripts" / COMPILE_SCRIPT.name

    stale = run_compiler(script, "--check")
    assert stale.returncode == EXIT_STALE
    assert f"{LOG_ANCHOR}.json" in stale.stderr
    assert f"{DID_REGISTRY}.json" not in stale.stderr

    rebuilt = run_compiler(script)
    assert rebuilt.returncode == 0, rebuilt.stderr
    for name in CONTRACT_NAMES:
        committed = (ARTIFACTS_DIR / f"{name}.json").read_bytes()
        assert (tmp_path / "anchor" / "artifacts" / f"{name}.json").read_bytes() == committed


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_load_artifact(name: str) -> None:
    artifact = load_artifact(name)
    assert artifact.name == name
    source = (CONTRACTS_DIR / f"{name}.sol").read_bytes()
    assert artifact.source_sha256 == hashlib.sha256(source).hexdigest()
    pinned = json.loads((CONTRACTS_DIR / "package.json").read_text())["devDependencies"]["solc"]
    assert artifact.compiler_version.startswith(pinned + "+commit.")
    assert artifact.compiler_settings["evmVersion"] == "prague"
    assert artifact.compiler_settings["optimizer"]["enabled"] is True
    assert len(artifact.bytecode) > len(artifact.deployed_bytecode) > len("0x")
    assert {entry.get("name") for entry in artifact.abi if entry["type"] == "function"} >= (
        {"anchor", "anchorOf", "latest", "authorize", "revoke", "verifyInclusion"}
        if name == LOG_ANCHOR
        else {"anchor", "latest", "authorize", "revoke", "verifyInclusion", "verifyConsistency"}
        if name == LOG_ANCHOR_V2
        else {"identityOwner", "changeOwnerSigned", "validDelegate", "setAttributeSigned"}
    )
    assert load_artifact(name) is artifact  # cached


@pytest.mark.parametrize("name", ["NoSuchContract", "../artifacts/LogAnchor", "", "Log Anchor"])
def test_load_artifact_refuses_unknown_names(name: str) -> None:
    with pytest.raises(ConfigError):
        load_artifact(name)


def test_deployed_code_is_the_artifacts_runtime_code(evm_chain: EvmChain) -> None:
    artifact = load_artifact(DID_REGISTRY)  # no immutables: the runtime code is verbatim
    deployment = deploy(evm_chain.w3, artifact, evm_chain.accounts[0])
    assert deployment.receipt["status"] == 1
    assert deployment.receipt["contractAddress"] == deployment.address
    code = evm_chain.w3.eth.get_code(deployment.address)
    assert code.to_0x_hex() == artifact.deployed_bytecode


def test_deploy_with_an_unfunded_key_is_a_chain_error(evm_chain: EvmChain) -> None:
    with pytest.raises(ChainError, match="deploying LogAnchor failed"):
        deploy(evm_chain.w3, load_artifact(LOG_ANCHOR), Account.create())


def test_deploy_of_reverting_creation_code_is_a_chain_error(evm_chain: EvmChain) -> None:
    broken = Artifact(
        name="Broken",
        abi=[],
        bytecode=REVERTING_CREATION_CODE,
        deployed_bytecode=HexStr("0x"),
        compiler_version="none",
        compiler_settings={},
        source_sha256="",
    )
    deployer = evm_chain.accounts[0]
    # The node's gas estimate already fails...
    with pytest.raises(ChainError, match="deploying Broken failed"):
        deploy(evm_chain.w3, broken, deployer)
    # ...and with a fixed gas limit the creation is mined and reverts.
    with pytest.raises(ChainError, match="creation transaction of Broken reverted"):
        deploy(evm_chain.w3, broken, deployer, gas=DEPLOY_GAS_LIMIT)
    assert evm_chain.w3.eth.get_transaction_count(deployer.address) == 1
