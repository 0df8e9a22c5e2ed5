"""HTTP routes, one module (and one ``RouteTableDef``) per feature.

A route module may also define ``openapi_paths() -> dict`` describing its paths; the OpenAPI
document (:mod:`anchor.openapi`) merges them, and a test checks that every served route is
described.
"""

from __future__ import annotations

from types import ModuleType

from aiohttp import web

from anchor.routes import (
    admin_routes,
    anchor_routes,
    chain_routes,
    did_routes,
    entry_routes,
    log_routes,
    ops_routes,
    page_routes,
    status_routes,
    tile_routes,
    verify_routes,
)

ROUTE_MODULES: tuple[ModuleType, ...] = (
    log_routes,
    entry_routes,
    anchor_routes,
    did_routes,
    ops_routes,
    admin_routes,
    status_routes,
    verify_routes,
    chain_routes,
    page_routes,
    tile_routes,
)

ROUTE_TABLES: tuple[web.RouteTableDef, ...] = tuple(m.routes for m in ROUTE_MODULES)
