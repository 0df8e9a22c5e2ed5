"""Several ``serve`` replicas on one PostgreSQL database behind one public URL (issue 18):
real ``serve`` processes over sockets, a real PostgreSQL server and a real anvil node.

Signed single-digest submissions are spread over the replicas while the sequencer is killed
with ``kill -9``: another replica takes over within 10 s, every acknowledged (2xx) entry is in
the log and gets a receipt, no size is signed twice, and an auditor's replay of the log
against the chain is clean. A signed request replayed to another replica is refused (the
nonces are in the shared database)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import psycopg
import pytest
from helpers.anvil import AnvilNode
from helpers.service import ServiceProcess

from anchor.chain.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.client.signing import signed_headers
from anchor.keys import ChainAccountKey, Ed25519Key, generate_if_missing, save_key
from anchor.log.logfiles import HttpSource
from anchor.verify.audit import audit, read_anchor_events

PUBLIC_URL = "http://anchor.test"
"""The one URL clients use (a reverse proxy's); every replica checks signatures against it."""

TOKEN = "operator-secret-token"
FAILOVER_LIMIT_SECONDS = 10.0
PER_ROUND = 25
"""Acknowledged submissions before each kill, and after the last one."""
PAUSE = 0.03
"""Each client's pause between submissions (about 100 a second from three clients, so the
receipts of everything sent during a failover are quick to check)."""


class Cluster:
    """``serve`` replicas sharing a PostgreSQL database, the log key and the chain account;
    each has its own data directory (and its own lock on it)."""

    def __init__(self, root: Path, database: str, node: AnvilNode, contract: str) -> None:
        self.root = root
        keys = root / "keys"
        self.log_key = keys / "log-key.jwk"
        generate_if_missing(self.log_key, "ed25519")
        self.chain_key = keys / "chain-key.hex"
        save_key(ChainAccountKey.from_hex(node.accounts[0].key.hex()), self.chain_key)
        self.args = [
            "--database",
            database,
            "--rpc-url",
            node.rpc_url,
            "--contract",
            contract,
            "--confirmations",
            "1",
            "--anchor-interval",
            "0.5",
            "--public-url",
            PUBLIC_URL,
            "--operator-token",
            TOKEN,
            "--log-key-file",
            str(self.log_key),
            "--chain-key-file",
            str(self.chain_key),
        ]
        self.replicas: list[ServiceProcess] = []
        self.killed: list[ServiceProcess] = []

    async def start(self, count: int) -> None:
        for _ in range(count):
            data = self.root / f"replica-{len(self.replicas)}" / "data"
            data.parent.mkdir(parents=True)
            self.replicas.append(ServiceProcess(data, *self.args))
        await asyncio.gather(*(r.wait_ready() for r in self.replicas))

    @property
    def alive(self) -> list[ServiceProcess]:
        return [r for r in self.replicas if r not in self.killed]

    async def roles(self, session: aiohttp.ClientSession) -> dict[int, str | None]:
        """Each live replica's role from ``/healthz`` (None: it did not answer)."""

        async def role(replica: ServiceProcess) -> str | None:
            try:
                async with session.get(replica.url + "/healthz") as resp:
                    body = await resp.json()
                    return str(body["leadership"]["role"])
            except aiohttp.ClientError:
                return None

        found = await asyncio.gather(*(role(r) for r in self.alive))
        return {r.port: value for r, value in zip(self.alive, found, strict=True)}

    async def sequencer(self, session: aiohttp.ClientSession, timeout: float) -> ServiceProcess:
        """The one live replica that reports itself the sequencer (waits up to ``timeout``);
        fails if two ever do."""
        deadline = time.monotonic() + timeout
        while True:
            roles = await self.roles(session)
            leaders = [port for port, role in roles.items() if role == "sequencer"]
            assert len(leaders) <= 1, f"two sequencers at once: {roles}"
            if leaders:
                (leader,) = [r for r in self.alive if r.port == leaders[0]]
                return leader
            assert time.monotonic() < deadline, f"no sequencer within {timeout} s: {roles}"
            await asyncio.sleep(0.1)

    def kill(self, replica: ServiceProcess) -> None:
        """``kill -9``: no shutdown of any kind."""
        replica.proc.kill()
        replica.proc.wait()
        self.killed.append(replica)

    def stop(self) -> list[str]:
        """Stop every replica (all asked at once); their standard error."""
        for replica in self.alive:
            replica.proc.send_signal(signal.SIGTERM)
        return [r.stop() for r in self.replicas]


@pytest.fixture
def node(anvil_factory: Callable[..., AnvilNode]) -> AnvilNode:
    return anvil_factory()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, node: AnvilNode) -> Iterator[Cluster]:
    contract = deploy(node.web3(), load_artifact(LOG_ANCHOR), node.accounts[0])
    made = Cluster(tmp_path, pg_url, node, contract.address)
    try:
        yield made
    finally:
        logs = made.stop()
        for text in logs:
            assert "Traceback" not in text, text[-3000:]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as opened:
        yield opened


async def _register(session: aiohttp.ClientSession, replica: ServiceProcess) -> Ed25519Key:
    key = Ed25519Key.generate()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"did": key.did, "name": "Replica College"}
    async with session.post(replica.url + "/v1/admin/issuers", json=body, headers=auth) as resp:
        assert resp.status == 201, await resp.text()
    return key


def _signed(key: Ed25519Key, digest: str) -> tuple[bytes, dict[str, str]]:
    """A signed single-digest submission to the public URL."""
    raw = json.dumps({"digests": [digest]}).encode()
    headers = signed_headers("POST", PUBLIC_URL + "/v1/entries", raw, key, key.verification_method)
    headers["Content-Type"] = "application/json"
    return raw, headers


async def _post(
    session: aiohttp.ClientSession, replica: ServiceProcess, raw: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.post(replica.url + "/v1/entries", data=raw, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


class Ingest:
    """Signed single-digest submissions from ``workers`` concurrent clients, spread round
    robin over the live replicas (a proxy that stops sending to a dead one)."""

    def __init__(self, cluster: Cluster, session: aiohttp.ClientSession, key: Ed25519Key) -> None:
        self.cluster = cluster
        self.session = session
        self.key = key
        self.acknowledged: list[str] = []
        self.lost = 0
        """Requests whose replica died under them (no answer: not acknowledged)."""
        self.refused: list[tuple[int, Any]] = []
        """Answers other than 2xx (none expected, failover or not)."""
        self._numbers = itertools.count()
        self._stop = asyncio.Event()

    async def _worker(self) -> None:
        turn = itertools.count()
        while not self._stop.is_set():
            alive = self.cluster.alive
            replica = alive[next(turn) % len(alive)]
            digest = hashlib.sha256(f"replicas {next(self._numbers)}".encode()).hexdigest()
            raw, headers = _signed(self.key, digest)
            try:
                status, body = await _post(self.session, replica, raw, headers)
            except aiohttp.ClientError:  # the replica died under the request
                self.lost += 1
                continue
            if 200 <= status < 300:
                self.acknowledged.append(digest)
            else:
                self.refused.append((status, body))
            await asyncio.sleep(PAUSE)

    async def until(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} acknowledged"
            await asyncio.sleep(0.02)

    async def run(self, workers: int = 3) -> None:
        await asyncio.gather(*(self._worker() for _ in range(workers)))

    def stop(self) -> None:
        self._stop.set()


async def _check_everything_acknowledged_is_logged_and_anchored(
    cluster: Cluster, session: aiohttp.ClientSession, key: Ed25519Key, acknowledged: list[str]
) -> None:
    survivors = cluster.alive
    submitter = {"submitter": key.did}
    gate = asyncio.Semaphore(8)

    async def receipt(i: int, digest: str) -> dict[str, Any]:
        replica = survivors[i % len(survivors)]  # receipts from every replica, not only the leader
        async with gate:
            url = f"{replica.url}/v1/receipts/{digest}"
            async with session.get(url, params={**submitter, "wait": "30"}) as resp:
                assert resp.status == 200, (digest, resp.status, await resp.text())
                body: dict[str, Any] = await resp.json()
                return body

    receipts = await asyncio.gather(*(receipt(i, d) for i, d in enumerate(acknowledged)))
    assert len({r["leafIndex"] for r in receipts}) == len(acknowledged)


async def _audit_is_clean(
    cluster: Cluster, session: aiohttp.ClientSession, node: AnvilNode, contract: str, size: int
) -> None:
    replica = cluster.alive[0]
    async with session.get(replica.url + "/v1/log") as resp:
        vkey = (await resp.json())["verifierKey"]
    events = await asyncio.to_thread(read_anchor_events, node.web3(), contract)
    report = await audit(events, HttpSource(replica.url, session), expected_key=vkey)
    assert report.clean, report.discrepancies
    assert report.entries >= size
    assert report.matched == len(events) > 0


def _no_size_signed_twice(database: str) -> int:
    """Every checkpoint row is the only one of its size (and so, one signature per size);
    returns how many there are."""
    with psycopg.connect(database) as conn:
        twice = conn.execute(
            "SELECT size, count(*) FROM checkpoints GROUP BY size HAVING count(*) > 1"
        ).fetchall()
        (count,) = conn.execute("SELECT count(*) FROM checkpoints").fetchone() or (0,)
    assert twice == []
    return int(count)


@pytest.mark.parametrize(("replicas", "kills"), [(2, 1), (3, 2)])
async def test_the_sequencer_killed_during_ingest_loses_nothing(
    cluster: Cluster,
    session: aiohttp.ClientSession,
    node: AnvilNode,
    pg_url: str,
    replicas: int,
    kills: int,
) -> None:
    await cluster.start(replicas)
    leader = await cluster.sequencer(session, FAILOVER_LIMIT_SECONDS)
    key = await _register(session, cluster.replicas[0])
    ingest = Ingest(cluster, session, key)
    running = asyncio.create_task(ingest.run())
    failovers: list[float] = []
    try:
        for round_ in range(kills):
            await ingest.until(PER_ROUND * (round_ + 1))
            cluster.kill(leader)
            killed_at = time.monotonic()
            leader = await cluster.sequencer(session, FAILOVER_LIMIT_SECONDS)
            failovers.append(time.monotonic() - killed_at)
        await ingest.until(PER_ROUND * (kills + 1))  # ingest goes on under the new sequencer
    finally:
        ingest.stop()
        await running
    acknowledged = ingest.acknowledged
    assert ingest.refused == []  # appends never wait for a sequencer
    assert all(t < FAILOVER_LIMIT_SECONDS for t in failovers), failovers
    await _check_everything_acknowledged_is_logged_and_anchored(cluster, session, key, acknowledged)
    signed = await asyncio.to_thread(_no_size_signed_twice, pg_url)
    assert signed >= 1
    contract = cluster.args[cluster.args.index("--contract") + 1]
    await _audit_is_clean(cluster, session, node, contract, len(acknowledged))
    print(
        f"{replicas} replicas: failovers {[round(t, 1) for t in failovers]} s,"
        f" {len(acknowledged)} acknowledged, {ingest.lost} lost with a killed replica"
    )
    metrics = await _metrics(session, leader)
    assert "ler_anchor_sequencer 1.0" in metrics
    for replica in cluster.alive:
        if replica is not leader:
            assert "ler_anchor_sequencer 0.0" in await _metrics(session, replica)


async def _metrics(session: aiohttp.ClientSession, replica: ServiceProcess) -> str:
    async with session.get(replica.url + "/metrics") as resp:
        return await resp.text()


def test_static_tiles_export_from_the_shared_database(tmp_path: Path, pg_url: str) -> None:
    """``log export --tiles --database URL``: the CDN copy comes from the database the
    replicas share (read-only), the same files as from a SQLite file."""
    from anchor.cli.main import main
    from anchor.core.checkpoint import NoteSigner
    from anchor.core.entry import Entry, EntryKind
    from anchor.log.log import Log
    from anchor.log.store import open_store

    store = open_store(pg_url)
    try:
        log = Log(store, NoteSigner("replicas.test/log", hashlib.sha256(b"k").digest()))
        digests = [hashlib.sha256(i.to_bytes(2, "big")).digest() for i in range(300)]
        log.append([Entry(EntryKind.CREDENTIAL, d, "did:example:college") for d in digests])
        log.checkpoint()
    finally:
        store.close()
    out = tmp_path / "static"
    assert main(["log", "export", "--tiles", "--database", pg_url, "--out", str(out)]) == 0
    assert (out / "checkpoint").read_text().splitlines()[1] == "300"
    assert (out / "tile" / "0" / "000").stat().st_size == 256 * 32


async def test_replays_and_integrity_failures_are_shared_by_the_replicas(
    cluster: Cluster, session: aiohttp.ClientSession, pg_url: str
) -> None:
    """A signed request replayed to another replica is refused (the nonces are shared); an
    integrity failure one replica records stops the others too."""
    await cluster.start(2)
    first, second = cluster.replicas
    leader = await cluster.sequencer(session, FAILOVER_LIMIT_SECONDS)
    for replica in cluster.replicas:  # both healthy, whichever role
        async with session.get(replica.url + "/healthz") as resp:
            body = await resp.json()
            assert resp.status == 200, body
        role = "sequencer" if replica is leader else "replica"
        assert body["leadership"]["role"] == role
        assert body["leadership"]["databaseReachable"] is True
        assert ("batcher" in body["tasks"]) == (replica is leader)
    key = await _register(session, first)
    raw, headers = _signed(key, hashlib.sha256(b"replayed").hexdigest())
    status, _ = await _post(session, first, raw, headers)
    assert status == 201
    for replica in (second, first):  # the other replica, then the same one
        status, problem = await _post(session, replica, raw, headers)
        assert status == 401
        assert problem["reason"] == "replayed-nonce"
    fresh, fresh_headers = _signed(key, hashlib.sha256(b"fresh").hexdigest())
    status, _ = await _post(session, second, fresh, fresh_headers)
    assert status == 201  # the issuer registered through the first is known to the second

    # one replica found damage (as its start-up check or the background pass records it)
    record = json.dumps({"reason": "leaf 0 does not hash to its stored hash", "at": 0})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('integrity_failure', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (record,),
        )
    deadline = time.monotonic() + FAILOVER_LIMIT_SECONDS
    for replica in cluster.replicas:
        while True:
            async with session.get(replica.url + "/healthz") as resp:
                integrity = (await resp.json())["integrity"]
            if integrity["state"] == "failed":
                assert resp.status == 503
                assert "leaf 0 does not hash" in integrity["reason"]
                break
            assert time.monotonic() < deadline, "a replica did not see the recorded failure"
            await asyncio.sleep(0.1)
        more, more_headers = _signed(key, hashlib.sha256(replica.url.encode()).hexdigest())
        status, problem = await _post(session, replica, more, more_headers)
        assert status == 503
        assert problem["type"].endswith("/integrity-failure")


def test_database_takes_a_postgresql_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--database`` is for PostgreSQL; a file path is refused in one line saying what to do."""
    from anchor.cli.main import main

    code = main(["serve", "--data-dir", str(tmp_path), "--database", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "PostgreSQL URL" in err
    assert "--db" in err


async def test_status_lists_in_process_on_postgresql(
    aiohttp_client: Any, tmp_path: Path, pg_url: str
) -> None:
    """The status list API of one service on PostgreSQL (in process, embedded chain):
    allocation, a status change, the list served, every version listed in publication order
    for auditors, and a signed submission."""
    from helpers.service import allocate, list_id_of, new_issuer, post_signed, service_config
    from helpers.service import set_statuses as set_status

    from anchor.http.app import create_app

    config = service_config(tmp_path, database=pg_url, status_list_entries=1024)
    client = await aiohttp_client(create_app(config))
    issuer = await new_issuer(client)
    (entry,) = await allocate(client, issuer, "revocation")
    list_id = list_id_of(entry)
    change = [{"index": entry["statusListIndex"], "value": 1}]
    assert (await set_status(client, issuer, list_id, change)).status == 200
    listed = await client.get(f"/v1/status-lists/{list_id}")
    assert listed.status == 200
    versions = await (await client.get("/v1/status-versions")).json()
    numbers = [v["seq"] for v in versions["versions"]]
    assert len(numbers) == 2
    assert numbers == sorted(numbers)
    digest = hashlib.sha256(b"in process").hexdigest()
    assert (await post_signed(client, issuer, {"digests": [digest]})).status == 201


class _Link:
    """A TCP port on 127.0.0.1 forwarding to the PostgreSQL server's unix socket, in a
    thread of its own (the service's database calls block their threads, never its loop).
    :meth:`cut` drops every connection and refuses new ones (the database is out of reach);
    :meth:`mend` lets them through again."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = 0
        self.open = True
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._drop()  # every connection closed: nobody waits on one for ever
        self._loop.run_until_complete(asyncio.sleep(0.1))
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def _drop(self) -> None:
        self.open = False
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self._drop)

    def mend(self) -> None:
        self.open = True

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def link(pg_url: str) -> Iterator[_Link]:
    """A cuttable link to the test database's server (closed after the service stopped)."""
    socket_dir = parse_qs(urlsplit(pg_url).query)["host"][0]
    opened = _Link(f"{socket_dir}/.s.PGSQL.5432")
    try:
        yield opened
    finally:
        opened.close()


async def test_a_replica_that_loses_the_database_says_so_and_recovers(
    link: _Link, aiohttp_client: Any, tmp_path: Path, pg_url: str
) -> None:
    """The database out of reach (every connection dropped, new ones refused): the replica
    stops sequencing, ``/healthz`` answers 503 saying the database is unreachable, no
    background task dies; once the database is back it sequences again by itself."""
    from helpers.service import service_config

    from anchor.http.app import create_app

    parts = urlsplit(pg_url)
    url = f"postgresql://{parts.username}@127.0.0.1:{link.port}{parts.path}"
    client = await aiohttp_client(create_app(service_config(tmp_path, database=url)))

    async def health() -> tuple[int, dict[str, Any]]:
        resp = await client.get("/healthz")
        return resp.status, await resp.json()

    deadline = time.monotonic() + 20
    while (await health())[1]["leadership"]["role"] != "sequencer":
        assert time.monotonic() < deadline, "never the sequencer"
        await asyncio.sleep(0.1)
    link.cut()
    deadline = time.monotonic() + 10
    while True:
        status, body = await health()
        if not body["leadership"]["databaseReachable"]:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)
    assert status == 503
    assert body["leadership"]["role"] == "replica"
    assert body["leadership"]["lastError"]
    assert body["store"]["ok"] is False
    assert body["chain"]["ok"] is False
    deadline = time.monotonic() + 30  # its round ends first (or is cancelled after 15 s)
    while "batcher" in body["tasks"]:  # it stops with the role
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)
        status, body = await health()
    assert status == 503
    link.mend()
    deadline = time.monotonic() + 30
    while True:
        status, body = await health()
        if status == 200 and body["leadership"]["role"] == "sequencer":
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)
    assert body["leadership"]["terms"] == 2
    assert body["tasks"]["batcher"]["running"] is True
