"""``GET /1.0/identifiers/{did}``: DID resolution with the DID Resolution HTTP binding."""

from __future__ import annotations

import json

from aiohttp import web

from anchor.core.entry import MAX_DID_LENGTH
from anchor.http.appkeys import RESOLVER
from anchor.http.routes.params import did_from_path
from did_methods import http_binding
from did_methods.result import ErrorCode, ResolutionResult

routes = web.RouteTableDef()


@routes.get(r"/1.0/identifiers/{did:[\s\S]+}")  # any character: the resolver judges
async def resolve(request: web.Request) -> web.Response:
    negotiation = http_binding.negotiate(request.headers.get("Accept"))
    if negotiation is None:
        answer = http_binding.not_acceptable(request.headers.get("Accept"))
    else:
        did = did_from_path(request, "/1.0/identifiers/")
        options = http_binding.resolution_options(negotiation, request.query)
        if len(did) > MAX_DID_LENGTH:  # the documented limit, below the resolver's own
            result = ResolutionResult.failure(
                ErrorCode.INVALID_DID, f"a DID has at most {MAX_DID_LENGTH} characters"
            )
        else:
            result = await request.app[RESOLVER].resolve(did, **options)
        answer = http_binding.render(result, negotiation, representation_asked="accept" in options)
    return web.Response(
        status=answer.status,
        body=json.dumps(answer.body).encode(),
        headers={"Content-Type": answer.content_type},
    )
