"""The status lists the service keeps, as values, and the pure checks of what is asked of
them. Pure: no I/O (the clock aside: :func:`now_ms`); every function is cheap (linear in its
input at most).

* the limits of requests (:data:`MAX_UPDATES`, :data:`MAX_ALLOCATION` ...) and
  :func:`check_batch_size`, :func:`check_list_kind`: checked here once, for HTTP and Python
  callers alike, so the service's own errors (its 400 and 413) are what clients get;
* :class:`StatusList`, :class:`PublishedVersion`, :class:`HistoryRecord` and the results
  of writes (:class:`Allocation`, :class:`UpdateResult`), read from the repository's rows;
* :func:`plan_changes`: a batch of changes checked against a list (allocated entries only,
  revocation irreversible, values that fit), all before anything is applied.

The tables are :mod:`anchor.status.repository`; which free positions an allocation takes
is :mod:`anchor.status.allocation`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from anchor.core.entry import Entry, EntryKind
from anchor.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from anchor.status.bitstring import (
    MAX_STATUS_SIZE,
    MIN_ENTRIES,
    Bitstring,
    BitstringBuilder,
    expand_bitstring,
)
from anchor.status.credential import BitstringStatusListEntry, StatusMessage

if TYPE_CHECKING:
    from anchor.config import Config

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

OPEN: Final = "open"
CLOSED: Final = "closed"
"""The states of a list: open for allocation, or closed (full enough, or replaced)."""


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


# --- values ---------------------------------------------------------------------------------


def messages_json(messages: Sequence[StatusMessage]) -> str:
    return json.dumps([m.to_json() for m in messages], separators=(",", ":")) if messages else ""


def messages_from_json(text: str) -> tuple[StatusMessage, ...]:
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
    def from_row(cls, row: Sequence[Any]) -> StatusList:
        return cls(
            id=row[0],
            issuer=row[1],
            purpose=row[2],
            status_size=int(row[3]),
            status_message=messages_from_json(row[4]),
            url=row[5],
            entries=int(row[6]),
            allocated=int(row[7]),
            open=row[8] == OPEN,
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
    def from_row(cls, row: Sequence[Any]) -> PublishedVersion:
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
class StatusSettings:
    """How the service builds lists: where keys live, list length, ttl and validity."""

    data_dir: Path
    list_entries: int = MIN_ENTRIES
    ttl_ms: int = DEFAULT_TTL_MS
    valid_ms: int | None = None
    key_dir: Path | None = None
    """Where the issuers' status keys live (``None``: ``data_dir/status-keys``)."""

    @classmethod
    def from_config(cls, config: Config) -> StatusSettings:
        days = config.status_valid_days
        return cls(
            data_dir=config.data_dir,
            key_dir=config.status_key_path,
            list_entries=config.status_list_entries,
            ttl_ms=config.status_ttl_ms,
            valid_ms=None if days is None else int(days * MS_PER_DAY),
        )


# --- checks and plans -----------------------------------------------------------------------


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


def require_kind(purpose: str, status_size: int, status_message: tuple[StatusMessage, ...]) -> None:
    """:func:`check_list_kind` for values already parsed (callers of the Python API)."""
    check_list_kind(
        purpose,
        None if status_size == 1 else status_size,
        list(status_message) if status_message else None,
    )


def check_batch_size(count: int) -> None:
    """A batch of ``count`` changes: 400 when empty, 413 past :data:`MAX_UPDATES`."""
    if count < 1:
        raise InvalidInput("the batch holds no change")
    if count > MAX_UPDATES:
        raise LimitExceeded(
            f"{count} changes in one batch; at most {MAX_UPDATES}", hint="split the batch"
        )


def bits_of(credential: Mapping[str, Any], status_size: int) -> Bitstring:
    return Bitstring(expand_bitstring(credential["credentialSubject"]["encodedList"]), status_size)


def plan_changes(
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
        if not is_allocated(allocation, index):
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


def is_allocated(allocation: bytes, index: int) -> bool:
    """Whether position ``index`` is set in an allocation bitmap (bit 0 = the most
    significant bit of byte 0, as in a bitstring)."""
    return bool(allocation[index >> 3] & (0x80 >> (index & 7)))
