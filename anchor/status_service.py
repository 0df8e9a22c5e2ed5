"""Status lists kept by the service: tables, allocation, updates, history and publishing.

The pure model (bitstrings, encoding, the credential shape, validation) is
:mod:`anchor.status_list`; this module keeps lists in the store and publishes them. Its
:class:`StatusService` methods are synchronous and run in a worker thread
(``asyncio.to_thread``) from the routes; only :func:`authorized_signer` and
:func:`find_assertion_method`, which resolve DIDs, are coroutines.

Lists
    Each issuer has lists per ``statusPurpose`` (``revocation``, ``suspension`` and
    ``message`` with a ``statusSize`` of 2..8 and its ``statusMessage``). A list holds
    :attr:`StatusSettings.list_entries` entries (131,072 by default, the spec's minimum).
    Indexes are drawn uniformly at random among the list's free positions with the
    operating system's CSPRNG (:mod:`secrets`) and are never reused: every allocated index
    is a row of ``status_entries`` whose primary key ``(list_id, idx)`` makes a second
    allocation of the same position fail in the database, whatever the code above it does.
    When :data:`ROLLOVER_FRACTION` of a list is allocated, the list is closed for
    allocation and the next one is opened and published at once, so a list never fills and
    its remaining free positions keep the herd large. Allocation with a credential id is
    idempotent: the same issuer, purpose and credential id always get the same entry.

Updates
    A batch of ``(index, value, reason)`` changes is checked as a whole and then applied
    in one ``BEGIN IMMEDIATE`` transaction: read the current version's bitstring, apply
    the changes with :meth:`~anchor.status_list.BitstringBuilder.set_many` (one call per
    distinct value), sign and store the new version, record one history row per change.
    Concurrent batches on one list are thereby serialised and none is lost. Revocation is
    irreversible: a batch that would clear a revoked entry is refused as a whole with
    :class:`~anchor.errors.Conflict` (409) and nothing of it is applied. Only allocated
    indexes can be changed.

Versions
    Every change publishes a new version: the ``BitstringStatusListCredential`` (VC Data
    Model 2.0; ``validFrom`` = the version's time, ``validUntil`` when configured, ``ttl``)
    secured with an ``eddsa-jcs-2022`` proof by the issuer's status key, stored as RFC 8785
    canonical JSON. Its SHA-256 (= :func:`anchor.data_integrity.canonical_digest` of the
    signed credential) is the version's digest, its HTTP ``ETag``, and the digest of the
    ``status-list`` entry that anchors it in the log (``log_index`` once appended).

Status keys
    The proof's key must be listed under ``assertionMethod`` in the issuer's DID document.
    The service holds one Ed25519 key per issuer in
    ``DATA_DIR/status-keys/<sha256(did) hex>.jwk`` (mode 0600). For did:web and did:ethr
    issuers it is generated on first use and the issuer adds its public half to its DID
    document (:meth:`StatusKeyInfo.did_document_addition`); a did:key issuer, whose
    document cannot change, uploads its own did:key private key once. Before signing,
    :func:`authorized_signer` resolves the DID and finds the verification method under
    ``assertionMethod`` that holds the key; without one, publishing is refused with
    :class:`StatusKeyNotAuthorized` (409), which says what to add.

Tables (created if missing)::

    status_lists     id PK, issuer, purpose, status_size, status_message ('' or JSON),
                     url, entries, allocated, allocation (bitmap BLOB), state
                     ('open' | 'closed'), created (ms), version (current)
    status_entries   (list_id, idx) PK, issuer, purpose, credential_id, allocated (ms);
                     UNIQUE (issuer, purpose, credential_id) where credential_id is set
    status_versions  (list_id, version) PK, created (ms), superseded (ms), digest UNIQUE,
                     credential (canonical JSON), log_index
    status_history   seq PK, list_id, version, idx, old, new, reason, actor, keyid, at (ms)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from anchor.data_integrity import canonicalize, create_proof, ed25519_public_key_to_multibase
from anchor.db.api import Connection
from anchor.entry import Entry, EntryKind
from anchor.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    StoreError,
)
from anchor.identity import ResolutionUnavailable, ed25519_key_for
from anchor.keys import (
    DID_KEY_PREFIX,
    Ed25519Key,
    generate_if_missing,
    load_ed25519_key,
    save_key,
)
from anchor.status_list import (
    MAX_STATUS_SIZE,
    MIN_ENTRIES,
    Bitstring,
    BitstringBuilder,
    BitstringStatusListEntry,
    StatusMessage,
    build_status_list_credential,
    expand_bitstring,
)
from anchor.store import LogStore
from did_methods import ErrorCode, Resolver, absolute_did_url

if TYPE_CHECKING:
    from anchor.config import Config
    from anchor.log import Log

_LOG = logging.getLogger(__name__)

# --- limits and constants -------------------------------------------------------------------

MANAGED_PURPOSES: Final = ("revocation", "suspension", "message")
"""The purposes of the lists this service keeps."""

IRREVERSIBLE_PURPOSES: Final = frozenset({"revocation"})
"""Purposes whose set entries can never be cleared again."""

ROLLOVER_FRACTION: Final = 0.9
"""Share of a list's entries allocated before it is closed and the next list is opened."""

MAX_ALLOCATION: Final = 10_000
"""Most entries one allocation request may ask for."""

MAX_UPDATES: Final = 100_000
"""Most status changes in one batch."""

MAX_CREDENTIAL_ID_CHARS: Final = 2048
"""Longest credential id accepted for idempotent allocation."""

MAX_REASON_CHARS: Final = 1000
"""Longest reason recorded with a change."""

MAX_HISTORY_PAGE: Final = 1000
"""Most history records returned at once."""

MAX_VERSIONS_PAGE: Final = 100
"""Most published versions (each a whole credential) returned at once."""

DEFAULT_TTL_MS: Final = 300_000
"""Default ``ttl`` of a published list (five minutes)."""

MS_PER_DAY: Final = 86_400_000

LIST_ID_BYTES: Final = 8
"""Random bytes in a list id (16 hex digits: unguessable, safe in URLs and file names)."""

LIST_PATH: Final = "/v1/status-lists/"
"""URL path prefix of published lists, on the service and in a static export."""

STATUS_KEY_DIR: Final = "status-keys"
"""Directory under the data directory holding the issuers' status keys."""

PROOF_PURPOSE: Final = "assertionMethod"
"""Verification relationship the status key must have in the issuer's DID document."""

CUSTODIAL_VM_TYPE: Final = "Multikey"
"""Type of the verification method an issuer adds for the service-held key."""

_SQL_CHUNK: Final = 500
_OPEN: Final = "open"
_CLOSED: Final = "closed"
_SCHEMA: Final = (
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


HIDDEN_ID_PREFIX: Final = "hmac-sha256:"
"""Credential ids are kept only as ``HIDDEN_ID_PREFIX`` + HMAC-SHA256 under a per-database
key: issuers may use meaningful ids (an e-mail address, a student number), and the service
keeps no personal data. Idempotent allocation only needs equality."""

_ID_KEY_META: Final = "credential_id_key"
_IDS_HIDDEN_META: Final = "credential_ids_hidden"


def hide_credential_id(key: bytes, credential_id: str) -> str:
    """The stored form of ``credential_id``."""
    mac = hmac.new(key, credential_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return HIDDEN_ID_PREFIX + mac


def ensure_schema(store: LogStore) -> bytes:
    """Create the status list tables and indexes if they are missing, and the key that hides
    credential ids (ids stored in clear by an earlier version are hidden now). Returns it."""
    with store.transaction() as conn:
        for statement in _SCHEMA:
            conn.execute(statement)
        if store.db.dialect == "postgresql":  # SQLite's implicit rowid: the publication order
            conn.execute(
                "ALTER TABLE status_versions ADD COLUMN IF NOT EXISTS rowid"
                " BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE"
            )
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


def now_ms() -> int:
    """The current time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def iso_ms(ms: int) -> str:
    """An XML Schema ``dateTimeStamp`` in UTC to the millisecond (``...T12:00:00.123Z``)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def list_url(base_url: str, list_id: str) -> str:
    """The public URL of a list: the credential's ``id`` and every entry's
    ``statusListCredential``."""
    return base_url.rstrip("/") + LIST_PATH + list_id


# --- errors ---------------------------------------------------------------------------------


class StatusKeyNotAuthorized(Conflict):
    """The issuer's DID document does not list the status key under ``assertionMethod``
    (or a did:key issuer has not uploaded its key): the list cannot be published. The
    problem document carries what to add (``didDocumentAddition``) or upload."""

    slug = "status-key-not-authorized"
    title = "Status list key not authorised"


# --- values ---------------------------------------------------------------------------------


def _messages_json(messages: Sequence[StatusMessage]) -> str:
    return json.dumps([m.to_json() for m in messages], separators=(",", ":")) if messages else ""


def _messages_from_json(text: str) -> tuple[StatusMessage, ...]:
    if not text:
        return ()
    return tuple(StatusMessage(int(m["status"], 16), m["message"]) for m in json.loads(text))


@dataclass(frozen=True, slots=True)
class StatusList:
    """One list: who owns it, what it is for, how full it is, its current version."""

    id: str
    issuer: str
    purpose: str
    status_size: int
    status_message: tuple[StatusMessage, ...]
    url: str
    entries: int
    allocated: int
    open: bool
    created_ms: int
    version: int

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> StatusList:
        return cls(
            id=row[0],
            issuer=row[1],
            purpose=row[2],
            status_size=int(row[3]),
            status_message=_messages_from_json(row[4]),
            url=row[5],
            entries=int(row[6]),
            allocated=int(row[7]),
            open=row[8] == _OPEN,
            created_ms=int(row[9]),
            version=int(row[10]),
        )

    @property
    def threshold(self) -> int:
        """Allocations after which the list is closed and the next one opened."""
        return max(1, int(self.entries * ROLLOVER_FRACTION))

    def entry(self, index: int) -> BitstringStatusListEntry:
        """The ``credentialStatus`` entry of position ``index``."""
        return BitstringStatusListEntry(
            id=f"{self.url}#{index}",
            status_purpose=self.purpose,
            status_list_index=index,
            status_list_credential=self.url,
            status_size=self.status_size,
            status_message=self.status_message,
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "issuer": self.issuer,
            "statusPurpose": self.purpose,
            "statusSize": self.status_size,
            "entries": self.entries,
            "allocated": self.allocated,
            "open": self.open,
            "created": iso_ms(self.created_ms),
            "version": self.version,
        }
        if self.status_message:
            doc["statusMessage"] = [m.to_json() for m in self.status_message]
        return doc


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """One signed version of a list. ``document`` is the credential's RFC 8785 canonical
    JSON (the bytes served); ``digest`` its SHA-256."""

    list_id: str
    issuer: str
    version: int
    created_ms: int
    superseded_ms: int | None
    digest: bytes
    document: bytes
    log_index: int | None

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> PublishedVersion:
        return cls(
            list_id=row[0],
            issuer=row[1],
            version=int(row[2]),
            created_ms=int(row[3]),
            superseded_ms=None if row[4] is None else int(row[4]),
            digest=bytes(row[5]),
            document=str(row[6]).encode("utf-8"),
            log_index=None if row[7] is None else int(row[7]),
        )

    @property
    def etag(self) -> str:
        """The strong HTTP entity tag (the digest in hex, quoted)."""
        return f'"{self.digest.hex()}"'

    @property
    def log_entry(self) -> Entry:
        """The ``status-list`` log entry anchoring this version, submitted by the issuer."""
        return Entry(EntryKind.STATUS_LIST, self.digest, self.issuer)

    def credential(self) -> dict[str, Any]:
        """The signed credential as JSON."""
        doc: dict[str, Any] = json.loads(self.document)
        return doc

    def is_stale(self, ttl_ms: int, at_ms: int) -> bool:
        """Whether this version was superseded more than ``ttl_ms`` before ``at_ms``."""
        return self.superseded_ms is not None and at_ms - self.superseded_ms > ttl_ms


@dataclass(frozen=True, slots=True)
class Allocation:
    """Entries allocated for one request, in request order; ``new`` says which were drawn
    now (the others were already allocated to the same credential id). ``published``
    holds the first versions of the lists opened meanwhile (to be appended to the log)."""

    entries: tuple[BitstringStatusListEntry, ...]
    new: tuple[bool, ...]
    published: tuple[PublishedVersion, ...]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One requested change: set entry ``index`` to ``value``."""

    index: int
    value: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The outcome of a batch: the list after it, how many changes were recorded, and the
    version now current (new when ``changed`` > 0)."""

    list: StatusList
    changed: int
    version: PublishedVersion


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One recorded change of one entry."""

    seq: int
    list_id: str
    version: int
    index: int
    old: int
    new: int
    reason: str | None
    actor: str
    keyid: str | None
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "version": self.version,
            "index": str(self.index),
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
            "by": self.actor,
            "keyid": self.keyid,
            "at": iso_ms(self.at_ms),
        }


@dataclass(frozen=True, slots=True)
class StatusKeyInfo:
    """The public side of an issuer's status key and how the issuer authorises it."""

    did: str
    public_key: bytes
    uploaded: bool
    """True for a did:key issuer's own key, False for a key the service generated."""

    @property
    def public_key_multibase(self) -> str:
        return ed25519_public_key_to_multibase(self.public_key)

    @property
    def suggested_verification_method(self) -> str:
        """The id to give the key in the DID document: the DID and, as the fragment, the
        key's ``publicKeyMultibase`` (for did:key this *is* its verification method)."""
        return f"{self.did}#{self.public_key_multibase}"

    def did_document_addition(self) -> dict[str, Any]:
        """What a did:web issuer adds to its DID document (merged into the arrays)."""
        vm = self.suggested_verification_method
        return {
            "verificationMethod": [
                {
                    "id": vm,
                    "type": CUSTODIAL_VM_TYPE,
                    "controller": self.did,
                    "publicKeyMultibase": self.public_key_multibase,
                }
            ],
            PROOF_PURPOSE: [vm],
        }

    def instructions(self) -> str:
        """One paragraph telling the issuer how to authorise this key."""
        if self.did.startswith(DID_KEY_PREFIX):
            return (
                f"{self.did} signs its status lists with its own did:key key, uploaded once "
                "with a signed POST /v1/status-keys whose body is the private JWK"
            )
        if self.did.startswith("did:ethr:"):
            return (
                "add the key to the DID's ERC-1056 registry: setAttribute(identity, "
                '"did/pub/Ed25519/veriKey/base58", 0x' + self.public_key.hex() + ", validity)"
            )
        return (
            "add didDocumentAddition to the DID document: its verificationMethod entry to "
            f"verificationMethod and its id to {PROOF_PURPOSE}"
        )

    def to_json(self, *, authorized: bool | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "did": self.did,
            "custody": "uploaded" if self.uploaded else "generated",
            "publicKeyMultibase": self.public_key_multibase,
            "suggestedVerificationMethod": self.suggested_verification_method,
            "instructions": self.instructions(),
        }
        if not self.did.startswith(DID_KEY_PREFIX):
            doc["didDocumentAddition"] = self.did_document_addition()
            doc["ethrAttribute"] = {
                "name": "did/pub/Ed25519/veriKey/base58",
                "value": "0x" + self.public_key.hex(),
            }
        if authorized is not None:
            doc["authorized"] = authorized
        return doc


@dataclass(frozen=True, slots=True, repr=False)
class StatusSigner:
    """An issuer's status key, found authorised under ``assertionMethod`` as
    ``verification_method``. ``repr()`` shows no secret."""

    issuer: str
    verification_method: str
    key: Ed25519Key

    def sign(self, document: Mapping[str, Any], created: str) -> dict[str, Any]:
        """``document`` with an ``eddsa-jcs-2022`` proof made at ``created``."""
        seed = self.key.private_key.private_bytes_raw()
        return create_proof(document, seed, self.verification_method, PROOF_PURPOSE, created)

    def __repr__(self) -> str:
        return f"StatusSigner(issuer={self.issuer!r}, vm={self.verification_method!r})"


@dataclass(frozen=True, slots=True)
class StatusSettings:
    """How the service builds lists: where keys live, list length, ttl and validity."""

    data_dir: Path
    list_entries: int = MIN_ENTRIES
    ttl_ms: int = DEFAULT_TTL_MS
    valid_ms: int | None = None

    @classmethod
    def from_config(cls, config: Config) -> StatusSettings:
        days = config.status_valid_days
        return cls(
            data_dir=config.data_dir,
            list_entries=config.status_list_entries,
            ttl_ms=config.status_ttl_ms,
            valid_ms=None if days is None else int(days * MS_PER_DAY),
        )


# --- input checks ---------------------------------------------------------------------------


def check_list_kind(
    purpose: object, status_size: object, status_message: object
) -> tuple[str, int, tuple[StatusMessage, ...]]:
    """Validate a requested list kind; returns ``(purpose, statusSize, statusMessage)``."""
    if isinstance(status_size, float) and status_size.is_integer():  # JSON's 2.0 is 2
        status_size = int(status_size)
    if not isinstance(purpose, str) or purpose not in MANAGED_PURPOSES:
        raise InvalidInput(
            f"statusPurpose must be one of {', '.join(MANAGED_PURPOSES)}, got {purpose!r}"
        )
    if purpose != "message":
        if status_size not in (None, 1) or status_message is not None:
            raise InvalidInput(
                f"a {purpose} list has 1-bit entries: statusSize and statusMessage are only "
                "for the message purpose"
            )
        return purpose, 1, ()
    if (
        not isinstance(status_size, int)
        or isinstance(status_size, bool)
        or not 2 <= status_size <= MAX_STATUS_SIZE
    ):
        raise InvalidInput(
            f"a message list needs a statusSize of 2..{MAX_STATUS_SIZE}, got {status_size!r}"
        )
    if not isinstance(status_message, list):
        raise InvalidInput(
            f"a message list needs statusMessage: {1 << status_size} objects "
            '{"status": "0x..", "message": ".."}'
        )
    # The entry validates the messages (count, hex statuses, no duplicates).
    probe = BitstringStatusListEntry(
        status_purpose=purpose,
        status_list_index=0,
        status_list_credential="urn:ler-anchor:probe",
        status_size=status_size,
        status_message=tuple(status_message),
    )
    if [m.status for m in probe.status_message] != list(range(1 << status_size)):
        raise InvalidInput(
            "statusMessage must list the statuses in order: 0x0, 0x1, 0x2, ...",
            hint="one object per status value, sorted by status",
        )
    return purpose, status_size, probe.status_message


def _require_kind(
    purpose: str, status_size: int, status_message: tuple[StatusMessage, ...]
) -> None:
    """:func:`check_list_kind` for values already parsed (callers of the Python API)."""
    check_list_kind(
        purpose,
        None if status_size == 1 else status_size,
        list(status_message) if status_message else None,
    )


def _check_credential_ids(
    credential_ids: Sequence[object] | None, count: int, key: bytes
) -> list[str | None]:
    """The ids checked, in their stored (hidden) form."""
    if credential_ids is None:
        return [None] * count
    out: list[str | None] = []
    for i, cid in enumerate(credential_ids):
        if not isinstance(cid, str) or not 0 < len(cid) <= MAX_CREDENTIAL_ID_CHARS:
            raise InvalidInput(
                f"credentialIds[{i}] must be a string of 1..{MAX_CREDENTIAL_ID_CHARS} characters"
            )
        out.append(hide_credential_id(key, cid))
    return out


def _sample_free(allocation: bytearray, entries: int, count: int) -> list[int]:
    """``count`` distinct free positions drawn uniformly with the CSPRNG; marks them."""
    free = entries - int.from_bytes(allocation, "big").bit_count()
    if count > free:
        raise StoreError(
            f"a status list has {free} free positions, {count} were asked for",
            hint="the list's allocation counter and bitmap disagree; check the database",
        )
    chosen: list[int] = []
    randbelow = secrets.randbelow
    while len(chosen) < count:
        index = randbelow(entries)
        byte = index >> 3
        bit = 0x80 >> (index & 7)
        if not allocation[byte] & bit:
            allocation[byte] |= bit
            chosen.append(index)
    return chosen


def _is_allocated(allocation: bytes, index: int) -> bool:
    return bool(allocation[index >> 3] & (0x80 >> (index & 7)))


# --- the service ----------------------------------------------------------------------------


class StatusService:
    """Status lists in the store (see the module docstring). Thread-safe: every write is
    one store transaction; reads use the calling thread's reader connection."""

    def __init__(self, store: LogStore, settings: StatusSettings) -> None:
        self.store = store
        self.settings = settings
        self._id_key = ensure_schema(store)

    # -- status keys -------------------------------------------------------------------------

    def key_path(self, did: str) -> Path:
        """Where the status key of ``did`` lives (the file name does not reveal the DID)."""
        name = hashlib.sha256(did.encode("utf-8")).hexdigest() + ".jwk"
        return self.settings.data_dir / STATUS_KEY_DIR / name

    def signing_key(self, did: str, *, generate: bool = False) -> Ed25519Key | None:
        """The status key of ``did``; with ``generate``, a non-did:key issuer's key is
        created on first use (a did:key issuer must upload its own)."""
        path = self.key_path(did)
        if did.startswith(DID_KEY_PREFIX) or not generate:
            return load_ed25519_key(path) if path.exists() else None
        key, _created = generate_if_missing(path, "ed25519")
        return key

    def upload_key(self, did: str, key: Ed25519Key) -> StatusKeyInfo:
        """Store a did:key issuer's own key (its public half must be the did:key)."""
        if not did.startswith(DID_KEY_PREFIX):  # the issuer's DID method decides: 409
            raise Conflict(
                f"only a did:key issuer uploads its key; {did} uses a key the service generates",
                hint="send an empty JSON object {} to get the key to add to your DID document",
            )
        if key.did != did:
            raise Forbidden(
                f"the uploaded key is {key.did}, not the key of {did}",
                hint="upload the private JWK of the did:key that signs your requests",
            )
        path = self.key_path(did)
        if not path.exists():
            try:
                save_key(key, path)
            except ConfigError:
                if not path.exists():  # not a concurrent upload of the same key
                    raise
        return StatusKeyInfo(did, key.public_bytes, uploaded=True)

    def key_info(self, did: str, *, generate: bool = False) -> StatusKeyInfo | None:
        """The public side of ``did``'s status key, if it has one."""
        key = self.signing_key(did, generate=generate)
        if key is None:
            return None
        return StatusKeyInfo(did, key.public_bytes, uploaded=did.startswith(DID_KEY_PREFIX))

    # -- reading ---------------------------------------------------------------------------

    def _list(self, conn: Connection, list_id: str) -> StatusList:
        row = conn.execute(
            f"SELECT {_LIST_COLUMNS} FROM status_lists WHERE id = ?",  # noqa: S608
            (list_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"there is no status list {list_id!r}")
        return StatusList._from_row(row)

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
        return [StatusList._from_row(r) for r in rows]

    def _versions(self, where: str, params: Sequence[Any]) -> list[PublishedVersion]:
        rows = self.store.reader().execute(
            f"SELECT {_VERSION_COLUMNS} FROM status_versions v "  # noqa: S608
            f"JOIN status_lists l ON l.id = v.list_id WHERE {where}",
            params,
        )
        return [PublishedVersion._from_row(r) for r in rows]

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
        each with its sequence number (for auditors)."""
        rows = self.store.reader().execute(
            f"SELECT v.rowid, {_VERSION_COLUMNS} FROM status_versions v "  # noqa: S608
            "JOIN status_lists l ON l.id = v.list_id WHERE v.rowid > ? ORDER BY v.rowid LIMIT ?",
            (after, min(limit, MAX_VERSIONS_PAGE)),
        )
        return [(int(r[0]), PublishedVersion._from_row(r[1:])) for r in rows]

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
        return _bits_of(self.current_version(list_id).credential(), lst.status_size)

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
            " credential, log_index) VALUES (?, ?, ?, NULL, ?, ?, NULL)",
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
        messages = _messages_json(status_message)
        created = now_ms()
        conn.execute(
            "UPDATE status_lists SET state = ? WHERE issuer = ? AND purpose = ?"
            " AND status_size = ? AND status_message = ? AND state = ?",
            (_CLOSED, signer.issuer, purpose, status_size, messages, _OPEN),
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
                _OPEN,
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
        _require_kind(purpose, status_size, status_message)
        with self.store.transaction() as conn:
            return self._open_list(conn, signer, purpose, status_size, status_message, base_url)

    def allocate(
        self,
        signer: StatusSigner,
        purpose: str,
        count: int,
        base_url: str,
        *,
        credential_ids: Sequence[object] | None = None,
        status_size: int = 1,
        status_message: tuple[StatusMessage, ...] = (),
    ) -> Allocation:
        """Allocate ``count`` entries of the issuer's open list of this kind, opening lists
        as needed. With ``credential_ids`` (one per entry), an id allocated before gets
        its earlier entry back, and a repeated id gets one entry."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InvalidInput(f"count must be a positive integer, got {count!r}")
        if count > MAX_ALLOCATION:
            raise LimitExceeded(
                f"{count} entries in one allocation; at most {MAX_ALLOCATION}",
                hint="allocate in several requests",
            )
        _require_kind(purpose, status_size, status_message)
        ids = _check_credential_ids(credential_ids, count, self._id_key)
        if len(ids) != count:
            raise InvalidInput(f"{len(ids)} credentialIds for a count of {count}")
        issuer = signer.issuer
        with self.store.transaction() as conn:
            known = self._known_credentials(conn, issuer, purpose, ids)
            lists: dict[str, StatusList] = {}
            slots: list[tuple[str, int] | None] = [known.get(cid) if cid else None for cid in ids]
            new = [False] * count
            wanted: list[int] = []
            first_of: dict[str, int] = {}
            for position, cid in enumerate(ids):
                if slots[position] is not None:
                    continue
                if cid is not None and cid in first_of:
                    continue  # a repeated id takes the entry of its first occurrence
                if cid is not None:
                    first_of[cid] = position
                wanted.append(position)
            published: list[PublishedVersion] = []
            kind = (purpose, status_size, status_message)
            drawn = iter(self._draw(conn, signer, kind, base_url, len(wanted), published))
            stamp = now_ms()
            rows = []
            for position in wanted:
                list_id, index = next(drawn)
                slots[position] = (list_id, index)
                new[position] = True
                rows.append((list_id, index, issuer, purpose, ids[position], stamp))
            conn.executemany(
                "INSERT INTO status_entries (list_id, idx, issuer, purpose, credential_id,"
                " allocated) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            for position, cid in enumerate(ids):
                if slots[position] is None and cid is not None:
                    slots[position] = slots[first_of[cid]]
            entries = []
            for slot in slots:
                assert slot is not None
                list_id, index = slot
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
        messages = _messages_json(status_message)
        out: list[tuple[str, int]] = []
        while len(out) < count:
            row = conn.execute(
                "SELECT id, allocation FROM status_lists WHERE issuer = ? AND purpose = ?"
                " AND status_size = ? AND status_message = ? AND state = ?"
                " ORDER BY created DESC LIMIT 1",
                (signer.issuer, purpose, status_size, messages, _OPEN),
            ).fetchone()
            if row is None:
                _lst, first = self._open_list(
                    conn, signer, purpose, status_size, status_message, base_url
                )
                published.append(first)
                continue
            lst = self._list(conn, row[0])
            allocation = bytearray(row[1])
            take = min(lst.threshold - lst.allocated, count - len(out))
            if take > 0:
                out.extend((lst.id, i) for i in _sample_free(allocation, lst.entries, take))
            allocated = lst.allocated + max(take, 0)
            full = allocated >= lst.threshold
            conn.execute(
                "UPDATE status_lists SET allocated = ?, allocation = ?, state = ? WHERE id = ?",
                (allocated, bytes(allocation), _CLOSED if full else _OPEN, lst.id),
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
        if not changes:
            raise InvalidInput("the batch holds no change")
        if len(changes) > MAX_UPDATES:
            raise LimitExceeded(
                f"{len(changes)} changes in one batch; at most {MAX_UPDATES}",
                hint="split the batch",
            )
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
            builder = _bits_of(json.loads(row[0]), lst.status_size).builder()
            final, records = _plan(lst, builder, allocation, changes)
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
        return PublishedVersion._from_row(row)

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
            bits = _bits_of(current.credential(), lst.status_size)
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


def _bits_of(credential: Mapping[str, Any], status_size: int) -> Bitstring:
    return Bitstring(expand_bitstring(credential["credentialSubject"]["encodedList"]), status_size)


def _plan(
    lst: StatusList,
    builder: BitstringBuilder,
    allocation: bytes,
    changes: Iterable[StatusChange],
) -> tuple[dict[int, int], list[tuple[int, int, int, str | None]]]:
    """Check a batch against the list; returns the final value per changed index and the
    history records ``(index, old, new, reason)``. Raises before anything is applied."""
    limit = 1 << lst.status_size
    irreversible = lst.purpose in IRREVERSIBLE_PURPOSES
    entries = lst.entries
    final: dict[int, int] = {}
    records: list[tuple[int, int, int, str | None]] = []
    for number, change in enumerate(changes):
        index, value = change.index, change.value
        if not 0 <= index < entries:  # like an index never allocated: no such entry
            raise NotFound(
                f"change {number}: index {index} is outside the list of {entries} entries"
            )
        if not _is_allocated(allocation, index):
            raise NotFound(
                f"change {number}: index {index} of status list {lst.id} was never allocated",
                hint="set only entries you allocated; nothing of this batch was applied",
            )
        if not 0 <= value < limit:  # well formed, but not for this list's statusSize
            raise Conflict(
                f"change {number}: value {value} does not fit in {lst.status_size} bit(s)",
                hint=f"this {lst.purpose} list takes values 0..{limit - 1}",
            )
        old = final[index] if index in final else builder.get(index)
        if irreversible and old and value != old:
            raise Conflict(
                f"change {number}: entry {index} of status list {lst.id} is revoked; "
                "revocation cannot be undone",
                hint="nothing of this batch was applied; remove the change and send it again",
                index=str(index),
            )
        if old != value:
            final[index] = value
            records.append((index, old, value, change.reason))
    return final, records


# --- authorisation of the status key --------------------------------------------------------


async def find_assertion_method(resolver: Resolver, did: str, public_key: bytes) -> str | None:
    """The id of a verification method that ``did``'s document lists under
    ``assertionMethod`` with the Ed25519 key ``public_key``, or ``None``.

    Works for any fragment: the issuer's own choice for did:web, ``#delegate-N`` for a
    did:ethr attribute, the key itself for did:key. Raises
    :class:`~anchor.identity.ResolutionUnavailable` when the DID cannot be resolved now.
    """
    result = await resolver.resolve(did)
    if result.error == ErrorCode.INTERNAL_ERROR:
        raise ResolutionUnavailable(
            f"resolving {did} failed: {result.error_message}",
            hint="the issuer's DID host or chain did not answer; retry later",
        )
    document = result.did_document
    if not result.ok or document is None:
        return None
    base = document.get("id") if isinstance(document.get("id"), str) else did
    listed = document.get(PROOF_PURPOSE)
    candidates: list[str] = []
    for item in listed if isinstance(listed, list) else [listed]:
        ref = item.get("id") if isinstance(item, Mapping) else item
        if isinstance(ref, str):
            candidates.append(absolute_did_url(ref, str(base)))
    for vm in candidates:
        if await ed25519_key_for(resolver, vm, PROOF_PURPOSE) == public_key:
            return vm
    return None


async def authorized_signer(service: StatusService, resolver: Resolver, did: str) -> StatusSigner:
    """The issuer's status key with the verification method that authorises it, or
    :class:`StatusKeyNotAuthorized` saying what the issuer must do."""
    key = await asyncio.to_thread(service.signing_key, did, generate=True)
    if key is None:
        raise StatusKeyNotAuthorized(
            f"{did} has not uploaded its did:key key, which must sign its status lists",
            hint="upload your did:key private JWK once with a signed POST /v1/status-keys "
            "(ler-anchor status key --service URL --key KEY.jwk)",
        )
    vm = await find_assertion_method(resolver, did, key.public_bytes)
    if vm is None:
        info = StatusKeyInfo(did, key.public_bytes, uploaded=did.startswith(DID_KEY_PREFIX))
        raise StatusKeyNotAuthorized(
            f"the status list key {info.public_key_multibase} of {did} is not listed under "
            f"{PROOF_PURPOSE} in its DID document",
            hint=info.instructions() + "; then retry",
            **{k: v for k, v in info.to_json().items() if k != "did"},
        )
    return StatusSigner(did, vm, key)
