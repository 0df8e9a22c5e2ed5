"""The aiohttp application factory.

Shared state lives in typed :class:`aiohttp.web.AppKey` entries set up by ``cleanup_ctx``
generators (opened in order at start-up, closed in reverse at shutdown): the store and log,
the group committer, one HTTP ``ClientSession`` and the DID resolver, the chain client and
the batcher. Routes come from one ``RouteTableDef`` per feature in :mod:`anchor.routes`.
Errors of the project's hierarchy become RFC 9457 problem details in one middleware.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from anchor import auth, keys
from anchor.checkpoint import NoteSigner
from anchor.config import Config
from anchor.errors import AnchorError
from anchor.identity import ed25519_key_for
from anchor.issuers import IssuerRegistry
from anchor.log import GroupCommitter, Log
from anchor.metrics import Metrics
from anchor.status_service import StatusService, StatusSettings
from anchor.store import SQLiteStore
from did_methods import Resolver, build_resolver

LOG = logging.getLogger("ler_anchor")

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Largest request body accepted (10,000 hex digests in JSON is about 700 KB)."""

PROBLEM_JSON = "application/problem+json"

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", SQLiteStore)
LOG_KEY = web.AppKey("log", Log)
ISSUERS = web.AppKey("issuers", IssuerRegistry)
COMMITTER = web.AppKey("committer", GroupCommitter)
HTTP = web.AppKey("http", aiohttp.ClientSession)
RESOLVER = web.AppKey("resolver", Resolver)
METRICS = web.AppKey("metrics", Metrics)
STARTED = web.AppKey("started", float)
STATUS = web.AppKey("status", StatusService)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HealthProbe = Callable[[web.Application], Awaitable[tuple[str, object, bool]]]
"""A named health check: returns (name, JSON value, healthy)."""
HEALTH_PROBES = web.AppKey("health_probes", list[HealthProbe])


def problem_response(error: AnchorError, instance: str | None = None) -> web.Response:
    body = error.problem(instance)
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Signature realm="ler-anchor"'
    return web.json_response(body, status=error.status, content_type=PROBLEM_JSON, headers=headers)


def _http_problem(exc: web.HTTPException, instance: str) -> web.Response:
    body = {
        "type": "about:blank",
        "title": exc.reason,
        "status": exc.status,
        "detail": exc.text
        if exc.text and exc.text != f"{exc.status}: {exc.reason}"
        else exc.reason,
        "instance": instance,
    }
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
    return web.json_response(body, status=exc.status, content_type=PROBLEM_JSON, headers=headers)


@web.middleware
async def problems_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to problem details once, and count every request."""
    metrics = request.app[METRICS]
    route = request.match_info.route.resource
    label = route.canonical if route is not None else "unmatched"
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except AnchorError as err:
        status = err.status
        return problem_response(err, request.path)
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        return _http_problem(exc, request.path)
    finally:
        metrics.observe_request(request.method, label, status, time.perf_counter() - start)


def _log_signer(config: Config) -> NoteSigner:
    key, _created = keys.generate_if_missing(config.log_key_path, "ed25519")  # logs creation
    seed = key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return NoteSigner(config.origin, seed)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = await asyncio.to_thread(SQLiteStore, config.db_path)
    app[STORE] = store
    app[LOG_KEY] = Log(store, _log_signer(config))
    app[ISSUERS] = IssuerRegistry(store)
    yield
    await asyncio.to_thread(store.close)


async def _committer_ctx(app: web.Application) -> AsyncIterator[None]:
    committer = GroupCommitter(app[LOG_KEY])
    app[COMMITTER] = committer
    task = asyncio.create_task(committer.run(), name="group-commit")
    yield
    await committer.close()  # commits everything already accepted before shutting down
    await task


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers={"User-Agent": "ler-anchor"}
    )
    app[HTTP] = session
    resolver = build_resolver(session, ca_file=config.ca_file)
    app[RESOLVER] = resolver
    registry = app[ISSUERS]

    async def resolve_key(keyid: str) -> bytes | None:
        return await ed25519_key_for(resolver, keyid, "authentication")

    async def is_registered(did: str) -> bool:
        return await asyncio.to_thread(registry.is_registered, did)

    app[auth.AUTHENTICATOR_KEY] = auth.Authenticator(
        resolve_key=resolve_key,
        is_registered=is_registered,
        nonces=auth.NonceStore(app[STORE]),
        public_base_url=config.public_url,
    )
    yield
    await session.close()


async def _status_ctx(app: web.Application) -> AsyncIterator[None]:
    """Status lists; versions published but not yet logged (a crash between the two
    steps) are appended to the log before serving."""
    service = await asyncio.to_thread(
        StatusService, app[STORE], StatusSettings.from_config(app[CONFIG])
    )
    app[STATUS] = service
    await asyncio.to_thread(service.log_pending, app[LOG_KEY])
    yield


def create_app(config: Config, *, extra_contexts: tuple[object, ...] = ()) -> web.Application:
    """Build the application for ``config`` (nothing is opened until it starts)."""
    from anchor.routes import ROUTE_TABLES

    app = web.Application(middlewares=[problems_and_metrics], client_max_size=MAX_REQUEST_BYTES)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[STARTED] = time.time()
    app[HEALTH_PROBES] = []
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(_committer_ctx)
    app.cleanup_ctx.append(_status_ctx)
    for ctx in extra_contexts:
        app.cleanup_ctx.append(ctx)  # type: ignore[arg-type]
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    return app


async def serve(config: Config) -> None:
    """Run the service until interrupted; print where it listens and what it anchors on."""
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    chain = "the embedded in-process chain" if config.embedded_chain else config.rpc_url
    print(
        f"LER Anchor listening on http://{config.host}:{config.port} "
        f"(database {config.db_path}, anchoring on {chain})",
        flush=True,
    )
    try:
        while True:
            await asyncio.sleep(3600)
    finally:
        await runner.cleanup()
