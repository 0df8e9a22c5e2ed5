"""``ler-anchor status``: status lists from the command line.

Issuer commands are clients of the HTTP API, signing each write with the issuer's key file
(``--key``; the keyid is the key's did:key verification method unless ``--keyid`` names
another, e.g. ``did:web:college.example#key-1``)::

    status key       get (did:web, did:ethr) or upload (did:key) the status list key
    status create    open a new list
    status allocate  allocate entries; prints the BitstringStatusListEntry objects
    status set       set one entry's status (revoke, suspend, unsuspend, message)
    status get       print a list credential (optionally as it was at --timestamp)

Operator and verifier commands::

    status export    write every current list as a static file, laid out by URL path
    status check     check a credential's status entries (exit 0 valid, 1 revoked or
                     suspended, 3 unknown)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from anchor import config as config_module
from anchor.cli.commands.client_cmd import issuer_key
from anchor.cli.commands.common import (
    EXIT_NOT_VALID,
    EXIT_UNKNOWN,
    EXIT_VALID,
    MAX_JSON_FILE_BYTES,
    read_json_file,
)
from anchor.client.api import ServiceClient, Signer
from anchor.core import jsonlimits
from anchor.db import dbfiles
from anchor.db.tables import open_service_store
from anchor.errors import InvalidInput
from anchor.keys import DID_KEY_PREFIX
from anchor.status.bitstring import MIN_ENTRIES
from anchor.status.check import Outcome, StatusChecker, summarize
from anchor.status.credential import find_status_entries
from anchor.status.model import MANAGED_PURPOSES, MAX_ALLOCATION, StatusSettings
from anchor.status.repository import StatusRepository
from did_methods import build_resolver

EXPORT_INDEX: Final = "index.json"
"""Name of the export's index of lists, next to the lists."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status", help="allocate, set, read and export status list entries, check credentials"
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    key = verbs.add_parser("key", help="get (did:web, did:ethr) or upload (did:key) the list key")
    _signed_args(key)
    key.set_defaults(handler=_key)

    create = verbs.add_parser("create", help="open a new status list")
    _signed_args(create)
    _kind_args(create)
    create.set_defaults(handler=_create)

    allocate = verbs.add_parser("allocate", help="allocate entries and print them as JSON")
    _signed_args(allocate)
    _kind_args(allocate)
    allocate.add_argument("--count", type=int, help=f"entries to allocate (1..{MAX_ALLOCATION})")
    allocate.add_argument(
        "--credential-id",
        dest="credential_ids",
        action="append",
        help="credential id (repeat; same id -> same entry)",
    )
    allocate.set_defaults(handler=_allocate)

    setter = verbs.add_parser("set", help="set the status of one entry")
    _signed_args(setter)
    which = setter.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--entry", type=Path, help="a BitstringStatusListEntry (or a credential with one)"
    )
    which.add_argument("--list", dest="list_url", help="the statusListCredential URL")
    setter.add_argument("--index", help="the statusListIndex (with --list)")
    setter.add_argument(
        "--purpose", help="with --entry: the purpose of the entry to set, if it has several"
    )
    setter.add_argument(
        "--value",
        required=True,
        metavar="VALUE",
        help="revoked or suspended (the entry's purpose: sets it), valid (clears it), or a "
        "number (1 sets, 0 clears; a status list with messages takes its own values)",
    )
    setter.add_argument("--reason", help="recorded in the list's history")
    setter.set_defaults(handler=_set)

    get = verbs.add_parser("get", help="print a status list credential")
    get.add_argument("url", help="the list's URL")
    get.add_argument("--timestamp", help="the version current then (RFC 3339 or unix seconds)")
    get.set_defaults(handler=_get)

    export = verbs.add_parser("export", help="write every current list as a static file")
    config_module.add_arguments(export, only=("data_dir", "db", "database"))
    export.add_argument("--out", type=Path, required=True, help="directory to write into")
    export.set_defaults(handler=_export)

    check = verbs.add_parser("check", help="check the status entries of a credential")
    check.add_argument("credential", type=Path, help="the credential (JSON file)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument(
        "--mirror", type=Path, help="read lists from this directory (a `status export`)"
    )
    check.add_argument(
        "--min-entries",
        type=int,
        default=MIN_ENTRIES,
        help="shortest list accepted (default %(default)s)",
    )
    check.add_argument("--ca-file", type=Path, help="CA bundle for HTTPS (lists and did:web)")
    check.set_defaults(handler=_check)


def _signed_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, help="service base URL")
    parser.add_argument("--key", required=True, type=Path, help="issuer key (JWK file)")
    parser.add_argument("--keyid", help="DID URL of the key (default: its did:key method)")


def _kind_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--purpose", required=True, choices=MANAGED_PURPOSES)
    parser.add_argument("--status-size", type=int, help="bits per entry (message lists)")
    parser.add_argument(
        "--status-message", help='JSON array [{"status": "0x0", "message": "..."}, ...]'
    )


def _kind(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"purpose": args.purpose}
    if args.status_size is not None:
        body["statusSize"] = args.status_size
    if args.status_message is not None:
        body["statusMessage"] = jsonlimits.loads(
            args.status_message, max_bytes=MAX_JSON_FILE_BYTES, what="--status-message"
        )
    return body


def _signer(args: argparse.Namespace) -> Signer:
    return Signer.for_key(issuer_key(args.key), args.keyid)


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=2))


def _post(args: argparse.Namespace, path: str, body: Any) -> Any:
    async def run() -> Any:
        async with ServiceClient(args.service, _signer(args)) as client:
            return await client.post_signed(path, body)

    return asyncio.run(run())


# --- issuer commands ------------------------------------------------------------------------


def _key(args: argparse.Namespace) -> int:
    signer = _signer(args)
    own_did_key = signer.did.startswith(DID_KEY_PREFIX) and signer.key.did == signer.did
    body = signer.key.private_jwk() if own_did_key else {}
    info = _post(args, "/v1/status-keys", body)
    _print(info)
    if not info.get("authorized"):
        print(f"not authorised yet: {info.get('instructions')}", file=sys.stderr)
    return 0


def _create(args: argparse.Namespace) -> int:
    _print(_post(args, "/v1/status-lists", _kind(args)))
    return 0


def _allocate(args: argparse.Namespace) -> int:
    body = _kind(args)
    if args.credential_ids:
        body["credentialIds"] = args.credential_ids
    if args.count is not None:
        body["count"] = args.count
    answer = _post(args, "/v1/status-lists/allocate", body)
    _print(answer["entries"])
    return 0


STATUS_WORDS: Final = {"revoked": 1, "revoke": 1, "suspended": 1, "suspend": 1, "valid": 0}
"""Words ``status set --value`` takes for the numbers it sets."""


def _status_value(text: str) -> int:
    """``--value``: a word of :data:`STATUS_WORDS` or a non-negative number."""
    word = text.strip().lower()
    if word in STATUS_WORDS:
        return STATUS_WORDS[word]
    try:
        value = int(word)
    except ValueError:
        raise InvalidInput(
            f"--value {text!r} is not revoked, suspended, valid or a number"
        ) from None
    if value < 0:
        raise InvalidInput(f"--value {text!r} is negative")
    return value


def _target(args: argparse.Namespace) -> tuple[str, str]:
    """The list URL and the index to set."""
    if args.entry is not None:
        doc = read_json_file(args.entry, "entry")
        if isinstance(doc, dict) and "credentialStatus" in doc:
            entries = find_status_entries(doc)
            purpose = getattr(args, "purpose", None)
            if purpose is not None:
                chosen = tuple(e for e in entries if e.status_purpose == purpose)
                if len(chosen) != 1:
                    purposes = ", ".join(sorted({e.status_purpose for e in entries})) or "none"
                    raise InvalidInput(
                        f"{args.entry} has {len(chosen) or 'no'} status "
                        f"entr{'y' if len(chosen) == 1 else 'ies'} of purpose {purpose} "
                        f"(its entries' purposes: {purposes})",
                        hint="give another --purpose, or --list and --index",
                    )
                entries = chosen
            if len(entries) != 1:
                raise InvalidInput(
                    f"{args.entry} has {len(entries)} status entries; choose one with "
                    "--purpose, or give --list and --index"
                )
            entry = entries[0].to_json()
        else:
            entry = doc
        if not isinstance(entry, dict) or "statusListCredential" not in entry:
            raise InvalidInput(f"{args.entry} is not a BitstringStatusListEntry")
        return str(entry["statusListCredential"]), str(entry.get("statusListIndex"))
    if args.index is None:
        raise InvalidInput("--list needs --index")
    return args.list_url, args.index


def _set(args: argparse.Namespace) -> int:
    value = _status_value(args.value)
    url, index = _target(args)
    list_id = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not list_id:
        raise InvalidInput(f"{url} is not a status list URL")
    change: dict[str, Any] = {"index": index, "value": value}
    if args.reason:
        change["reason"] = args.reason
    answer = _post(args, f"/v1/status-lists/{list_id}/statuses", [change])
    published = answer.get("published", {})
    print(
        f"{url} entry {index} = {value} ({answer.get('changed', 0)} change(s); "
        f"version {published.get('version')}, log index {published.get('logIndex')})"
    )
    return 0


def _get(args: argparse.Namespace) -> int:
    params = {"timestamp": args.timestamp} if args.timestamp else None

    async def run() -> Any:
        async with ServiceClient(args.url) as client:
            return await client.get_json("", params)

    _print(asyncio.run(run()))
    return 0


# --- operator and verifier commands -----------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def _export(args: argparse.Namespace) -> int:
    config = config_module.from_environment(args)
    with dbfiles.operator_writes(config.store_target):  # the tables may be migrated
        store = open_service_store(config.store_target, create=False)
        try:
            service = StatusRepository(store, StatusSettings.from_config(config))
            current = service.current_versions()
        finally:
            store.close()
    out: Path = args.out
    index: dict[str, list[dict[str, Any]]] = {}
    for status_list, version in current:
        relative = urlsplit(status_list.url).path.lstrip("/")
        if not relative or ".." in relative.split("/"):
            raise InvalidInput(f"status list URL {status_list.url} has no usable path")
        target = out / relative
        _write_atomically(target, version.document)
        index.setdefault(str(target.parent), []).append(
            {
                "id": status_list.id,
                "url": status_list.url,
                "issuer": status_list.issuer,
                "statusPurpose": status_list.purpose,
                "version": version.version,
                "digest": version.digest.hex(),
                "validFrom": version.credential().get("validFrom"),
            }
        )
    for directory, lists in index.items():
        doc = {"lists": lists}
        _write_atomically(Path(directory) / EXPORT_INDEX, json.dumps(doc, indent=2).encode())
    print(f"exported {len(current)} status list(s) to {out}")
    until = [
        str(v.credential()["validUntil"]) for _, v in current if "validUntil" in v.credential()
    ]
    if until:
        print(
            f"the first of them expires at {min(until)} (validUntil); the running service "
            "renews lists before they expire: export again before then"
        )
    return 0


def _check(args: argparse.Namespace) -> int:
    credential = read_json_file(args.credential, "credential")
    if not isinstance(credential, dict):
        raise InvalidInput(f"{args.credential} is not a JSON object")

    async def run() -> Any:
        async with aiohttp.ClientSession(headers={"User-Agent": "ler-anchor"}) as session:
            resolver = build_resolver(session, ca_file=args.ca_file)
            checker = StatusChecker(
                resolver, session, mirror=args.mirror, min_entries=args.min_entries
            )
            return await checker.check_credential(credential)

    results = asyncio.run(run())
    overall = summarize(results)
    if args.json:
        _print({"outcome": overall.value, "entries": [r.to_json() for r in results]})
    elif not results:
        print("the credential has no BitstringStatusListEntry: nothing to check")
    else:
        for r in results:
            detail = r.message or ""
            if r.error is not None:
                detail = str(r.error.get("detail", r.error.get("title", "")))
            print(
                f"{r.outcome.value:<9}  {r.purpose or '?':<10}  "
                f"{r.status_list_credential or '?'}  {r.status_list_index}  {detail}".rstrip()
            )
        print(f"status: {overall.value}")
    if overall is Outcome.UNKNOWN:
        return EXIT_UNKNOWN
    return EXIT_VALID if overall is Outcome.VALID else EXIT_NOT_VALID
