"""``ler-anchor deploy`` against a real anvil node; the deployed contract then anchors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anchor.chain.contracts import LOG_ANCHOR, LOG_ANCHOR_V2, load_artifact
from anchor.cli.main import main
from anchor.keys import ChainAccountKey, save_key


def test_deploy_prints_addresses_and_contracts_work(
    tmp_path: Path, anvil: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = anvil.snapshot()
    try:
        account = anvil.accounts[5]
        key_file = tmp_path / "chain-key.hex"
        save_key(ChainAccountKey.from_hex(account.key.hex()), key_file)
        args = ["deploy", "--rpc-url", anvil.rpc_url, "--chain-key-file", str(key_file), "--json"]
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["chainId"] == anvil.chain_id
        assert out["deployer"] == account.address
        w3 = anvil.web3()
        for name in ("LogAnchor", "EthereumDIDRegistry"):
            assert w3.eth.get_code(out[name]["address"]) != b""
        assert out[LOG_ANCHOR]["contractVersion"] == 2
        assert out[LOG_ANCHOR]["artifact"] == LOG_ANCHOR_V2
        v2 = load_artifact(LOG_ANCHOR_V2)
        anchor = w3.eth.contract(address=out[LOG_ANCHOR]["address"], abi=v2.abi)
        assert anchor.functions.latest().call() == [bytes(24), 0]
        assert anchor.functions.verifyConsistency(1, bytes(32), []).call() is False

        human = [a for a in args if a != "--json"]
        assert main(human) == 0
        assert f"{LOG_ANCHOR_V2} " in capsys.readouterr().out
        assert main([*args, "--contract-version", "1"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out[LOG_ANCHOR]["contractVersion"] == 1
        v1 = w3.eth.contract(address=out[LOG_ANCHOR]["address"], abi=load_artifact(LOG_ANCHOR).abi)
        assert v1.functions.latest().call()[1] == 0
        assert v1.functions.anchorOf(bytes(32)).call()[0] == 0
        assert (
            main(["deploy", "--rpc-url", "http://127.0.0.1:9", "--chain-key-file", str(key_file)])
            != 0
        )
        assert "cannot reach" in capsys.readouterr().err
        assert (
            main(["deploy", "--rpc-url", anvil.rpc_url, "--chain-key-file", str(tmp_path / "nope")])
            != 0
        )
    finally:
        anvil.revert(snapshot)
