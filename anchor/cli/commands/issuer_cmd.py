"""``ler-anchor issuer``: the operator registers, lists and removes issuers (on the
service's database directly; the running service sees the change at once). ``add`` and
``remove`` are operator writes (they run beside ``serve``, not beside ``restore``: see
:mod:`anchor.db.dbfiles`); ``list`` only reads. None of them creates a database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from anchor import config as config_module
from anchor.auth.issuers import Issuer, IssuerRegistry
from anchor.db import dbfiles
from anchor.db.tables import open_service_store
from anchor.errors import Conflict
from anchor.log.store import LogStore

_DATABASE_FLAGS = ("data_dir", "db", "database")


def register(sub: Any) -> None:
    parser = sub.add_parser("issuer", help="register, list and remove issuers (operator)")
    config_module.add_arguments(parser, only=_DATABASE_FLAGS)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="register an issuer DID")
    config_module.add_arguments(add, only=_DATABASE_FLAGS, default=argparse.SUPPRESS)
    add.add_argument("did")
    add.add_argument("--name", default=None, help="display name")
    add.add_argument(
        "--rename",
        action="store_true",
        help="the DID is (or was) registered under another name: change it to --name",
    )
    add.set_defaults(handler=_add)
    remove = verbs.add_parser("remove", help="stop an issuer from writing")
    config_module.add_arguments(remove, only=_DATABASE_FLAGS, default=argparse.SUPPRESS)
    remove.add_argument("did")
    remove.set_defaults(handler=_remove)
    listing = verbs.add_parser("list", help="list registered issuers")
    config_module.add_arguments(listing, only=_DATABASE_FLAGS, default=argparse.SUPPRESS)
    listing.add_argument("--all", action="store_true", help="include removed issuers")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)


def _registry(args: argparse.Namespace, *, read_only: bool) -> tuple[LogStore, IssuerRegistry]:
    """The registry in the service's database (``--database``, else the SQLite file); a
    writer migrates the tables first if the service never has."""
    config = config_module.from_environment(args)
    store = open_service_store(config.store_target, create=False, read_only=read_only)
    try:
        return store, IssuerRegistry(store)
    except BaseException:
        store.close()
        raise


def _database(args: argparse.Namespace) -> str | Path:
    return config_module.from_environment(args).store_target


def _add(args: argparse.Namespace) -> int:
    with dbfiles.operator_writes(_database(args)):
        store, registry = _registry(args, read_only=False)
        try:
            issuer, verb = _add_or_rename(registry, args.did, args.name, rename=args.rename)
        finally:
            store.close()
    print(f"{verb} {issuer.did}" + (f" ({issuer.name})" if issuer.name else ""))
    return 0


def _add_or_rename(
    registry: IssuerRegistry, did: str, name: str | None, *, rename: bool
) -> tuple[Issuer, str]:
    """Register ``did``; an existing (or removed) issuer keeps its name unless ``rename``."""
    old = registry.get(did)
    if old is None:
        return registry.add(did, name or ""), "registered"
    renaming = name is not None and name != old.name
    if renaming and not rename:
        state = "registered" if old.active else "registered before (now removed)"
        raise Conflict(
            f"{did} is {state} as {old.name!r}",
            hint=f"add --rename to rename it to {name!r}, or leave out --name",
        )
    if old.active:
        if not renaming:
            raise Conflict(f"{did} is already a registered issuer")
        return registry.rename(did, name or ""), "renamed"
    return registry.add(did, old.name if name is None else name), "registered again"


def _remove(args: argparse.Namespace) -> int:
    with dbfiles.operator_writes(_database(args)):
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
