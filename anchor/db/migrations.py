"""Schema migrations: versioned steps per backend, run once when a database opens.

Pure logic over a :class:`~anchor.db.api.Connection` (the I/O is the caller's statements).
:func:`migrate` runs inside the write transaction the database opens with, so it holds the
write lock (SQLite's writer, PostgreSQL's advisory lock) and two processes opening one
database at once apply each step exactly once. The version reached is recorded in
``meta.schema_version`` in the same transaction, so a crash leaves a step either applied and
recorded or neither. Cost: one ``meta`` read when the database is current; otherwise the
steps' own work.

A :class:`Schema` is the latest layout (``create`` builds it on a fresh database in one go)
plus the :class:`Step` that upgrades from each older version. Read-only opens never migrate:
they accept the versions in ``Schema.readable`` and refuse others, saying to open the
database writable once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from anchor.db.api import Connection, Dialect
from anchor.errors import StoreError

VERSION_KEY = "schema_version"
"""The ``meta`` key that records the version a database is at."""

META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"

BOTH: frozenset[Dialect] = frozenset({"sqlite", "postgresql"})


@dataclass(frozen=True, slots=True)
class Step:
    """Upgrades a database from ``version - 1`` to ``version`` on the given backends."""

    version: int
    description: str
    apply: Callable[[Connection, Dialect], None]
    dialects: frozenset[Dialect] = BOTH


@dataclass(frozen=True, slots=True)
class Schema:
    """A database layout: its latest ``version``, how to ``create`` it, the upgrade steps."""

    version: int
    create: Callable[[Connection, Dialect], None]
    steps: tuple[Step, ...] = ()
    readable: frozenset[int] = field(default_factory=frozenset)
    """Older versions a read-only open accepts as they are (their reads are the same)."""
    key: str = VERSION_KEY
    """The ``meta`` key recording the version (one per schema sharing a database)."""

    def __post_init__(self) -> None:
        versions = [s.version for s in self.steps]
        if versions != sorted(set(versions)) or any(v > self.version for v in versions):
            raise ValueError("migration steps must have distinct, ascending versions")


def read_version(conn: Connection, key: str = VERSION_KEY) -> str | None:
    """The recorded schema version (raises when there is no ``meta`` table)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _record(conn: Connection, version: int, key: str = VERSION_KEY) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, str(version)),
    )


def migrate(
    conn: Connection,
    dialect: Dialect,
    schema: Schema,
    *,
    create: bool,
    read_only: bool,
    where: str,
) -> int:
    """Bring the database on ``conn`` (inside its open write transaction, or a read
    transaction when ``read_only``) to ``schema.version`` and return the version it was at
    (0 for a fresh one). ``create``: a database without a version is given the schema;
    otherwise it is refused as not ours. ``where`` names the database in errors (never a
    password)."""
    if create and not read_only:
        conn.execute(META_TABLE)
    elif not table_exists(conn, dialect, "meta"):
        raise StoreError(
            f"{where} is not an LER Anchor database (it has no tables)",
            hint="start `ler-anchor serve` on it once, or give the service's database",
        )
    found = read_version(conn, schema.key)
    if found is None:
        if not create or read_only:
            raise StoreError(
                f"{where} is not an LER Anchor database (it has no schema version)",
                hint="give --data-dir or --db the service's database",
            )
        schema.create(conn, dialect)
        _record(conn, schema.version, schema.key)
        return 0
    try:
        current = int(found)
    except ValueError:
        current = -1
    if current == schema.version:
        return current
    upgradable = [s for s in schema.steps if current < s.version and dialect in s.dialects]
    chain = [s.version for s in upgradable]
    if not 0 <= current < schema.version or chain != list(range(current + 1, schema.version + 1)):
        raise StoreError(
            f"database {where} has schema version {found}, expected {schema.version}",
            hint="give --data-dir or --db the service's database",
        )
    if read_only:
        if current in schema.readable:
            return current
        raise StoreError(
            f"database {where} has schema version {found}, expected {schema.version}",
            hint="start `ler-anchor serve` on it once to upgrade it",
        )
    for step in upgradable:
        step.apply(conn, dialect)
        _record(conn, step.version, schema.key)
    return current


def column_exists(conn: Connection, dialect: Dialect, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` (in the current schema, on PostgreSQL)."""
    sql = (
        "SELECT 1 FROM pragma_table_info(?) WHERE name = ?"
        if dialect == "sqlite"
        else "SELECT 1 FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?"
    )
    return conn.execute(sql, (table, column)).fetchone() is not None


def table_exists(conn: Connection, dialect: Dialect, name: str) -> bool:
    """Whether table ``name`` exists (in the current schema, on PostgreSQL)."""
    sql = (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        if dialect == "sqlite"
        else "SELECT 1 FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_name = ?"
    )
    return conn.execute(sql, (name,)).fetchone() is not None
