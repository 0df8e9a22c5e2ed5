"""Nonces already used, per signing key: a replayed request is refused, even after a restart
and (sharing one database) by another replica of the service.

Table ``auth_nonces`` (``keyid``, ``nonce``, ``expires``): a row lives until the signature
carrying its nonce could no longer be accepted anyway (``created`` plus the clock skew
allowed by :mod:`anchor.auth.policy`); expired rows are purged by the next write after
:data:`NONCE_PURGE_INTERVAL_SECONDS`. :func:`ensure_schema` creates the table once, when the
service opens its database; nothing here creates anything on the request path.

A nonce is consumed by one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` that only succeeds
(one row changed) for a new or an expired nonce: the check and the write are one atomic
statement, so two requests with the same nonce, in one process or in two processes on one
database, cannot both succeed. The statements use ``?`` placeholders, ``ON CONFLICT`` and
``rowcount`` only, so they run unchanged on SQLite and on PostgreSQL (the DDL's
``WITHOUT ROWID`` is SQLite's storage hint, kept for existing databases).

I/O: SQLite through :class:`~anchor.log.store.LogStore`. Cost: one write transaction (one
fsync) per :meth:`NonceStore.remember_many` batch, however many nonces it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from anchor.db.api import Connection
from anchor.log.store import LogStore

NONCE_TABLE: Final = "auth_nonces"

NONCE_PURGE_INTERVAL_SECONDS: Final = 60.0
"""Expired nonces are deleted at most this often, by the next write after the interval."""

_REMEMBER: Final = (
    f"INSERT INTO {NONCE_TABLE} (keyid, nonce, expires) VALUES (?, ?, ?) "  # noqa: S608
    "ON CONFLICT (keyid, nonce) DO UPDATE SET expires = excluded.expires "
    f"WHERE {NONCE_TABLE}.expires < ?"
)
"""Insert a nonce, or renew an expired row; changes no row (a replay) for a live one."""


SCHEMA: Final[tuple[str, ...]] = (
    f"CREATE TABLE IF NOT EXISTS {NONCE_TABLE} ("
    "keyid TEXT NOT NULL, nonce TEXT NOT NULL, expires INTEGER NOT NULL, "
    "PRIMARY KEY (keyid, nonce)) WITHOUT ROWID",
    f"CREATE INDEX IF NOT EXISTS {NONCE_TABLE}_by_expiry ON {NONCE_TABLE} (expires)",
)
"""The nonce table (idempotent DDL; the service database's migrations run it too)."""


def ensure_schema(store: LogStore) -> None:
    """Create the nonce table (idempotent). Called once, when the database is opened."""
    with store.transaction() as conn:
        for statement in SCHEMA:
            conn.execute(statement)


class NonceStore:
    """Nonces already used, per key, kept in the service's database until they expire
    (after which the signature carrying them is stale anyway). The table must exist
    (:func:`ensure_schema`)."""

    def __init__(
        self, store: LogStore, *, purge_interval: float = NONCE_PURGE_INTERVAL_SECONDS
    ) -> None:
        self._store = store
        self._purge_interval = purge_interval
        self._next_purge = 0.0

    def remember(self, keyid: str, nonce: str, *, expires: int, now: float) -> bool:
        """Record ``nonce`` for ``keyid`` until ``expires``; ``False`` if it is already
        recorded and has not expired (a replay). Also purges expired nonces from time to
        time. Durable once it returns (the store commits with ``synchronous=FULL``)."""
        return self.remember_many([(keyid, nonce, expires)], now=now)[0]

    def remember_many(self, items: Sequence[tuple[str, str, int]], *, now: float) -> list[bool]:
        """:meth:`remember` for ``(keyid, nonce, expires)`` items in one transaction (one
        fsync for all); a nonce repeated within ``items`` is a replay the second time."""
        cutoff = int(now)
        results: list[bool] = []
        with self._store.transaction() as conn:
            if now >= self._next_purge:
                self._purge(conn, cutoff)
                self._next_purge = now + self._purge_interval
            for keyid, nonce, expires in items:
                cursor = conn.execute(_REMEMBER, (keyid, nonce, expires, cutoff))
                results.append(cursor.rowcount == 1)
        return results

    def seen(self, keyid: str, nonce: str, *, now: float) -> bool:
        """Whether ``nonce`` is recorded for ``keyid`` and not expired."""
        row = (
            self._store.reader()
            .execute(
                f"SELECT 1 FROM {NONCE_TABLE} WHERE keyid = ? AND nonce = ? AND expires >= ?",  # noqa: S608
                (keyid, nonce, int(now)),
            )
            .fetchone()
        )
        return row is not None

    def purge(self, *, now: float) -> int:
        """Delete expired nonces; return how many."""
        with self._store.transaction() as conn:
            return self._purge(conn, int(now))

    @staticmethod
    def _purge(conn: Connection, cutoff: int) -> int:
        return conn.execute(
            f"DELETE FROM {NONCE_TABLE} WHERE expires < ?",  # noqa: S608
            (cutoff,),
        ).rowcount
