"""The aiohttp application factory.

Shared state lives in typed :class:`aiohttp.web.AppKey` entries set up by ``cleanup_ctx``
generators (opened in order at start-up, closed in reverse at shutdown): the store and log,
the group committer, one HTTP ``ClientSession`` and the DID resolver, the chain client and
the batcher. Work that must run in one place only (the batcher, status renewal, the
integrity pass) is a duty of the sequencing replica (:mod:`anchor.db.leadership`: always this
process on SQLite). Routes come from one ``RouteTableDef`` per feature in :mod:`anchor.http.routes`.
Errors of the project's hierarchy become RFC 9457 problem details in one middleware.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator
from types import ModuleType

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from anchor import keys, outbound
from anchor.auth import middleware, nonces
from anchor.auth.issuers import IssuerRegistry
from anchor.chain import AnchorState, ChainClient, ChainConfig, list_anchors
from anchor.chain.batcher import Batcher, BatcherConfig
from anchor.chain.contracts import DID_REGISTRY
from anchor.chain.rpc import RpcGate
from anchor.config import Config
from anchor.core.checkpoint import NoteSigner
from anchor.core.taskhealth import TaskHealth, gauges, probe_value
from anchor.db import is_postgres_url
from anchor.db.leadership import (
    AdvisoryLockLeadership,
    Duties,
    Leadership,
    Role,
    SoleLeadership,
    leadership_gauges,
)
from anchor.db.tables import open_service_store
from anchor.errors import (
    AnchorError,
    ConfigError,
)
from anchor.http import ratelimit
from anchor.http.appkeys import (
    ANCHOR_CHANGES,
    AUTHENTICATOR_KEY,
    BATCHER,
    CHAIN,
    CHAIN_RPC,
    COMMITTER,
    CONFIG,
    DUTIES,
    HEALTH_PROBES,
    HTTP,
    ISSUERS,
    LIMITER,
    MERKLE_LOG,
    METRICS,
    RESOLVER,
    ROUTE_MODULES,
    STARTED,
    STATUS,
    STATUS_PUBLISHER,
    STORE,
    TASKS,
    HealthProbe,
)
from anchor.http.metrics import Metrics, gauge
from anchor.http.problems import make_runner, problems_and_metrics
from anchor.http.routes import (
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
from anchor.http.selfcheck import integrity_ctx
from anchor.log.grouping import GroupCall
from anchor.log.log import GroupCommitter, Log
from anchor.log.store import LogStore
from anchor.status.model import StatusSettings
from anchor.status.publisher import StatusPublisher
from anchor.status.repository import StatusRepository
from anchor.verify.identity import ed25519_key_for
from did_methods import build_resolver
from did_methods.ethr import EthrNetwork, ThreadedWeb3ChainReader

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Largest request body accepted (10,000 hex digests in JSON is about 700 KB)."""

ROUTE_MODULES_SERVED: tuple[ModuleType, ...] = (
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
"""The route modules, one ``RouteTableDef`` (``routes``) each, in the order they are added;
a module may also define ``openapi_paths() -> dict`` for the OpenAPI document."""

FETCHING_ROUTES = frozenset({"/v1/verify", "/1.0/identifiers/{did}"})
"""Public routes that make the service fetch on the caller's behalf: rate-limited per client
(``--fetch-rate``)."""


def _log_signer(config: Config) -> NoteSigner:
    key, _created = keys.generate_if_missing(config.log_key_path, "ed25519")  # logs creation
    seed = key.seed()
    return NoteSigner(config.origin, seed)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = await asyncio.to_thread(open_service_store, config.store_target)  # tables migrated
    app[STORE] = store
    app[MERKLE_LOG] = Log(store, _log_signer(config))
    app[ISSUERS] = IssuerRegistry(store)
    yield
    await asyncio.to_thread(store.close)


async def _leadership_ctx(app: web.Application) -> AsyncIterator[None]:
    """Who sequences (:mod:`anchor.db.leadership`): on PostgreSQL the replica holding the
    advisory lock, on SQLite this process. Duties added later start and stop with the role."""
    config = app[CONFIG]
    leadership: Leadership = (
        AdvisoryLockLeadership(config.database)
        if config.database is not None and is_postgres_url(config.database)
        else SoleLeadership()
    )
    if leadership.backend == "postgresql" and config.embedded_chain:
        logger.warning(
            "the embedded chain is this process's own: replicas sharing the database must"
            " anchor on one chain (--rpc-url and --contract)"
        )
    if leadership.backend == "postgresql" and config.status_key_dir is None:
        logger.warning(
            "the issuers' status keys are in this replica's data directory (%s): replicas"
            " sharing the database must share one --status-key-dir on shared storage",
            config.status_key_path,
        )
    duties = Duties(leadership, app[TASKS])
    app[DUTIES] = duties
    app[HEALTH_PROBES].append(_leadership_health)
    app[METRICS].add_gauge_source(lambda: leadership_gauges(leadership))
    deciding = asyncio.create_task(leadership.run(), name="leadership")
    following = asyncio.create_task(duties.run(), name="duties")
    watching = None
    if leadership.backend == "postgresql":  # another replica may find damage: stop here too
        watching = asyncio.create_task(_watch_failure(app[MERKLE_LOG]), name="failure-watch")
    yield
    if watching is not None:
        watching.cancel()
        await asyncio.wait({watching})
    await duties.close()
    await leadership.close()
    await deciding
    await following


FAILURE_WATCH_SECONDS = 2.0
"""How often a replica on a shared database looks for an integrity failure recorded there."""


async def _watch_failure(log: Log) -> None:
    """Enter the failed state within :data:`FAILURE_WATCH_SECONDS` of another replica
    recording one (its start-up check or the sequencer's background pass found damage).
    A failed read is retried at the next round."""
    while log.failure is None:
        try:
            await asyncio.to_thread(log.adopt_recorded_failure)
        except AnchorError as err:
            logger.debug("looking for a recorded integrity failure: %s", err.diagnostics())
        await asyncio.sleep(FAILURE_WATCH_SECONDS)


async def _leadership_health(app: web.Application) -> tuple[str, object, bool]:
    """This replica's role, and whether it reaches the database it shares."""
    status = app[DUTIES].leadership.status()
    return "leadership", status.to_json(), status.ok


async def _committer_ctx(app: web.Application) -> AsyncIterator[None]:
    committer = GroupCommitter(app[MERKLE_LOG])
    app[COMMITTER] = committer
    app[TASKS].append(committer.health)
    task = asyncio.create_task(committer.run(), name="group-commit")
    yield
    await committer.close()  # commits everything already accepted before shutting down
    await task


async def _ethr_networks(app: web.Application) -> tuple[EthrNetwork, ...]:
    """did:ethr on the anchoring chain: its registry is deployed once on the embedded
    chain, and named by ``--ethr-registry`` on an RPC chain (none given: no did:ethr)."""
    config = app[CONFIG]
    client = app[CHAIN]
    identity = client.identity
    if identity is None:
        return ()
    embedded = client.embedded
    if embedded is not None:
        registry = config.ethr_registry or await embedded.deploy_once(
            DID_REGISTRY, _chain_config(config).chain_key
        )
        w3, run = embedded.ethr_reader_web3()
        reader = ThreadedWeb3ChainReader(w3, registry, run=run)
        logger.warning(
            "did:ethr network %r: ERC-1056 registry at %s", config.ethr_network, registry
        )
        return (EthrNetwork(config.ethr_network, identity.chain_id, registry, reader),)
    if config.ethr_registry and config.rpc_url:
        return (
            EthrNetwork(
                config.ethr_network, identity.chain_id, config.ethr_registry, config.rpc_url
            ),
        )
    return ()


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    """Two client sessions with separate pools (see :mod:`anchor.outbound`): ``HTTP`` and
    ``RESOLVER`` verify callers' credentials (status lists, DID resolution); signers' DIDs
    are resolved through the authenticator's own session and resolver."""
    config = app[CONFIG]
    own = outbound.own_addresses(config.host, config.port)
    policy = config.outbound_networks
    session = outbound.client_session(policy, own, timeout=outbound.VERIFY_TIMEOUT)
    auth_session = outbound.client_session(policy, own, timeout=outbound.AUTH_TIMEOUT)
    app[HTTP] = session
    networks = await _ethr_networks(app)
    resolver = build_resolver(
        session,
        ca_file=config.ca_file,
        ethr_networks=networks,
        ethr_default_network=config.ethr_network,
    )
    app[RESOLVER] = resolver
    auth_resolver = build_resolver(
        auth_session,
        ca_file=config.ca_file,
        ethr_networks=networks,
        ethr_default_network=config.ethr_network,
    )
    registry = app[ISSUERS]

    async def resolve_key(keyid: str) -> bytes | None:
        return await ed25519_key_for(auth_resolver, keyid, "authentication")

    # concurrent requests share one registry read (one thread hop) per batch
    is_registered: GroupCall[str, bool] = GroupCall(registry.active_among)
    app[AUTHENTICATOR_KEY] = middleware.Authenticator(
        resolve_key=resolve_key,
        is_registered=is_registered,
        nonces=nonces.NonceStore(app[STORE]),
        public_base_url=config.public_url,
    )
    yield
    await session.close()
    await auth_session.close()


async def _status_ctx(app: web.Application) -> AsyncIterator[None]:
    """Status lists; versions published but not yet logged (a crash between the two
    steps) are appended to the log before serving."""
    service = await asyncio.to_thread(
        StatusRepository, app[STORE], StatusSettings.from_config(app[CONFIG])
    )
    app[STATUS] = service
    app[STATUS_PUBLISHER] = StatusPublisher(service, app[COMMITTER], app[RESOLVER])
    if app[MERKLE_LOG].failure is None:  # a log in the failed state appends nothing
        await asyncio.to_thread(service.log_pending, app[MERKLE_LOG])
    yield


async def _status_renewal_ctx(app: web.Application) -> AsyncIterator[None]:
    """Renews status lists whose validUntil is near, in the background (on the sequencer)."""
    async with app[STATUS_PUBLISHER].renewing(app[DUTIES]):
        yield


def _chain_config(config: Config) -> ChainConfig:
    key, created = keys.generate_if_missing(config.chain_key_path, "secp256k1")
    if created and not config.embedded_chain:
        logger.warning(
            "fund the new anchoring account %s on %s and authorise it on the contract",
            key.address,
            config.rpc_url,
        )
    return ChainConfig(
        chain_key=bytes.fromhex(key.to_hex().removeprefix("0x")),
        rpc_url=config.rpc_url,
        contract_address=config.contract,
        confirmations=config.confirmations,
        poll_interval=min(2.0, config.anchor_interval),
        reorg_depth=config.reorg_depth,
        embedded_dir=config.data_dir / "chain" if config.embedded_chain else None,
    )


async def _chain_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    client = await ChainClient.open(app[STORE], _chain_config(config))
    identity = await client.start()
    app[CHAIN] = client
    if client.embedded is not None:
        app[CHAIN_RPC] = RpcGate(client.embedded.control)
    where = "the embedded in-process chain" if config.embedded_chain else config.rpc_url
    logger.warning(
        "anchoring on %s (%s), LogAnchor at %s", where, identity.caip2, identity.contract
    )
    metrics = app[METRICS]
    store = app[STORE]

    def anchor_gauges() -> list[Metric]:
        counts = {state.value: 0 for state in AnchorState}
        rows = store.reader().execute(
            "SELECT a.state, count(*) FROM anchors a JOIN chains c ON a.chain = c.id"
            " WHERE c.current = 1 GROUP BY a.state"
        )
        for state, n in rows:
            counts[str(state)] = int(n)
        family = GaugeMetricFamily(
            "ler_anchor_anchors", "Anchors on the current chain by state", labels=["state"]
        )
        for state, n in counts.items():
            family.add_metric([state], n)
        return [
            family,
            gauge("ler_anchor_log_size", "Entries in the log", store.size()),
            *_chain_recovery_metrics(client),
        ]

    metrics.add_gauge_source(anchor_gauges)
    app[HEALTH_PROBES].append(_chain_health)
    yield
    await client.close()


async def _chain_health(app: web.Application) -> tuple[str, object, bool]:
    client = app[CHAIN]
    batcher = app[BATCHER]
    status = batcher.status()
    if not app[DUTIES].leadership.status().database_reachable:  # no pool timeouts here
        return "chain", {"ok": False, "error": "the shared database is out of reach"}, False
    try:  # the database, then the node
        anchors = await asyncio.to_thread(list_anchors, app[STORE], limit=1)
        size = await asyncio.to_thread(app[STORE].size)
        head = await client.backend.block("latest")
    except AnchorError as err:
        return "chain", {"ok": False, "error": err.detail}, False
    last = anchors[0] if anchors else None
    leading = app[DUTIES].leadership.is_leader  # the batcher runs on the sequencer only
    healthy = (status.running or not leading) and status.consecutive_errors == 0
    body: dict[str, object] = {
        "ok": healthy,
        "chain": client.identity.caip2 if client.identity else None,
        "headBlock": head.number if head else None,
        "headAgeSeconds": round(max(0.0, time.time() - head.timestamp), 1) if head else None,
        "lastAnchor": None if last is None else last.to_json(),
        "lastAnchorAgeSeconds": None
        if last is None
        else round(time.time() - last.created_ms / 1000, 1),
        "anchoredTreeSize": None if last is None else last.size,
        "lagEntries": None if last is None else size - last.size,
        "batcherErrors": status.total_errors,
        "lastError": status.last_error,
    }
    reorgs = await client.reorg_status()
    body["reorgedAnchors"] = reorgs.count
    body["lastReorg"] = None if reorgs.last is None else reorgs.last.to_json()
    body["reorgedNotFinal"] = len(reorgs.unrecovered)
    ok = healthy and not reorgs.unrecovered
    body["ok"] = ok
    return "chain", body, ok


def _chain_recovery_metrics(client: ChainClient) -> list[Metric]:
    """Counters of the chain client's recoveries since start (final anchors lost to deep
    reorganisations, forgotten transactions broadcast again)."""
    reorgs = CounterMetricFamily(
        "ler_anchor_final_anchor_reorgs",
        "Final anchors removed by a reorganisation deeper than the confirmations",
        value=client.final_reorg_count,
    )
    resent = CounterMetricFamily(
        "ler_anchor_rebroadcasts",
        "Anchor transactions broadcast again because the node had forgotten them",
        value=client.rebroadcasts,
    )
    return [reorgs, resent]


async def _storage_health(app: web.Application) -> tuple[str, object, bool]:
    """Unhealthy while the last write to the database failed for want of space, a
    read-only file system or an I/O error (until a write commits again)."""
    failure = app[STORE].write_error
    body = {"ok": failure is None, "lastWriteError": None if failure is None else failure.detail}
    return "storage", body, failure is None


async def _tasks_health(app: web.Application) -> tuple[str, object, bool]:
    """Each background task: unhealthy while its last round failed or once it stopped."""
    tasks: list[TaskHealth] = app[TASKS]
    value, ok = probe_value(tasks)
    return "tasks", value, ok


async def _batcher_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    metrics = app[METRICS]

    def on_error(err: AnchorError) -> None:
        metrics.chain_errors.labels(err.slug).inc()
        logger.warning("anchoring: %s", err.diagnostics())

    batcher = Batcher(
        app[MERKLE_LOG],
        app[CHAIN],
        BatcherConfig(
            anchor_interval=config.anchor_interval,
            anchor_size=config.anchor_size,
            poll_interval=min(2.0, config.anchor_interval),
            max_backoff=max(60.0, config.anchor_interval),
        ),
        on_error=on_error,
    )
    app[BATCHER] = batcher
    app[ANCHOR_CHANGES] = batcher.changes
    duties = app[DUTIES]

    async def anchor() -> None:
        batcher.reopen()
        await batcher.run()

    async def watch() -> None:
        await _watch_anchors(app[STORE], batcher, min(1.0, config.anchor_interval))

    await duties.add("batcher", anchor, stop=batcher.close, health=batcher.health)
    await duties.add("anchor-watch", watch, role=Role.REPLICA)
    yield
    await duties.remove("anchor-watch")
    await duties.remove("batcher")


async def _watch_anchors(store: LogStore, batcher: Batcher, interval: float) -> None:
    """On a replica: wake receipt waits when the sequencer changed an anchor (it notifies
    only its own waiters), by reading the anchors' newest change every ``interval`` seconds.
    Errors are retried on the next read (the health of the database shows elsewhere)."""

    def newest() -> tuple[int, int]:
        row = store.reader().execute("SELECT count(*), max(updated) FROM anchors").fetchone()
        return int(row[0]), int(row[1] or 0)

    seen: tuple[int, int] | None = None
    while True:
        try:
            now = await asyncio.to_thread(newest)
        except AnchorError as err:
            logger.debug("watching anchors: %s", err.diagnostics())
        else:
            if now != seen:
                seen = now
                batcher.changes.notify()
        await asyncio.sleep(interval)


def create_app(config: Config) -> web.Application:
    """Build the application for ``config`` (nothing is opened until it starts)."""
    middlewares: list[Middleware] = [problems_and_metrics]
    if config.page_origins:  # outermost: its headers go on problem responses too
        middlewares.insert(0, page_routes.cors)
    if config.fetch_rate > 0:  # inside problems_and_metrics, which answers its 429s
        limiter = ratelimit.RateLimiter(config.fetch_rate)
        middlewares.append(ratelimit.middleware(limiter, FETCHING_ROUTES))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BYTES)
    if config.fetch_rate > 0:
        app[LIMITER] = limiter  # routes charge the fetches they cause
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[STARTED] = time.time()
    probes: list[HealthProbe] = [_storage_health, _tasks_health]
    app[HEALTH_PROBES] = probes
    tasks: list[TaskHealth] = []
    app[TASKS] = tasks
    app[METRICS].add_gauge_source(lambda: gauges(tasks))
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_leadership_ctx)
    app.cleanup_ctx.append(integrity_ctx)  # checks the log before anything uses it
    app.cleanup_ctx.append(_chain_ctx)
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(_committer_ctx)
    app.cleanup_ctx.append(_status_ctx)
    app.cleanup_ctx.append(_status_renewal_ctx)
    app.cleanup_ctx.append(_batcher_ctx)
    app.cleanup_ctx.append(verify_routes.verifier_ctx)
    app[ROUTE_MODULES] = ROUTE_MODULES_SERVED
    for module in ROUTE_MODULES_SERVED:
        app.router.add_routes(module.routes)
    return app


async def serve(config: Config) -> None:
    """Run the service until SIGINT or SIGTERM; print where it listens and what it anchors
    on. Shutdown is graceful: the listener closes, then the cleanup contexts run in reverse
    (the batcher stops, the group committer commits everything it accepted, the store
    closes) before the process exits."""
    app = create_app(config)
    runner = make_runner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as err:  # the port is taken, or the address is not this host's
            raise ConfigError(
                f"cannot listen on {config.host}:{config.port}: {err.strerror or err}",
                hint="choose another --port or --host, or stop what is using it",
            ) from None
        chain = "the embedded in-process chain" if config.embedded_chain else config.rpc_url
        database = config.database_shown
        print(
            f"LER Anchor listening on http://{config.host}:{config.port} "
            f"(database {database}, anchoring on {chain})",
            flush=True,
        )
        await stop.wait()
        print("LER Anchor shutting down: finishing in-flight commits", flush=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
