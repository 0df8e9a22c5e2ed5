"""The DID resolver: a registry of DID method drivers and a cache (DID Resolution §4).

A driver is any object with ``async resolve(did: ParsedDid, options) -> ResolutionResult``
(:class:`MethodDriver`), registered under its method name::

    resolver = Resolver()
    resolver.register("key", KeyDriver(), cacheable=False)
    resolver.register("ethr", EthrDriver(...))          # any later method the same way
    result = await resolver.resolve("did:key:z6Mk...", accept="application/did+ld+json")

:meth:`Resolver.resolve` never raises for bad input: every failure is a
:class:`ResolutionResult` with an :class:`ErrorCode`. In order it checks the DID syntax
(``invalidDid``), the method (``methodNotSupported``), the options (``invalidOptions``,
``representationNotSupported``), then runs the driver; a driver exception becomes
``internalError``. It then checks that the document ``id`` is the DID
(``invalidDidDocument``) and that the document has the requested representation.

Resolution options (keyword arguments; camelCase names as in the specification):

``accept``
    ``application/did+json`` (default), ``application/did+ld+json`` (the document must have
    an ``@context``) or ``application/did``; any other string ->
    ``representationNotSupported``.
``noCache``
    ``true`` skips the cache for this call (the fresh result still refreshes the cache).
``expandRelativeUrls``
    ``true`` rewrites relative DID URLs in the document as absolute ones.
``versionId`` / ``versionTime``
    Passed to the driver (mutually exclusive). ``versionTime`` is an XML Schema dateTime
    with a time zone, or an aware ``datetime``; the driver receives it in UTC as
    ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``. Drivers without history return the current document.

A known option of the wrong type -> ``invalidOptions``. Other options are passed to the
driver (e.g. did:key's ``publicKeyFormat``) and must be JSON values, else
``invalidOptions``. Booleans may be given as the strings ``"true"``/``"false"``, as they
arrive in an HTTP query.

The cache holds successful results only (never errors), for :data:`DEFAULT_CACHE_TTL_SECONDS`
and at most :data:`DEFAULT_CACHE_MAX_ENTRIES` entries (least recently used evicted first),
keyed by DID and options. Concurrent resolutions of the same key share one driver call.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from did_methods.document import (
    VERIFICATION_RELATIONSHIPS,
    Authorization,
    check_authorization,
    expand_relative_urls,
    key_did_url_error,
)
from did_methods.result import (
    DEFAULT_CONTENT_TYPE,
    DOCUMENT_MEDIA_TYPES,
    MEDIA_TYPE_DID_LD_JSON,
    ErrorCode,
    ResolutionResult,
)
from did_methods.syntax import DidSyntaxError, ParsedDid, parse_did, parse_did_url

DEFAULT_CACHE_TTL_SECONDS = 300.0
"""How long a successful resolution is served from the cache."""
DEFAULT_CACHE_MAX_ENTRIES = 1024
"""How many results the cache keeps at most (least recently used evicted first)."""

_METHOD_NAME_RE = re.compile(r"[a-z0-9]+")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")

Options = Mapping[str, Any]
"""Resolution options as a driver receives them: validated, normalised, read-only."""


@runtime_checkable
class MethodDriver(Protocol):
    """A DID method implementation.

    ``did`` is a parsed bare DID of the driver's method; ``options`` the validated
    resolution options (``accept`` always present). Return a success or a failure result;
    an exception becomes ``internalError``. The resolver sets ``contentType`` and checks the
    document ``id``, so a driver need not.
    """

    async def resolve(self, did: ParsedDid, options: Options) -> ResolutionResult:
        """Resolve ``did``."""
        ...


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of the resolver cache since creation (or :meth:`Resolver.clear_cache`)."""

    hits: int
    misses: int
    entries: int


@dataclass(frozen=True, slots=True)
class _Registration:
    driver: MethodDriver
    cacheable: bool


@dataclass(frozen=True, slots=True)
class _CacheEntry:
    expires: float
    serialized: str


_CacheKey = tuple[str, str]


def _bool_option(name: str, value: object) -> bool | str:
    """The boolean value of an option, or an error message."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return f"option {name!r} must be a boolean (or 'true'/'false'), not {value!r}"


def format_version_time(moment: datetime) -> str:
    """``moment`` as a ``versionTime`` value: UTC, ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.

    Raises ``ValueError`` for a naive datetime (its time zone would be a guess).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("versionTime needs an aware datetime (with a time zone), not a naive one")
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def _version_time(value: Any) -> str | None:
    if isinstance(value, datetime):
        try:
            return format_version_time(value)
        except ValueError:
            return None
    if isinstance(value, str) and _DATETIME_RE.fullmatch(value):
        try:
            return format_version_time(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def normalize_options(options: Mapping[str, Any]) -> dict[str, Any] | ResolutionResult:
    """Validate and normalise resolution options; a failure result when they are invalid."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name == "accept":
            if not isinstance(value, str):
                return ResolutionResult.failure(
                    ErrorCode.INVALID_OPTIONS, f"option 'accept' must be a string, not {value!r}"
                )
            media_type = value.strip().lower()
            if media_type not in DOCUMENT_MEDIA_TYPES:
                return ResolutionResult.failure(
                    ErrorCode.REPRESENTATION_NOT_SUPPORTED,
                    f"representation {value!r} is not supported; ask for one of "
                    + ", ".join(sorted(DOCUMENT_MEDIA_TYPES)),
                )
            out[name] = media_type
        elif name in ("noCache", "expandRelativeUrls"):
            flag = _bool_option(name, value)
            if isinstance(flag, str):
                return ResolutionResult.failure(ErrorCode.INVALID_OPTIONS, flag)
            out[name] = flag
        elif name == "versionId":
            if not isinstance(value, str) or not value:
                return ResolutionResult.failure(
                    ErrorCode.INVALID_OPTIONS,
                    f"option 'versionId' must be a non-empty string, not {value!r}",
                )
            out[name] = value
        elif name == "versionTime":
            moment = _version_time(value)
            if moment is None:
                return ResolutionResult.failure(
                    ErrorCode.INVALID_OPTIONS,
                    f"option 'versionTime' must be a date-time with a time zone such as "
                    f"'2024-05-10T17:00:00Z', not {value!r}",
                )
            out[name] = moment
        else:
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                return ResolutionResult.failure(
                    ErrorCode.INVALID_OPTIONS,
                    f"option {name!r} must be a JSON value, not {type(value).__name__}",
                )
            out[name] = value
    if "versionId" in out and "versionTime" in out:
        return ResolutionResult.failure(
            ErrorCode.INVALID_OPTIONS,
            "options 'versionId' and 'versionTime' are mutually exclusive",
        )
    out.setdefault("accept", DEFAULT_CONTENT_TYPE)
    return out


def _cache_key(did: str, options: Mapping[str, Any]) -> _CacheKey:
    relevant = {name: value for name, value in options.items() if name != "noCache"}
    return did, json.dumps(relevant, sort_keys=True, separators=(",", ":"))


class Resolver:
    """A DID resolver: method drivers by name, a result cache, authorisation checks."""

    def __init__(
        self,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL_SECONDS,
        cache_max_entries: int = DEFAULT_CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``cache_ttl`` seconds and ``cache_max_entries`` bound the cache (0 disables
        it); ``clock`` (monotonic seconds) is replaceable for tests."""
        if cache_ttl < 0 or cache_max_entries < 0:
            raise ValueError("cache_ttl and cache_max_entries must not be negative")
        self._drivers: dict[str, _Registration] = {}
        self._ttl = cache_ttl
        self._max_entries = cache_max_entries
        self._clock = clock
        self._cache: OrderedDict[_CacheKey, _CacheEntry] = OrderedDict()
        self._inflight: dict[_CacheKey, asyncio.Task[ResolutionResult]] = {}
        self._hits = 0
        self._misses = 0

    # -- registry ---------------------------------------------------------------------

    def register(
        self, method: str, driver: MethodDriver, *, cacheable: bool = True, replace: bool = False
    ) -> None:
        """Serve DIDs of ``method`` with ``driver``.

        ``cacheable=False`` keeps its results out of the cache (for methods cheaper to
        recompute than to cache, like did:key). Registering a method twice is an error
        unless ``replace`` is true.
        """
        if not isinstance(method, str) or not _METHOD_NAME_RE.fullmatch(method):
            raise ValueError(f"a DID method name is lowercase letters and digits, not {method!r}")
        if not callable(getattr(driver, "resolve", None)):
            raise TypeError(f"{driver!r} has no resolve() method")
        if method in self._drivers and not replace:
            raise ValueError(f"a driver for did:{method} is already registered")
        self._drivers[method] = _Registration(driver, cacheable)
        self.clear_cache()

    def unregister(self, method: str) -> None:
        """Stop serving ``method`` (``KeyError`` if it is not registered)."""
        del self._drivers[method]
        self.clear_cache()

    @property
    def methods(self) -> tuple[str, ...]:
        """The registered method names, sorted."""
        return tuple(sorted(self._drivers))

    def driver(self, method: str) -> MethodDriver | None:
        """The driver registered for ``method``, if any."""
        registration = self._drivers.get(method)
        return registration.driver if registration else None

    # -- cache ------------------------------------------------------------------------

    @property
    def cache_stats(self) -> CacheStats:
        """Hit and miss counters and the number of entries held."""
        return CacheStats(self._hits, self._misses, len(self._cache))

    def clear_cache(self) -> None:
        """Forget every cached result and reset the counters."""
        self._cache.clear()
        self._hits = 0
        self._misses = 0

    def _cache_get(self, key: _CacheKey) -> ResolutionResult | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return ResolutionResult.loads(entry.serialized)

    def _cache_put(self, key: _CacheKey, serialized: str) -> None:
        self._cache[key] = _CacheEntry(self._clock() + self._ttl, serialized)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    # -- resolution -------------------------------------------------------------------

    async def resolve(self, did: str, /, **options: Any) -> ResolutionResult:
        """Resolve ``did`` with the given resolution options (see the module docstring).

        Never raises for bad input: errors are in ``result.did_resolution_metadata``.
        """
        try:
            parsed = parse_did(did)
        except DidSyntaxError as exc:
            return ResolutionResult.failure(ErrorCode.INVALID_DID, str(exc))
        registration = self._drivers.get(parsed.method)
        if registration is None:
            supported = ", ".join(f"did:{name}" for name in self.methods) or "none"
            return ResolutionResult.failure(
                ErrorCode.METHOD_NOT_SUPPORTED,
                f"DID method did:{parsed.method} is not supported here (supported: {supported})",
            )
        normalized = normalize_options(options)
        if isinstance(normalized, ResolutionResult):
            return normalized
        use_cache = registration.cacheable and self._ttl > 0 and self._max_entries > 0
        if not use_cache:
            result, _ = await self._run(registration.driver, parsed, normalized, serialize=False)
            return result
        key = _cache_key(parsed.did, normalized)
        if not normalized.get("noCache"):
            cached = self._cache_get(key)
            if cached is not None:
                self._hits += 1
                return cached
            running = self._inflight.get(key)
            if running is not None:
                self._hits += 1
                shared = await asyncio.shield(running)
                return ResolutionResult.loads(shared.dumps())
        self._misses += 1
        task = asyncio.ensure_future(
            self._run_and_store(registration.driver, parsed, normalized, key)
        )
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: _CacheKey, task: asyncio.Task[ResolutionResult]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _run_and_store(
        self, driver: MethodDriver, did: ParsedDid, options: dict[str, Any], key: _CacheKey
    ) -> ResolutionResult:
        result, serialized = await self._run(driver, did, options, serialize=True)
        if serialized is not None and result.error is None:
            self._cache_put(key, serialized)
        return result

    async def _run(
        self, driver: MethodDriver, did: ParsedDid, options: dict[str, Any], *, serialize: bool
    ) -> tuple[ResolutionResult, str | None]:
        """Run the driver and check its answer: the result and, when ``serialize``, its
        serialisation (``None`` for a failure)."""
        try:
            raw = await driver.resolve(did, MappingProxyType(options))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a driver bug must become data, not a crash
            return (
                ResolutionResult.failure(
                    ErrorCode.INTERNAL_ERROR,
                    f"the did:{did.method} driver failed: {type(exc).__name__}: {exc}",
                ),
                None,
            )
        result = self._finish(did, raw, options)
        if not serialize or result.error is not None:
            return result, None
        try:
            serialized = result.dumps()
        except (TypeError, ValueError) as exc:
            return (
                ResolutionResult.failure(
                    ErrorCode.INTERNAL_ERROR,
                    f"the did:{did.method} driver returned a result that is not JSON: {exc}",
                ),
                None,
            )
        return result, serialized

    @staticmethod
    def _finish(did: ParsedDid, result: object, options: Mapping[str, Any]) -> ResolutionResult:
        if not isinstance(result, ResolutionResult):
            return ResolutionResult.failure(
                ErrorCode.INTERNAL_ERROR,
                f"the did:{did.method} driver returned {type(result).__name__}, "
                "not a ResolutionResult",
            )
        if result.error is not None:
            if result.did_document is not None or result.error_message is None:
                return ResolutionResult.failure(
                    result.error, result.error_message or f"resolution failed: {result.error}"
                )
            return result
        document = result.did_document
        accept: str = options["accept"]
        if document is None:
            if result.deactivated:
                return replace(
                    result,
                    did_resolution_metadata={
                        **result.did_resolution_metadata,
                        "contentType": accept,
                    },
                )
            return ResolutionResult.failure(
                ErrorCode.INTERNAL_ERROR,
                f"the did:{did.method} driver returned neither a document nor an error",
            )
        if document.get("id") != did.did:
            return ResolutionResult.failure(
                ErrorCode.INVALID_DID_DOCUMENT,
                f"the DID document's id {document.get('id')!r} is not the DID {did.did!r}",
            )
        if accept == MEDIA_TYPE_DID_LD_JSON and "@context" not in document:
            return ResolutionResult.failure(
                ErrorCode.REPRESENTATION_NOT_SUPPORTED,
                f"the DID document of {did.did} has no @context, so it cannot be given as "
                f"{MEDIA_TYPE_DID_LD_JSON}; ask for application/did+json",
            )
        if options.get("expandRelativeUrls"):
            document = expand_relative_urls(document)
        return ResolutionResult(
            document,
            {**result.did_resolution_metadata, "contentType": accept},
            result.did_document_metadata,
        )

    # -- authorisation ----------------------------------------------------------------

    async def authorize(
        self, did_url: str, purpose: str, *, at: datetime | None = None, **options: Any
    ) -> Authorization:
        """Is the key ``did_url`` (``did:...#fragment``) authorised for the verification
        relationship ``purpose`` (``assertionMethod``, ``authentication``, ...) of its DID?

        With ``at``, the DID is resolved with ``versionTime`` = ``at`` (drivers without
        history return the current document). The answer carries the verification method
        or the reason it is refused, and the resolution result. ``purpose`` must be one of
        :data:`~did_methods.document.VERIFICATION_RELATIONSHIPS` and ``at`` aware, else
        ``ValueError`` (programming errors); everything else is data.
        """
        if purpose not in VERIFICATION_RELATIONSHIPS:
            raise ValueError(
                f"unknown verification relationship {purpose!r}; "
                f"use one of {', '.join(VERIFICATION_RELATIONSHIPS)}"
            )
        if at is not None:
            options["versionTime"] = format_version_time(at)
        problem = key_did_url_error(did_url)
        if problem is not None:
            return Authorization(False, problem, did_url, purpose)
        did = parse_did_url(did_url).did
        result = await self.resolve(did, **options)
        if result.error is not None:
            return Authorization(
                False,
                f"resolving {did} failed: {result.error}: {result.error_message}",
                did_url,
                purpose,
                resolution=result,
            )
        if result.deactivated:
            return Authorization(
                False, f"{did} is deactivated", did_url, purpose, resolution=result
            )
        return replace(check_authorization(result, did_url, purpose), resolution=result)

    async def is_authorized(
        self, did_url: str, purpose: str, at: datetime | None = None, **options: Any
    ) -> bool:
        """:meth:`authorize` reduced to yes or no."""
        return (await self.authorize(did_url, purpose, at=at, **options)).authorized
