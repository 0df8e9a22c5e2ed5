"""Checking a credential's status, on the verifier's side (Bitstring Status List §3.2).

For every ``BitstringStatusListEntry`` in a credential's ``credentialStatus``,
:class:`StatusChecker`:

1. dereferences ``statusListCredential``: over HTTP(S) through the one
   ``aiohttp.ClientSession`` it is given, from a local file (``file:`` URLs), or from a
   local mirror directory laid out by URL path (what ``ler-anchor status export`` writes);
2. verifies the list's ``eddsa-jcs-2022`` proof(s): ``proof.verificationMethod`` must be a
   key of the list's ``issuer`` that its DID document (resolved with the
   :class:`did_methods.Resolver`) lists under ``assertionMethod``;
3. requires the list's ``issuer`` to be the credential's issuer and the list to be within
   its ``validFrom`` .. ``validUntil`` period;
4. runs :func:`anchor.status.credential.validate_status` (purpose, ``statusSize``, minimum length,
   range) and maps the result to an :class:`Outcome`: ``valid``, ``revoked``,
   ``suspended``, ``message`` (with the message), or ``unknown`` with the error as RFC 9457
   problem details. Whatever cannot be fetched, parsed or verified is ``unknown``, never
   ``valid``.

Verified lists are cached per URL for their ``ttl`` (:data:`DEFAULT_TTL_MS` when the list
has none); after that an HTTP list is revalidated with ``If-None-Match`` and a ``304`` keeps
the decoded list (its proof is checked again against the DID document, which is cheap).
Checking an entry against a cached list (:meth:`StatusChecker.check_cached`) does no I/O and
no decoding.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import aiohttp

from anchor.core import jsonlimits
from anchor.errors import (
    AnchorError,
    InvalidInput,
    LimitExceeded,
    StatusListTooLargeError,
    StatusRetrievalError,
    StatusVerificationError,
    VerificationError,
)
from anchor.status.bitstring import MAX_ENCODED_LIST_CHARS, MIN_ENTRIES
from anchor.status.credential import (
    BitstringStatusListCredential,
    BitstringStatusListEntry,
    StatusResult,
    parse_status_entry,
    parse_status_list_credential,
    validate_status,
)
from anchor.vc.data_integrity import CRYPTOSUITE, canonical_digest, verify_proof
from anchor.verify.identity import ed25519_key_for
from did_methods import Resolver, is_did_url, parse_did_url

DEFAULT_TTL_MS: Final = 300_000
"""How long a list without ``ttl`` is cached (five minutes)."""

MAX_LIST_DOCUMENT_BYTES: Final = MAX_ENCODED_LIST_CHARS + 1_048_576
"""Largest status list credential read: the longest ``encodedList`` plus 1 MiB of JSON."""

FETCH_TIMEOUT_SECONDS: Final = 15.0
"""Total time allowed for fetching one list."""

MAX_STATUS_ENTRIES: Final = 16
"""Most ``credentialStatus`` entries of one credential that are checked; the entries after
them are ``unknown`` (``limit-exceeded``) and cause no fetch. A credential needs one or two."""

MAX_STATUS_HOSTS: Final = 4
"""Most distinct hosts (scheme, host and port) whose status lists one credential makes the
checker fetch; entries on further hosts are ``unknown`` (``limit-exceeded``), not fetched."""

MAX_CACHED_LISTS: Final = 1024
"""Most lists kept; the one cached longest ago is dropped first."""

PROOF_PURPOSE: Final = "assertionMethod"

ACCEPT: Final = "application/vc, application/vc+ld+json;q=0.9, application/json;q=0.8"


class Outcome(enum.StrEnum):
    """What a status entry says about the credential."""

    VALID = "valid"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    MESSAGE = "message"
    UNKNOWN = "unknown"


_SET_OUTCOMES: Final = {"revocation": Outcome.REVOKED, "suspension": Outcome.SUSPENDED}


@dataclass(frozen=True, slots=True)
class EntryStatus:
    """The result for one ``credentialStatus`` entry. ``error`` (problem details) is set
    exactly when ``outcome`` is ``unknown``; ``list_digest`` is the SHA-256 (hex) of the
    canonical list credential that was used, to look it up in the log."""

    outcome: Outcome
    purpose: str | None = None
    status_list_credential: str | None = None
    status_list_index: int | None = None
    status: int | None = None
    message: str | None = None
    error: Mapping[str, Any] | None = None
    list_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"outcome": self.outcome.value, "statusPurpose": self.purpose}
        if self.status_list_credential is not None:
            doc["statusListCredential"] = self.status_list_credential
        if self.status_list_index is not None:
            doc["statusListIndex"] = str(self.status_list_index)
        if self.status is not None:
            doc["status"] = self.status
        if self.message is not None:
            doc["message"] = self.message
        if self.list_digest is not None:
            doc["listDigest"] = self.list_digest
        if self.error is not None:
            doc["error"] = dict(self.error)
        return doc


@dataclass(frozen=True, slots=True)
class VerifiedList:
    """A fetched list whose proofs verified: parsed, decoded, ready for any number of
    checks. ``expires`` is on the checker's monotonic clock."""

    url: str
    credential: BitstringStatusListCredential
    verification_methods: tuple[str, ...]
    digest: bytes
    etag: str | None
    expires: float


def _unknown(entry: BitstringStatusListEntry | None, error: AnchorError) -> EntryStatus:
    return EntryStatus(
        outcome=Outcome.UNKNOWN,
        purpose=None if entry is None else entry.status_purpose,
        status_list_credential=None if entry is None else entry.status_list_credential,
        status_list_index=None if entry is None else entry.status_list_index,
        error=error.problem(),
    )


def outcome_of(result: StatusResult) -> Outcome:
    """The outcome of a §3.2 result: ``revocation`` and ``suspension`` give ``valid`` or
    ``revoked`` / ``suspended``; ``message`` gives ``message``; other purposes give
    ``valid`` for status 0 and ``message`` otherwise."""
    if result.purpose in _SET_OUTCOMES:
        return Outcome.VALID if result.valid else _SET_OUTCOMES[result.purpose]
    if result.purpose == "message" or not result.valid:
        return Outcome.MESSAGE
    return Outcome.VALID


def credential_issuer(credential: Mapping[str, Any]) -> str | None:
    """The ``issuer`` id of a credential (a string or an object with ``id``)."""
    issuer = credential.get("issuer")
    if isinstance(issuer, Mapping):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) else None


def _retrieval(url: str, why: str) -> StatusRetrievalError:
    return StatusRetrievalError(
        f"the status list {url} could not be retrieved: {why}",
        hint="the status is unknown; retry later or use a mirror of the list",
    )


class StatusChecker:
    """Checks credential statuses with a cache of verified lists (see the module doc).

    ``session`` is the one HTTP client session used for every fetch (``None``: only local
    files and ``mirror``). ``mirror`` is a directory holding lists by URL path
    (``MIRROR/v1/status-lists/<id>``), used instead of the network for every URL.
    ``min_entries`` is the shortest list accepted (§3.2 step 2). ``local_files``: whether
    ``file:`` URLs are read (a verifier on its own machine); a service checking credentials
    that callers send turns it off, or anyone could make it read its files.
    """

    def __init__(
        self,
        resolver: Resolver,
        session: aiohttp.ClientSession | None = None,
        *,
        mirror: Path | None = None,
        local_files: bool = True,
        min_entries: int = MIN_ENTRIES,
        default_ttl_ms: int = DEFAULT_TTL_MS,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self.session = session
        self.mirror = mirror
        self.local_files = local_files
        self.min_entries = min_entries
        self.default_ttl_ms = default_ttl_ms
        self.timeout = timeout
        self._clock = clock
        self._cache: dict[str, VerifiedList] = {}
        self._inflight: dict[str, asyncio.Task[VerifiedList]] = {}
        self.fetches = 0
        """Requests or file reads made (for tests and metrics)."""
        self.not_modified = 0
        """Revalidations answered ``304 Not Modified``."""

    # -- checking --------------------------------------------------------------------------

    async def check_credential(
        self, credential: Mapping[str, Any], *, at: datetime | None = None
    ) -> tuple[EntryStatus, ...]:
        """One :class:`EntryStatus` per ``BitstringStatusListEntry`` of ``credential``
        (entries of other types are skipped), checked concurrently; ``at`` (default now)
        is the instant the lists' validity periods are checked at."""
        issuer = credential_issuer(credential)
        planned = self._plan(credential)

        async def check(item: BitstringStatusListEntry | EntryStatus) -> EntryStatus:
            if isinstance(item, EntryStatus):
                return item
            return await self.check_entry(item, issuer, at=at)

        return tuple(await asyncio.gather(*(check(item) for item in planned)))

    def fetches_needed(self, credential: Mapping[str, Any]) -> int:
        """How many lists checking ``credential`` would fetch now (distinct URLs that are
        not fresh in the cache, within the limits): what a caller is charged for."""
        now = self._clock()
        urls = {
            item.status_list_credential
            for item in self._plan(credential)
            if isinstance(item, BitstringStatusListEntry)
        }
        return sum(
            1 for url in urls if (cached := self._cache.get(url)) is None or cached.expires <= now
        )

    def _plan(self, credential: Mapping[str, Any]) -> list[BitstringStatusListEntry | EntryStatus]:
        """The credential's status entries, in order: each parsed and to be checked, or
        already decided (``unknown``: malformed, or beyond :data:`MAX_STATUS_ENTRIES` or
        :data:`MAX_STATUS_HOSTS`). Pure: no I/O."""
        raw = credential.get("credentialStatus")
        items = raw if isinstance(raw, list) else [] if raw is None else [raw]
        ours = [
            item
            for item in items
            if not isinstance(item, Mapping) or item.get("type") == BitstringStatusListEntry.TYPE
        ]
        planned: list[BitstringStatusListEntry | EntryStatus] = []
        hosts: set[tuple[str, str | None, int | None]] = set()
        for position, item in enumerate(ours):
            try:
                parsed = parse_status_entry(item)
            except AnchorError as err:
                planned.append(_unknown(None, err))
                continue
            if position >= MAX_STATUS_ENTRIES:
                planned.append(
                    _unknown(
                        parsed,
                        LimitExceeded(
                            f"the credential has {len(ours)} status entries; only the first "
                            f"{MAX_STATUS_ENTRIES} are checked",
                        ),
                    )
                )
                continue
            parts = urlsplit(parsed.status_list_credential)
            try:
                host = (parts.scheme, parts.hostname, parts.port)
            except ValueError:  # a port out of range: fetching it fails with its own error
                host = (parts.scheme, parts.hostname, None)
            if host not in hosts and len(hosts) >= MAX_STATUS_HOSTS:
                planned.append(
                    _unknown(
                        parsed,
                        LimitExceeded(
                            f"the credential's status lists are on more than "
                            f"{MAX_STATUS_HOSTS} hosts; lists on further hosts are not fetched",
                        ),
                    )
                )
                continue
            hosts.add(host)
            planned.append(parsed)
        return planned

    async def check_entry(
        self, entry: object, issuer: str | None, *, at: datetime | None = None
    ) -> EntryStatus:
        """The status of one ``credentialStatus`` entry of a credential by ``issuer``."""
        try:
            parsed = entry if isinstance(entry, BitstringStatusListEntry) else None
            if parsed is None:
                parsed = parse_status_entry(entry)
        except AnchorError as err:
            return _unknown(None, err)
        try:
            listing = await self.fetch(parsed.status_list_credential)
        except AnchorError as err:
            return _unknown(parsed, err)
        return self.check_cached(parsed, listing, issuer, at=at)

    def check_cached(
        self,
        entry: BitstringStatusListEntry,
        listing: VerifiedList,
        issuer: str | None,
        *,
        at: datetime | None = None,
    ) -> EntryStatus:
        """The status of ``entry`` in an already verified list: no I/O, no decoding."""
        try:
            credential = listing.credential
            if issuer is None or credential.issuer != issuer:
                raise StatusVerificationError(
                    f"the status list {listing.url} was issued by {credential.issuer}, "
                    f"not by the credential's issuer {issuer}",
                    what="issuer",
                    expected=str(issuer),
                    actual=credential.issuer,
                )
            when = at if at is not None else datetime.now(UTC)
            if not credential.is_valid_at(when):
                raise StatusVerificationError(
                    f"the status list {listing.url} is not valid at {when.isoformat()} "
                    f"(validFrom {credential.valid_from}, validUntil {credential.valid_until})",
                    what="validUntil",
                    hint="the status is unknown; fetch a current version of the list",
                )
            result = validate_status(
                entry, credential, proofs_verified=True, min_entries=self.min_entries
            )
        except AnchorError as err:
            return _unknown(entry, err)
        return EntryStatus(
            outcome=outcome_of(result),
            purpose=result.purpose,
            status_list_credential=entry.status_list_credential,
            status_list_index=entry.status_list_index,
            status=result.status,
            message=result.message,
            list_digest=listing.digest.hex(),
        )

    # -- lists -----------------------------------------------------------------------------

    async def fetch(self, url: str) -> VerifiedList:
        """The verified list at ``url``, from the cache while its ttl lasts."""
        cached = self._cache.get(url)
        if cached is not None and cached.expires > self._clock():
            return cached
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.create_task(self._refresh(url, cached))
            self._inflight[url] = task
            task.add_done_callback(lambda _t: self._inflight.pop(url, None))
        return await asyncio.shield(task)

    def forget(self, url: str | None = None) -> None:
        """Drop ``url`` (or every list) from the cache."""
        if url is None:
            self._cache.clear()
        else:
            self._cache.pop(url, None)

    async def _refresh(self, url: str, cached: VerifiedList | None) -> VerifiedList:
        self.fetches += 1
        etag = cached.etag if cached is not None else None
        body, new_etag = await self._read(url, etag)
        if body is None and cached is not None:  # 304: same document
            self.not_modified += 1
            await self._verify_proofs(cached.credential.document, cached.credential.issuer)
            listing = replace(cached, expires=self._expiry(cached.credential))
        else:
            assert body is not None
            listing = await self.accept(url, body, etag=new_etag)
        self._store(listing)
        return listing

    async def accept(
        self, url: str, body: bytes | Mapping[str, Any], *, etag: str | None = None
    ) -> VerifiedList:
        """Verify and decode a list credential obtained for ``url`` (bytes or JSON) and
        cache it; raises a :class:`~anchor.errors.StatusListError` when it does not verify."""
        if isinstance(body, Mapping):
            document = dict(body)
        else:
            try:
                document = jsonlimits.loads(body, max_bytes=MAX_LIST_DOCUMENT_BYTES)
            except InvalidInput as err:  # not JSON, or over a size, depth or count limit
                raise _retrieval(url, f"the answer is refused: {err.detail}") from None
        if not isinstance(document, dict):
            raise _retrieval(url, "the answer is not a JSON object")
        issuer = credential_issuer(document)
        if issuer is None:
            raise StatusVerificationError(f"the status list {url} has no issuer", what="issuer")
        methods = await self._verify_proofs(document, issuer)
        credential = parse_status_list_credential(document, min_entries=0)
        if urlsplit(url).scheme in ("http", "https") and credential.id != url:
            raise StatusVerificationError(
                f"the credential fetched from {url} is not the list it names: its id is "
                f"{credential.id}",
                what="id",
                expected=url,
                actual=str(credential.id),
                hint="the host served another list in its place; the status is unknown",
            )
        listing = VerifiedList(
            url=url,
            credential=credential,
            verification_methods=methods,
            digest=canonical_digest(document),
            etag=etag,
            expires=self._expiry(credential),
        )
        self._store(listing)
        return listing

    def _expiry(self, credential: BitstringStatusListCredential) -> float:
        ttl = credential.ttl if credential.ttl is not None else self.default_ttl_ms
        return float(self._clock()) + ttl / 1000

    def _store(self, listing: VerifiedList) -> None:
        self._cache.pop(listing.url, None)
        while len(self._cache) >= MAX_CACHED_LISTS:
            self._cache.pop(next(iter(self._cache)))
        self._cache[listing.url] = listing

    async def _verify_proofs(self, document: Mapping[str, Any], issuer: str) -> tuple[str, ...]:
        """Check every proof of the list (all must verify); the verification methods."""
        raw = document.get("proof")
        proofs = raw if isinstance(raw, list) else [raw] if raw is not None else []
        if not proofs:
            raise StatusVerificationError("the status list has no proof", what="proof")
        methods: list[str] = []
        for proof in proofs:
            if not isinstance(proof, Mapping) or proof.get("cryptosuite") != CRYPTOSUITE:
                raise StatusVerificationError(
                    f"the status list carries a proof that is not {CRYPTOSUITE}",
                    what="cryptosuite",
                    hint="the status is unknown: not every proof can be verified",
                )
            vm = proof.get("verificationMethod")
            if not isinstance(vm, str) or not is_did_url(vm) or "#" not in vm:
                raise StatusVerificationError(
                    "the proof's verificationMethod is not a DID URL", what="verificationMethod"
                )
            if parse_did_url(vm).did != issuer:
                raise StatusVerificationError(
                    f"the list is signed by {vm}, a key of another DID than its issuer {issuer}",
                    what="verificationMethod",
                    expected=issuer,
                    actual=vm,
                )
            key = await ed25519_key_for(self.resolver, vm, PROOF_PURPOSE)
            if key is None:
                raise StatusVerificationError(
                    f"{vm} is not an Ed25519 key listed under {PROOF_PURPOSE} in the DID "
                    f"document of {issuer}",
                    what="verificationMethod",
                    hint="the status is unknown: the list's signer is not authorised",
                )
            try:
                verify_proof(
                    document,
                    key,
                    verification_method=vm,
                    expected_proof_purpose=PROOF_PURPOSE,
                )
            except VerificationError as err:
                raise StatusVerificationError(
                    f"the proof on the status list does not verify: {err.detail}",
                    what=err.what,
                    hint="the list was altered or not signed by its issuer; the status is unknown",
                ) from None
            methods.append(vm)
        return tuple(methods)

    async def _read(self, url: str, etag: str | None) -> tuple[bytes | None, str | None]:
        """The document at ``url`` and its ETag, or ``(None, etag)`` for 304."""
        parts = urlsplit(url)
        if self.mirror is not None:
            return self._read_file(url, self.mirror / unquote(parts.path).lstrip("/")), None
        if parts.scheme == "file" and self.local_files:
            return self._read_file(url, Path(unquote(parts.path))), None
        if parts.scheme not in ("http", "https"):
            raise _retrieval(url, f"the scheme {parts.scheme!r} cannot be dereferenced")
        if self.session is None:
            raise _retrieval(url, "no HTTP client was given to this checker")
        headers = {"Accept": ACCEPT}
        if etag is not None:
            headers["If-None-Match"] = etag
        try:
            async with self.session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as response:
                if response.status == 304 and etag is not None:
                    return None, etag
                if response.status != 200:
                    raise _retrieval(url, f"the server answered {response.status}")
                body = await response.content.read(MAX_LIST_DOCUMENT_BYTES + 1)
                if len(body) > MAX_LIST_DOCUMENT_BYTES:
                    raise StatusListTooLargeError(
                        f"the status list {url} is larger than {MAX_LIST_DOCUMENT_BYTES} bytes",
                        property="encodedList",
                        reason="too-large",
                    )
                return body, response.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise _retrieval(url, f"{type(err).__name__}: {err}") from None

    def _read_file(self, url: str, path: Path) -> bytes:
        try:
            with path.open("rb") as handle:
                body = handle.read(MAX_LIST_DOCUMENT_BYTES + 1)
        except OSError as err:
            raise _retrieval(url, f"cannot read {path}: {err.strerror}") from None
        if len(body) > MAX_LIST_DOCUMENT_BYTES:
            raise StatusListTooLargeError(
                f"{path} is larger than {MAX_LIST_DOCUMENT_BYTES} bytes",
                property="encodedList",
                reason="too-large",
            )
        return body


def summarize(results: Sequence[EntryStatus]) -> Outcome:
    """One outcome for a credential: ``unknown`` if any entry is unknown, else
    ``revoked``, else ``suspended``, else ``valid`` (``message`` entries do not decide)."""
    outcomes = {r.outcome for r in results}
    for outcome in (Outcome.UNKNOWN, Outcome.REVOKED, Outcome.SUSPENDED):
        if outcome in outcomes:
            return outcome
    return Outcome.VALID
