"""``ler-anchor log``: look at and check the local log database."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from anchor import config as config_module
from anchor.core.checkpoint import NoteVerifier
from anchor.db import dbfiles
from anchor.log.log import FAILURE_META, check_checkpoints
from anchor.log.logfiles import export_log, export_tiles
from anchor.log.store import LogStore, open_store


def register(sub: Any) -> None:
    parser = sub.add_parser("log", help="inspect, check and export the local log database")
    config_module.add_arguments(parser, only=("data_dir", "db", "database"))
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    info = verbs.add_parser("info", help="print the log's size, root and verifier key")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_info)
    check = verbs.add_parser("check", help="recompute every stored hash from the entries")
    check.set_defaults(handler=_check)
    export = verbs.add_parser(
        "export", help="write the public log (entries, checkpoints) to files for auditors"
    )
    export.add_argument("--out", required=True, type=Path, help="directory to write")
    export.add_argument(
        "--tiles",
        action="store_true",
        help="write the log as C2SP tlog-tiles (checkpoint, tile/...) for a web host or CDN",
    )
    export.set_defaults(handler=_export)
    for verb in (info, check, export):
        config_module.add_arguments(
            verb, only=("data_dir", "db", "database"), default=argparse.SUPPRESS
        )


def _target(args: argparse.Namespace) -> str | Path:
    """The database: ``--database`` (PostgreSQL, shared by replicas), else the SQLite file."""
    return config_module.from_environment(args).store_target


def _open(args: argparse.Namespace) -> LogStore:
    """The database, read-only: these commands run beside the service and write nothing."""
    return open_store(_target(args), create=False, read_only=True)


def _info(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        size = store.size()
        root = store.root(size)
        vkey = store.meta("log_verifier_key")
    finally:
        store.close()
    doc = {
        "size": size,
        "root": base64.b64encode(root).decode(),
        "rootHex": root.hex(),
        "verifierKey": vkey,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"size {size}\nroot {doc['root']} ({root.hex()})\nverifier key {vkey or '-'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        total = store.size()
        with tqdm(
            total=total, unit="entry", file=sys.stderr, disable=None if total >= 10_000 else True
        ) as bar:
            size = store.check_integrity(bar.update)
        checkpoints = _check_checkpoints(store)
        recorded = store.meta(FAILURE_META)
    finally:
        store.close()
    if recorded is not None:  # everything checks now (a restored backup): clear it
        database = _target(args)
        with dbfiles.operator_writes(database):  # the one write of this command
            writable = open_store(database, create=False)
            try:
                with writable.transaction() as conn:
                    conn.execute("DELETE FROM meta WHERE key = ?", (FAILURE_META,))
            finally:
                writable.close()
    print(
        f"log of {size} entries checks: every stored hash matches its entries, the digest"
        f" index finds every entry, and {checkpoints} signed checkpoints verify"
    )
    if recorded is not None:
        print("cleared the integrity failure recorded earlier; the service may start again")
    return 0


def _check_checkpoints(store: LogStore) -> int:
    """Check every signed checkpoint (signature and root); returns how many there are."""
    vkey = store.meta("log_verifier_key")
    if vkey is None or not store.has_table("checkpoints"):
        return 0
    verifier = NoteVerifier.from_vkey(vkey)
    total = 0
    after: int | None = 0
    while after is not None:
        after, count = check_checkpoints(store, verifier, after, 1_000)
        total += count
    return total


def _export(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.tiles:
        try:
            size, files = export_tiles(store, args.out)
        finally:
            store.close()
        print(f"exported {size} entries as {files} tiles and checkpoint files to {args.out}")
        return 0
    try:
        meta = export_log(store, args.out)
    finally:
        store.close()
    print(f"exported {meta['treeSize']} entries of {meta['origin']} to {args.out}")
    return 0
