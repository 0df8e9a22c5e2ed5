"""The employer's verification page: ``GET /`` and its assets under ``/page/`` (HTML, CSS and
JavaScript shipped in :mod:`anchor.http.page`; no build step, nothing from another origin).

The page posts a credential to ``POST /v1/verify`` and reads the public API for its auditor's
view; it hashes an e-mail address in the browser only. Every page response carries a strict
Content-Security-Policy. ``/page/config.js`` tells the page where the service is (here: the
same origin) and the block explorer (``--explorer-url``).
:func:`anchor.http.page.export_page` writes the same files for any static web host, configured
with a service URL; such a page calls the service from another origin, which it allows for
``--page-origins`` (:func:`cors`).

Serving is a dictionary lookup (the assets are read once, a few kilobytes).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from anchor.http.appkeys import CONFIG, Handler
from anchor.http.openapi import errors
from anchor.http.page import ASSETS, PAGE_HEADERS, asset, config_js

routes = web.RouteTableDef()

CORS_PREFLIGHT_MAX_AGE: Final = "600"


def _page(body: bytes | str, content_type: str) -> web.Response:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """The verification page."""
    return _page(asset("index.html"), "text/html")


@routes.get("/page/config.js")
async def page_config(request: web.Request) -> web.Response:
    """Where the page finds the service (its own origin) and the block explorer."""
    return _page(config_js("", request.app[CONFIG].explorer_url), "text/javascript")


@routes.get("/page/{name}")
async def page_asset(request: web.Request) -> web.Response:
    """The page's stylesheet and script."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound(text=f"no page asset {name!r}")
    return _page(asset(name), ASSETS[name])


# ---- cross-origin calls from exported pages ----------------------------------------------------

CORS_POST_PATHS: Final = frozenset({"/v1/verify"})
"""The one public POST a page makes (every other call is a public GET)."""


def _cors_allowed(request: web.Request) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for this request, if any: a public read or
    ``POST /v1/verify`` from an allowed origin (the admin API never)."""
    origin = request.headers.get("Origin")
    allowed = request.app[CONFIG].page_origin_list
    if origin is None or not allowed or request.path.startswith("/v1/admin"):
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for exported pages (``--page-origins``): preflights of ``POST /v1/verify`` are
    answered here; public reads and that POST get ``Access-Control-Allow-Origin``."""
    allow = _cors_allowed(request)
    if allow is None:
        return await handler(request)
    if request.method == "OPTIONS":
        wanted = request.headers.get("Access-Control-Request-Method", "")
        if wanted not in ("GET", "POST") or (
            wanted == "POST" and request.path not in CORS_POST_PATHS
        ):
            return await handler(request)
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": allow,
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": CORS_PREFLIGHT_MAX_AGE,
                "Vary": "Origin",
            },
        )
    if request.method == "POST" and request.path not in CORS_POST_PATHS:
        return await handler(request)
    response = await handler(request)
    response.headers["Access-Control-Allow-Origin"] = allow
    response.headers["Vary"] = "Origin"
    return response


def openapi_paths() -> dict[str, Any]:
    def html(summary: str, media: str = "text/html") -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "tags": ["page"],
                "responses": {
                    "200": {
                        "description": f"{media} (the verification page; not an API)",
                        "content": {media: {"schema": {"type": "string"}}},
                    }
                },
            }
        }

    named = html("The page's stylesheet and script (page.css, page.js)")
    named["get"]["responses"]["200"] = {
        "description": "the stylesheet (text/css) or the script (text/javascript)",
        "content": {
            "text/css": {"schema": {"type": "string"}},
            "text/javascript": {"schema": {"type": "string"}},
        },
    }
    named["get"]["parameters"] = [
        {"name": "name", "in": "path", "required": True, "schema": {"enum": sorted(ASSETS)}}
    ]
    named["get"]["responses"].update(errors(404))
    return {
        "/": html("The employer's verification page (HTML)"),
        "/page/config.js": html(
            "The page's configuration: service URL and block explorer", "text/javascript"
        ),
        "/page/{name}": named,
    }
