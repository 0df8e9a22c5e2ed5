"""Online backups while the log grows, and restores checked against a real chain."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.anvil import AnvilNode
from helpers.chain import (
    ANVIL,
    EMBEDDED,
    Running,
    all_final,
    fast,
    open_chain,
    open_log,
    wait_for,
)

from anchor.chain.batcher import Batcher
from anchor.cli.main import main
from anchor.core.entry import Entry, EntryKind
from anchor.db.backup import AnchoredRoot, backup, mismatches, restore
from anchor.errors import Conflict, InvalidInput, NotFound, RestoreRefused
from anchor.log.store import SQLiteStore


def entries(start: int, count: int, who: str = "did:web:college.example") -> list[Entry]:
    return [
        Entry(EntryKind.CREDENTIAL, hashlib.sha256(i.to_bytes(8, "big")).digest(), who)
        for i in range(start, start + count)
    ]


def test_an_online_backup_is_one_consistent_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "data" / "ler-anchor.db"
    store = SQLiteStore(db)
    store.append(entries(0, 1_000))
    stop = threading.Event()

    def keep_appending() -> None:
        writer = SQLiteStore(db)  # another connection, as the running service
        batch = 1_000
        while not stop.is_set():
            writer.append(entries(writer.size(), batch))
        writer.close()

    thread = threading.Thread(target=keep_appending)
    thread.start()
    try:
        snapshot = backup(db, tmp_path / "backups" / "one.db")
    finally:
        stop.set()
        thread.join()
    assert snapshot.size % 1_000 == 0  # whole batches only
    assert snapshot.size >= 1_000
    copy = SQLiteStore(snapshot.path)
    assert copy.check_integrity() == snapshot.size
    assert copy.root() == store.root(snapshot.size) == snapshot.root
    copy.close()
    store.close()
    assert not Path(f"{snapshot.path}.partial").exists()


def test_backup_and_restore_refuse_bad_paths(tmp_path: Path) -> None:
    db = tmp_path / "ler-anchor.db"
    with pytest.raises(NotFound, match="no database at"):
        backup(db, tmp_path / "b.db")
    SQLiteStore(db).close()
    backup(db, tmp_path / "b.db")
    with pytest.raises(Conflict, match="exists already"):
        backup(db, tmp_path / "b.db")
    with pytest.raises(NotFound, match="no backup at"):
        restore(tmp_path / "missing.db", db, [])
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InvalidInput, match="is not an LER Anchor backup: file is not a database"):
        restore(tmp_path / "junk.db", db, [])
    in_use = SQLiteStore(db)  # as a running service
    with pytest.raises(Conflict, match="is in use"):
        restore(tmp_path / "b.db", db, [])
    in_use.close()
    restore(tmp_path / "b.db", db, [])
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    with pytest.raises(InvalidInput, match="not an LER Anchor database"):
        restore(tmp_path / "other.db", db, [])


def test_mismatches_name_what_is_not_reproduced(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "log.db")
    store.append(entries(0, 10))
    good = AnchoredRoot(5, store.root(5), "anchor A")
    wrong = AnchoredRoot(7, bytes(32), "anchor B")
    beyond = AnchoredRoot(11, bytes(32), "anchor C")
    assert mismatches(store, [good]) == []
    problems = mismatches(store, [beyond, wrong, good])
    assert len(problems) == 2
    assert problems[0].startswith("anchor B anchors root 00")
    assert "anchor C anchors size 11, beyond this backup's 10 entries" in problems[1]
    store.close()


async def test_restore_is_checked_against_the_chain(
    tmp_path: Path, anvil_factory: Callable[..., AnvilNode], capsys: pytest.CaptureFixture[str]
) -> None:
    chain = await open_chain(ANVIL, anvil_factory)
    assert chain.rpc_url is not None
    data = tmp_path / "data"
    log = open_log(data / "ler-anchor.db")
    client = await chain.client(log.store)
    try:
        async with Running(Batcher(log, client, fast())) as batcher:
            for n in range(2):
                log.append(entries(n * 100, 100))
                batcher.wake(anchor_now=True)
                await wait_for(all_final(log, n + 1), what=f"anchor {n + 1}")
            assert main(["backup", "--data-dir", str(data), "--out", str(tmp_path / "b1.db")]) == 0
            assert "backed up 200 entries" in capsys.readouterr().out
            log.append(entries(200, 50))
            batcher.wake(anchor_now=True)
            await wait_for(all_final(log, 3), what="anchor 3")
    finally:
        await client.close()
        log.store.close()
    chain_flags = ["--rpc-url", chain.rpc_url, "--contract", chain.contract]
    target = tmp_path / "restored" / "ler-anchor.db"

    # the backup covers 2 of the 3 anchored roots: restoring it would fork the log
    code = main(["restore", str(tmp_path / "b1.db"), "--db", str(target), *chain_flags])
    assert code == 4
    err = capsys.readouterr().err
    assert "anchors size 250, beyond this backup's 200 entries" in err
    assert not target.exists()

    # a backup of the current database reproduces all three
    assert main(["backup", "--data-dir", str(data), "--out", str(tmp_path / "b2.db")]) == 0
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "b2.db"), "--db", str(target), *chain_flags]) == 0
    out = capsys.readouterr().out
    assert "restored 250 entries" in out
    assert "all 3 anchored root(s) on the chain reproduced" in out

    # another log of the same size anchors nothing of this chain's roots
    foreign = SQLiteStore(tmp_path / "foreign.db")
    foreign.append(entries(0, 250, "did:web:other.example"))
    foreign.close()
    code = main(["restore", str(tmp_path / "foreign.db"), "--db", str(target), *chain_flags])
    assert code == 4
    assert "this backup computes" in capsys.readouterr().err
    restored = SQLiteStore(target)  # still the good restore
    assert restored.size() == 250
    restored.close()

    # restoring over an existing database keeps the replaced one beside it
    assert main(["restore", str(tmp_path / "b2.db"), "--db", str(target), *chain_flags]) == 0
    assert "the replaced database is kept as" in capsys.readouterr().out
    kept = [p for p in target.parent.iterdir() if ".replaced-" in p.name]
    assert len(kept) == 1
    await chain.close()


async def test_restore_without_a_chain_checks_the_recorded_anchors(
    tmp_path: Path, anvil_factory: Callable[..., AnvilNode]
) -> None:
    chain = await open_chain(EMBEDDED, anvil_factory)
    log = open_log(tmp_path / "live.db")
    client = await chain.client(log.store)
    try:
        async with Running(Batcher(log, client, fast())) as batcher:
            log.append(entries(0, 30))
            batcher.wake(anchor_now=True)
            await wait_for(all_final(log, 1), what="the anchor")
        snapshot = backup(log.store.path, tmp_path / "b.db")
    finally:
        await client.close()
        log.store.close()
        await chain.close()
    restored, checked, moved = restore(snapshot.path, tmp_path / "new" / "db.sqlite", None)
    assert (restored.size, checked, moved) == (30, 1, None)

    # the same backup with a forged anchor record is refused
    conn = sqlite3.connect(snapshot.path)
    conn.execute("UPDATE anchors SET root = zeroblob(32)")
    conn.commit()
    conn.close()
    with pytest.raises(RestoreRefused, match="this backup computes"):
        restore(snapshot.path, tmp_path / "other" / "db.sqlite", None)
    assert not (tmp_path / "other" / "db.sqlite").exists()
