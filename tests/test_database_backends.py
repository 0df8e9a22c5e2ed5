"""Every table of the service on SQLite and on PostgreSQL: the migrations, a database of the
previous release, ``--database`` on the commands, backup and restore through PostgreSQL, and
two service instances sharing one database.

Real components only: SQLite files, a real PostgreSQL server (``conftest.postgres``), the real
application over a socket, the embedded chain, the real CLI entry point.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from helpers.service import (
    POSTGRES_INSTALL_HINT,
    PostgresServer,
    allocate,
    database_settings,
    list_id_of,
    new_issuer,
    ok_json,
    post_signed,
    run_cli,
    service_config,
    set_statuses,
    start_postgres,
)
from helpers.system import missing
from pytest_aiohttp import AiohttpClient

from anchor.auth.issuers import IssuerRegistry
from anchor.chain import AnchorState, list_anchors
from anchor.client.signing import signed_headers
from anchor.db.migrations import column_exists
from anchor.db.pgbackup import TABLES, restore_postgres
from anchor.db.tables import FEATURES_KEY, FEATURES_VERSION, open_service_store
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS, STATUS
from anchor.keys import Ed25519Key
from anchor.log.store import LogStore, open_store
from anchor.status import repository
from anchor.status.model import StatusSettings
from anchor.status.repository import StatusRepository

OLD_DATABASE = Path(__file__).resolve().parent / "databases" / "before-feature-migrations.db"


def _versions(store: LogStore, tmp_path: Path) -> list[tuple[int, str, int]]:
    repository = StatusRepository(store, StatusSettings(data_dir=tmp_path))
    return [(seq, v.list_id, v.version) for seq, v in repository.all_versions(0, 1000)]


# --- migrations ---------------------------------------------------------------------------


def test_every_table_is_made_once_by_the_migrations(database: str) -> None:
    store = open_service_store(database)
    try:
        assert store.meta(FEATURES_KEY) == str(FEATURES_VERSION)
        missing = [table for table in TABLES if not store.has_table(table)]
        assert missing == []
        assert column_exists(store.reader(), store.db.dialect, "status_versions", "seq")
    finally:
        store.close()
    again = open_service_store(database)  # current: nothing to do, nothing fails
    try:
        assert again.meta(FEATURES_KEY) == str(FEATURES_VERSION)
        assert IssuerRegistry(again).list() == []
    finally:
        again.close()


def test_a_database_of_the_previous_release_opens_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copy(OLD_DATABASE, path)
    store = open_service_store(path, create=False)
    try:
        assert store.meta(FEATURES_KEY) == str(FEATURES_VERSION)
        assert store.size() == 13
        [anchor] = list_anchors(store, states=(AnchorState.INCLUDED,))
        assert anchor.size == 13
        assert anchor.root == store.root(13)
        assert len(IssuerRegistry(store).list()) == 1
        versions = _versions(store, tmp_path)
        assert [seq for seq, _, _ in versions] == [1, 2, 3]  # the rowids, as published
        assert [version for _, _, version in versions] == [1, 2, 3]
    finally:
        store.close()


def test_a_database_of_the_previous_release_restores_into_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    """Its backup (the file itself) is checked against the anchor it recorded, migrated, and
    loaded: the same log, anchors, issuers and status versions with their numbers."""
    snapshot, checked = restore_postgres(OLD_DATABASE, pg_url, None)
    assert (snapshot.size, checked) == (13, 1)
    store = open_service_store(pg_url, create=False)
    try:
        assert store.root(13) == snapshot.root
        assert [seq for seq, _, _ in _versions(store, tmp_path)] == [1, 2, 3]
        assert len(IssuerRegistry(store).list()) == 1
        [anchor] = list_anchors(store, states=(AnchorState.INCLUDED,))
        assert anchor.root == snapshot.root
    finally:
        store.close()


# --- the service on both backends, and two instances on one database ------------------------


async def test_two_instances_lose_no_status_update_and_share_nonces(
    aiohttp_client: AiohttpClient, tmp_path: Path, database: str
) -> None:
    """Two applications on one database (each with its own data folder, the same keys, one
    shared status key directory): the issuer's status key uploaded to one is the other's too,
    revocations sent to both at once all land in the list, and a signed request accepted by one
    is a replay to the other."""
    keys = {
        "log_key_file": tmp_path / "log-key.jwk",
        "chain_key_file": tmp_path / "chain.hex",
        "status_key_dir": tmp_path / "status-keys",
    }
    settings = {**database_settings(database), **keys, "anchor_interval": 3600.0}
    first: TestClient = await aiohttp_client(
        create_app(service_config(tmp_path / "one", **settings))
    )
    second: TestClient = await aiohttp_client(
        create_app(service_config(tmp_path / "two", **settings))
    )
    issuer = await new_issuer(first)  # uploads its status key to the first instance only
    assert second.app[STATUS].keys.signing_key(issuer.did) is not None
    entries = await allocate(first, issuer, count=16)
    list_id = list_id_of(entries[0])
    indexes = [int(e["statusListIndex"]) for e in entries]
    answers = await asyncio.gather(
        *(
            set_statuses((first, second)[n % 2], issuer, list_id, [{"index": i, "value": 1}])
            for n, i in enumerate(indexes)
        )
    )
    assert [a.status for a in answers] == [200] * len(indexes)
    bits = second.app[STATUS].current_bits(list_id)
    assert sorted(bits.nonzero_indexes()) == sorted(indexes)  # every update landed, none lost
    history = await ok_json(await second.get(f"/v1/status-lists/{list_id}/history"))
    assert sorted(int(change["index"]) for change in history["changes"]) == sorted(indexes)
    versions = [v.version for v in first.app[STATUS].versions(list_id)]
    assert versions == list(range(1, len(indexes) + 2))  # one version per update, in order
    body = b'{"digests": ["' + b"ab" * 32 + b'"]}'
    url = str(first.make_url("/v1/entries"))
    headers = signed_headers("POST", url, body, issuer, issuer.verification_method)
    headers["Content-Type"] = "application/json"
    accepted = await first.post("/v1/entries", data=body, headers=headers)
    assert accepted.status == 201, await accepted.text()
    headers["Host"] = url.split("/")[2]
    replayed = await second.post("/v1/entries", data=body, headers=headers)
    assert replayed.status == 401
    assert (await replayed.json())["reason"] == "replayed-nonce"


# --- --database on the commands -----------------------------------------------------------


async def test_operator_commands_take_database(
    capsys: pytest.CaptureFixture[str],
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    did = Ed25519Key.generate().did
    code, out, err = await run_cli(capsys, "issuer", "add", did, "--database", pg_url)
    assert code != 0  # an operator command makes no database: serve does, once
    assert "is not an LER Anchor database" in err
    assert len(err.strip().splitlines()) == 1
    open_service_store(pg_url).close()  # as `serve --database` does when it starts
    code, out, err = await run_cli(capsys, "issuer", "add", did, "--database", pg_url)
    assert (code, err) == (0, ""), err
    monkeypatch.setenv("LER_ANCHOR_DATABASE", pg_url)  # the environment, read by the config
    code, out, err = await run_cli(capsys, "issuer", "list", "--json")
    assert code == 0, err
    assert did in out
    code, out, err = await run_cli(capsys, "log", "info", "--json")
    assert code == 0, err
    assert '"size": 0' in out
    code, out, err = await run_cli(capsys, "issuer", "remove", did)
    assert code == 0, err
    code, out, err = await run_cli(capsys, "status", "export", "--out", str(tmp_path / "lists"))
    assert code == 0, err
    assert "exported 0 status list(s)" in out
    code, out, err = await run_cli(capsys, "log", "check")
    assert code == 0, err


async def test_a_bad_or_unreachable_database_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = await run_cli(capsys, "issuer", "list", "--database", "mysql://x/y")
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "PostgreSQL URL" in err
    unreachable = f"postgresql://someone:hunter22@/nodb?host={tmp_path}&connect_timeout=2"
    for argv in (("issuer", "list"), ("log", "info"), ("backup", "--out", str(tmp_path / "b"))):
        code, out, err = await run_cli(capsys, *argv, "--database", unreachable)
        assert code != 0, argv
        assert out == "", argv
        assert len(err.strip().splitlines()) == 1, err
        assert "hunter22" not in err
        assert "Traceback" not in err


# --- backup and restore through PostgreSQL --------------------------------------------------


async def test_backup_from_and_restore_into_postgresql(
    aiohttp_client: AiohttpClient,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    pg_url: str,
    postgres: PostgresServer,
) -> None:
    config = service_config(tmp_path, database=pg_url, anchor_size=4)
    client: TestClient = await aiohttp_client(create_app(config))
    issuer = await new_issuer(client)
    for i in range(6):
        answer = await post_signed(client, issuer, {"digests": [f"{i:064x}"]})
        assert answer.status == 201, await answer.text()
    entries = await allocate(client, issuer, count=2)
    list_id = list_id_of(entries[0])
    index = int(entries[0]["statusListIndex"])
    await ok_json(await set_statuses(client, issuer, list_id, [{"index": index, "value": 1}]))
    for _ in range(200):  # the embedded chain includes an anchor within a few rounds
        if list_anchors(client.app[STATUS].store, states=(AnchorState.INCLUDED,)):
            break
        await asyncio.sleep(0.1)
    await client.close()

    out = tmp_path / "backup.db"
    code, text, err = await run_cli(capsys, "backup", "--database", pg_url, "--out", str(out))
    assert code == 0, err
    assert err == ""  # nothing but the result, on stdout
    copy = open_service_store(out, create=False, read_only=True)
    source = open_service_store(pg_url)
    try:
        size = source.size()
        assert copy.size() == size
        assert copy.root(size) == source.root(size)
        assert _versions(copy, tmp_path) == _versions(source, tmp_path)
        recorded = list_anchors(source, states=(AnchorState.INCLUDED, AnchorState.FINAL))
        assert recorded, "no anchor was included"
    finally:
        copy.close()
        source.close()
    assert base64.b64encode(_root(out)).decode() in text  # the command names what it wrote

    empty = postgres.create_database(f"{pg_url.rsplit('/', 1)[1].split('?')[0]}_r")
    code, text, err = await run_cli(capsys, "restore", str(out), "--database", empty)
    assert code == 0, err
    assert err == ""
    assert empty.split("@")[1] in text  # names the database it restored to
    assert "anchored root(s) recorded in the backup reproduced" in text
    restored = open_service_store(empty)
    try:
        assert restored.size() == size
        assert _versions(restored, tmp_path) == _versions(open_service_store(out), tmp_path)
    finally:
        restored.close()
    code, text, err = await run_cli(capsys, "restore", str(out), "--database", empty)
    assert code != 0
    assert "not empty" in err
    assert len(err.strip().splitlines()) == 1

    # the restored database serves: new ids and sequence numbers follow the loaded ones
    again: TestClient = await aiohttp_client(
        create_app(service_config(tmp_path, database=empty, anchor_size=4))
    )
    await ok_json(
        await set_statuses(
            again, issuer, list_id, [{"index": int(entries[1]["statusListIndex"]), "value": 1}]
        )
    )
    answer = await post_signed(again, issuer, {"digests": ["ee" * 32]})
    assert answer.status == 201, await answer.text()
    seqs = [seq for seq, _, _ in _versions(again.app[STATUS].store, tmp_path)]
    assert seqs == sorted(set(seqs))
    assert len(seqs) >= 3
    assert again.app[ISSUERS].active_among([issuer.did]) == [True]
    await again.close()

    # and the same backup file restores into SQLite
    code, text, err = await run_cli(capsys, "restore", str(out), "--db", str(tmp_path / "s.db"))
    assert code == 0, err


def _root(path: Path) -> bytes:
    store = open_service_store(path, create=False, read_only=True)
    try:
        return store.root(store.size())
    finally:
        store.close()


# --- a database outage over HTTP ------------------------------------------------------------


@pytest.mark.slow  # each call waits the pool's 10 s check-out timeout before answering 503
async def test_a_database_outage_is_503_with_retry_after_and_shows_in_healthz(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    server = start_postgres(fsync=False)  # a server of its own, to stop
    if server is None:
        missing("PostgreSQL's initdb", POSTGRES_INSTALL_HINT)
    try:
        server.create_database("outage")
        url = server.url("outage", password="hunter22")
        client: TestClient = await aiohttp_client(
            create_app(service_config(tmp_path, database=url, anchor_interval=3600.0))
        )
        issuer = Ed25519Key.generate()
        client.app[ISSUERS].add(issuer.did, "Test College")
        accepted = await post_signed(client, issuer, {"digests": ["01" * 32]})
        assert accepted.status == 201, await accepted.text()
    finally:
        server.stop()
    refused = await post_signed(client, issuer, {"digests": ["02" * 32]})
    assert refused.status == 503, await refused.text()
    assert refused.content_type == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert "Traceback" not in await refused.text()
    health = await client.get("/healthz")
    assert health.status == 503
    body = await health.json()
    assert body["status"] == "failing"
    assert body["store"]["ok"] is False
    assert body["store"]["error"]  # says why
    assert "hunter22" not in json.dumps(body)
    assert "hunter22" not in await refused.text()
    scrape = await client.get("/metrics")  # still answers, without what it cannot read
    assert scrape.status == 200
    text = await scrape.text()
    (failed,) = [line for line in text.splitlines() if line.startswith("ler_anchor_metric_sources")]
    assert float(failed.split()[-1]) >= 1, failed
    assert "hunter22" not in text


def test_a_postgresql_database_with_rowid_numbered_versions_keeps_its_numbers(
    pg_url: str, tmp_path: Path
) -> None:
    """A PostgreSQL database made before the feature migrations numbered status versions in
    an identity column named ``rowid``: the ``seq`` column takes those numbers (not the
    versions' times), so what auditors were given stays the same."""
    store = open_store(pg_url)
    try:
        with store.transaction() as conn:
            for statement in repository.SCHEMA:
                conn.execute(statement)
            conn.execute(
                "ALTER TABLE status_versions ADD COLUMN rowid"
                " BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE"
            )
            conn.execute(
                "INSERT INTO status_lists (id, issuer, purpose, status_size, status_message,"
                " url, entries, allocated, allocation, state, created, version)"
                " VALUES ('l1', 'did:key:z', 'revocation', 1, '', 'https://x/l1', 8, 0, ?,"
                " 'open', 1, 3)",
                (b"\x00",),
            )
            for version, created in ((1, 300), (2, 100), (3, 200)):  # times out of order
                conn.execute(
                    "INSERT INTO status_versions (list_id, version, created, digest, credential)"
                    " VALUES ('l1', ?, ?, ?, '{}')",
                    (version, created, bytes([version]) * 32),
                )
    finally:
        store.close()
    migrated = open_service_store(pg_url)
    try:
        rows = (
            migrated.reader()
            .execute("SELECT version, seq FROM status_versions ORDER BY version")
            .fetchall()
        )
        assert [(int(v), int(s)) for v, s in rows] == [(1, 1), (2, 2), (3, 3)]
    finally:
        migrated.close()
