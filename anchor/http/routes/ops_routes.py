"""Operations: ``/healthz``, Prometheus ``/metrics`` and the OpenAPI document."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from anchor.errors import AnchorError, StorageUnavailable
from anchor.http.appkeys import DUTIES, HEALTH_PROBES, METRICS, ROUTE_MODULES, STARTED, STORE
from anchor.http.metrics import CONTENT_TYPE
from anchor.http.openapi import openapi_document

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness and the state of the store, the log's integrity and, when anchoring runs,
    the chain: ``200`` with ``status: ok``, or ``503`` with ``status: failing`` when any
    probe reports unhealthy (its member says why), or the database is unreachable (``store``
    says so; probes that need it are left out)."""
    store = request.app[STORE]
    body: dict[str, object] = {
        "status": "ok",
        "uptimeSeconds": round(time.time() - request.app[STARTED], 3),
    }
    try:
        if not request.app[DUTIES].leadership.status().database_reachable:
            raise StorageUnavailable(  # known already: answer now, not after a pool timeout
                "the shared database is out of reach (see leadership)", reason="unreachable"
            )
        body["store"] = {"ok": True, "treeSize": await asyncio.to_thread(store.size)}
    except AnchorError as err:  # the database is out of reach: say so, and probe the rest
        body["store"] = {"ok": False, "error": err.detail}
        body["status"] = "failing"
    for probe in request.app[HEALTH_PROBES]:
        try:
            name, value, ok = await probe(request.app)
        except StorageUnavailable:  # the store's member already says why
            continue
        body[name] = value
        if not ok:
            body["status"] = "failing"
    return web.json_response(body, status=200 if body["status"] == "ok" else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    data = await asyncio.to_thread(request.app[METRICS].render)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    modules = request.app[ROUTE_MODULES]
    return web.json_response(openapi_document(modules))
