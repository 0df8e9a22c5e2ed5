"""The status list publisher: every write that publishes a list version, from request to log.
I/O: resolves the issuer's DID, writes the repository in a worker thread, appends to the log
(group commit); cost: one DID resolution, one store transaction and one log commit per write.

Each write goes the same four steps, here and only here:

1. **check** the request with the repository's own checks
   (:func:`~anchor.status.model.check_list_kind`,
   :func:`~anchor.status.allocation.allocation_count`,
   :func:`~anchor.status.model.check_batch_size`), so an HTTP client gets the service's
   errors (400, 413) before anything is resolved;
2. **authorise** the issuer's status key against its DID document
   (:func:`~anchor.status.authorisation.authorized_signer`);
3. **write** the new version(s) in a worker thread (:class:`StatusRepository` is
   synchronous);
4. **log** each new version's digest as a ``status-list`` entry and **record** its log
   index: the answer goes out only once the version is committed to the log. A version left
   unlogged by a crash is logged at start-up (:meth:`StatusRepository.log_pending`) or by the
   next write of its list.

The renewal loop (:meth:`StatusPublisher.renewing`) re-signs, in the background, every list
whose ``validUntil`` falls within one ttl, so lists nobody fetches stay valid too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from anchor.core.taskhealth import TaskHealth, describe
from anchor.errors import AnchorError, Forbidden
from anchor.log.log import GroupCommitter
from anchor.status.allocation import allocation_count
from anchor.status.authorisation import StatusKeyNotAuthorized, authorized_signer
from anchor.status.custody import StatusSigner
from anchor.status.model import (
    Allocation,
    PublishedVersion,
    StatusChange,
    StatusList,
    UpdateResult,
    check_batch_size,
    check_list_kind,
    now_ms,
)
from anchor.status.repository import StatusRepository
from anchor.verify.identity import ResolutionUnavailable
from did_methods import Resolver

if TYPE_CHECKING:
    from anchor.db.leadership import Duties

logger = logging.getLogger(__name__)

RENEWAL_PERIOD_MAX_SECONDS: Final = 60.0
"""Longest pause between two rounds of renewing lists whose validUntil is near."""

RENEWAL_TASK: Final = "status-renewal"
"""The renewal loop's name in ``/healthz`` and ``/metrics``."""


@dataclass(frozen=True, slots=True)
class Published:
    """A write's outcome: the list after it and its current version with its log index."""

    list: StatusList
    version: PublishedVersion
    log_index: int


@dataclass(frozen=True, slots=True)
class Updated:
    """A batch's outcome (:class:`UpdateResult`) with the current version's log index."""

    result: UpdateResult
    log_index: int


class StatusPublisher:
    """Authorise, write, log, record (see the module docstring) for one repository, log
    and resolver."""

    def __init__(
        self, repository: StatusRepository, committer: GroupCommitter, resolver: Resolver
    ) -> None:
        self.repository = repository
        self.committer = committer
        self.resolver = resolver

    async def signer(self, issuer: str) -> StatusSigner:
        """The issuer's status key, authorised by its DID document (409 otherwise)."""
        return await authorized_signer(self.repository.keys, self.resolver, issuer)

    async def log(self, versions: Sequence[PublishedVersion]) -> list[int]:
        """Append the versions' digests to the log (group commit) and record their
        indexes."""
        if not versions:
            return []
        result = await self.committer.append([v.log_entry for v in versions])
        indexes = list(result.indexes)
        await asyncio.to_thread(self.repository.record_log_index, versions, indexes)
        return indexes

    # -- writes ----------------------------------------------------------------------------

    async def create_list(
        self, issuer: str, request: Mapping[str, Any], base_url: str
    ) -> Published:
        """Open a new list of the kind ``request`` asks for (``purpose``, ``statusSize``,
        ``statusMessage``) and publish its first version."""
        purpose, size, messages = check_list_kind(
            request.get("purpose"), request.get("statusSize"), request.get("statusMessage")
        )
        signer = await self.signer(issuer)
        status_list, version = await asyncio.to_thread(
            self.repository.create_list,
            signer,
            purpose,
            base_url,
            status_size=size,
            status_message=messages,
        )
        (log_index,) = await self.log([version])
        return Published(status_list, version, log_index)

    async def allocate(self, issuer: str, request: Mapping[str, Any], base_url: str) -> Allocation:
        """Allocate what ``request`` asks for (its kind, ``count`` or ``credentialIds``);
        the first versions of lists opened meanwhile are logged before the answer."""
        purpose, size, messages = check_list_kind(
            request.get("purpose"), request.get("statusSize"), request.get("statusMessage")
        )
        count = allocation_count(request)
        ids = request.get("credentialIds")
        signer = await self.signer(issuer)
        allocation = await asyncio.to_thread(
            self.repository.allocate,
            signer,
            purpose,
            None if ids is not None else count,
            base_url,
            credential_ids=ids,
            status_size=size,
            status_message=messages,
        )
        await self.log(allocation.published)
        return allocation

    async def update(
        self, issuer: str, list_id: str, changes: Sequence[StatusChange], keyid: str | None
    ) -> Updated:
        """Apply a batch of changes to the issuer's own list ``list_id`` (403 for another
        issuer's) and publish the new version."""
        check_batch_size(len(changes))
        status_list = await asyncio.to_thread(self.repository.get_list, list_id)
        if status_list.issuer != issuer:
            raise Forbidden(
                f"status list {list_id} belongs to another issuer",
                hint="change only the lists your own DID allocated",
            )
        signer = await self.signer(issuer)
        result = await asyncio.to_thread(
            self.repository.update, list_id, signer, changes, keyid=keyid
        )
        log_index = result.version.log_index
        if log_index is None:  # new, or left unlogged by an earlier failed append
            (log_index,) = await self.log([result.version])
        return Updated(result, log_index)

    # -- renewal ---------------------------------------------------------------------------

    async def current(self, list_id: str) -> PublishedVersion:
        """The version of ``list_id`` to serve now (renewed first when it is due)."""
        return await self.renewed(await asyncio.to_thread(self.repository.current_version, list_id))

    async def renewed(self, version: PublishedVersion, *, strict: bool = False) -> PublishedVersion:
        """``version``, or a fresh signature of it (signed, stored and logged) when its
        validUntil is within one ttl. When the issuer's key cannot sign now, ``version``
        (logged), or with ``strict`` (the background round) the error, so that the renewal
        task shows it in ``/healthz``."""
        repository = self.repository
        if not repository.needs_renewal(version, now_ms()):
            return version
        try:
            signer = await self.signer(version.issuer)
        except (StatusKeyNotAuthorized, ResolutionUnavailable) as err:
            if strict:
                raise
            logger.warning("cannot renew status list %s: %s", version.list_id, err.detail)
            return version
        renewed = await asyncio.to_thread(
            repository.republish, version.list_id, signer, if_version=version.version
        )
        if renewed is None:  # someone else published meanwhile
            return await asyncio.to_thread(repository.current_version, version.list_id)
        await self.log([renewed])
        return renewed

    async def renewal_round(self) -> Exception | None:
        """Renew every list that is due; the last failure, if any (one list failing, for
        whatever reason, does not stop the others)."""
        failure: Exception | None = None
        try:
            due = await asyncio.to_thread(self.repository.due_for_renewal, now_ms())
        except AnchorError as err:
            return err
        for version in due:
            try:
                await self.renewed(version, strict=True)
            except Exception as err:  # noqa: BLE001 - the store, the log, a key file: retried soon
                logger.warning("renewing status list %s failed: %s", version.list_id, describe(err))
                failure = err
        return failure

    @contextlib.asynccontextmanager
    async def renewing(self, duties: Duties) -> AsyncIterator[None]:
        """While inside, when lists have a validUntil, renew every one that is due in the
        background (not only when it is fetched), so that exported static copies and lists
        nobody fetched stay valid. A round every ttl / 2, at most
        :data:`RENEWAL_PERIOD_MAX_SECONDS` apart. The loop is one of ``duties``: it runs on
        the sequencer only (:mod:`anchor.db.leadership`).

        A failure (the store is full or failing, the log refuses, an issuer's key file cannot
        be read, or any error the code did not expect) is logged on one line with its type,
        makes the task unhealthy (its :class:`TaskHealth`: ``/healthz``, ``/metrics``) and
        is retried after 1, 2, 4... seconds, at most one
        period: the loop survives every error."""
        settings = self.repository.settings
        if settings.valid_ms is None:
            yield
            return
        period = min(RENEWAL_PERIOD_MAX_SECONDS, max(1.0, settings.ttl_ms / 2000))
        health = TaskHealth(RENEWAL_TASK)

        async def loop() -> None:
            health.started()
            try:
                while True:
                    try:
                        failure = await self.renewal_round()
                    except Exception as err:  # noqa: BLE001 - a background task survives every error
                        failure = err
                    if failure is None:
                        health.succeeded()
                    else:
                        health.failed(failure)
                        logger.warning("renewing status lists failed: %s", describe(failure))
                    pause = period if failure is None else health.backoff(1.0, period)
                    await asyncio.sleep(pause)
            finally:
                health.stopped()

        await duties.add(RENEWAL_TASK, loop, health=health)
        try:
            yield
        finally:
            await duties.remove(RENEWAL_TASK)
