"""Command groups of the ``ler-anchor`` CLI, one small module each."""

from __future__ import annotations

from typing import Any

from anchor.commands import (
    audit_cmd,
    client_cmd,
    deploy_cmd,
    issue_cmd,
    issuer_cmd,
    log_cmd,
    resolve_cmd,
    serve_cmd,
    status_cmd,
    verify_cmd,
)

PLANNED: dict[str, str] = {
    "serve": "run the HTTP service",
    "issuer": "register, list and remove issuers (operator)",
    "keygen": "make an Ed25519 issuer key and print its did:key",
    "submit": "submit credential digests for anchoring",
    "receipt": "fetch an entry's receipt",
    "status": "allocate, set, read and export status list entries",
    "resolve": "resolve a DID",
    "verify": "verify a credential: proof, issuer, status, anchoring",
    "audit": "replay every anchored checkpoint from the chain and the public log",
    "deploy": "deploy the anchor and DID registry contracts",
    "log": "inspect and check the local log database",
}
"""Every command of DESIGN.md, with its one-line summary for ``--help``."""


def register_all(sub: Any) -> None:
    """Add every built command group to the CLI's subparsers."""
    for module in (
        serve_cmd,
        issuer_cmd,
        client_cmd,
        status_cmd,
        verify_cmd,
        issue_cmd,
        resolve_cmd,
        audit_cmd,
        deploy_cmd,
        log_cmd,
    ):
        module.register(sub)
