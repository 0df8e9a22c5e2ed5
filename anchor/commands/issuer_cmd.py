"""``ler-anchor issuer``: the operator registers, lists and removes issuers (on the
service's database directly; the running service sees the change at once). ``add`` and
``remove`` are operator writes (they run beside ``serve``, not beside ``restore``: see
:mod:`anchor.dbfiles`); ``list`` only reads. None of them creates a database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from anchor import config as config_module
from anchor import dbfiles
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


def _registry(args: argparse.Namespace, *, read_only: bool) -> tuple[SQLiteStore, IssuerRegistry]:
    config = config_module.from_environment(args)
    store = SQLiteStore(config.db_path, create=False, read_only=read_only)
    try:
        return store, IssuerRegistry(store)
    except BaseException:
        store.close()
        raise


def _database(args: argparse.Namespace) -> Path:
    return config_module.from_environment(args).db_path


def _add(args: argparse.Namespace) -> int:
    with dbfiles.operator_writer(_database(args)):
        store, registry = _registry(args, read_only=False)
        try:
            issuer = registry.add(args.did, args.name)
        finally:
            store.close()
    print(f"registered {issuer.did}" + (f" ({issuer.name})" if issuer.name else ""))
    return 0


def _remove(args: argparse.Namespace) -> int:
    with dbfiles.operator_writer(_database(args)):
        store, registry = _registry(args, read_only=False)
        try:
            registry.remove(args.did)
        finally:
            store.close()
    print(f"removed {args.did}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store, registry = _registry(args, read_only=True)
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
