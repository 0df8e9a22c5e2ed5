"""The status list repository: the tables, their schema and every SQL statement on them.
I/O (the SQLite store); each write is one transaction, each read one query (the page sizes
bound them).

The values it returns and the pure checks are :mod:`anchor.status.model`; which positions an
allocation takes is :mod:`anchor.status.allocation`; the keys it signs with are
:mod:`anchor.status.custody`; :mod:`anchor.status.publisher` drives it (authorise, write in
a thread, log, record).

Lists
    Each issuer has lists per ``statusPurpose`` (``revocation``, ``suspension`` and
    ``message`` with a ``statusSize`` of 2..8 and its ``statusMessage``). A list holds
    :attr:`~anchor.status.model.StatusSettings.list_entries` entries (131,072 by default,
    the spec's minimum). Every allocated index is a row of ``status_entries`` whose primary
    key ``(list_id, idx)`` makes a second allocation of the same position fail in the
    database, whatever the code above it does. When
    :data:`~anchor.status.model.ROLLOVER_FRACTION` of a list is allocated, the list is
    closed for allocation and the next one is opened and published at once. Allocation
    with a credential id is idempotent: the same issuer, purpose and credential id always
    get the same entry.

Updates
    A batch of ``(index, value, reason)`` changes is checked as a whole
    (:func:`~anchor.status.model.plan_changes`) and then applied in one ``BEGIN IMMEDIATE``
    transaction: read the current version's bitstring, apply the changes with
    :meth:`~anchor.status.bitstring.BitstringBuilder.set_many` (one call per distinct
    value), sign and store the new version, record one history row per change. Concurrent
    batches on one list are thereby serialised and none is lost. Revocation is
    irreversible: a batch that would clear a revoked entry is refused as a whole with
    :class:`~anchor.errors.Conflict` (409) and nothing of it is applied. Only allocated
    indexes can be changed.

Versions
    Every change publishes a new version: the ``BitstringStatusListCredential`` (VC Data
    Model 2.0; ``validFrom`` = the version's time, ``validUntil`` when configured, ``ttl``)
    secured with an ``eddsa-jcs-2022`` proof by the issuer's status key, stored as RFC 8785
    canonical JSON. Its SHA-256 (= :func:`anchor.vc.data_integrity.canonical_digest` of the
    signed credential) is the version's digest, its HTTP ``ETag``, and the digest of the
    ``status-list`` entry that anchors it in the log (``log_index`` once appended).

SQL
    The statements run unchanged on SQLite and PostgreSQL: ``?`` placeholders, declared
    keys, ``ON CONFLICT`` rather than ``INSERT OR ...``; the DDL is :data:`SCHEMA`, here only.
    :func:`add_version_seq` (a migration step) adds the ``seq`` column that
    :meth:`StatusRepository.all_versions` pages by.

Tables (created if missing)::

    status_lists     id PK, issuer, purpose, status_size, status_message ('' or JSON),
                     url, entries, allocated, allocation (bitmap BLOB), state
                     ('open' | 'closed'), created (ms), version (current)
    status_entries   (list_id, idx) PK, issuer, purpose, credential_id, allocated (ms);
                     UNIQUE (issuer, purpose, credential_id) where credential_id is set
    status_versions  (list_id, version) PK, created (ms), superseded (ms), digest UNIQUE,
                     credential (canonical JSON), log_index, seq UNIQUE (publication order)
    status_history   seq PK, list_id, version, idx, old, new, reason, actor, keyid, at (ms)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from anchor.db.api import Connection, Dialect
from anchor.db.migrations import column_exists
from anchor.errors import Forbidden, NotFound
from anchor.log.store import LogStore
from anchor.status.allocation import (
    HIDDEN_ID_PREFIX,
    allocation_count,
    hidden_credential_ids,
    hide_credential_id,
    plan_allocation,
    sample_free,
    take_from,
)
from anchor.status.bitstring import Bitstring, BitstringBuilder
from anchor.status.credential import StatusMessage, build_status_list_credential
from anchor.status.custody import STATUS_KEY_DIR, StatusKeyCustody, StatusSigner
from anchor.status.model import (
    CLOSED,
    LIST_ID_BYTES,
    MAX_HISTORY_PAGE,
    MAX_VERSIONS_PAGE,
    OPEN,
    Allocation,
    HistoryRecord,
    PublishedVersion,
    StatusChange,
    StatusList,
    StatusSettings,
    UpdateResult,
    bits_of,
    check_batch_size,
    iso_ms,
    list_url,
    messages_json,
    now_ms,
    plan_changes,
    require_kind,
)
from anchor.vc.data_integrity import canonicalize

if TYPE_CHECKING:
    from anchor.log.log import Log

_SQL_CHUNK: Final = 500
SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS status_lists ("
    " id TEXT PRIMARY KEY, issuer TEXT NOT NULL, purpose TEXT NOT NULL,"
    " status_size INTEGER NOT NULL, status_message TEXT NOT NULL, url TEXT NOT NULL,"
    " entries INTEGER NOT NULL, allocated INTEGER NOT NULL, allocation BLOB NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('open', 'closed')), created INTEGER NOT NULL,"
    " version INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS status_lists_by_issuer"
    " ON status_lists (issuer, purpose, status_size, state)",
    "CREATE TABLE IF NOT EXISTS status_entries ("
    " list_id TEXT NOT NULL REFERENCES status_lists (id), idx INTEGER NOT NULL,"
    " issuer TEXT NOT NULL, purpose TEXT NOT NULL, credential_id TEXT,"
    " allocated INTEGER NOT NULL, PRIMARY KEY (list_id, idx)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX IF NOT EXISTS status_entries_by_credential"
    " ON status_entries (issuer, purpose, credential_id) WHERE credential_id IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS status_versions ("
    " list_id TEXT NOT NULL REFERENCES status_lists (id), version INTEGER NOT NULL,"
    " created INTEGER NOT NULL, superseded INTEGER, digest BLOB NOT NULL UNIQUE,"
    " credential TEXT NOT NULL, log_index INTEGER, PRIMARY KEY (list_id, version))",
    "CREATE INDEX IF NOT EXISTS status_versions_by_time ON status_versions (list_id, created)",
    "CREATE INDEX IF NOT EXISTS status_versions_unlogged ON status_versions (log_index)"
    " WHERE log_index IS NULL",
    "CREATE INDEX IF NOT EXISTS status_versions_current ON status_versions (created)"
    " WHERE superseded IS NULL",
    "CREATE TABLE IF NOT EXISTS status_history ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, list_id TEXT NOT NULL REFERENCES status_lists (id),"
    " version INTEGER NOT NULL, idx INTEGER NOT NULL, old INTEGER NOT NULL, new INTEGER NOT NULL,"
    " reason TEXT, actor TEXT NOT NULL, keyid TEXT, at INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS status_history_by_list ON status_history (list_id, seq)",
)
_LIST_COLUMNS: Final = (
    "id, issuer, purpose, status_size, status_message, url, entries, allocated, state,"
    " created, version"
)
_VERSION_COLUMNS: Final = (
    "v.list_id, l.issuer, v.version, v.created, v.superseded, v.digest, v.credential, v.log_index"
)
_ID_KEY_META: Final = "credential_id_key"
_IDS_HIDDEN_META: Final = "credential_ids_hidden"


def add_version_seq(conn: Connection, dialect: Dialect) -> None:
    """Give ``status_versions`` its ``seq`` column (publication order, unique) if it has none,
    filled from SQLite's ``rowid`` (the numbers already published to auditors) or, on a
    PostgreSQL database without one, from the versions' times. Idempotent; inside the
    caller's write transaction (a migration step or :func:`ensure_schema`)."""
    if column_exists(conn, dialect, "status_versions", "seq"):
        return
    conn.execute("ALTER TABLE status_versions ADD COLUMN seq INTEGER")
    if dialect == "sqlite" or column_exists(conn, dialect, "status_versions", "rowid"):
        conn.execute("UPDATE status_versions SET seq = rowid")
    else:
        conn.execute(
            "UPDATE status_versions SET seq = o.n FROM (SELECT list_id, version,"
            " row_number() OVER (ORDER BY created, list_id, version) AS n"
            " FROM status_versions) o"
            " WHERE status_versions.list_id = o.list_id AND status_versions.version = o.version"
        )
    conn.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS status_versions_by_seq ON status_versions (seq)"
    )


def ensure_schema(store: LogStore) -> bytes:
    """Create the status list tables and indexes if they are missing, and the key that hides
    credential ids (ids stored in clear by an earlier version are hidden now). Returns it."""
    with store.transaction() as conn:
        for statement in SCHEMA:
            conn.execute(statement)
        add_version_seq(conn, store.db.dialect)
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (_ID_KEY_META,)).fetchone()
        if row is None:
            key = os.urandom(32)
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_ID_KEY_META, key.hex()))
        else:
            key = bytes.fromhex(str(row[0]))
        hidden = conn.execute("SELECT 1 FROM meta WHERE key = ?", (_IDS_HIDDEN_META,)).fetchone()
        if hidden is None:
            clear = conn.execute(
                "SELECT list_id, idx, credential_id FROM status_entries"
                " WHERE credential_id IS NOT NULL"
            ).fetchall()
            conn.executemany(
                "UPDATE status_entries SET credential_id = ? WHERE list_id = ? AND idx = ?",
                [
                    (hide_credential_id(key, cid), list_id, idx)
                    for list_id, idx, cid in clear
                    if not str(cid).startswith(HIDDEN_ID_PREFIX)
                ],
            )
            conn.execute("INSERT INTO meta (key, value) VALUES (?, '1')", (_IDS_HIDDEN_META,))
    return key


class StatusRepository:
    """Status lists in the store (see the module docstring). Thread-safe: every write is
    one store transaction; reads use the calling thread's reader connection. ``keys``
    holds the issuers' status keys."""

    def __init__(self, store: LogStore, settings: StatusSettings) -> None:
        self.store = store
        self.settings = settings
        self.keys = StatusKeyCustody(settings.key_dir or settings.data_dir / STATUS_KEY_DIR)
        self._id_key = ensure_schema(store)

    # -- reading ---------------------------------------------------------------------------

    def _list(self, conn: Connection, list_id: str) -> StatusList:
        row = conn.execute(
            f"SELECT {_LIST_COLUMNS} FROM status_lists WHERE id = ?",  # noqa: S608
            (list_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"there is no status list {list_id!r}")
        return StatusList.from_row(row)

    def get_list(self, list_id: str) -> StatusList:
        """The list ``list_id`` (:class:`NotFound` if there is none)."""
        return self._list(self.store.reader(), list_id)

    def lists(self, issuer: str | None = None) -> list[StatusList]:
        """Every list (of ``issuer``), oldest first."""
        sql = f"SELECT {_LIST_COLUMNS} FROM status_lists"  # noqa: S608
        params: tuple[str, ...] = ()
        if issuer is not None:
            sql += " WHERE issuer = ?"
            params = (issuer,)
        rows = self.store.reader().execute(sql + " ORDER BY created, id", params)
        return [StatusList.from_row(r) for r in rows]

    def _versions(self, where: str, params: Sequence[Any]) -> list[PublishedVersion]:
        rows = self.store.reader().execute(
            f"SELECT {_VERSION_COLUMNS} FROM status_versions v "  # noqa: S608
            f"JOIN status_lists l ON l.id = v.list_id WHERE {where}",
            params,
        )
        return [PublishedVersion.from_row(r) for r in rows]

    def current_version(self, list_id: str) -> PublishedVersion:
        """The version served now."""
        found = self._versions("v.list_id = ? ORDER BY v.version DESC LIMIT 1", (list_id,))
        if not found:
            raise NotFound(f"there is no status list {list_id!r}")
        return found[0]

    def version_at(self, list_id: str, at_ms: int) -> PublishedVersion:
        """The version that was current at ``at_ms`` (:class:`NotFound` before the first)."""
        found = self._versions(
            "v.list_id = ? AND v.created <= ? ORDER BY v.version DESC LIMIT 1", (list_id, at_ms)
        )
        if not found:
            self.get_list(list_id)  # NotFound if the list does not exist at all
            raise NotFound(
                f"status list {list_id} did not exist yet at {iso_ms(at_ms)}",
                hint="ask for a later timestamp",
            )
        return found[0]

    def version_by_digest(self, list_id: str, digest: bytes) -> PublishedVersion:
        """The version of ``list_id`` whose digest is ``digest``."""
        found = self._versions("v.list_id = ? AND v.digest = ?", (list_id, digest))
        if not found:
            self.get_list(list_id)
            raise NotFound(
                f"status list {list_id} never published a version with digest {digest.hex()}",
                hint="the list you hold was not published by this service: do not trust it",
            )
        return found[0]

    def versions(self, list_id: str) -> list[PublishedVersion]:
        """Every version of ``list_id``, oldest first."""
        return self._versions("v.list_id = ? ORDER BY v.version", (list_id,))

    def all_versions(self, after: int, limit: int) -> list[tuple[int, PublishedVersion]]:
        """Every published version of every list in publication order, paged: at most
        ``limit`` (up to :data:`MAX_VERSIONS_PAGE`) with a sequence number above ``after``,
        each with its sequence number (for auditors).

        The sequence number is the declared ``seq`` column (:func:`add_version_seq`: SQLite's
        ``rowid`` for versions published before it, so published numbers stay the same)."""
        rows = self.store.reader().execute(
            f"SELECT v.seq, {_VERSION_COLUMNS} FROM status_versions v "  # noqa: S608
            "JOIN status_lists l ON l.id = v.list_id WHERE v.seq > ? ORDER BY v.seq LIMIT ?",
            (after, min(limit, MAX_VERSIONS_PAGE)),
        )
        return [(int(r[0]), PublishedVersion.from_row(r[1:])) for r in rows]

    def current_versions(self) -> list[tuple[StatusList, PublishedVersion]]:
        """Every list with its current version (for a static export)."""
        return [(lst, self.current_version(lst.id)) for lst in self.lists()]

    def unlogged_versions(self) -> list[PublishedVersion]:
        """Versions not yet appended to the log (after a crash between the two steps)."""
        return self._versions("v.log_index IS NULL ORDER BY v.created", ())

    def history(
        self,
        list_id: str,
        *,
        after: int = 0,
        limit: int = MAX_HISTORY_PAGE,
        index: int | None = None,
    ) -> list[HistoryRecord]:
        """Recorded changes of ``list_id`` with ``seq`` > ``after``, oldest first."""
        self.get_list(list_id)
        sql = (
            "SELECT seq, list_id, version, idx, old, new, reason, actor, keyid, at "
            "FROM status_history WHERE list_id = ? AND seq > ?"
        )
        params: list[Any] = [list_id, after]
        if index is not None:
            sql += " AND idx = ?"
            params.append(index)
        sql += " ORDER BY seq LIMIT ?"
        params.append(max(1, min(limit, MAX_HISTORY_PAGE)))
        return [HistoryRecord(*row) for row in self.store.reader().execute(sql, params)]

    def current_bits(self, list_id: str) -> Bitstring:
        """The current bitstring of ``list_id``."""
        lst = self.get_list(list_id)
        return bits_of(self.current_version(list_id).credential(), lst.status_size)

    # -- the log ---------------------------------------------------------------------------

    def record_log_index(
        self, versions: Sequence[PublishedVersion], indexes: Sequence[int]
    ) -> None:
        """Remember the log index of each appended version."""
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE status_versions SET log_index = ? WHERE list_id = ? AND version = ?",
                [(i, v.list_id, v.version) for v, i in zip(versions, indexes, strict=True)],
            )

    def log_pending(self, log: Log) -> int:
        """Append every unlogged version to ``log`` synchronously (start-up recovery, the
        CLI, benchmarks); returns how many were appended."""
        pending = self.unlogged_versions()
        if pending:
            result = log.append([v.log_entry for v in pending])
            self.record_log_index(pending, result.indexes)
        return len(pending)

    # -- writing ---------------------------------------------------------------------------

    def _publish(
        self, conn: Connection, lst: StatusList, bits: Bitstring, signer: StatusSigner
    ) -> PublishedVersion:
        """Sign and store the next version of ``lst`` holding ``bits``."""
        if signer.issuer != lst.issuer:
            raise Forbidden(f"{signer.issuer} cannot sign the status lists of {lst.issuer}")
        previous = conn.execute(
            "SELECT max(created) FROM status_versions WHERE list_id = ?", (lst.id,)
        ).fetchone()[0]
        created = now_ms() if previous is None else max(now_ms(), int(previous) + 1)
        stamp = iso_ms(created)
        valid_ms = self.settings.valid_ms
        unsigned = build_status_list_credential(
            credential_id=lst.url,
            issuer=lst.issuer,
            status_purpose=lst.purpose,
            bitstring=bits,
            valid_from=stamp,
            valid_until=None if valid_ms is None else iso_ms(created + valid_ms),
            ttl=self.settings.ttl_ms,
            status_size=lst.status_size if lst.status_size != 1 else None,
            status_message=lst.status_message or None,
            min_entries=0,
        )
        signed = signer.sign(unsigned, stamp)
        body = canonicalize(signed)
        digest = hashlib.sha256(body).digest()  # = data_integrity.canonical_digest(signed)
        version = lst.version + 1
        conn.execute(
            "UPDATE status_versions SET superseded = ? WHERE list_id = ? AND version = ?",
            (created, lst.id, lst.version),
        )
        conn.execute(
            "INSERT INTO status_versions (list_id, version, created, superseded, digest,"
            " credential, log_index, seq) VALUES (?, ?, ?, NULL, ?, ?, NULL,"
            " (SELECT coalesce(max(seq), 0) + 1 FROM status_versions))",  # writes are serialised
            (lst.id, version, created, digest, body.decode("utf-8")),
        )
        conn.execute("UPDATE status_lists SET version = ? WHERE id = ?", (version, lst.id))
        return PublishedVersion(lst.id, lst.issuer, version, created, None, digest, body, None)

    def _open_list(
        self,
        conn: Connection,
        signer: StatusSigner,
        purpose: str,
        status_size: int,
        status_message: tuple[StatusMessage, ...],
        base_url: str,
    ) -> tuple[StatusList, PublishedVersion]:
        """Create, publish and make current a new list of this kind for the signer."""
        builder = BitstringBuilder(self.settings.list_entries, status_size, min_entries=0)
        entries = builder.entries
        list_id = secrets.token_hex(LIST_ID_BYTES)
        messages = messages_json(status_message)
        created = now_ms()
        conn.execute(
            "UPDATE status_lists SET state = ? WHERE issuer = ? AND purpose = ?"
            " AND status_size = ? AND status_message = ? AND state = ?",
            (CLOSED, signer.issuer, purpose, status_size, messages, OPEN),
        )
        conn.execute(
            "INSERT INTO status_lists (id, issuer, purpose, status_size, status_message, url,"
            " entries, allocated, allocation, state, created, version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, 0)",
            (
                list_id,
                signer.issuer,
                purpose,
                status_size,
                messages,
                list_url(base_url, list_id),
                entries,
                bytes((entries + 7) >> 3),
                OPEN,
                created,
            ),
        )
        lst = self._list(conn, list_id)
        version = self._publish(conn, lst, builder.build(), signer)
        return self._list(conn, list_id), version

    def create_list(
        self,
        signer: StatusSigner,
        purpose: str,
        base_url: str,
        *,
        status_size: int = 1,
        status_message: tuple[StatusMessage, ...] = (),
    ) -> tuple[StatusList, PublishedVersion]:
        """Open a new list for ``signer.issuer`` (closing the open one of the same kind for
        allocation) and publish its first, all-zero version."""
        require_kind(purpose, status_size, status_message)
        with self.store.transaction() as conn:
            return self._open_list(conn, signer, purpose, status_size, status_message, base_url)

    def allocate(
        self,
        signer: StatusSigner,
        purpose: str,
        count: int | None,
        base_url: str,
        *,
        credential_ids: Sequence[object] | None = None,
        status_size: int = 1,
        status_message: tuple[StatusMessage, ...] = (),
    ) -> Allocation:
        """Allocate ``count`` entries (or one per credential id) of the issuer's open list of
        this kind, opening lists as needed. An id allocated before gets its earlier entry
        back, and a repeated id gets one entry
        (:func:`~anchor.status.allocation.plan_allocation`)."""
        request: dict[str, object] = {}
        if count is not None:
            request["count"] = count
        if credential_ids is not None:
            request["credentialIds"] = list(credential_ids)
        size = allocation_count(request)
        require_kind(purpose, status_size, status_message)
        ids = hidden_credential_ids(credential_ids, size, self._id_key)
        issuer = signer.issuer
        with self.store.transaction() as conn:
            plan = plan_allocation(ids, self._known_credentials(conn, issuer, purpose, ids))
            published: list[PublishedVersion] = []
            kind = (purpose, status_size, status_message)
            drawn = self._draw(conn, signer, kind, base_url, len(plan.draw), published)
            stamp = now_ms()
            conn.executemany(
                "INSERT INTO status_entries (list_id, idx, issuer, purpose, credential_id,"
                " allocated) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (list_id, index, issuer, purpose, ids[position], stamp)
                    for position, (list_id, index) in zip(plan.draw, drawn, strict=True)
                ],
            )
            slots, new = plan.assign(drawn)
            lists: dict[str, StatusList] = {}
            entries = []
            for list_id, index in slots:
                if list_id not in lists:
                    lists[list_id] = self._list(conn, list_id)
                entries.append(lists[list_id].entry(index))
        return Allocation(tuple(entries), tuple(new), tuple(published))

    def _known_credentials(
        self, conn: Connection, issuer: str, purpose: str, ids: Sequence[str | None]
    ) -> dict[str, tuple[str, int]]:
        wanted = sorted({cid for cid in ids if cid is not None})
        found: dict[str, tuple[str, int]] = {}
        for start in range(0, len(wanted), _SQL_CHUNK):
            chunk = wanted[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT credential_id, list_id, idx FROM status_entries"  # noqa: S608
                f" WHERE issuer = ? AND purpose = ? AND credential_id IN ({marks})",
                (issuer, purpose, *chunk),
            )
            for cid, list_id, idx in rows:
                found[cid] = (list_id, int(idx))
        return found

    def _draw(
        self,
        conn: Connection,
        signer: StatusSigner,
        kind: tuple[str, int, tuple[StatusMessage, ...]],
        base_url: str,
        count: int,
        published: list[PublishedVersion],
    ) -> list[tuple[str, int]]:
        """Draw ``count`` free positions from the open list(s) of ``kind`` (purpose, size,
        messages), rolling over at the threshold; appends the versions of lists it opens to
        ``published``."""
        purpose, status_size, status_message = kind
        messages = messages_json(status_message)
        out: list[tuple[str, int]] = []
        while len(out) < count:
            row = conn.execute(
                "SELECT id, allocation FROM status_lists WHERE issuer = ? AND purpose = ?"
                " AND status_size = ? AND status_message = ? AND state = ?"
                " ORDER BY created DESC LIMIT 1",
                (signer.issuer, purpose, status_size, messages, OPEN),
            ).fetchone()
            if row is None:
                _lst, first = self._open_list(
                    conn, signer, purpose, status_size, status_message, base_url
                )
                published.append(first)
                continue
            lst = self._list(conn, row[0])
            allocation = bytearray(row[1])
            take = take_from(lst.threshold, lst.allocated, count - len(out))
            out.extend((lst.id, i) for i in sample_free(allocation, lst.entries, take))
            allocated = lst.allocated + take
            full = allocated >= lst.threshold
            conn.execute(
                "UPDATE status_lists SET allocated = ?, allocation = ?, state = ? WHERE id = ?",
                (allocated, bytes(allocation), CLOSED if full else OPEN, lst.id),
            )
            if full:  # open the next list before this one fills
                _lst, first = self._open_list(
                    conn, signer, purpose, status_size, status_message, base_url
                )
                published.append(first)
        return out

    def update(
        self,
        list_id: str,
        signer: StatusSigner,
        changes: Sequence[StatusChange],
        *,
        keyid: str | None = None,
    ) -> UpdateResult:
        """Apply a batch of changes by ``signer.issuer`` (the list's owner) and publish the
        new version; all or nothing (see the module docstring)."""
        check_batch_size(len(changes))
        actor = signer.issuer
        with self.store.transaction() as conn:
            lst = self._list(conn, list_id)
            if lst.issuer != actor:
                raise Forbidden(f"status list {list_id} belongs to another issuer")
            row = conn.execute(
                "SELECT v.credential, l.allocation FROM status_versions v JOIN status_lists l"
                " ON l.id = v.list_id WHERE v.list_id = ? AND v.version = l.version",
                (list_id,),
            ).fetchone()
            allocation = bytes(row[1])
            builder = bits_of(json.loads(row[0]), lst.status_size).builder()
            final, records = plan_changes(lst, builder, allocation, changes)
            if not records:
                current = self._current_in(conn, list_id)
                return UpdateResult(lst, 0, current)
            by_value: dict[int, list[int]] = {}
            for index, value in final.items():
                by_value.setdefault(value, []).append(index)
            for value, indexes in by_value.items():
                builder.set_many(indexes, value)
            version = self._publish(conn, lst, builder.build(), signer)
            conn.executemany(
                "INSERT INTO status_history (list_id, version, idx, old, new, reason, actor,"
                " keyid, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        list_id,
                        version.version,
                        i,
                        old,
                        new,
                        reason,
                        actor,
                        keyid,
                        version.created_ms,
                    )
                    for i, old, new, reason in records
                ],
            )
            after = self._list(conn, list_id)
        return UpdateResult(after, len(records), version)

    def _current_in(self, conn: Connection, list_id: str) -> PublishedVersion:
        row = conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM status_versions v "  # noqa: S608
            "JOIN status_lists l ON l.id = v.list_id WHERE v.list_id = ? "
            "ORDER BY v.version DESC LIMIT 1",
            (list_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"there is no status list {list_id!r}")
        return PublishedVersion.from_row(row)

    def republish(
        self, list_id: str, signer: StatusSigner, *, if_version: int
    ) -> PublishedVersion | None:
        """Sign the current bits again as a new version (to renew ``validUntil``), unless
        the list has moved past ``if_version`` meanwhile (then ``None``)."""
        with self.store.transaction() as conn:
            lst = self._list(conn, list_id)
            if lst.version != if_version:
                return None
            current = self._current_in(conn, list_id)
            bits = bits_of(current.credential(), lst.status_size)
            return self._publish(conn, lst, bits, signer)

    def due_for_renewal(self, at_ms: int) -> list[PublishedVersion]:
        """Current versions whose ``validUntil`` falls within one ttl of ``at_ms``, oldest
        first (none when lists are published without a validity period)."""
        valid_ms = self.settings.valid_ms
        if valid_ms is None:
            return []
        return self._versions(
            "v.superseded IS NULL AND v.created <= ? ORDER BY v.created",
            (at_ms + self.settings.ttl_ms - valid_ms,),
        )

    def needs_renewal(self, version: PublishedVersion, at_ms: int) -> bool:
        """Whether ``version`` expires (``validUntil``) within one ttl of ``at_ms``."""
        valid_ms = self.settings.valid_ms
        if valid_ms is None or version.superseded_ms is not None:
            return False
        return at_ms + self.settings.ttl_ms >= version.created_ms + valid_ms
