"""The one error hierarchy of LER Anchor.

Every failure the service or the CLI can report is an :class:`AnchorError`. Each class
carries, once, how it maps to the outside world:

* ``status``: the HTTP status of the RFC 9457 problem details document (:meth:`problem`);
* ``exit_code``: the CLI's exit status (the CLI prints :meth:`diagnostics` on one line);
* ``slug``: the last path segment of the problem ``type`` URI.

Raise the most specific class; never return a boolean for a failed check.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://ler-anchor.org/problems/"
"""Base of the RFC 9457 ``type`` URIs (``PROBLEM_TYPE_BASE + slug``)."""


class AnchorError(Exception):
    """Base of every LER Anchor error.

    ``detail`` says what was wrong; ``hint`` (optional) says what to do about it. Extra
    keyword arguments become RFC 9457 extension members (they must be JSON values).
    """

    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, hint: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint
        self.extra: dict[str, Any] = extra

    def diagnostics(self) -> str:
        """One line for a person: what was wrong and, when known, what to do."""
        text = f"{self.title}: {self.detail}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """This error as an RFC 9457 problem details object."""
        doc: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            doc["instance"] = instance
        if self.hint:
            doc["hint"] = self.hint
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc


class InvalidInput(AnchorError):
    """The caller sent something malformed or out of range."""

    status = 400
    exit_code = 2
    slug = "invalid-input"
    title = "Invalid input"


class EncodingError(InvalidInput):
    """Bytes or text that do not decode canonically (entries, proofs, encodings)."""

    slug = "invalid-encoding"
    title = "Invalid encoding"


class CheckpointFormatError(EncodingError):
    """A signed note / checkpoint that is not well formed."""

    slug = "invalid-checkpoint"
    title = "Malformed checkpoint"


class LimitExceeded(InvalidInput):
    """A documented size or count limit was exceeded."""

    status = 413
    slug = "limit-exceeded"
    title = "Limit exceeded"


class JsonRpcError(InvalidInput):
    """A JSON-RPC request refused by the embedded chain's endpoint: answered as a JSON-RPC
    error object (``code``, optional hex ``data``) in the response body, not as a problem."""

    slug = "json-rpc-error"
    title = "JSON-RPC error"

    def __init__(
        self, detail: str, *, code: int, data: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(detail, hint=hint)
        self.code = code
        self.data = data


class What(StrEnum):
    """What a :class:`VerificationError` found wrong, where code acts on it (the problem
    member ``what`` is the value). Other checks name a field or an option with a plain
    string (``statusPurpose``, ``--status-message``, ...)."""

    SCHEMA = "schema"
    ENTRY = "entry"
    CHECKPOINT = "checkpoint"
    ORIGIN = "origin"
    SIGNATURE = "signature"
    SIGNATURES = "signatures"
    PROOF = "proof"
    PROOF_VALUE = "proofValue"
    CRYPTOSUITE = "cryptosuite"
    VERIFICATION_METHOD = "verificationMethod"
    ISSUER = "issuer"
    INDEX = "index"
    TRUST = "trust"
    CHAIN = "chain"
    TRANSACTION = "transaction"
    BLOCK = "block"
    EVENT = "event"
    STORAGE = "storage"


class VerificationError(AnchorError):
    """A cryptographic or structural check failed.

    ``what`` names the thing that did not match: a :class:`What` (``proof``, ``signature``,
    ``block``, ...; a string with one of its values becomes the member), or a field name;
    ``expected`` and ``actual`` are given when they help (hex or text, never secrets).
    """

    status = 422
    exit_code = 1
    slug = "verification-failed"
    title = "Verification failed"

    def __init__(
        self,
        detail: str,
        *,
        what: What | str,
        expected: str | None = None,
        actual: str | None = None,
        hint: str | None = None,
    ) -> None:
        extra: dict[str, Any] = {"what": str(what)}
        if expected is not None:
            extra["expected"] = expected
        if actual is not None:
            extra["actual"] = actual
        super().__init__(detail, hint=hint, **extra)
        self.what: What | str = what if what not in _WHATS else What(what)
        self.expected = expected
        self.actual = actual


_WHATS = frozenset(w.value for w in What)


class UntrustedLog(VerificationError):
    """A receipt from a log that is not a trusted root, or from a trusted log's origin with
    another key, chain or contract (``what`` is ``trust``). ``differs`` names what differs:
    ``origin``, ``key``, ``chain`` and/or ``contract``."""

    slug = "untrusted-log"
    title = "Untrusted log"

    def __init__(
        self,
        detail: str,
        *,
        differs: tuple[str, ...],
        expected: str | None = None,
        actual: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(detail, what=What.TRUST, expected=expected, actual=actual, hint=hint)
        self.differs = differs
        self.extra["differs"] = list(differs)


class NotFound(AnchorError):
    status = 404
    exit_code = 3
    slug = "not-found"
    title = "Not found"


class NoDatabase(NotFound):
    """An operator command was pointed at a database that does not exist (only ``serve`` and
    ``restore`` create one)."""

    slug = "no-database"
    title = "No database"


class Conflict(AnchorError):
    status = 409
    exit_code = 4
    slug = "conflict"
    title = "Conflict"


class RestoreRefused(Conflict):
    """A backup does not reproduce every anchored root: installing it would fork the log."""

    slug = "restore-refused"
    title = "Restore refused"


class DatabaseLocked(Conflict):
    """Another process is the database's writer (a second ``serve``, or ``restore`` while the
    service runs): nothing was written. ``database``, ``pid`` and ``holder`` (its command)
    name it, when known."""

    slug = "database-locked"
    title = "Database in use"

    def __init__(
        self,
        detail: str,
        *,
        database: str,
        pid: int | None = None,
        holder: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(detail, hint=hint, database=database, pid=pid, holder=holder)
        self.database = database
        self.pid = pid
        self.holder = holder


class RateLimited(AnchorError):
    """Too many requests, from one client or (the embedded chain's JSON-RPC) to a resource
    all clients share; ``retry_after`` (seconds) says when to retry."""

    status = 429
    exit_code = 6
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint, retryAfter=retry_after)
        self.retry_after = retry_after


class Unauthorized(AnchorError):
    status = 401
    exit_code = 5
    slug = "unauthorized"
    title = "Unauthorized"


class AdminUnauthorized(Unauthorized):
    """The admin API's operator token is missing or wrong: the client authenticates with
    ``Authorization: Bearer`` (HTTP: ``WWW-Authenticate: Bearer``), not by signing. The
    problem document says so in its member ``scheme``."""

    scheme: ClassVar[str] = "Bearer"

    def __init__(self, detail: str, *, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint, scheme=self.scheme)


class Forbidden(AnchorError):
    status = 403
    exit_code = 5
    slug = "forbidden"
    title = "Forbidden"


class StoreError(AnchorError):
    """The database is unusable (corrupt, locked beyond the timeout, wrong schema)."""

    status = 503
    exit_code = 10
    slug = "store-unavailable"
    title = "Store unavailable"


class StorageUnavailable(StoreError):
    """The database cannot be written (or read) for now: the disk is full, the file or its
    directory is read-only, an I/O error, or another writer held the lock past the timeout.
    Transient: ``retry_after`` (seconds) says when to retry (HTTP: 503 with ``Retry-After``);
    ``reason`` is SQLite's error name (``SQLITE_FULL``, ``SQLITE_IOERR_WRITE``, ...)."""

    slug = "storage-unavailable"
    title = "Storage unavailable"

    def __init__(
        self, detail: str, *, reason: str, retry_after: int = 5, hint: str | None = None
    ) -> None:
        super().__init__(detail, hint=hint, reason=reason, retryAfter=retry_after)
        self.reason = reason
        self.retry_after = retry_after


class IntegrityFailure(StoreError):
    """The log's stored entries or hashes do not reproduce what it signed (or a stored
    checkpoint does not verify): primary data is damaged. The log stops signing, anchoring
    and appending, and answers this (503) for whatever it cannot prove; restore the
    database from a backup."""

    slug = "integrity-failure"
    title = "Log integrity failure"

    DEFAULT_HINT: ClassVar[str] = (
        "the log's stored data is damaged; restore the database from a backup and run"
        " `ler-anchor log check`"
    )

    def __init__(self, detail: str, *, hint: str | None = None, **extra: Any) -> None:
        super().__init__(detail, hint=hint or self.DEFAULT_HINT, **extra)


class IndexDamaged(StoreError):
    """The digest index (derived data) does not match the entries; it is rebuilt from them."""

    slug = "index-damaged"
    title = "Digest index damaged"


class ChainError(AnchorError):
    """The chain or its RPC endpoint failed or answered something unexpected."""

    status = 502
    exit_code = 11
    slug = "chain-error"
    title = "Chain error"


class ConfigError(AnchorError):
    """Configuration (flags, environment, key files) is missing or wrong."""

    status = 500
    exit_code = 2
    slug = "configuration-error"
    title = "Configuration error"


class CannotAudit(AnchorError):
    """An audit (or a check of a log against its anchors, as ``restore`` does) could not be
    carried out: the contract, the chain or the log cannot be read, or they have nothing in
    common to compare. Says nothing about the log either way: exit 4, never 0 ("clean") nor
    1 ("discrepancies found")."""

    status = 503
    exit_code = 4
    slug = "cannot-audit"
    title = "Cannot audit"


class NotALogAnchor(CannotAudit):
    """The address holds no contract (``found="no-code"``) or another one than the LogAnchor
    this version ships (``found="other-code"``)."""

    slug = "not-a-log-anchor"
    title = "Not a LogAnchor contract"

    def __init__(self, detail: str, *, address: str, found: str, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint, address=address, found=found)
        self.address = address
        self.found = found


class NoMatchingAnchor(CannotAudit):
    """No anchor of the contract is a root of the log although the log is not empty: the
    contract holds none (``anchors == 0``), or none of its ``anchors`` matches. Nothing links
    the chain to this log, so nothing about the log was established."""

    slug = "no-matching-anchor"
    title = "No anchor matches the log"

    def __init__(
        self, detail: str, *, anchors: int, log_size: int, hint: str | None = None
    ) -> None:
        super().__init__(detail, hint=hint, anchors=anchors, logSize=log_size)
        self.anchors = anchors
        self.log_size = log_size


# --- W3C Bitstring Status List v1.0, §3.5 "Processing Errors" ---------------------------

STATUS_LIST_PROBLEM_BASE = "https://www.w3.org/ns/credentials/status-list#"
"""Base of the ``type`` URIs the Bitstring Status List spec defines (§3.5)."""

VC_DATA_MODEL_PROBLEM_BASE = "https://www.w3.org/TR/vc-data-model#"
"""Base of the ``type`` URIs of VC Data Model 2.0 §7.2, which the status list spec reuses
for ``MALFORMED_VALUE_ERROR`` and ``RANGE_ERROR``."""


class StatusListError(AnchorError):
    """A failure of the Bitstring Status List algorithms (spec §3.2, §3.5).

    ``error_type`` is the spec's error name (``STATUS_LIST_LENGTH_ERROR``, ...) and
    :meth:`problem` uses the spec's ``type`` URI for it instead of a LER Anchor one, so
    that any verifier understands the problem document. The concrete classes below also
    derive from the matching generic class (:class:`VerificationError`,
    :class:`EncodingError`, :class:`LimitExceeded`) so callers can catch either.
    """

    error_type: ClassVar[str] = "STATUS_VERIFICATION_ERROR"
    type_base: ClassVar[str] = STATUS_LIST_PROBLEM_BASE

    @property
    def type_uri(self) -> str:
        """The RFC 9457 ``type`` of this error, as the specifications define it."""
        return self.type_base + self.error_type

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        doc = super().problem(instance)
        doc["type"] = self.type_uri
        return doc


class StatusRetrievalError(StatusListError):
    """``STATUS_RETRIEVAL_ERROR``: the status list credential could not be dereferenced."""

    error_type = "STATUS_RETRIEVAL_ERROR"
    status = 502
    exit_code = 1
    slug = "status-retrieval-error"
    title = "Status list retrieval failed"


class StatusVerificationError(StatusListError, VerificationError):
    """``STATUS_VERIFICATION_ERROR``: a proof on the status list failed, or the status
    entry does not match the list (purpose, status size). Needs ``what=``."""

    error_type = "STATUS_VERIFICATION_ERROR"
    status = 422
    exit_code = 1
    slug = "status-verification-error"
    title = "Status entry validation failed"


class StatusListLengthError(StatusListError, VerificationError):
    """``STATUS_LIST_LENGTH_ERROR``: fewer entries than the minimum needed for herd
    privacy (131,072 by default). Needs ``what=``."""

    error_type = "STATUS_LIST_LENGTH_ERROR"
    status = 422
    exit_code = 1
    slug = "status-list-length-error"
    title = "Status list too short"


class StatusRangeError(StatusListError, VerificationError):
    """``RANGE_ERROR`` (VC Data Model 2.0 §7.2): a status list index beyond the end of
    the bitstring. Needs ``what=``."""

    error_type = "RANGE_ERROR"
    type_base = VC_DATA_MODEL_PROBLEM_BASE
    status = 422
    exit_code = 1
    slug = "status-range-error"
    title = "Status list index out of range"


class StatusMalformedValueError(StatusListError, EncodingError):
    """``MALFORMED_VALUE_ERROR`` (VC Data Model 2.0 §7.2): a status list property that
    breaks one of the spec's MUSTs. Carries ``property`` (the JSON path) and ``reason``
    (a short machine-readable code) as problem extension members."""

    error_type = "MALFORMED_VALUE_ERROR"
    type_base = VC_DATA_MODEL_PROBLEM_BASE
    status = 400
    exit_code = 2
    slug = "status-malformed-value"
    title = "Malformed status list value"


class StatusListTooLargeError(StatusMalformedValueError, LimitExceeded):
    """An ``encodedList`` (or a list being built) over LER Anchor's documented size limit;
    reported as ``MALFORMED_VALUE_ERROR`` and, locally, as :class:`LimitExceeded`."""

    status = 413
    slug = "status-list-too-large"
    title = "Status list too large"
