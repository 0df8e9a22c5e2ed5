"""``ler-anchor trust add|list|remove`` (the trust file, see :mod:`anchor.verify.trust`) and
``ler-anchor receipt verify RECEIPT`` (a receipt alone, against the trusted logs).

``trust add SERVICE_URL`` fetches the service's trust root once from ``GET /v1/log``
(origin, verifier key, chain, contract), prints it with its fingerprint for the user to
compare out of band, and stores it; an origin already trusted with another root is refused
unless ``--replace``. ``trust remove`` takes an origin or a fingerprint.

``receipt verify`` prints what the receipt proves (entry, leaf, checkpoint, chain, block,
time, confirmations) and exits 0, or prints one line saying why not: exit 1 when the
receipt is invalid (a check failed, or its log, chain or contract is not trusted), 3 when
it is unknown (no trusted log, no ``--rpc-url``, an endpoint that did not answer, too few
confirmations), as ``status check`` and ``verify`` do.

The trust roots of a run (:func:`trust_from_args`, shared with ``verify``): ``--log-key``
with ``--contract`` (and ``--chain``, else the chain id of ``--rpc-url``), else the trust
file (``--trust-file``, else ``$LER_ANCHOR_TRUST_FILE``, else the user's configuration
directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from anchor.cli.commands.common import EXIT_NOT_VALID, EXIT_UNKNOWN, EXIT_VALID, read_json_file
from anchor.client.api import ServiceError, error_from_problem
from anchor.errors import AnchorError, ChainError, InvalidInput, VerificationError
from anchor.verify.trust import (
    NO_TRUST,
    TrustRoot,
    TrustSet,
    default_trust_path,
    load_trust_file,
    save_trust_file,
)

if TYPE_CHECKING:  # the chain stack is imported only when a receipt is verified
    from anchor.chain import ChainBackend
    from anchor.core.receipt import Receipt

FETCH_TIMEOUT_SECONDS: Final = 30.0
"""Longest ``trust add`` waits for the service."""

MAX_LOG_INFO_BYTES: Final = 64 * 1024
"""Largest ``GET /v1/log`` answer ``trust add`` reads."""


def register(sub: Any) -> None:
    trust = sub.add_parser(
        "trust",
        help="add, list and remove the logs whose receipts you trust",
        description="Manage the trust file: the logs (origin, key, chain, contract) whose "
        "receipts `verify` and `receipt verify` accept.",
    )
    actions = trust.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="fetch a service's log identity and trust it")
    add.add_argument("service", metavar="SERVICE_URL", help="e.g. https://anchor.example")
    add.add_argument(
        "--replace",
        action="store_true",
        help="replace the trusted root of the same origin (after checking the fingerprint)",
    )
    add_trust_file_arg(add)
    add.set_defaults(handler=_add)
    listing = actions.add_parser("list", help="show the trusted logs and their fingerprints")
    listing.add_argument("--json", action="store_true", help="print the trust file's JSON")
    add_trust_file_arg(listing)
    listing.set_defaults(handler=_list)
    remove = actions.add_parser("remove", help="stop trusting a log")
    remove.add_argument("which", metavar="ORIGIN|FINGERPRINT", help="as `trust list` shows")
    add_trust_file_arg(remove)
    remove.set_defaults(handler=_remove)


def add_trust_file_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-file",
        type=Path,
        help="the trust file (default: $LER_ANCHOR_TRUST_FILE, else "
        "$XDG_CONFIG_HOME/ler-anchor/trust.json)",
    )


def add_trust_args(parser: argparse.ArgumentParser) -> None:
    """``--log-key``, ``--contract``, ``--chain`` and ``--trust-file``."""
    parser.add_argument(
        "--log-key", help="trust only this log verifier key (name+id+base64; with --contract)"
    )
    parser.add_argument("--contract", help="the LogAnchor address of that log (with --log-key)")
    parser.add_argument("--chain", help="its chain, eip155:N (default: the chain of --rpc-url)")
    add_trust_file_arg(parser)


def trust_path(args: argparse.Namespace) -> Path:
    path: Path | None = args.trust_file
    return path if path is not None else default_trust_path()


def check_trust_args(args: argparse.Namespace) -> None:
    """Usage errors in the trust flags, before any I/O."""
    if (args.log_key is None) != (args.contract is None):
        raise InvalidInput("--log-key and --contract go together (or use a trust file)")
    if args.log_key is None:
        if args.chain is not None:
            raise InvalidInput("--chain goes with --log-key and --contract")
        return
    # the key and the address are checked now; the chain too unless it comes from --rpc-url
    TrustRoot.pinned(args.log_key, args.contract, args.chain or "eip155:1")
    if args.chain is None and args.rpc_url is None:
        raise InvalidInput("--log-key and --contract need --chain eip155:N when no --rpc-url")


async def trust_from_args(
    args: argparse.Namespace, backend: ChainBackend | None
) -> TrustSet | None:
    """The run's trust roots (``None``: none at all); ``backend`` (the ``--rpc-url``
    endpoint) gives the chain of ``--log-key``/``--contract`` when ``--chain`` is not given."""
    if args.log_key is not None:
        chain = args.chain
        if chain is None:
            if backend is None:
                raise InvalidInput("--log-key and --contract need --chain or --rpc-url")
            chain = f"eip155:{await backend.chain_id()}"
        return TrustSet((TrustRoot.pinned(args.log_key, args.contract, chain),))
    trusted = load_trust_file(trust_path(args))
    return trusted if len(trusted) else None


# ---- trust add / list / remove ------------------------------------------------------------------


async def fetch_trust_root(service: str) -> TrustRoot:
    """The trust root the service at ``service`` presents in ``GET /v1/log``."""
    url = service.rstrip("/") + "/v1/log"
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{service!r} is not an http(s) URL")
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS),
                headers={"User-Agent": "ler-anchor"},
            ) as session,
            session.get(url, allow_redirects=False) as resp,
        ):
            raw = await resp.content.read(MAX_LOG_INFO_BYTES + 1)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ServiceError(
            f"cannot reach {url}: {err or type(err).__name__}",
            hint="check the URL; is the service running?",
        ) from None
    if len(raw) > MAX_LOG_INFO_BYTES:
        raise ServiceError(f"{url} answered more than {MAX_LOG_INFO_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if status != 200:
        raise error_from_problem(status, body, url)
    if not isinstance(body, dict):
        raise ServiceError(
            f"{url} did not answer a JSON object", hint="is it a LER Anchor service?"
        )
    if body.get("chain") is None or body.get("contract") is None:
        raise ServiceError(
            f"{url} names no chain or contract",
            hint="the service is older than trust roots, or its chain is not up yet: retry",
        )
    try:
        return TrustRoot.from_json(
            {k: body.get(k) for k in ("origin", "verifierKey", "chain", "contract")}
        )
    except InvalidInput as err:
        raise ServiceError(f"{url} presents no valid trust root: {err.detail}") from None


def _add(args: argparse.Namespace) -> int:
    path = trust_path(args)
    trusted = load_trust_file(path)
    root = asyncio.run(fetch_trust_root(args.service))
    updated = trusted.added(root, replace=args.replace)
    print(root.describe())
    if updated is trusted:
        print(f"already trusted ({path})")
        return 0
    save_trust_file(path, updated)
    before = trusted.roots_of(root.origin)
    if not before:
        done = "added"
    elif any(r.verifier_key != root.verifier_key for r in before):
        done = "replaced"
    else:  # the same log, anchoring on another contract (or chain) as well
        done = f"added beside its {len(before)} other anchor contract(s)"
    print(
        f"{done} in {path}; compare the fingerprint with the one the service's operator publishes"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    path = trust_path(args)
    trusted = load_trust_file(path)
    if args.json:
        print(json.dumps(trusted.to_json(), indent=2))
        return 0
    if not len(trusted):
        print(f"no trusted logs ({path}); add one with `ler-anchor trust add SERVICE_URL`")
        return 0
    print("\n\n".join(root.describe() for root in trusted))
    return 0


def _remove(args: argparse.Namespace) -> int:
    path = trust_path(args)
    updated, root = load_trust_file(path).removed(args.which)
    save_trust_file(path, updated)
    print(f"removed {root.origin} ({root.fingerprint}) from {path}")
    return 0


# ---- receipt verify ---------------------------------------------------------------------------


def add_receipt_verify_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc-url", help="(verify) JSON-RPC URL of the chain the receipt names")
    parser.add_argument(
        "--min-confirmations",
        type=int,
        default=1,
        help="(verify) blocks the anchor must be deep (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="(verify) print the result as JSON")
    add_trust_args(parser)


@dataclass(frozen=True, slots=True)
class Judgement:
    """A receipt's verdict and its reason; the receipt, its trusted root and its depth on
    chain when they are known."""

    verdict: str
    reason: str
    receipt: Receipt | None = None
    root: TrustRoot | None = None
    confirmations: int | None = None


def _proven(judged: Judgement, receipt: Receipt, root: TrustRoot) -> list[str]:
    entry = receipt.entry
    cp = receipt.checkpoint
    anchor = receipt.anchor
    return [
        f"entry          {entry.kind.label} {entry.digest.hex()} by {entry.submitter}",
        f"leaf           {receipt.leaf_index}",
        f"checkpoint     {cp.origin} size {cp.size} root {cp.root.hex()}",
        f"log            trusted, fingerprint {root.fingerprint}",
        f"chain          {anchor.chain}, contract {anchor.contract}",
        f"transaction    {anchor.transaction_hex}",
        f"block          {anchor.block_number} {anchor.block_hash_hex}",
        f"time           {anchor.block_time}",
        f"confirmations  {judged.confirmations}",
    ]


def receipt_verify(args: argparse.Namespace, path: Path) -> int:
    """``receipt verify RECEIPT``: see the module docstring."""
    from anchor.chain import Web3Backend

    receipt = read_json_file(path, "receipt")
    if not isinstance(receipt, dict):
        raise InvalidInput(f"the receipt {path} is not a JSON object")
    if args.min_confirmations < 1:
        raise InvalidInput("--min-confirmations must be at least 1")
    check_trust_args(args)

    async def run() -> Judgement:
        backend = await Web3Backend.connect(args.rpc_url) if args.rpc_url else None
        try:
            return await _judge(args, receipt, backend)
        finally:
            if backend is not None:
                await backend.close()

    judged = asyncio.run(run())
    verdict, reason, checked, root = judged.verdict, judged.reason, judged.receipt, judged.root
    if args.json:
        doc: dict[str, Any] = {"result": verdict, "reason": reason}
        if checked is not None and root is not None:
            anchor = checked.anchor
            doc["proven" if verdict == "valid" else "checked"] = {
                "digest": checked.entry.digest.hex(),
                "kind": checked.entry.kind.label,
                "submitter": checked.entry.submitter,
                "leafIndex": checked.leaf_index,
                "origin": checked.checkpoint.origin,
                "treeSize": checked.checkpoint.size,
                "fingerprint": root.fingerprint,
                "chain": anchor.chain,
                "contract": anchor.contract,
                "transaction": anchor.transaction_hex,
                "blockNumber": anchor.block_number,
                "blockHash": anchor.block_hash_hex,
                "blockTime": anchor.block_time,
                "confirmations": judged.confirmations,
            }
        print(json.dumps(doc, indent=2))
    elif checked is not None and root is not None and verdict == "valid":
        print("\n".join(_proven(judged, checked, root)))
        print(f"RESULT         VALID: {reason}")
    else:
        print(f"{verdict}: {reason}")
    return {"valid": EXIT_VALID, "invalid": EXIT_NOT_VALID}.get(verdict, EXIT_UNKNOWN)


async def _judge(
    args: argparse.Namespace, receipt: dict[str, Any], backend: ChainBackend | None
) -> Judgement:
    from anchor.core.receipt import Receipt
    from anchor.verify.receipt import ReceiptVerifier

    try:
        trusted = await trust_from_args(args, backend)
    except ChainError as err:  # the endpoint did not answer its chain id
        return Judgement("unknown", f"the chain could not be asked: {err.detail}")
    if trusted is None:
        return Judgement("unknown", NO_TRUST)
    try:
        parsed = Receipt.parse(receipt)
        root = parsed.check(trusted)
    except VerificationError as err:
        return Judgement("invalid", f"{err.what}: {err.detail}")
    anchor = parsed.anchor
    if backend is None:
        return Judgement(
            "unknown",
            f"the proofs hold and the log is trusted, but the anchor (block "
            f"{anchor.block_number} on {anchor.chain}) was not checked: give --rpc-url",
            parsed,
            root,
        )
    try:
        checked = await ReceiptVerifier(trusted, backend).verify(parsed)
    except VerificationError as err:
        return Judgement("invalid", f"{err.what}: {err.detail}")
    except AnchorError as err:  # the endpoint did not answer: not the receipt's fault
        return Judgement("unknown", f"the chain could not be asked: {err.detail}", parsed, root)
    depth = checked.confirmations
    if depth < args.min_confirmations:
        return Judgement(
            "unknown",
            f"block {anchor.block_number} has {depth} confirmation(s), fewer than the "
            f"{args.min_confirmations} required; retry later",
            parsed,
            root,
            depth,
        )
    return Judgement(
        "valid",
        f"leaf {parsed.leaf_index} of {parsed.checkpoint.origin} anchored at "
        f"{anchor.block_time} on {anchor.chain} ({depth} confirmation(s))",
        parsed,
        root,
        depth,
    )
