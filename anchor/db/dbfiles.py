"""The database's files on disk: one service writer per database, commands that never create
a database by accident, and files only their owner can read.

I/O, no SQLite: each call is a few system calls (``open``, ``flock``, ``stat``, ``chmod``).

**Who may write.** A database has two writers of different kinds, and two advisory locks
(``flock``) beside it make each safe. Both lock files are created with mode 0600 and are
never deleted (unlinking a lock file would let a later process lock a fresh file while an
earlier one still holds the old one); the kernel releases a ``flock`` when its holder exits,
however it exits (``kill -9`` included), so a lock file left behind never blocks anyone.

* ``DB.lock``, the *service writer*: ``serve`` and ``restore`` hold it exclusively for their
  whole run and write their pid and command into it. A second one fails at once with
  :class:`~anchor.errors.DatabaseLocked` naming the holder. ``serve`` takes it before it does
  anything else (before the database opens, the chain starts, a key is generated or the port
  is bound), so a second service on the same data directory writes nothing at all.
* ``DB.oplock``, *operator writes*: ``issuer add`` / ``issuer remove`` and ``status export``
  hold it *shared* while they write; ``restore`` holds it exclusively. Operator writes
  therefore run while ``serve`` runs (the README walk-through registers an issuer on the
  live service): each is one short SQLite transaction, serialised with the service's own by
  SQLite's WAL write lock (a writer waits up to the busy timeout), and the service reads the
  registry afresh on every request. They never run while ``restore`` swaps the database
  files, where a write into the database being replaced would be lost without a word.

**Readers take no lock.** ``log info|check|export``, ``issuer list`` and ``backup`` open the
database read-only (SQLite ``mode=ro``) and take neither lock, so they work while the service
writes. What a WAL reader does need is the ``-shm`` index next to the database (it records its
read mark there) and, when no other connection has the database open, the right to create
``-wal`` and ``-shm`` itself: the reader must be able to write to the data directory. SQLite
creates both with the database file's own mode, so a 0600 database has 0600 side files.

**Private files.** The database holds the key that hides credential ids, so it is *created*
with mode 0600 (:func:`create_private_file`, before SQLite opens the empty file), the same
for backups and the lock files; a data directory this module creates is 0700. A database
found with a wider mode is tightened when a writer opens it (:func:`tighten`), and that is
logged once: the next open finds it private.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from anchor.errors import DatabaseLocked, NoDatabase, StoreError

logger = logging.getLogger(__name__)

PRIVATE_FILE_MODE: Final = 0o600
"""Mode of the database, its side files, backups and lock files."""

PRIVATE_DIR_MODE: Final = 0o700
"""Mode of a data (or backup) directory this module creates."""

SIDE_SUFFIXES: Final = ("-wal", "-shm")
"""SQLite's companion files of a database in WAL mode."""

SERVICE_LOCK_SUFFIX: Final = ".lock"
"""The service writer's lock file: ``ler-anchor.db.lock`` beside ``ler-anchor.db``."""

OPERATOR_LOCK_SUFFIX: Final = ".oplock"
"""The operator writes' lock file: ``ler-anchor.db.oplock``."""

MAX_HOLDER_BYTES: Final = 4096
"""Most bytes read from a lock file to name its holder (the rest is ignored)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds the service writer lock, as its holder wrote it (a hint: the lock itself is
    the kernel's). ``pid`` is None when the file says nothing usable (a holder that has not
    written it yet)."""

    pid: int | None
    command: str
    since: str

    def describe(self) -> str:
        if self.pid is None:
            return "another process"
        since = f", since {self.since}" if self.since else ""
        return f"pid {self.pid} ({self.command}{since})"


# -- private files and directories --------------------------------------------------------


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) if it does not exist; the directory itself
    gets mode 0700. An existing directory is left as it is."""
    if directory.is_dir():
        return
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if directory.is_dir():
                return
            raise
        os.chmod(directory, PRIVATE_DIR_MODE)  # exactly 0700, whatever the umask
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory {directory}: {exc.strerror}",
            hint="give --data-dir (or --db) a directory this user may create or write",
        ) from None


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 (its directory 0700 if it is created too). Returns
    False if it existed already (left untouched)."""
    make_private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreError(
            f"cannot create {path}: {exc.strerror}",
            hint="check the path and that this user may write its directory",
        ) from None
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # exactly 0600, whatever the umask
    finally:
        os.close(fd)
    return True


def tighten(database: Path) -> list[Path]:
    """Make ``database`` and its side files 0600 if group or others may access them, and say
    so once (one WARNING line). Returns the files changed."""
    changed: list[Path] = []
    was: set[str] = set()
    for path in (database, *(Path(f"{database}{s}") for s in SIDE_SUFFIXES)):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077 == 0:
            continue
        try:
            os.chmod(path, PRIVATE_FILE_MODE)
        except PermissionError:
            logger.warning("%s has mode %04o and cannot be made private: chmod 600 it", path, mode)
            continue
        changed.append(path)
        was.add(f"{mode:04o}")
    if changed:
        logger.warning(
            "made %s private (mode 0600, was %s): it holds secrets",
            ", ".join(str(p) for p in changed),
            "/".join(sorted(was)),
        )
    return changed


def require_database(database: Path) -> Path:
    """``database`` if it exists; otherwise :class:`NoDatabase`, saying how to point at the
    right one. Operator commands call this: only ``serve`` (and ``restore``) create one."""
    if database.is_file():
        return database
    if database.exists():
        raise NoDatabase(f"{database} is not a database file", database=str(database))
    raise NoDatabase(
        f"no database at {database}",
        hint="run this where the service's data directory is, or give --data-dir DIR "
        "(or --db FILE); `ler-anchor serve` creates a new database",
        database=str(database),
    )


# -- locks -------------------------------------------------------------------------------------


def service_lock_path(database: Path) -> Path:
    return Path(f"{database}{SERVICE_LOCK_SUFFIX}")


def operator_lock_path(database: Path) -> Path:
    return Path(f"{database}{OPERATOR_LOCK_SUFFIX}")


def _open_lock_file(path: Path) -> int:
    """Open (creating it 0600) a lock file; never truncates or writes it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise StoreError(
            f"cannot open the lock file {path}: {exc.strerror}",
            hint="check that the database's directory exists and is writable by this user",
        ) from None
    try:
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) != PRIVATE_FILE_MODE and info.st_uid == os.getuid():
            os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_flock(fd: int, path: Path, *, exclusive: bool) -> bool:
    """Take the lock without waiting; False if another open file holds a conflicting one."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise StoreError(
            f"cannot lock {path}: {exc.strerror}",
            hint="keep the database on a local file system that supports flock",
        ) from None
    return True


def read_holder(database: Path) -> Holder:
    """What the service writer lock file of ``database`` says about its holder."""
    try:
        with service_lock_path(database).open("rb") as f:
            raw = f.read(MAX_HOLDER_BYTES)
        doc = json.loads(raw)
    except (OSError, ValueError):
        return Holder(None, "", "")
    if not isinstance(doc, dict):
        return Holder(None, "", "")
    pid, command, since = doc.get("pid"), doc.get("command"), doc.get("since")
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(command, str):
        return Holder(None, "", "")
    return Holder(pid, command[:200], since if isinstance(since, str) else "")


def _write_holder(fd: int, command: str) -> None:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = (json.dumps({"pid": os.getpid(), "command": command, "since": since}) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError as exc:
        raise StoreError(
            f"cannot write the lock file beside the database: {exc.strerror}"
        ) from None


def _locked(database: Path, what: str, hint: str) -> DatabaseLocked:
    holder = read_holder(database)
    return DatabaseLocked(
        f"the database {database} is {what} by {holder.describe()}",
        hint=hint,
        database=str(database),
        pid=holder.pid,
        holder=holder.command or None,
    )


@contextlib.contextmanager
def service_writer(database: Path, command: str, *, restoring: bool = False) -> Iterator[None]:
    """Hold the service writer lock of ``database`` (``serve``; ``restoring``: ``restore``,
    which also excludes operator writes) for the block, or raise :class:`DatabaseLocked` at
    once. Creates the database's directory (0700) if needed: the caller may create the
    database. ``command`` (e.g. ``ler-anchor serve``) is recorded for whoever is refused: give
    no secrets in it."""
    make_private_dir(database.parent)
    fd = _open_lock_file(service_lock_path(database))
    try:
        if not _try_flock(fd, service_lock_path(database), exclusive=True):
            raise _locked(
                database,
                "in use",
                "stop that process before restoring"
                if restoring
                else "one service per database: stop that process first, or give this one "
                "its own --data-dir",
            )
        _write_holder(fd, command)
        if not restoring:
            yield
            return
        op = _open_lock_file(operator_lock_path(database))
        try:
            if not _try_flock(op, operator_lock_path(database), exclusive=True):
                raise DatabaseLocked(
                    f"the database {database} is being written by an operator command "
                    "(issuer add or remove, status export)",
                    hint="wait until it ends, then restore again",
                    database=str(database),
                    pid=None,
                    holder=None,
                )
            yield
        finally:
            os.close(op)
    finally:
        os.close(fd)  # releases the lock; the file stays (see the module docstring)


@contextlib.contextmanager
def operator_writer(database: Path) -> Iterator[None]:
    """Hold the operator writes lock of an existing ``database`` shared for the block (any
    number of operator commands and a running service may write meanwhile), or raise
    :class:`DatabaseLocked` at once while ``restore`` runs. :class:`NoDatabase` if there is
    no database: an operator command never creates one."""
    require_database(database)
    fd = _open_lock_file(operator_lock_path(database))
    try:
        if not _try_flock(fd, operator_lock_path(database), exclusive=False):
            raise _locked(database, "being restored", "wait until the restore ends")
        yield
    finally:
        os.close(fd)


def operator_writes(database: str | Path) -> contextlib.AbstractContextManager[None]:
    """:func:`operator_writer` for a SQLite file; nothing for a PostgreSQL URL (the server
    serialises writers itself, and a restore only loads into an empty database)."""
    if isinstance(database, Path):
        return operator_writer(database)
    return contextlib.nullcontext()
