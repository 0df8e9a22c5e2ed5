"""``POST /v1/verify``: the service verifies a credential for anyone (public, unsigned).

It uses what it already has: its DID resolver, its chain backend, its own log (a receipt is
looked up there, from a final anchor, when none is given; its own log, chain and contract
are the verifier's one trust root) and one
:class:`~anchor.status.check.StatusChecker` per application on the shared HTTP session (so
status lists are cached for their ``ttl`` across requests). Receipts must come from this
service's log and anchor contract. The answer is the report, ``200`` whatever the verdict;
``400`` for a body that is not ``{"credential": {...}, "receipt"?: {...}}``. The answer
adds ``issuer``: the credential's issuer DID and the name this service's issuer registry
gives it (``null`` when the DID is not registered here). The credential is neither stored nor
logged.

Outbound work is bounded: at most :data:`~anchor.status.check.MAX_STATUS_ENTRIES` status
entries on :data:`~anchor.status.check.MAX_STATUS_HOSTS` hosts are fetched (the excess is
``unknown``), and each list fetched costs the client one more token of its ``--fetch-rate``
bucket (429 when it has too few).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from aiohttp import web

from anchor.errors import InvalidInput
from anchor.http import ratelimit
from anchor.http.appkeys import CHAIN, CONFIG, HTTP, ISSUERS, MERKLE_LOG, RESOLVER, VERIFIER
from anchor.http.openapi import errors, json_request, json_response
from anchor.http.routes.bodies import json_object
from anchor.status.bitstring import MIN_ENTRIES
from anchor.status.check import StatusChecker
from anchor.vc.credentials import issuer_id
from anchor.verify.trust import TrustRoot
from anchor.verify.verifier import CHECKS, CredentialVerifier, LogReceipts, Verdict

routes = web.RouteTableDef()

logger = logging.getLogger(__name__)

BODY_MEMBERS: Final = frozenset({"credential", "receipt"})


async def verifier_ctx(app: web.Application) -> AsyncIterator[None]:
    """The application's verifier (needs the log, the chain client and the HTTP session:
    registered after their contexts)."""
    config = app[CONFIG]
    chain = app[CHAIN]
    log = app[MERKLE_LOG]
    resolver = app[RESOLVER]
    # The service's own lists may be shorter than the spec's default minimum (a setting).
    checker = StatusChecker(  # callers' credentials name the lists: never read local files
        resolver,
        app[HTTP],
        local_files=False,
        min_entries=min(MIN_ENTRIES, config.status_list_entries),
    )
    trust = _own_log(app)
    if trust is not None:
        logger.warning("trust root fingerprint %s (publish it for `trust add`)", trust.fingerprint)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="proofs") as proofs:
        app[VERIFIER] = CredentialVerifier(
            resolver,
            checker,
            chain.backend,
            receipts=LogReceipts(log),
            trust=trust,
            min_confirmations=max(1, config.confirmation_depth),
            proofs=proofs,
        )
        yield


def _own_log(app: web.Application) -> TrustRoot | None:
    """The service's own log as the verifier's one trust root: its origin, key, chain and
    contract (``None`` before the chain identity is known: anchoring is then unknown)."""
    chain = app[CHAIN]
    log = app[MERKLE_LOG]
    if chain.identity is None:
        return None
    return TrustRoot(log.origin, log.verifier.vkey(), chain.identity.caip2, chain.contract_address)


@routes.post("/v1/verify")
async def verify(request: web.Request) -> web.Response:
    body = json_object(await request.read())
    extra = sorted(set(body) - BODY_MEMBERS)
    if extra:
        raise InvalidInput(
            f"unknown member(s) {', '.join(extra)}", hint='send {"credential": {...}, "receipt"?}'
        )
    credential = body.get("credential")
    if not isinstance(credential, dict):
        raise InvalidInput("'credential' must be a JSON object (the credential to verify)")
    receipt = body.get("receipt")
    if "receipt" in body and not isinstance(receipt, dict):
        raise InvalidInput(
            "'receipt' must be a JSON object (a LER Anchor receipt) when given",
            hint="leave it out to have the receipt looked up in this service's log",
        )
    verifier = request.app[VERIFIER]
    # one token per status list this makes the service fetch (the request paid one already)
    ratelimit.charge(request, verifier.status.fetches_needed(credential), "verifying this")
    report = await verifier.verify(credential, receipt)
    answer = report.to_json()
    did = issuer_id(credential)
    registered = None if did is None else await asyncio.to_thread(request.app[ISSUERS].get, did)
    answer["issuer"] = {
        "id": did,
        "registeredName": (registered.name or None) if registered and registered.active else None,
    }
    return web.json_response(answer)


def openapi_paths() -> dict[str, Any]:
    verdict = {"type": "string", "enum": [v.value for v in Verdict]}
    check = {
        "type": "object",
        "required": ["check", "result", "reason"],
        "properties": {
            "check": {"type": "string", "enum": list(CHECKS)},
            "result": verdict,
            "reason": {"type": "string"},
            "details": {"type": "object"},
        },
    }
    report = {
        "type": "object",
        "required": ["result", "digest", "checkedAt", "checks"],
        "properties": {
            "result": verdict,
            "digest": {
                "type": ["string", "null"],
                "description": "the credential's anchoring digest (SHA-256 of its RFC 8785 "
                "JSON, hex)",
            },
            "checkedAt": {"type": "string", "format": "date-time"},
            "checks": {"type": "array", "items": check},
            "issuer": {
                "type": "object",
                "properties": {
                    "id": {"type": ["string", "null"], "description": "the issuer DID"},
                    "registeredName": {
                        "type": ["string", "null"],
                        "description": "its name in this service's issuer registry (null: "
                        "not registered here)",
                    },
                },
            },
        },
    }
    return {
        "/v1/verify": {
            "post": {
                "summary": "Verify a credential: format, anchoring, issuer, key, proof, "
                "validity, status (valid only when every check is valid)",
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["credential"],
                        "additionalProperties": False,
                        "properties": {
                            "credential": {"type": "object"},
                            "receipt": {
                                "type": "object",
                                "description": "its receipt (default: looked up in "
                                "this service's log)",
                            },
                        },
                    }
                ),
                "responses": {
                    "200": json_response(report, "The report, whatever the verdict"),
                    **errors(400, 413, 429),
                },
            }
        }
    }
