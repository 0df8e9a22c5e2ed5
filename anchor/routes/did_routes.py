"""``GET /1.0/identifiers/{did}``: DID resolution with the DID Resolution HTTP binding."""

from __future__ import annotations

import json

from aiohttp import web

from anchor.app import RESOLVER
from did_methods import http_binding

routes = web.RouteTableDef()


@routes.get("/1.0/identifiers/{did:.+}")
async def resolve(request: web.Request) -> web.Response:
    negotiation = http_binding.negotiate(request.headers.get("Accept"))
    if negotiation is None:
        answer = http_binding.not_acceptable(request.headers.get("Accept"))
    else:
        did = request.match_info["did"]
        options = http_binding.resolution_options(negotiation, request.query)
        result = await request.app[RESOLVER].resolve(did, **options)
        answer = http_binding.render(result, negotiation, representation_asked="accept" in options)
    return web.Response(
        status=answer.status,
        body=json.dumps(answer.body).encode(),
        headers={"Content-Type": answer.content_type},
    )
