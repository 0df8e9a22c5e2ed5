"""``ler-anchor verify``: verify a credential as an employer would (see
:mod:`anchor.verify.verifier`).

Prints what the credential says it is (kind, achievements, issuer, dates: not yet checked),
then one line per check (``format``, ``anchoring``, ``issuer``, ``key``, ``proof``,
``validity``, ``status``: valid / invalid / unknown and why) and the result, or the report
as JSON with ``--json``. Exit status: 0 when every check is valid, 1 when one is invalid, 3
when none is invalid but one is unknown (2 and up for usage errors, as every command).

The receipt comes from ``--receipt``, else from ``--service`` (looked up by the credential's
digest and issuer); its anchor is checked on ``--rpc-url``, which must serve the receipt's
chain; without ``--rpc-url`` anchoring is at best unknown. The receipt's log, chain and
contract must be trusted: ``--log-key`` with ``--contract`` (and ``--chain``, else the chain of
``--rpc-url``), else the trust file (``ler-anchor trust add``); with neither, anchoring is
unknown. Every request of the run (DID documents, did:ethr and anchor JSON-RPC, status lists,
the service) goes through one HTTP client session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path
from typing import Any, Final

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3

from anchor.chain import Web3Backend
from anchor.cli.commands.common import EXIT_NOT_VALID, EXIT_UNKNOWN, EXIT_VALID, read_json_file
from anchor.cli.commands.trust_cmd import add_trust_args, check_trust_args, trust_from_args
from anchor.errors import InvalidInput
from anchor.status.bitstring import MIN_ENTRIES
from anchor.status.check import StatusChecker
from anchor.vc.credential_summary import summarize
from anchor.verify.verifier import CredentialVerifier, Report, ServiceReceipts, Verdict
from did_methods import build_resolver
from did_methods.ethr import EthrNetwork

REQUEST_TIMEOUT_SECONDS: Final = 30.0
"""Longest any one request of a run may take."""

EXIT_CODES: Final = {
    Verdict.VALID: EXIT_VALID,
    Verdict.INVALID: EXIT_NOT_VALID,
    Verdict.UNKNOWN: EXIT_UNKNOWN,
}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "verify",
        help="verify a credential: proof, issuer, status, anchoring",
        description=(
            "Verify a credential: format, anchoring, issuer, key, proof, validity, status. "
            "Exit 0 when all are valid, 1 when one is invalid, 3 when one is unknown."
        ),
    )
    parser.add_argument("credential", type=Path, help="the credential (JSON file)")
    parser.add_argument("--receipt", type=Path, help="its receipt (JSON file)")
    parser.add_argument(
        "--service", help="LER Anchor service URL to look the receipt up (without --receipt)"
    )
    parser.add_argument("--rpc-url", help="JSON-RPC URL of the chain the receipt names")
    add_trust_args(parser)
    parser.add_argument(
        "--min-confirmations",
        type=int,
        default=1,
        help="blocks the anchor must be deep (default %(default)s)",
    )
    parser.add_argument(
        "--status-mirror",
        type=Path,
        help="read status lists from this directory (what `status export` writes)",
    )
    parser.add_argument(
        "--min-entries",
        type=int,
        default=MIN_ENTRIES,
        help="shortest status list accepted (default %(default)s)",
    )
    parser.add_argument("--ca-file", type=Path, help="extra CA bundle for HTTPS (did:web, lists)")
    parser.add_argument("--ethr-rpc-url", help="JSON-RPC URL of the did:ethr network")
    parser.add_argument("--ethr-registry", help="ERC-1056 registry address on that network")
    parser.add_argument("--ethr-network", default="mainnet", help="its name (default mainnet)")
    parser.add_argument("--ethr-chain-id", type=int, default=1, help="its chain id (default 1)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_verify)


def _ethr_networks(args: argparse.Namespace) -> tuple[EthrNetwork, ...]:
    if not (args.ethr_rpc_url or args.ethr_registry):
        return ()
    if not (args.ethr_rpc_url and args.ethr_registry):
        raise InvalidInput("did:ethr needs both --ethr-rpc-url and --ethr-registry")
    try:
        network = EthrNetwork(
            args.ethr_network, args.ethr_chain_id, args.ethr_registry, args.ethr_rpc_url
        )
    except ValueError as err:
        raise InvalidInput(f"the did:ethr network is misconfigured: {err}") from None
    return (network,)


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """The system's trust store plus ``ca_file``."""
    if ca_file is None:
        return None
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as err:
        raise InvalidInput(f"cannot load the CA bundle {ca_file}: {err}") from None
    return context


async def _backend(session: aiohttp.ClientSession, rpc_url: str) -> Web3Backend:
    """A chain backend for ``rpc_url`` whose requests go through ``session`` (borrowed:
    closing the session is the caller's business)."""
    provider = AsyncHTTPProvider(rpc_url, exception_retry_configuration=None)
    await provider.cache_async_session(session)
    return Web3Backend(AsyncWeb3(provider), description="the --rpc-url endpoint")


def _inputs(args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    credential = read_json_file(args.credential, "credential")
    receipt = None
    if args.receipt is not None:
        receipt = read_json_file(args.receipt, "receipt")
        if not isinstance(receipt, dict):
            raise InvalidInput(f"the receipt {args.receipt} is not a JSON object")
    check_trust_args(args)
    if args.min_confirmations < 1:
        raise InvalidInput("--min-confirmations must be at least 1")
    return credential, receipt


def _verify(args: argparse.Namespace) -> int:
    credential, receipt = _inputs(args)
    networks = _ethr_networks(args)
    context = _ssl_context(args.ca_file)

    async def run() -> Report:
        connector = aiohttp.TCPConnector(ssl=context) if context is not None else None
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            headers={"User-Agent": "ler-anchor"},
        ) as session:
            resolver = build_resolver(
                session,
                ca_file=args.ca_file,
                ethr_networks=networks,
                ethr_default_network=args.ethr_network,
            )
            backend = await _backend(session, args.rpc_url) if args.rpc_url else None
            verifier = CredentialVerifier(
                resolver,
                StatusChecker(
                    resolver, session, mirror=args.status_mirror, min_entries=args.min_entries
                ),
                backend,
                receipts=ServiceReceipts(session, args.service) if args.service else None,
                trust=await trust_from_args(args, backend),
                min_confirmations=args.min_confirmations,
            )
            return await verifier.verify(credential, receipt)

    report = asyncio.run(run())
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        summary = summarize(credential)
        if summary is not None:
            print("\n".join(summary.lines()) + "\n")
        print(report.table())
    return EXIT_CODES[report.verdict]
