"""One writer per database, operator commands that never create one, and private files:
two real ``serve`` processes on one data directory, the operator commands around them, and
the modes of every file the service and the commands create."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.anvil import free_port
from helpers.chain import open_log
from helpers.service import run_cli, serve_command, wait_healthy

from anchor.cli.main import main
from anchor.client.api import ServiceClient, Signer
from anchor.core.entry import Entry, EntryKind
from anchor.db import dbfiles
from anchor.db.backup import backup, restore
from anchor.errors import DatabaseLocked, NoDatabase, StoreError
from anchor.keys import Ed25519Key
from anchor.log.store import SQLiteStore
from anchor.status.repository import ensure_schema as ensure_status_schema

DB_NAME = "ler-anchor.db"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fingerprint(data: Path) -> dict[str, str]:
    """SHA-256 of every file of the database (the lock files aside)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.iterdir())
        if p.name.startswith(DB_NAME) and not p.name.endswith(("lock",))
    }


def every_path(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common default umask, so that modes 0600 / 0700 are the code's doing."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def entries(count: int) -> list[Entry]:
    return [
        Entry(EntryKind.CREDENTIAL, hashlib.sha256(b"%d" % i).digest(), "did:web:college.example")
        for i in range(count)
    ]


# -- two services, one database ----------------------------------------------------------------


@pytest.mark.slow
async def test_a_second_service_on_one_database_exits_at_once_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], umask_022: None
) -> None:
    data = tmp_path / "data"
    db = data / DB_NAME
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first_log = tmp_path / "first.log"
    processes: list[subprocess.Popen[bytes]] = []

    def start(port: int, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            argv = serve_command(data, port, "--anchor-interval", "0.3")
            process = subprocess.Popen(argv, cwd=tmp_path, stdout=out, stderr=out)
        processes.append(process)
        return process

    try:
        first = start(port, first_log)
        await wait_healthy(url)
        assert f"created a new database {db}" in first_log.read_text()
        assert mode(data) == 0o700
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}.lock"):
            assert mode(data / name) == 0o600, name

        # The operator's commands run beside the service: register, list, read, back up.
        issuer = Ed25519Key.generate()
        code, out, err = await run_cli(capsys, "issuer", "add", issuer.did, "--data-dir", str(data))
        assert (code, out.strip()) == (0, f"registered {issuer.did}"), err
        code, out, err = await run_cli(capsys, "issuer", "list", "--data-dir", str(data))
        assert (code, out.split()) == (0, [issuer.did]), err
        code, out, err = await run_cli(capsys, "log", "info", "--data-dir", str(data))
        assert code == 0, err
        assert out.startswith("size 0\n")
        backup_file = tmp_path / "backups" / "before.db"
        code, out, err = await run_cli(
            capsys, "backup", "--data-dir", str(data), "--out", str(backup_file)
        )
        assert code == 0, err
        assert mode(backup_file) == 0o600
        assert mode(backup_file.parent) == 0o700

        # A second service, on the same port and on another: one line naming the database and
        # the holder, a non-zero exit, at once, and not a byte of the database changed.
        before = fingerprint(data)
        for second_port in (port, free_port()):
            started = time.monotonic()
            second = await asyncio.to_thread(
                subprocess.run,
                serve_command(data, second_port),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            elapsed = time.monotonic() - started
            assert second.returncode == 4, second.stderr
            assert second.stdout == ""
            (line,) = second.stderr.splitlines()
            assert line.startswith("ler-anchor serve: Database in use: the database ")
            assert str(db) in line
            assert f"pid {first.pid} (ler-anchor serve" in line
            assert "--data-dir" in line
            assert elapsed < 20, f"the refused service took {elapsed:.1f} s"
        # restore is a service writer too: refused while the service runs
        code, out, err = await run_cli(capsys, "restore", str(backup_file), "--data-dir", str(data))
        assert code == 4
        assert f"is in use by pid {first.pid}" in err
        assert "stop that process before restoring" in err
        assert len(err.splitlines()) == 1
        assert fingerprint(data) == before
        assert not (data / f"{DB_NAME}.restoring").exists()

        # The first service is unharmed: it takes the issuer registered while it ran, anchors,
        # and stays healthy.
        digest = hashlib.sha256(b"anchored after the refusals").hexdigest()
        async with ServiceClient(url, Signer.for_key(issuer)) as service:
            (record,) = await service.submit([digest])
            receipt = await service.receipt(digest, wait=30)
        assert record["new"] is True
        assert receipt.get("status") != "pending", receipt
        health = await wait_healthy(url)
        assert health["status"] == "ok"
        assert health["chain"]["ok"] is True

        # kill -9: the kernel drops the lock with the process; a new service starts at once.
        first.kill()
        first.wait()
        third_port = free_port()
        start(third_port, tmp_path / "third.log")
        await wait_healthy(f"http://127.0.0.1:{third_port}")
        code, out, err = await run_cli(capsys, "log", "info", "--data-dir", str(data))
        assert code == 0, err
        assert out.startswith("size 1\n")
    finally:
        for process in processes:
            process.kill()
            process.wait()


# -- operator commands never create a database ------------------------------------------------

OPERATOR_COMMANDS = [
    ["issuer", "add", "did:web:college.example"],
    ["issuer", "remove", "did:web:college.example"],
    ["issuer", "list"],
    ["log", "info"],
    ["log", "check"],
    ["log", "export", "--out", "export"],
    ["backup", "--out", "backup.db"],
    ["status", "export", "--out", "static"],
]


@pytest.mark.parametrize("argv", OPERATOR_COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("where", ["default", "data-dir", "db"])
async def test_an_operator_command_never_creates_a_database(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    where: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # the wrong folder: no data/ here
    monkeypatch.delenv("LER_ANCHOR_DATA_DIR", raising=False)
    monkeypatch.delenv("LER_ANCHOR_DB", raising=False)
    flags = {
        "default": [],
        "data-dir": ["--data-dir", "elsewhere"],
        "db": ["--db", "elsewhere/x.db"],
    }[where]
    missing = {"default": "data/ler-anchor.db", "data-dir": "elsewhere/ler-anchor.db"}.get(
        where, "elsewhere/x.db"
    )
    code, out, err = await run_cli(capsys, *argv, *flags)
    assert code == NoDatabase.exit_code == 3
    assert out == ""
    (line,) = err.splitlines()
    assert f"no database at {missing}" in line
    assert "--data-dir" in line
    assert "`ler-anchor serve` creates" in line
    assert every_path(tmp_path) == []


NOT_OURS = "is not an LER Anchor database|file is not a database"


def test_a_file_that_is_not_ours_is_refused_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all " * 100)
    for path in (other, garbage):
        before = path.read_bytes()
        os.chmod(path, 0o640)
        with pytest.raises(StoreError, match=NOT_OURS):
            SQLiteStore(path, create=False)
        with pytest.raises(StoreError, match=NOT_OURS):
            SQLiteStore(path, read_only=True)
        assert main(["issuer", "add", "did:web:college.example", "--db", str(path)]) == 10
        assert len(capsys.readouterr().err.splitlines()) == 1
        assert main(["log", "info", "--db", str(path)]) == 10
        assert len(capsys.readouterr().err.splitlines()) == 1
        assert path.read_bytes() == before
        assert mode(path) == 0o640  # not ours: not even its mode is touched
    with pytest.raises(NoDatabase):
        SQLiteStore(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


# -- the locks --------------------------------------------------------------------------------


def test_the_service_writer_is_exclusive_and_operator_writes_run_beside_it(
    tmp_path: Path, umask_022: None
) -> None:
    db = tmp_path / "data" / DB_NAME
    SQLiteStore(db).close()
    serve = dbfiles.service_writer
    with serve(db, "ler-anchor serve"):
        assert mode(dbfiles.service_lock_path(db)) == 0o600
        holder = dbfiles.read_holder(db)
        assert (holder.pid, holder.command) == (os.getpid(), "ler-anchor serve")
        with pytest.raises(DatabaseLocked) as refused, serve(db, "ler-anchor serve"):
            pytest.fail("a second service writer got the lock")
        assert (refused.value.pid, refused.value.holder) == (os.getpid(), "ler-anchor serve")
        assert refused.value.database == str(db)
        assert refused.value.problem()["pid"] == os.getpid()
        with (
            pytest.raises(DatabaseLocked, match=f"in use by pid {os.getpid()}"),
            serve(db, "ler-anchor restore", restoring=True),
        ):
            pytest.fail("a restore ran beside the service")
        with dbfiles.operator_writer(db), dbfiles.operator_writer(db):  # beside it, and each other
            assert mode(dbfiles.operator_lock_path(db)) == 0o600
    # released on exit (the files stay); an operator write keeps a restore out, not a service
    with dbfiles.operator_writer(db):
        with (
            pytest.raises(DatabaseLocked, match="being written by an operator command"),
            serve(db, "ler-anchor restore", restoring=True),
        ):
            pytest.fail("a restore ran during an operator write")
        with serve(db, "ler-anchor serve"):
            pass
    with (
        serve(db, "ler-anchor restore", restoring=True),
        pytest.raises(DatabaseLocked, match=f"being restored by pid {os.getpid()}"),
        dbfiles.operator_writer(db),
    ):
        pytest.fail("an operator write ran during a restore")
    with pytest.raises(NoDatabase), dbfiles.operator_writer(tmp_path / "absent.db"):
        pytest.fail("an operator write on no database")
    assert not (tmp_path / "absent.db.oplock").exists()


def test_a_lock_file_names_nobody_when_it_says_nothing_usable(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    for content in (b"", b"not json", b'{"pid": "1"}', b"[1]", b"x" * 10_000):
        dbfiles.service_lock_path(db).write_bytes(content)
        holder = dbfiles.read_holder(db)
        assert holder.pid is None
        assert holder.describe() == "another process"


# -- private files ----------------------------------------------------------------------------


def test_every_file_of_the_database_is_created_private(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "data"
    db = data / DB_NAME
    store = SQLiteStore(db)
    try:
        store.append(entries(100))
        assert mode(data) == 0o700
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
            assert mode(data / name) == 0o600, name
        snapshot = backup(db, tmp_path / "backups" / "b.db")
    finally:
        store.close()
    assert mode(snapshot.path) == 0o600
    assert mode(snapshot.path.parent) == 0o700
    target = tmp_path / "restored" / DB_NAME
    restored, _checked, _moved = restore(snapshot.path, target, None)
    assert restored.size == 100
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700
    assert mode(dbfiles.service_lock_path(target)) == 0o600
    assert mode(dbfiles.operator_lock_path(target)) == 0o600


def test_an_existing_readable_database_is_tightened_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, umask_022: None
) -> None:
    db = tmp_path / DB_NAME
    store = SQLiteStore(db)
    store.append(entries(3))
    store.close()
    os.chmod(db, 0o644)
    reader = SQLiteStore(db, read_only=True)  # a reader changes nothing, modes included
    assert reader.size() == 3
    reader.close()
    assert mode(db) == 0o644
    with caplog.at_level(logging.WARNING, logger="anchor.db.dbfiles"):
        writer = SQLiteStore(db, create=False)
        writer.append(entries(4))
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):  # the reader's were 0644 too
            assert mode(path) == 0o600, path
        writer.close()
        SQLiteStore(db, create=False).close()
    tightened = [r.getMessage() for r in caplog.records if "private" in r.getMessage()]
    assert tightened == [
        f"made {db}, {db}-wal, {db}-shm private (mode 0600, was 0644): it holds secrets"
    ]


def test_log_export_writes_no_secret_of_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "data" / DB_NAME
    log = open_log(db)
    log.append(entries(10))
    log.checkpoint()
    id_key = ensure_status_schema(log.store).hex()  # the key that hides credential ids
    salt = log.store.meta("index_salt")
    log.store.close()
    assert salt is not None
    out = tmp_path / "export"
    assert main(["log", "export", "--db", str(db), "--out", str(out)]) == 0
    assert "exported 10 entries" in capsys.readouterr().out
    exported = [p for p in every_path(out) if p.is_file()]
    assert len(exported) == 4  # log.json, checkpoints.json, status-versions.json, one page
    for path in exported:
        text = path.read_text()
        assert id_key not in text, path
        assert salt not in text, path


def test_a_database_path_that_cannot_be_created_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    for argv in (
        ["serve", "--data-dir", str(blocker / "data")],
        ["restore", str(blocker), "--db", str(blocker / "data" / DB_NAME)],
    ):
        assert main(argv) == StoreError.exit_code
        (line,) = capsys.readouterr().err.splitlines()
        assert f"cannot create the directory {blocker}" in line
    with pytest.raises(StoreError, match="cannot create the directory"):
        SQLiteStore(blocker / DB_NAME)
    assert blocker.read_text() == "in the way"
