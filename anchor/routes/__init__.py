"""HTTP routes, one ``RouteTableDef`` per feature."""

from __future__ import annotations

from aiohttp import web

from anchor.routes import did_routes, log_routes, ops_routes

ROUTE_TABLES: tuple[web.RouteTableDef, ...] = (
    log_routes.routes,
    did_routes.routes,
    ops_routes.routes,
)
