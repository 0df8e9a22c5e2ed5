"""Command groups of the ``ler-anchor`` CLI, one small module each.

Modules are imported only for the command being run: some pull in web3 or the embedded
chain, which take about a second to import, and ``--help`` or ``submit`` need neither.
"""

from __future__ import annotations

import importlib
from typing import Any

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve_cmd", "run the HTTP service"),
    "issuer": ("issuer_cmd", "register, list and remove issuers (operator)"),
    "keygen": ("client_cmd", "make an issuer key (Ed25519 or P-256) and print its did:key"),
    "submit": ("client_cmd", "submit credential digests for anchoring"),
    "receipt": ("client_cmd", "fetch an entry's receipt, or verify one (`receipt verify FILE`)"),
    "trust": ("trust_cmd", "add, list and remove the logs whose receipts you trust"),
    "issue": ("issue_cmd", "issue Open Badges 3.0 credentials and anchor them"),
    "status": ("status_cmd", "allocate, set, read, export and check status list entries"),
    "resolve": ("resolve_cmd", "resolve a DID"),
    "disclose": ("disclose_cmd", "derive a copy of a selective disclosure credential"),
    "verify": ("verify_cmd", "verify a credential: proof, issuer, status, anchoring"),
    "page": ("page_cmd", "export the credential verification page for a static web host"),
    "audit": ("audit_cmd", "replay every anchored checkpoint from the chain and the public log"),
    "deploy": ("deploy_cmd", "deploy the anchor and DID registry contracts"),
    "log": ("log_cmd", "inspect, check and export the local log database"),
    "backup": ("backup_cmd", "copy the service's database while it runs, and check the copy"),
    "restore": ("backup_cmd", "put a backup in place once it reproduces every anchored root"),
}
"""Every command: the module that registers it and its one-line summary for ``--help``."""


def register(sub: Any, command: str | None) -> None:
    """Add the complete parser of ``command`` (importing only its module) and, for every
    other command, an entry with its summary: enough for ``--help`` to list them all."""
    if command in COMMANDS:
        module = importlib.import_module(f"anchor.cli.commands.{COMMANDS[command][0]}")
        module.register(sub)
    for name, (_module, summary) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=summary)


def register_all(sub: Any) -> None:
    """Add the complete parser of every command (imports every module)."""
    for module_name in dict.fromkeys(module for module, _summary in COMMANDS.values()):
        importlib.import_module(f"anchor.cli.commands.{module_name}").register(sub)
