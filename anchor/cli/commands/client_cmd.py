"""Issuer-side commands: ``keygen``, ``submit`` and ``receipt`` (clients of the HTTP API;
``receipt verify`` is in :mod:`anchor.cli.commands.trust_cmd`)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import rfc8785
from tqdm import tqdm

from anchor.cli.commands.trust_cmd import add_receipt_verify_args, receipt_verify
from anchor.client.api import ServiceClient, Signer
from anchor.core import jsonlimits
from anchor.core.entry import parse_digest
from anchor.errors import ConfigError, InvalidInput, NotFound
from anchor.keys import Ed25519Key, P256Key, load_ed25519_key, save_key, save_p256_key
from anchor.vc.sd_kind import sd_proof_kind

MAX_JSON_FILE_BYTES = 16 * 1024 * 1024
"""Largest credential file ``submit --file`` reads."""


def register(sub: Any) -> None:
    keygen = sub.add_parser(
        "keygen", help="make an issuer key (Ed25519 or P-256) and print its did:key"
    )
    keygen.add_argument("--out", required=True, type=Path, help="JWK file to write (mode 0600)")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.add_argument(
        "--type",
        choices=("ed25519", "p256"),
        default="ed25519",
        help="ed25519 (eddsa-jcs-2022, service requests) or p256 (ecdsa-sd-2023 selective "
        "disclosure issuing); default ed25519",
    )
    keygen.set_defaults(handler=_keygen)

    submit = sub.add_parser("submit", help="submit credential digests for anchoring")
    _client_args(submit, signed=True)
    submit.add_argument("digests", nargs="*", metavar="DIGEST", help="SHA-256 hex digests")
    submit.add_argument(
        "--file",
        dest="files",
        action="append",
        type=Path,
        default=[],
        help="a credential (JSON): its digest is SHA-256 of its RFC 8785 canonical form",
    )
    submit.add_argument("--json", action="store_true", help="print JSON")
    submit.set_defaults(handler=_submit)

    receipt = sub.add_parser(
        "receipt",
        help="fetch an entry's receipt, or verify one (`receipt verify FILE`)",
        description="`receipt DIGEST --service URL` fetches a receipt; `receipt --dir DIR "
        "--service URL` fetches every missing receipt of a folder; `receipt verify FILE` "
        "verifies one against the trusted logs and the chain (exit 0 valid, 1 invalid, "
        "3 unknown).",
    )
    receipt.add_argument("--service", help="service base URL, e.g. http://127.0.0.1:8080")
    receipt.add_argument(
        "digest",
        metavar="DIGEST|verify",
        nargs="?",
        help="the entry's SHA-256 hex digest, or `verify`",
    )
    receipt.add_argument("file", nargs="?", type=Path, help="(verify) the receipt (JSON file)")
    receipt.add_argument(
        "--dir",
        type=Path,
        help="instead of a digest: fetch the receipt of every credential NAME.json in this "
        "folder that has no NAME.receipt.json yet (as `issue` writes them)",
    )
    receipt.add_argument("--submitter", help="the submitting issuer's DID (if ambiguous)")
    receipt.add_argument("--wait", type=float, default=0.0, help="seconds to wait for anchoring")
    receipt.add_argument("--out", type=Path, help="write the receipt here instead of stdout")
    add_receipt_verify_args(receipt)
    receipt.set_defaults(handler=_receipt)


def _client_args(parser: argparse.ArgumentParser, *, signed: bool) -> None:
    parser.add_argument(
        "--service", required=True, help="service base URL, e.g. http://127.0.0.1:8080"
    )
    if signed:
        parser.add_argument("--key", required=True, type=Path, help="issuer key (JWK file)")
        parser.add_argument(
            "--keyid", help="DID URL of the key (default: its did:key verification method)"
        )


def issuer_key(path: Path) -> Ed25519Key:
    """The issuer's key from ``--key``; a missing file says how to make one."""
    if not path.exists():
        raise ConfigError(
            f"--key {path} does not exist",
            hint=f"make an issuer key with `ler-anchor keygen --out {path}`",
        )
    return load_ed25519_key(path)


def credential_digest(path: Path) -> str:
    """SHA-256 of the RFC 8785 canonical JSON of a credential file, hex (for an
    ``ecdsa-sd-2023`` credential, base or derived: SHA-256 of its base signature)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"--file {path} does not exist", hint="check the path") from None
    except OSError as err:
        raise InvalidInput(f"--file {path} cannot be read: {err.strerror}") from None
    if len(raw) > MAX_JSON_FILE_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_JSON_FILE_BYTES} bytes")
    doc = jsonlimits.loads(raw, max_bytes=MAX_JSON_FILE_BYTES, what=str(path))
    if isinstance(doc, dict) and sd_proof_kind(doc) is not None:
        from anchor.vc.credentials import digest

        return digest(doc).hex()
    return hashlib.sha256(rfc8785.dumps(doc)).hexdigest()


def _keygen(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.force:
        raise ConfigError(
            f"{args.out} exists already",
            hint="pass --force to overwrite it and lose its key, or choose another --out",
        )
    if args.type == "p256":
        p256 = P256Key.generate()
        save_p256_key(p256, args.out, overwrite=args.force)
        print(p256.did)
        return 0
    key = Ed25519Key.generate()
    save_key(key, args.out, overwrite=args.force)
    print(key.did)
    return 0


def _submit(args: argparse.Namespace) -> int:
    digests = [parse_digest(d).hex() for d in args.digests]
    digests += [credential_digest(p) for p in args.files]
    if not digests:
        raise InvalidInput("nothing to submit: give digests or --file")
    signer = Signer.for_key(issuer_key(args.key), args.keyid)

    async def run() -> list[dict[str, Any]]:
        async with ServiceClient(args.service, signer) as client:
            with tqdm(
                total=len(digests), unit="digest", disable=len(digests) < 1000, file=sys.stderr
            ) as bar:

                def advance(n: int) -> None:
                    bar.update(n)

                return await client.submit(digests, progress=advance)

    records = asyncio.run(run())
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        for r in records:
            state = "new" if r["new"] else "already in the log"
            base = args.service.rstrip("/")
            print(f"{r['digest']}  leaf {r['index']}  ({state})  receipt: {base}{r['receipt']}")
    return 0


RECEIPT_POLL_SECONDS = 1.0
"""Pause between receipt polls while waiting."""

RECEIPT_CONCURRENCY = 16
"""Receipts ``receipt --dir`` fetches at once."""

RECEIPT_SUFFIX = ".receipt.json"

MAX_DIR_CREDENTIALS = 100_000
"""Most credentials ``receipt --dir`` fetches receipts for in one run."""


def _waiting_for(body: dict[str, Any]) -> str:
    """What a pending receipt waits for (from the service's pending answer)."""
    required = body.get("confirmationsRequired")
    have = body.get("confirmations")
    if isinstance(required, int) and isinstance(have, int):
        if have == 0:
            return f"no mined anchor covers it yet ({required} confirmations needed)"
        return f"its anchor has {have} of {required} confirmations, {required - have} to go"
    return "waiting for a final anchor"


async def _poll_receipt(
    client: ServiceClient, digest: str, submitter: str | None, wait: float, *, talk: bool
) -> dict[str, Any]:
    """The receipt, polling until it is anchored or ``wait`` seconds pass; with ``talk``,
    a line on stderr whenever what it waits for changes."""
    deadline = time.monotonic() + wait
    said = ""
    while True:
        body = await client.receipt(digest, submitter=submitter)
        left = deadline - time.monotonic()
        if body.get("status") != "pending" or left <= 0:
            return body
        if talk and _waiting_for(body) != said:
            said = _waiting_for(body)
            print(f"receipt {digest[:12]}...: {said} ({left:.0f} s left)", file=sys.stderr)
        await asyncio.sleep(min(RECEIPT_POLL_SECONDS, left))


def _receipt(args: argparse.Namespace) -> int:
    if args.digest == "verify":
        if args.file is None:
            raise InvalidInput("give the receipt file: `ler-anchor receipt verify FILE`")
        return receipt_verify(args, args.file)
    if args.file is not None:
        raise InvalidInput(f"unexpected argument {args.file} (did you mean `receipt verify`?)")
    if not args.service:
        raise InvalidInput("fetching a receipt needs --service URL")
    if args.dir is not None:
        if args.digest or args.out:
            raise InvalidInput("--dir takes neither a digest nor --out")
        return _receipt_dir(args)
    if not args.digest:
        raise InvalidInput("give the entry's digest, or --dir with the credentials' folder")
    digest = parse_digest(args.digest).hex()

    async def run() -> dict[str, Any]:
        async with ServiceClient(args.service) as client:
            return await _poll_receipt(
                client, digest, args.submitter, args.wait, talk=args.wait > 0
            )

    body = asyncio.run(run())
    if body.get("status") == "pending":
        # never a pending answer where a receipt belongs: --out is left alone
        print(
            f"ler-anchor receipt: {digest} is logged but not anchored yet"
            + (f" after {args.wait:g} s" if args.wait else "")
            + f": {_waiting_for(body)}; try again later (or with --wait SECONDS)",
            file=sys.stderr,
        )
        return 3
    text = json.dumps(body, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"wrote {args.out} (anchored)", file=sys.stderr)
    else:
        print(text)
    return 0


def _receipt_dir(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a directory")
    todo = sorted(
        p
        for p in folder.glob("*.json")
        if not p.name.endswith(RECEIPT_SUFFIX)
        and not p.with_name(p.name[: -len(".json")] + RECEIPT_SUFFIX).exists()
    )
    if len(todo) > MAX_DIR_CREDENTIALS:
        raise InvalidInput(
            f"{folder} has {len(todo)} credentials without a receipt; at most "
            f"{MAX_DIR_CREDENTIALS} are fetched at a time",
            hint="split the folder",
        )
    digests = [credential_digest(p) for p in todo]
    outcome: dict[str, int] = {"anchored": 0, "pending": 0, "unknown": 0}

    async def run() -> None:
        gate = asyncio.Semaphore(RECEIPT_CONCURRENCY)
        deadline = time.monotonic() + args.wait
        async with ServiceClient(args.service) as client:
            bar = tqdm(
                total=len(todo), unit="receipt", desc="receipts", file=sys.stderr,
                disable=len(todo) < 50,
            )  # fmt: skip

            async def one(path: Path, digest: str) -> None:
                async with gate:
                    left = max(0.0, deadline - time.monotonic())
                    try:
                        body = await _poll_receipt(client, digest, args.submitter, left, talk=False)
                    except NotFound:
                        print(f"{path}: not in the log (submit it first)", file=sys.stderr)
                        outcome["unknown"] += 1
                        return
                bar.update(1)
                if body.get("status") == "pending":
                    outcome["pending"] += 1
                    return
                receipt = path.with_name(path.name[: -len(".json")] + RECEIPT_SUFFIX)
                receipt.write_text(json.dumps(body, indent=2) + "\n")
                print(f"wrote {receipt}")
                outcome["anchored"] += 1

            await asyncio.gather(*(one(p, d) for p, d in zip(todo, digests, strict=True)))
            bar.close()

    if todo:
        asyncio.run(run())
    print(
        f"ler-anchor receipt: {len(todo)} credentials without a receipt in {folder}: "
        f"{outcome['anchored']} receipts written, {outcome['pending']} still pending"
        + (f", {outcome['unknown']} not in the log" if outcome["unknown"] else ""),
        file=sys.stderr,
    )
    return 3 if outcome["pending"] or outcome["unknown"] else 0
