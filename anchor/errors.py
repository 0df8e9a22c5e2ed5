"""The one error hierarchy of LER Anchor.

Every failure the service or the CLI can report is an :class:`AnchorError`. Each class
carries, once, how it maps to the outside world:

* ``status``: the HTTP status of the RFC 9457 problem details document (:meth:`problem`);
* ``exit_code``: the CLI's exit status (the CLI prints :meth:`diagnostics` on one line);
* ``slug``: the last path segment of the problem ``type`` URI.

Raise the most specific class; never return a boolean for a failed check.
"""

from __future__ import annotations

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


class VerificationError(AnchorError):
    """A cryptographic or structural check failed.

    ``what`` names the thing that did not match (``root``, ``proof``, ``signature``, ...);
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
        what: str,
        expected: str | None = None,
        actual: str | None = None,
        hint: str | None = None,
    ) -> None:
        extra: dict[str, Any] = {"what": what}
        if expected is not None:
            extra["expected"] = expected
        if actual is not None:
            extra["actual"] = actual
        super().__init__(detail, hint=hint, **extra)
        self.what = what
        self.expected = expected
        self.actual = actual


class NotFound(AnchorError):
    status = 404
    exit_code = 3
    slug = "not-found"
    title = "Not found"


class Conflict(AnchorError):
    status = 409
    exit_code = 4
    slug = "conflict"
    title = "Conflict"


class Unauthorized(AnchorError):
    status = 401
    exit_code = 5
    slug = "unauthorized"
    title = "Unauthorized"


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
