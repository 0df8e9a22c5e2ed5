"""Online backup of the service's database, and a restore checked against the chain.

The database is the only state besides the chain. :func:`backup` copies it with SQLite's
online backup API while the service keeps writing (one consistent snapshot), checks the copy
(SQLite's own integrity check, then every stored log hash recomputed from its entries) and
only then moves it into place. :func:`restore` installs a backup after checking that it
reproduces every anchored root: an anchor of a size the backup does not reach, or of a root
it does not compute, would make the restored log fork from what the chain already says, so
the restore is refused. The database being replaced is kept beside it, never deleted.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from anchor.db import dbfiles
from anchor.db.migrations import table_exists
from anchor.errors import (
    Conflict,
    InvalidInput,
    NoMatchingAnchor,
    NotFound,
    RestoreRefused,
    StoreError,
)
from anchor.log.store import SQLiteStore

SIDE_FILES = dbfiles.SIDE_SUFFIXES
"""SQLite's companion files of a database in WAL mode: they move with the database, since a
stale ``-wal`` beside a restored file would be replayed into it."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a backup holds: its file, the log's size and root there, and its latest signed
    checkpoint size (None when the log never signed one)."""

    path: Path
    size: int
    root: bytes
    checkpoint_size: int | None
    bytes: int


@dataclass(frozen=True, slots=True)
class AnchoredRoot:
    """A root the chain (or the database's anchor records) says the log had at ``size``."""

    size: int
    root: bytes
    where: str
    """Where it was anchored, for messages (block and transaction, or the anchor record)."""


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_database(path: Path) -> None:
    for suffix in ("", *SIDE_FILES):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_database(source: Path, target: Path) -> None:
    """Copy the database ``source`` to a new ``target`` (created 0600: it holds the
    database's secrets) with SQLite's backup API, in one step: one consistent snapshot,
    while writers keep going (WAL)."""
    remove_database(target)
    dbfiles.create_private_file(target)
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)
    except BaseException:
        writer.close()
        remove_database(target)
        raise
    finally:
        reader.close()
    writer.close()


def move_database(source: Path, target: Path) -> None:
    """Rename a database and whichever of its side files exist (a target's stale side files
    go, so that they are never replayed into it)."""
    for suffix in SIDE_FILES:
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    for suffix in ("", *SIDE_FILES):
        if Path(f"{source}{suffix}").exists():
            os.replace(f"{source}{suffix}", f"{target}{suffix}")


def _ensure_unused(database: Path) -> None:
    """Refuse a database another process (a running service) has open: in WAL mode an
    exclusive lock is granted only when no other connection exists."""
    conn = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        raise Conflict(
            f"{database} is in use ({exc})", hint="stop the service before restoring"
        ) from exc
    finally:
        conn.close()


def check_copy(path: Path, progress: Callable[[int], object] | None = None) -> Snapshot:
    """SQLite's integrity check, then the log's: every hash recomputed from the entries."""
    conn = sqlite3.connect(path)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
        ours = (
            table_exists(conn, "sqlite", "meta")
            and conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone()
        )
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path} is not a readable SQLite database: {exc}") from exc
    finally:
        conn.close()
    if result != [("ok",)]:
        raise StoreError(f"{path} fails SQLite's integrity check: {result[0][0]}")
    if not ours:
        raise InvalidInput(f"{path} is not an LER Anchor database (it has no schema version)")
    store = SQLiteStore(path)
    try:
        size = store.check_integrity(progress)
        root = store.root(size)
        row = None
        if store.has_table("checkpoints"):
            row = store.reader().execute("SELECT max(size) FROM checkpoints").fetchone()
    finally:
        store.close()
    checkpoint = None if row is None or row[0] is None else int(row[0])
    return Snapshot(path, size, root, checkpoint, path.stat().st_size)


def backup(database: Path, out: Path, progress: Callable[[int], object] | None = None) -> Snapshot:
    """Copy ``database`` to ``out`` while it may be in use, check the copy, then move it into
    place (``out`` must not exist). Cost: one pass to copy and one to check (``progress``
    hears of every ``n`` entries checked)."""
    dbfiles.require_database(database)
    if out.exists():
        raise Conflict(f"{out} exists already", hint="choose a new file name for each backup")
    dbfiles.make_private_dir(out.parent)
    partial = out.with_name(out.name + ".partial")
    try:
        copy_database(database, partial)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot back up {database}: {exc}") from exc
    try:
        snapshot = check_copy(partial, progress)
        fsync_path(partial)
        move_database(partial, out)
        fsync_path(out.parent)
    except BaseException:
        remove_database(partial)
        raise
    return Snapshot(out, snapshot.size, snapshot.root, snapshot.checkpoint_size, snapshot.bytes)


def recorded_anchors(path: Path) -> list[AnchoredRoot]:
    """The roots the database itself recorded as included or final on its current chain."""
    from anchor.chain import AnchorState, list_anchors  # web3: only when needed

    store = SQLiteStore(path)
    try:
        records = list_anchors(store, states=(AnchorState.INCLUDED, AnchorState.FINAL), limit=2**62)
    finally:
        store.close()
    return [
        AnchoredRoot(r.size, r.root, f"anchor {r.id} ({r.state.value}, block {r.block_number})")
        for r in records
    ]


def mismatches(snapshot: SQLiteStore, anchored: Iterable[AnchoredRoot]) -> list[str]:
    """Each anchored root ``snapshot`` does not reproduce, as a sentence."""
    size = snapshot.size()
    problems = []
    for anchor in sorted(anchored, key=lambda a: a.size):
        if anchor.size > size:
            problems.append(
                f"{anchor.where} anchors size {anchor.size}, beyond this backup's {size} "
                "entries: the backup is older than the chain"
            )
        elif snapshot.root(anchor.size) != anchor.root:
            problems.append(
                f"{anchor.where} anchors root {anchor.root.hex()} at size {anchor.size}; "
                f"this backup computes {snapshot.root(anchor.size).hex()}"
            )
    return problems


def checked_against(
    staged: Path,
    anchored: Iterable[AnchoredRoot] | None,
    progress: Callable[[int], object] | None = None,
) -> tuple[Snapshot, list[AnchoredRoot]]:
    """Check the backup copy ``staged`` (SQLite, then every log hash) and that it reproduces
    every root in ``anchored`` (``None``: the roots it recorded itself); raise
    :class:`RestoreRefused` or :class:`NoMatchingAnchor` if not. The snapshot and the roots
    checked."""
    snapshot = check_copy(staged, progress)
    roots = list(recorded_anchors(staged) if anchored is None else anchored)
    store = SQLiteStore(staged)
    try:
        problems = mismatches(store, roots)
    finally:
        store.close()
    if problems:
        raise RestoreRefused(
            f"{len(problems)} anchored root(s) not reproduced; first: {problems[0]}",
            hint="restore a newer backup: installing this one would fork the log",
        )
    if anchored is not None and not roots and snapshot.size > 0:
        raise NoMatchingAnchor(
            f"the contract holds no anchor while this backup has {snapshot.size:,} "
            "entries: the chain cannot vouch for it",
            anchors=0,
            log_size=snapshot.size,
            hint="check --contract; without --rpc-url and --contract the anchors the "
            "backup recorded are checked instead",
        )
    return snapshot, roots


def restore(
    backup_file: Path,
    database: Path,
    anchored: Iterable[AnchoredRoot] | None,
    progress: Callable[[int], object] | None = None,
) -> tuple[Snapshot, int, Path | None]:
    """Install ``backup_file`` as ``database`` once it checks and reproduces every root in
    ``anchored`` (``None``: the roots the backup itself recorded). Roots read from a chain
    (a list) must include at least one unless the backup is empty: a contract holding no
    anchor vouches for nothing (:class:`~anchor.errors.NoMatchingAnchor`). Returns the
    snapshot, how many anchored roots were checked, and where the replaced database was moved
    (if any).

    The restore is the database's only writer meanwhile: it holds the service writer lock
    and excludes operator writes (:func:`anchor.db.dbfiles.service_writer`), and refuses a
    database any other connection has open. It may create ``database`` (and its directory,
    0700): restoring onto a new machine is what backups are for."""
    if not backup_file.is_file():
        raise NotFound(f"no backup at {backup_file}")
    with dbfiles.service_writer(database, "ler-anchor restore", restoring=True):
        return _restore(backup_file, database, anchored, progress)


def _restore(
    backup_file: Path,
    database: Path,
    anchored: Iterable[AnchoredRoot] | None,
    progress: Callable[[int], object] | None,
) -> tuple[Snapshot, int, Path | None]:
    if database.exists():
        _ensure_unused(database)
    staged = database.with_name(database.name + ".restoring")
    try:
        copy_database(backup_file, staged)
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{backup_file} is not an LER Anchor backup: {exc}") from exc
    try:
        snapshot, roots = checked_against(staged, anchored, progress)
        fsync_path(staged)
        moved = None
        if database.exists():
            moved = database.with_name(f"{database.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
            move_database(database, moved)
        move_database(staged, database)
        fsync_path(database.parent)
    except BaseException:
        remove_database(staged)
        raise
    return (
        Snapshot(database, snapshot.size, snapshot.root, snapshot.checkpoint_size, snapshot.bytes),
        len(roots),
        moved,
    )
