"""The issuer registry: which DIDs may write (the operator adds and removes them).

Table ``issuers``: one row per DID ever registered; removal keeps the row with a ``removed``
time, so the registry's history stays auditable. Only rows with ``removed`` NULL may write.
:func:`ensure_schema` creates the table once, when the service opens its database (and
before an operator's ``issuer add``); a registry object never creates it, so reads stay
reads. The statements use ``?`` placeholders and ``ON CONFLICT``, nothing SQLite-only.

I/O: the service's database (SQLite or PostgreSQL) through :class:`~anchor.log.store.LogStore`.
Cost: one indexed read per look-up (one query per 500 DIDs for a batch), one short write
transaction per change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from anchor.core.entry import check_did
from anchor.errors import Conflict, EncodingError, InvalidInput, NotFound
from anchor.log.store import LogStore

_SQL_CHUNK = 500  # bound parameters per IN (...) query

MAX_NAME_LENGTH = 200
"""Longest display name of an issuer."""


@dataclass(frozen=True, slots=True)
class Issuer:
    did: str
    name: str
    added_ms: int
    removed_ms: int | None

    @property
    def active(self) -> bool:
        return self.removed_ms is None

    def to_json(self) -> dict[str, object]:
        return {
            "did": self.did,
            "name": self.name,
            "addedAt": self.added_ms,
            "removedAt": self.removed_ms,
            "active": self.active,
        }


SCHEMA: Final[tuple[str, ...]] = (
    "CREATE TABLE IF NOT EXISTS issuers ("
    " did TEXT PRIMARY KEY, name TEXT NOT NULL, added INTEGER NOT NULL,"
    " removed INTEGER)",
)
"""The issuer table (idempotent DDL; the service database's migrations run it too)."""


def ensure_schema(store: LogStore) -> None:
    """Create the issuer table (idempotent). Called once, when the database is opened."""
    with store.transaction() as conn:
        for statement in SCHEMA:
            conn.execute(statement)


def _has_table(store: LogStore) -> bool:
    return store.has_table("issuers")


def _check(did: str, name: str) -> None:
    try:
        check_did(did)
    except EncodingError as err:
        raise InvalidInput(
            err.detail, hint="an issuer is a DID such as did:web:college.example"
        ) from None
    if len(name) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"issuer name must be at most {MAX_NAME_LENGTH} printable characters")


class IssuerRegistry:
    """The registry in ``store``, whose table :func:`ensure_schema` made."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        if not _has_table(store):  # nobody made it: say how, never make it here
            raise NotFound(
                f"{store.db.where} has no issuer registry yet",
                hint="start `ler-anchor serve` on it once",
            )

    def add(self, did: str, name: str = "") -> Issuer:
        """Register ``did`` (or re-activate it); 409 if it is already active."""
        _check(did, name)
        now = int(time.time() * 1000)
        with self.store.transaction() as conn:
            row = conn.execute("SELECT removed FROM issuers WHERE did = ?", (did,)).fetchone()
            if row is not None and row[0] is None:
                raise Conflict(f"{did} is already a registered issuer")
            conn.execute(
                "INSERT INTO issuers (did, name, added, removed) VALUES (?, ?, ?, NULL) "
                "ON CONFLICT (did) DO UPDATE SET name = excluded.name, added = excluded.added,"
                " removed = NULL",
                (did, name, now),
            )
        return Issuer(did, name, now, None)

    def rename(self, did: str, name: str) -> Issuer:
        """Change a registered (active) issuer's display name; 404 if it is not one."""
        _check(did, name)
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT added, removed FROM issuers WHERE did = ?", (did,)
            ).fetchone()
            if row is None or row[1] is not None:
                raise NotFound(f"{did} is not a registered issuer")
            conn.execute("UPDATE issuers SET name = ? WHERE did = ?", (name, did))
        return Issuer(did, name, int(row[0]), None)

    def remove(self, did: str) -> Issuer:
        now = int(time.time() * 1000)
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT name, added, removed FROM issuers WHERE did = ?", (did,)
            ).fetchone()
            if row is None or row[2] is not None:
                raise NotFound(f"{did} is not a registered issuer")
            conn.execute("UPDATE issuers SET removed = ? WHERE did = ?", (now, did))
        return Issuer(did, str(row[0]), int(row[1]), now)

    def get(self, did: str) -> Issuer | None:
        row = (
            self.store.reader()
            .execute("SELECT did, name, added, removed FROM issuers WHERE did = ?", (did,))
            .fetchone()
        )
        return None if row is None else Issuer(row[0], row[1], row[2], row[3])

    def is_registered(self, did: str) -> bool:
        issuer = self.get(did)
        return issuer is not None and issuer.active

    def active_among(self, dids: Sequence[str]) -> list[bool]:
        """For each of ``dids``, whether it is a registered, not removed issuer (one query
        per :data:`_SQL_CHUNK` distinct DIDs)."""
        wanted = list(dict.fromkeys(dids))
        active: set[str] = set()
        conn = self.store.reader()
        for i in range(0, len(wanted), _SQL_CHUNK):
            chunk = wanted[i : i + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            active.update(
                row[0]
                for row in conn.execute(
                    f"SELECT did FROM issuers WHERE did IN ({marks})"  # noqa: S608
                    " AND removed IS NULL",
                    chunk,
                )
            )
        return [did in active for did in dids]

    def list(self, *, include_removed: bool = False) -> list[Issuer]:
        sql = "SELECT did, name, added, removed FROM issuers"
        if not include_removed:
            sql += " WHERE removed IS NULL"
        rows = self.store.reader().execute(sql + " ORDER BY added, did")
        return [Issuer(r[0], r[1], r[2], r[3]) for r in rows]
