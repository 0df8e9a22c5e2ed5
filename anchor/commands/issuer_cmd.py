"""``ler-anchor issuer``: the operator registers, lists and removes issuers (on the
service's database directly; the running service sees the change at once)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from anchor import config as config_module
from anchor.issuers import IssuerRegistry
from anchor.store import SQLiteStore


def register(sub: Any) -> None:
    parser = sub.add_parser("issuer", help="register, list and remove issuers (operator)")
    config_module.add_arguments(parser, only=("data_dir", "db"))
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="register an issuer DID")
    config_module.add_arguments(add, only=("data_dir", "db"), default=argparse.SUPPRESS)
    add.add_argument("did")
    add.add_argument("--name", default="", help="display name")
    add.set_defaults(handler=_add)
    remove = verbs.add_parser("remove", help="stop an issuer from writing")
    config_module.add_arguments(remove, only=("data_dir", "db"), default=argparse.SUPPRESS)
    remove.add_argument("did")
    remove.set_defaults(handler=_remove)
    listing = verbs.add_parser("list", help="list registered issuers")
    config_module.add_arguments(listing, only=("data_dir", "db"), default=argparse.SUPPRESS)
    listing.add_argument("--all", action="store_true", help="include removed issuers")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


def _registry(args: argparse.Namespace) -> tuple[SQLiteStore, IssuerRegistry]:
    config = config_module.from_environment(args)
    store = SQLiteStore(config.db_path)
    return store, IssuerRegistry(store)


def _add(args: argparse.Namespace) -> int:
    store, registry = _registry(args)
    try:
        issuer = registry.add(args.did, args.name)
    finally:
        store.close()
    print(f"registered {issuer.did}" + (f" ({issuer.name})" if issuer.name else ""))
    return 0


def _remove(args: argparse.Namespace) -> int:
    store, registry = _registry(args)
    try:
        registry.remove(args.did)
    finally:
        store.close()
    print(f"removed {args.did}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store, registry = _registry(args)
    try:
        issuers = registry.list(include_removed=args.all)
    finally:
        store.close()
    if args.json:
        print(json.dumps([i.to_json() for i in issuers], indent=2))
    else:
        for i in issuers:
            state = "" if i.active else "  (removed)"
            print(f"{i.did}  {i.name}{state}")
        if not issuers:
            print("no issuers registered")
    return 0
