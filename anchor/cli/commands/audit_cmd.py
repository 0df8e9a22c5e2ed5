"""``ler-anchor audit``: replay every anchored checkpoint from the chain and the public log.

Exit status: 0 clean, 1 discrepancies found, 2 invalid arguments, 4 could not audit (see
:data:`EXIT_STATUS`). Every failure to read the chain or the log is mapped once, here, to
:class:`~anchor.errors.CannotAudit`, so that a script can tell "the log misbehaved" (1) from
"nothing was checked" (4).
"""

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

from anchor.core.checkpoint import NoteVerifier
from anchor.errors import CannotAudit, ChainError, InvalidInput, NotFound
from anchor.log.logfiles import DirectorySource, HttpSource, LogSource
from anchor.verify.audit import (
    AuditReport,
    LogAnchorState,
    audit,
    parse_address,
    read_log_anchor,
    unlinked,
)

RPC_TIMEOUT_SECONDS = 60
LOG_CONNECT_TIMEOUT_SECONDS = 10
LOG_READ_TIMEOUT_SECONDS = 60
MAX_ARGUMENT_LENGTH = 2_048
"""Longest ``--rpc-url``, ``--log`` or ``--log-key`` accepted."""

EXIT_STATUS = """\
exit status:
  0  clean: every anchor and signed checkpoint matches the log, and at least one anchor
     is the log's root at its size (or the log and the contract are both empty)
  1  discrepancies found (each is listed)
  2  invalid arguments (a malformed address, URL or key)
  4  could not audit: no contract at --contract, or not the LogAnchor this version ships;
     a contract holding no anchor, or none that matches the log; the RPC endpoint, the
     log folder or the service cannot be read
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "audit",
        help="replay every anchored checkpoint from the chain and the public log",
        description=(
            "Read every anchor of the LogAnchor contract from the chain, replay the public log "
            "(a service URL or an exported folder) and compare."
        ),
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    for flag in ("rpc_url", "log", "log_key"):
        value = getattr(args, flag)
        if value is not None and len(value) > MAX_ARGUMENT_LENGTH:
            raise InvalidInput(f"--{flag.replace('_', '-')} is longer than {MAX_ARGUMENT_LENGTH}")
    if not args.rpc_url.startswith(("http://", "https://")):
        raise InvalidInput(
            f"--rpc-url {args.rpc_url!r} is not an http:// or https:// URL",
            hint="give the JSON-RPC endpoint, e.g. http://127.0.0.1:8545",
        )
    if args.log_key is not None:
        NoteVerifier.from_vkey(args.log_key)  # a malformed key is an invalid argument
    parse_address(args.contract)  # every argument is checked before anything is read
    if args.from_block < 0:
        raise InvalidInput(f"--from-block {args.from_block} is negative")
    w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_SECONDS}))
    try:
        state, report = asyncio.run(_run(args, w3))
    except (ChainError, NotFound, aiohttp.ClientError, TimeoutError) as err:
        raise _cannot_audit(args, err) from err
    if args.json:
        print(json.dumps({**report.to_json(), "contract": state.to_json()}, indent=2))
    else:
        print(render(report, state))
    obstacle = report.obstacle()
    if obstacle is not None:
        raise obstacle
    return 0 if report.clean else 1


async def _run(args: argparse.Namespace, w3: Web3) -> tuple[LogAnchorState, AuditReport]:
    timeout = aiohttp.ClientTimeout(
        sock_connect=LOG_CONNECT_TIMEOUT_SECONDS, sock_read=LOG_READ_TIMEOUT_SECONDS
    )
    async with aiohttp.ClientSession(timeout=timeout) as session:
        source = _source(args.log, session)
        total = await source.tree_size()
        state = await asyncio.to_thread(read_log_anchor, w3, args.contract, args.from_block)
        early = None if state.events else unlinked(0, 0, total)
        if early is not None:
            raise early  # nothing to compare: do not replay the whole log first
        with tqdm(total=total, unit="entry", file=sys.stderr, disable=total < 10_000) as bar:

            def advance(n: int) -> None:
                bar.update(n)

            report = await audit(state.events, source, expected_key=args.log_key, progress=advance)
    return state, report


def _source(location: str, session: aiohttp.ClientSession) -> LogSource:
    """The service at an http(s) URL, or an exported folder."""
    if location.startswith(("http://", "https://")):
        return HttpSource(location, session)
    if "://" in location:
        raise InvalidInput(f"--log {location!r}: only http:// and https:// URLs are read")
    folder = Path(location)
    if not folder.is_dir():
        raise CannotAudit(
            f"--log {location}: no such folder",
            hint="give an exported log folder (`ler-anchor log export`) or the service URL",
        )
    return DirectorySource(folder)


def _cannot_audit(args: argparse.Namespace, err: Exception) -> CannotAudit:
    """The one mapping of a failure to read the chain or the log to exit status 4."""
    if isinstance(err, ChainError):
        return CannotAudit(
            f"the chain at {args.rpc_url} cannot be read: {err.detail}", hint=err.hint
        )
    if isinstance(err, NotFound):
        return CannotAudit(f"the log cannot be read: {err.detail}", hint=err.hint)
    reason = "no answer in time" if isinstance(err, TimeoutError) else type(err).__name__
    if isinstance(err, aiohttp.ClientConnectorError):
        reason = f"cannot connect ({err.os_error.strerror or type(err.os_error).__name__})"
    return CannotAudit(
        f"the log service at {args.log} cannot be read: {reason}",
        hint="check --log and that the service is running",
    )


def render(report: AuditReport, state: LogAnchorState | None = None) -> str:
    lines = []
    if state is not None:
        lines.append(f"contract              {state.address} (LogAnchor, owner {state.owner})")
    newest = report.newest_anchored_size
    lines += [
        f"log size              {report.log_size:,}",
        f"entries replayed      {report.entries:,}",
        f"anchors on chain      {report.anchors:,}",
        f"anchors matched       {report.matched:,} of {report.anchors:,}"
        + (
            f" ({report.recognised:,} in checkpoints signed by the log)"
            if report.recognised != report.matched
            else ""
        ),
        f"newest anchored size  {'-' if newest is None else f'{newest:,}'}",
        f"signed checkpoints    {report.checkpoints:,}",
        f"status-list entries   {report.status_list_entries:,}",
        f"first anchor          {report.first_anchor or '-'}",
        f"last anchor           {report.last_anchor or '-'}",
        f"log key               {report.log_key or '-'}",
    ]
    lines += [f"warning: {w}" for w in report.warnings]
    if report.discrepancies:
        lines.append(f"DISCREPANCIES: {len(report.discrepancies)}")
        lines += [f"  {d.kind:26s} {d.location}: {d.detail}" for d in report.discrepancies]
    obstacle = report.obstacle()
    if obstacle is not None:
        lines.append(f"CANNOT AUDIT: {obstacle.detail}")
    elif report.clean:
        lines.append("CLEAN: every anchored root and signed checkpoint matches the log")
    return "\n".join(lines)
