"""``ler-anchor resolve``: resolve a DID and print the DID Resolution result."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from typing import Any

import aiohttp

from anchor.errors import InvalidInput
from did_methods import build_resolver
from did_methods.ethr import EthrNetwork


def register(sub: Any) -> None:
    parser = sub.add_parser("resolve", help="resolve a DID")
    parser.add_argument("did")
    parser.add_argument("--version-time", help="the document as it was then (ISO 8601)")
    parser.add_argument("--version-id", help="the document at this version (did:ethr: a block)")
    parser.add_argument("--no-cache", action="store_true", help="do not use cached results")
    parser.add_argument("--ca-file", help="CA bundle for did:web (default: the system's)")
    parser.add_argument("--ethr-rpc-url", help="JSON-RPC URL of the did:ethr network")
    parser.add_argument("--ethr-registry", help="ERC-1056 registry address on that network")
    parser.add_argument("--ethr-network", default="mainnet", help="its name (default mainnet)")
    parser.add_argument("--ethr-chain-id", type=int, default=1, help="its chain id (default 1)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(handler=_resolve)


def _resolve(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.version_time:
        try:
            moment = datetime.fromisoformat(args.version_time.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"--version-time {args.version_time!r} is not ISO 8601") from None
        options["versionTime"] = moment.isoformat().replace("+00:00", "Z")
    if args.version_id:
        options["versionId"] = args.version_id
    if args.no_cache:
        options["noCache"] = True
    networks: tuple[EthrNetwork, ...] = ()
    if args.did.startswith("did:ethr:") and not (args.ethr_rpc_url or args.ethr_registry):
        raise InvalidInput(
            "resolving did:ethr needs the network: --ethr-rpc-url and --ethr-registry",
            hint="with --ethr-network and --ethr-chain-id for a network other than mainnet",
        )
    if args.ethr_rpc_url or args.ethr_registry:
        if not (args.ethr_rpc_url and args.ethr_registry):
            raise InvalidInput("did:ethr needs both --ethr-rpc-url and --ethr-registry")
        networks = (
            EthrNetwork(
                args.ethr_network, args.ethr_chain_id, args.ethr_registry, args.ethr_rpc_url
            ),
        )

    async def run() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            resolver = build_resolver(
                session,
                ca_file=args.ca_file,
                ethr_networks=networks,
                ethr_default_network=args.ethr_network,
            )
            result = await resolver.resolve(args.did, **options)
            return result.to_json()

    body = asyncio.run(run())
    error = body["didResolutionMetadata"].get("error")
    if args.json or error:
        print(json.dumps(body if args.json else body["didResolutionMetadata"], indent=2))
    else:
        print(json.dumps(body["didDocument"], indent=2))
    return 0 if error is None else 3
