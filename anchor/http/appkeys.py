"""Every :class:`aiohttp.web.AppKey` of the service, and the handler types the keys name.

The application factory (:mod:`anchor.http.app`) fills these keys; route modules, middleware and
the background tasks read them. Keeping them here, apart from the factory, lets a route
module reach the shared state without importing the module that imports the routes (no
import cycle). The value types are imported for type checking only, so this module imports
nothing of the project at run time.

Pure: declarations only; importing it costs nothing beyond aiohttp.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Final

from aiohttp import web

if TYPE_CHECKING:
    import aiohttp

    from anchor.auth.issuers import IssuerRegistry
    from anchor.auth.middleware import Authenticator
    from anchor.chain import ChainClient
    from anchor.chain.batcher import AnchorChanges, Batcher
    from anchor.chain.rpc import RpcGate
    from anchor.config import Config
    from anchor.core.taskhealth import TaskHealth
    from anchor.db.leadership import Duties
    from anchor.http.metrics import Metrics
    from anchor.http.ratelimit import RateLimiter
    from anchor.http.selfcheck import IntegrityChecker
    from anchor.log.log import GroupCommitter, Log
    from anchor.log.store import LogStore
    from anchor.status.publisher import StatusPublisher
    from anchor.status.repository import StatusRepository
    from anchor.verify.verifier import CredentialVerifier
    from did_methods import Resolver

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HealthProbe = Callable[[web.Application], Awaitable[tuple[str, object, bool]]]
"""A named health check: returns (name, JSON value, healthy)."""

CONFIG: Final[web.AppKey[Config]] = web.AppKey("config")
STORE: Final[web.AppKey[LogStore]] = web.AppKey("store")
MERKLE_LOG: Final[web.AppKey[Log]] = web.AppKey("log")
ISSUERS: Final[web.AppKey[IssuerRegistry]] = web.AppKey("issuers")
COMMITTER: Final[web.AppKey[GroupCommitter]] = web.AppKey("committer")
HTTP: Final[web.AppKey[aiohttp.ClientSession]] = web.AppKey("http")
RESOLVER: Final[web.AppKey[Resolver]] = web.AppKey("resolver")
METRICS: Final[web.AppKey[Metrics]] = web.AppKey("metrics")
CHAIN: Final[web.AppKey[ChainClient]] = web.AppKey("chain")
CHAIN_RPC: Final[web.AppKey[RpcGate]] = web.AppKey("chain_rpc")
"""The embedded chain's JSON-RPC gate; absent on an external chain."""
BATCHER: Final[web.AppKey[Batcher]] = web.AppKey("batcher")
STARTED: Final[web.AppKey[float]] = web.AppKey("started")
STATUS: Final[web.AppKey[StatusRepository]] = web.AppKey("status")
STATUS_PUBLISHER: Final[web.AppKey[StatusPublisher]] = web.AppKey("status_publisher")
HEALTH_PROBES: Final[web.AppKey[list[HealthProbe]]] = web.AppKey("health_probes")
TASKS: Final[web.AppKey[list[TaskHealth]]] = web.AppKey("tasks")
"""Health records of the background tasks (``/healthz`` member ``tasks``, ``/metrics``)."""

ROUTE_MODULES: Final[web.AppKey[tuple[ModuleType, ...]]] = web.AppKey("route_modules")
"""The route modules served (the OpenAPI document merges their ``openapi_paths``)."""

AUTHENTICATOR_KEY: Final[web.AppKey[Authenticator]] = web.AppKey("anchor.auth.authenticator")
"""Where the application keeps its :class:`~anchor.auth.middleware.Authenticator`."""

INTEGRITY: Final[web.AppKey[IntegrityChecker]] = web.AppKey("integrity")
"""The background integrity check of the log (:mod:`anchor.http.selfcheck`)."""

LIMITER: Final[web.AppKey[RateLimiter]] = web.AppKey("fetch_limiter")
"""The application's limiter, when ``--fetch-rate`` is not 0 (routes charge fetches to it)."""

VERIFIER: Final[web.AppKey[CredentialVerifier]] = web.AppKey("verifier")
"""The credential verifier behind ``POST /v1/verify``."""

ANCHOR_CHANGES: Final[web.AppKey[AnchorChanges]] = web.AppKey("anchor_changes")
"""Notified by the batcher after every round: receipt waits wake on it."""

DUTIES: Final[web.AppKey[Duties]] = web.AppKey("duties")
"""Background work by role, and the replica's leadership (:mod:`anchor.db.leadership`)."""
