"""Issuer-side commands: ``keygen``, ``submit`` and ``receipt`` (clients of the HTTP API)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import rfc8785
from tqdm import tqdm

from anchor.client import ServiceClient, Signer
from anchor.entry import parse_digest
from anchor.errors import ConfigError, InvalidInput, NotFound
from anchor.keys import Ed25519Key, load_ed25519_key, save_key

MAX_JSON_FILE_BYTES = 16 * 1024 * 1024
"""Largest credential file ``submit --file`` reads."""


def register(sub: Any) -> None:
    keygen = sub.add_parser("keygen", help="make an Ed25519 issuer key and print its did:key")
    keygen.add_argument("--out", required=True, type=Path, help="JWK file to write (mode 0600)")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
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

    receipt = sub.add_parser("receipt", help="fetch an entry's receipt")
    _client_args(receipt, signed=False)
    receipt.add_argument("digest", help="the entry's SHA-256 hex digest")
    receipt.add_argument("--submitter", help="the submitting issuer's DID (if ambiguous)")
    receipt.add_argument("--wait", type=float, default=0.0, help="seconds to wait for anchoring")
    receipt.add_argument("--out", type=Path, help="write the receipt here instead of stdout")
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
    """SHA-256 of the RFC 8785 canonical JSON of a credential file, hex."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"--file {path} does not exist", hint="check the path") from None
    except OSError as err:
        raise InvalidInput(f"--file {path} cannot be read: {err.strerror}") from None
    if len(raw) > MAX_JSON_FILE_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_JSON_FILE_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{path} is not JSON: {err}") from None
    return hashlib.sha256(rfc8785.dumps(doc)).hexdigest()


def _keygen(args: argparse.Namespace) -> int:
    if args.out.exists() and not args.force:
        raise ConfigError(
            f"{args.out} exists already",
            hint="pass --force to overwrite it and lose its key, or choose another --out",
        )
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


def _receipt(args: argparse.Namespace) -> int:
    digest = parse_digest(args.digest).hex()

    async def run() -> dict[str, Any]:
        async with ServiceClient(args.service) as client:
            return await client.receipt(digest, submitter=args.submitter, wait=args.wait)

    body = asyncio.run(run())
    text = json.dumps(body, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"wrote {args.out} ({body.get('status', 'anchored')})", file=sys.stderr)
    else:
        print(text)
    return 0 if body.get("status") != "pending" else 3
