"""``ler-anchor audit``: replay every anchored checkpoint from the chain and the public log."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm
from web3 import Web3

from anchor.audit import AuditReport, audit, read_anchor_events
from anchor.logfiles import DirectorySource, HttpSource, LogSource

RPC_TIMEOUT_SECONDS = 60


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "audit",
        help="replay every anchored checkpoint from the chain and the public log",
        description="Exit 0 when everything matches, 1 on any discrepancy.",
    )
    parser.add_argument("--rpc-url", required=True, help="any JSON-RPC endpoint of the chain")
    parser.add_argument("--contract", required=True, help="the LogAnchor contract address")
    parser.add_argument(
        "--log", required=True, help="the service URL, or an exported log directory"
    )
    parser.add_argument("--from-block", type=int, default=0, help="first block to read events from")
    parser.add_argument("--log-key", help="pin the log's verifier key (name+id+key)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_SECONDS}))

    async def run() -> AuditReport:
        events = await asyncio.to_thread(read_anchor_events, w3, args.contract, args.from_block)
        async with aiohttp.ClientSession() as session:
            source: LogSource
            if Path(args.log).is_dir():
                source = DirectorySource(Path(args.log))
            else:
                source = HttpSource(args.log, session)
            total = await source.tree_size()
            with tqdm(total=total, unit="entry", file=sys.stderr, disable=total < 10_000) as bar:

                def advance(n: int) -> None:
                    bar.update(n)

                return await audit(events, source, expected_key=args.log_key, progress=advance)

    report = asyncio.run(run())
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render(report))
    return 0 if report.clean else 1


def render(report: AuditReport) -> str:
    lines = [
        f"entries replayed      {report.entries:,}",
        f"anchors on chain      {report.anchors:,}",
        f"signed checkpoints    {report.checkpoints:,}",
        f"status-list entries   {report.status_list_entries:,}",
        f"first anchor          {report.first_anchor or '-'}",
        f"last anchor           {report.last_anchor or '-'}",
        f"log key               {report.log_key or '-'}",
    ]
    lines += [f"warning: {w}" for w in report.warnings]
    if report.clean:
        lines.append("CLEAN: every anchored root and signed checkpoint matches the log")
    else:
        lines.append(f"DISCREPANCIES: {len(report.discrepancies)}")
        lines += [f"  {d.kind:26s} {d.location}: {d.detail}" for d in report.discrepancies]
    return "\n".join(lines)
