"""Links one route module's answers give to another's resources (shared by the route
modules, so that none imports another).

Pure (reads only the request and the application's configuration); constant cost.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from anchor.http.appkeys import CHAIN, CONFIG

RPC_PATH = "/v1/chain/rpc"
"""The embedded chain's JSON-RPC endpoint (:mod:`anchor.http.routes.chain_routes`)."""


def rpc_url(request: web.Request) -> str | None:
    """The absolute URL of this endpoint (None when the service is on an external chain)."""
    if request.app[CHAIN].embedded is None:
        return None
    public = request.app[CONFIG].public_url
    base = public.rstrip("/") if public else f"{request.scheme}://{request.host}"
    return base + RPC_PATH


def receipt_location(digest_hex: str, submitter: str) -> str:
    """Where the receipt of an entry will be (``GET /v1/receipts/{digest}``)."""
    return f"/v1/receipts/{digest_hex}?submitter={quote(submitter, safe='')}"
