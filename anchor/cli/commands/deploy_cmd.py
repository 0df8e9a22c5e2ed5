"""``ler-anchor deploy``: deploy the LogAnchor (version 2 unless ``--contract-version 1``) and
ERC-1056 registry contracts. The JSON output keeps the key ``LogAnchor`` for the anchor contract
whatever its version, with ``contractVersion`` and ``artifact`` beside its address."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from web3 import Web3

from anchor.chain.contracts import (
    DEFAULT_LOG_ANCHOR_VERSION,
    DID_REGISTRY,
    LOG_ANCHOR,
    LOG_ANCHOR_VERSIONS,
    deploy,
    load_artifact,
)
from anchor.errors import ChainError
from anchor.keys import load_chain_account

RPC_TIMEOUT_SECONDS = 60


def register(sub: Any) -> None:
    parser = sub.add_parser("deploy", help="deploy the anchor and DID registry contracts")
    parser.add_argument("--rpc-url", required=True, help="JSON-RPC endpoint of the chain")
    parser.add_argument(
        "--chain-key-file",
        type=Path,
        default=Path("data") / "chain-key.hex",
        help="the deploying (and anchoring) account's key, hex, mode 0600",
    )
    parser.add_argument(
        "--contract-version",
        type=int,
        choices=sorted(LOG_ANCHOR_VERSIONS),
        default=DEFAULT_LOG_ANCHOR_VERSION,
        help="LogAnchor version: 2 (default) stores only the latest root (about 29,400 gas per "
        "anchor); 1 keeps a record per root (about 51,600 gas)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    account = load_chain_account(args.chain_key_file)
    w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_SECONDS}))
    if not w3.is_connected():
        raise ChainError(f"cannot reach {args.rpc_url}", hint="check the RPC URL")
    out: dict[str, Any] = {"chainId": w3.eth.chain_id, "deployer": account.address}
    anchor_artifact = LOG_ANCHOR_VERSIONS[args.contract_version]
    for name, artifact in ((LOG_ANCHOR, anchor_artifact), (DID_REGISTRY, DID_REGISTRY)):
        deployment = deploy(w3, load_artifact(artifact), account.account)
        out[name] = {
            "address": deployment.address,
            "transactionHash": deployment.receipt["transactionHash"].to_0x_hex(),
            "blockNumber": deployment.receipt["blockNumber"],
            "gasUsed": deployment.receipt["gasUsed"],
            "artifact": artifact,
        }
    out[LOG_ANCHOR]["contractVersion"] = args.contract_version
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"chain eip155:{out['chainId']}, deployer {account.address}")
        for name in (LOG_ANCHOR, DID_REGISTRY):
            deployed = out[name]
            tx = deployed["transactionHash"]
            print(f"{deployed['artifact']:20s} {deployed['address']}  (tx {tx})")
        print(
            f"serve with: ler-anchor serve --rpc-url {args.rpc_url} "
            f"--contract {out[LOG_ANCHOR]['address']} --chain-key-file {args.chain_key_file}"
        )
    return 0
