"""``ler-anchor log``: look at and check the local log database."""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path
from typing import Any

from anchor.logfiles import export_log
from anchor.store import SQLiteStore

DEFAULT_DB = os.path.join("data", "ler-anchor.db")


def register(sub: Any) -> None:
    parser = sub.add_parser("log", help="inspect and check the local log database")
    parser.add_argument(
        "--db",
        default=os.environ.get("LER_ANCHOR_DB", DEFAULT_DB),
        help="SQLite database file (env LER_ANCHOR_DB; default %(default)s)",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    info = verbs.add_parser("info", help="print the log's size and root")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_info)
    check = verbs.add_parser("check", help="recompute every stored hash from the entries")
    check.set_defaults(handler=_check)
    export = verbs.add_parser(
        "export", help="write the public log (entries, checkpoints) to files for auditors"
    )
    export.add_argument("--out", required=True, type=Path, help="directory to write")
    export.set_defaults(handler=_export)


def _open(args: argparse.Namespace) -> SQLiteStore:
    return SQLiteStore(args.db)


def _info(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        size = store.size()
        root = store.root(size)
    finally:
        store.close()
    doc = {"size": size, "root": base64.b64encode(root).decode(), "rootHex": root.hex()}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"size {size}\nroot {doc['root']} ({root.hex()})")
    return 0


def _check(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        size = store.check_integrity()
    finally:
        store.close()
    print(f"log of {size} entries checks: every stored hash matches its entries")
    return 0


def _export(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        meta = export_log(store, args.out)
    finally:
        store.close()
    print(f"exported {meta['treeSize']} entries of {meta['origin']} to {args.out}")
    return 0
