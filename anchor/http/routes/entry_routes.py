"""``POST /v1/entries``: an issuer submits digests for anchoring (signed request).

The answer is sent only after the entries are durably committed (group commit: concurrent
submissions share one transaction). Re-submitting a digest returns its existing index.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from anchor.auth.middleware import principal_of, require_signature
from anchor.core.entry import Entry, EntryKind, parse_digest
from anchor.errors import EncodingError, InvalidInput, LimitExceeded
from anchor.http.appkeys import COMMITTER, METRICS
from anchor.http.openapi import HEX_DIGEST, SIGNED, errors, json_request, json_response
from anchor.http.routes.bodies import json_object

routes = web.RouteTableDef()


MAX_DIGESTS_PER_REQUEST = 10_000
"""Most digests one submission may carry (413 beyond)."""


@routes.post("/v1/entries")
@require_signature
async def submit(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = json_object(await request.read())
    digests = body.get("digests")
    if not isinstance(digests, list) or not digests:
        raise InvalidInput('body must be {"digests": ["<64 hex>", ...]} with at least one digest')
    if len(digests) > MAX_DIGESTS_PER_REQUEST:
        raise LimitExceeded(
            f"{len(digests)} digests in one request; at most {MAX_DIGESTS_PER_REQUEST}",
            hint="split the batch into several requests",
        )
    kind_label = body.get("kind", EntryKind.CREDENTIAL.label)
    if not isinstance(kind_label, str):
        raise InvalidInput('"kind" must be a string')
    try:
        kind = EntryKind.from_label(kind_label)
        parsed = []
        for i, d in enumerate(digests):
            if not isinstance(d, str):
                raise InvalidInput(f"digests[{i}] is not a string")
            parsed.append(parse_digest(d))
    except EncodingError as err:
        raise InvalidInput(err.detail, hint=err.hint) from None
    entries = [Entry(kind, d, principal.did) for d in parsed]
    result = await request.app[COMMITTER].append(entries)
    request.app[METRICS].entries_appended.inc(sum(result.new))
    suffix = f"?submitter={quote(principal.did, safe='')}"
    answer = [
        {"digest": h, "index": idx, "new": new, "receipt": f"/v1/receipts/{h}{suffix}"}
        for h, idx, new in zip((d.hex() for d in parsed), result.indexes, result.new, strict=False)
    ]
    status = 201 if any(result.new) else 200
    return web.json_response(
        {
            "submitter": principal.did,
            "kind": kind.label,
            "treeSize": result.size,
            "entries": answer,
        },
        status=status,
    )


def openapi_paths() -> dict[str, Any]:
    accepted = {
        "type": "object",
        "required": ["submitter", "kind", "treeSize", "entries"],
        "properties": {
            "submitter": {"type": "string"},
            "kind": {"type": "string"},
            "treeSize": {"type": "integer"},
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["digest", "index", "new", "receipt"],
                    "properties": {
                        "digest": HEX_DIGEST,
                        "index": {"type": "integer"},
                        "new": {"type": "boolean"},
                        "receipt": {"type": "string"},
                    },
                },
            },
        },
    }
    return {
        "/v1/entries": {
            "post": {
                "summary": "Submit 1 to 10,000 SHA-256 digests for anchoring (signed)",
                "security": SIGNED,
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["digests"],
                        "properties": {
                            "digests": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_DIGESTS_PER_REQUEST,
                                "items": HEX_DIGEST,
                            },
                            "kind": {
                                "type": "string",
                                "enum": ["credential", "status-list"],
                            },
                        },
                    }
                ),
                "responses": {
                    "201": json_response(accepted, "Committed (at least one new entry)"),
                    "200": json_response(accepted, "Committed (all already in the log)"),
                    **errors(400, 401, 403, 413, 503),
                },
            }
        }
    }
