"""Status list routes: create, allocate, update (signed); read, history, versions (public);
the issuers' status keys.

Writes are signed by the issuer (:func:`~anchor.auth.require_signature`); an issuer that
touches another issuer's list gets 403. Every write that publishes a version signs it with
the issuer's status key, checked first against the issuer's DID document
(:func:`~anchor.status_service.authorized_signer`, 409 with instructions when it is not
listed under ``assertionMethod``), and answers only once the version's digest is committed
to the log as a ``status-list`` entry.

``GET /v1/status-lists/{id}`` serves the signed credential's canonical JSON with a strong
``ETag`` (its SHA-256, the digest in the log), ``Cache-Control: public, max-age=<ttl>``,
``304`` on a matching ``If-None-Match`` and ``?timestamp=`` (RFC 3339 or unix seconds) for
the version that was current then.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from aiohttp import web

from anchor.appkeys import COMMITTER, CONFIG, DUTIES, RESOLVER, STATUS
from anchor.auth import principal_of, require_signature
from anchor.entry import check_did, parse_digest
from anchor.errors import (
    AnchorError,
    ConfigError,
    Conflict,
    EncodingError,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
)
from anchor.identity import ResolutionUnavailable
from anchor.keys import DID_KEY_PREFIX, Ed25519Key, b64url_decode, did_key_for
from anchor.openapi import (
    DID_SCHEMA,
    HEX_DIGEST,
    SIGNED,
    errors,
    int_query,
    json_request,
    json_response,
)
from anchor.routes.bodies import json_object, json_value
from anchor.routes.links import receipt_location
from anchor.routes.params import int_param, json_integer, optional_int_param
from anchor.status_list import MAX_INDEX_DIGITS, MAX_STATUS_SIZE
from anchor.status_service import (
    LIST_ID_BYTES,
    MANAGED_PURPOSES,
    MAX_ALLOCATION,
    MAX_CREDENTIAL_ID_CHARS,
    MAX_HISTORY_PAGE,
    MAX_REASON_CHARS,
    MAX_UPDATES,
    MAX_VERSIONS_PAGE,
    PublishedVersion,
    StatusChange,
    StatusKeyNotAuthorized,
    StatusService,
    authorized_signer,
    check_list_kind,
    find_assertion_method,
    iso_ms,
    now_ms,
)
from anchor.taskhealth import TaskHealth

_LOG = logging.getLogger(__name__)

routes = web.RouteTableDef()

STATUS_LIST_MEDIA_TYPE: Final = "application/vc"
"""Media type of a VC Data Model 2.0 credential with an embedded proof."""

IMMUTABLE_CACHE: Final = "public, max-age=31536000, immutable"
"""Cache-Control of a superseded version asked for by ``?timestamp=``: it never changes."""

_INDEX_RE: Final = re.compile(r"0|[1-9][0-9]*")
LIST_ID_RE: Final = f"[0-9a-f]{{{2 * LIST_ID_BYTES}}}"
"""A status list id (:data:`~anchor.status_service.LIST_ID_BYTES` random bytes, hex): the
routes match only these, so ``/v1/status-lists/allocate`` is no list."""
_UNIX_SECONDS_RE: Final = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_DATE_TIME_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?P<fraction>\.[0-9]{1,9})?(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _service(request: web.Request) -> StatusService:
    return request.app[STATUS]


def _base_url(request: web.Request) -> str:
    """Where lists are published: ``status_url``, else ``public_url``, else this host."""
    config = request.app[CONFIG]
    base = config.status_url or config.public_url
    return base.rstrip("/") if base else f"{request.scheme}://{request.host}"


async def _log_versions(request: web.Request, versions: Sequence[PublishedVersion]) -> list[int]:
    """Append the versions' digests to the log (group commit) and remember their indexes."""
    return await _log_versions_of(request.app, versions)


async def _log_versions_of(app: web.Application, versions: Sequence[PublishedVersion]) -> list[int]:
    if not versions:
        return []
    result = await app[COMMITTER].append([v.log_entry for v in versions])
    indexes = list(result.indexes)
    await asyncio.to_thread(app[STATUS].record_log_index, versions, indexes)
    return indexes


def _json_body(raw: bytes) -> Any:
    return json_value(raw)


def parse_timestamp(raw: str) -> int:
    """``?timestamp=``: unix seconds (fractions allowed) or an RFC 3339 date-time (the ISO
    8601 profile, with a time zone); milliseconds since the epoch (negative before 1970)."""
    if _UNIX_SECONDS_RE.fullmatch(raw):
        return int(Decimal(raw) * 1000)
    head, sep, tail = raw.partition("T")
    text = head + sep + tail.replace(" ", "+")  # a '+' of the offset sent unencoded
    match = _DATE_TIME_RE.fullmatch(text)
    if match is None:
        if _DATE_TIME_RE.fullmatch(text + "Z") is not None:
            raise InvalidInput(
                f"timestamp {raw!r} has no time zone", hint="add Z or an offset such as +02:00"
            )
        raise InvalidInput(
            f"timestamp {raw!r} is neither unix seconds nor an RFC 3339 date-time",
            hint="for example 2025-06-01T12:00:00Z or 1748779200",
        )
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = Decimal("0" + (match["fraction"] or ""))
    if second == 60:  # a leap second: the last instant of its minute
        second, fraction = 59, Decimal("0.999")
    zone = match["zone"].upper()
    offset = timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError as err:  # a day, hour or offset out of range
        raise InvalidInput(f"timestamp {raw!r} is not a date-time: {err}") from None
    # aware subtraction never leaves datetime's range (year 1 at +01:00 is year 0 in UTC)
    since_epoch = moment - _EPOCH
    return since_epoch // timedelta(milliseconds=1) + int(fraction * 1000)


def _parse_index(value: object, where: str) -> int:
    if isinstance(value, str) and len(value) <= MAX_INDEX_DIGITS and _INDEX_RE.fullmatch(value):
        return int(value)
    value = json_integer(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidInput(f'{where}.index must be a base-10 index string such as "123"')


def parse_changes(body: Any) -> list[StatusChange]:
    """``[{"index": "123", "value": 1, "reason": "..."}, ...]`` (or that array under
    ``"statuses"``) as :class:`StatusChange` values."""
    items = body.get("statuses") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            'body must be a non-empty array [{"index": "123", "value": 1, "reason": "..."}]'
        )
    if len(items) > MAX_UPDATES:
        raise LimitExceeded(
            f"{len(items)} changes in one batch; at most {MAX_UPDATES}", hint="split the batch"
        )
    changes = []
    for number, item in enumerate(items):
        where = f"[{number}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object with index and value")
        index = _parse_index(item.get("index"), where)
        value = json_integer(item.get("value"))
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
            raise InvalidInput(f"{where}.value must be an integer of 0..255")
        reason = item.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
            raise InvalidInput(f"{where}.reason must be a string of at most {MAX_REASON_CHARS}")
        changes.append(StatusChange(index, value, reason))
    return changes


def _version_json(version: PublishedVersion, log_index: int | None) -> dict[str, Any]:
    return {
        "version": version.version,
        "digest": version.digest.hex(),
        "published": iso_ms(version.created_ms),
        "logIndex": log_index,
    }


# --- writes ---------------------------------------------------------------------------------


@routes.post("/v1/status-lists")
@require_signature
async def create_list(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = json_object(await request.read())
    purpose, size, messages = check_list_kind(
        body.get("purpose"), body.get("statusSize"), body.get("statusMessage")
    )
    service = _service(request)
    signer = await authorized_signer(service, request.app[RESOLVER], principal.did)
    status_list, version = await asyncio.to_thread(
        service.create_list,
        signer,
        purpose,
        _base_url(request),
        status_size=size,
        status_message=messages,
    )
    (log_index,) = await _log_versions(request, [version])
    answer = {**status_list.to_json(), "published": _version_json(version, log_index)}
    return web.json_response(answer, status=201, headers={"Location": status_list.url})


@routes.post("/v1/status-lists/allocate")
@require_signature
async def allocate(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = json_object(await request.read())
    purpose, size, messages = check_list_kind(
        body.get("purpose"), body.get("statusSize"), body.get("statusMessage")
    )
    ids = body.get("credentialIds")
    if ids is not None and "count" in body:
        raise InvalidInput(
            "give either count or credentialIds",
            hint="with credentialIds, the count is their number",
        )
    if ids is not None and (not isinstance(ids, list) or not 1 <= len(ids) <= MAX_ALLOCATION):
        raise InvalidInput(f"credentialIds must be an array of 1..{MAX_ALLOCATION} strings")
    count = json_integer(body.get("count", len(ids) if ids else 1))
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_ALLOCATION:
        raise InvalidInput(f"count must be an integer of 1..{MAX_ALLOCATION}")
    service = _service(request)
    signer = await authorized_signer(service, request.app[RESOLVER], principal.did)
    allocation = await asyncio.to_thread(
        service.allocate,
        signer,
        purpose,
        count,
        _base_url(request),
        credential_ids=ids,
        status_size=size,
        status_message=messages,
    )
    await _log_versions(request, allocation.published)
    answer = {
        "entries": [e.to_json() for e in allocation.entries],
        "new": list(allocation.new),
        "openedLists": [v.list_id for v in allocation.published],
    }
    return web.json_response(answer, status=201 if any(allocation.new) else 200)


@routes.post(f"/v1/status-lists/{{id:{LIST_ID_RE}}}/statuses")
@require_signature
async def set_statuses(request: web.Request) -> web.Response:
    principal = principal_of(request)
    list_id = request.match_info["id"]
    changes = parse_changes(_json_body(await request.read()))
    service = _service(request)
    status_list = await asyncio.to_thread(service.get_list, list_id)
    if status_list.issuer != principal.did:
        raise Forbidden(
            f"status list {list_id} belongs to another issuer",
            hint="change only the lists your own DID allocated",
        )
    signer = await authorized_signer(service, request.app[RESOLVER], principal.did)
    result = await asyncio.to_thread(
        service.update, list_id, signer, changes, keyid=principal.keyid
    )
    log_index = result.version.log_index
    if log_index is None:  # new, or left unlogged by an earlier failed append
        (log_index,) = await _log_versions(request, [result.version])
    answer = {
        **result.list.to_json(),
        "changed": result.changed,
        "published": _version_json(result.version, log_index),
    }
    return web.json_response(answer)


@routes.post("/v1/status-keys")
@require_signature
async def status_key(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = json_object(await request.read())
    service = _service(request)
    if body:
        if not principal.did.startswith(DID_KEY_PREFIX):  # its DID method decides: 409
            raise Conflict(
                f"only a did:key issuer uploads its key; {principal.did} uses a key the "
                "service generates",
                hint="send an empty JSON object {} to get the key to add to your DID document",
            )
        if "kty" not in body:
            raise InvalidInput("body must be {} or the issuer's private Ed25519 JWK")
        _require_own_public_key(body, principal.did)
        try:
            key = Ed25519Key.from_jwk(body, source="the uploaded JWK")
        except ConfigError as err:
            raise InvalidInput(err.detail, hint=err.hint) from None
        info = await asyncio.to_thread(service.upload_key, principal.did, key)
    else:
        found = await asyncio.to_thread(service.key_info, principal.did, generate=True)
        if found is None:  # the issuer's DID method decides: a conflict with its custody
            raise Conflict(
                f"{principal.did} signs its status lists with its own did:key key",
                hint="upload the private JWK of your did:key as the body",
            )
        info = found
    vm = await find_assertion_method(request.app[RESOLVER], principal.did, info.public_key)
    return web.json_response(info.to_json(authorized=vm is not None))


def _require_own_public_key(jwk: dict[str, Any], did: str) -> None:
    """403 unless the JWK's public key ``x`` is the one of ``did`` (checked before the
    private part: whose key it is matters first)."""
    x = jwk.get("x")
    try:
        claimed = did_key_for(b64url_decode(x, what='"x"')) if isinstance(x, str) else None
    except ConfigError:
        claimed = None
    if claimed != did:
        raise Forbidden(
            f"the uploaded key is not the key of {did}",
            hint="upload the private JWK of the did:key that signs your requests",
        )


# --- reads ----------------------------------------------------------------------------------


def _not_modified(request: web.Request, etag: str) -> bool:
    wanted = request.if_none_match
    if not wanted:
        return False
    return any(tag.value in ("*", etag.strip('"')) for tag in wanted)


async def _renewed(app: web.Application, version: PublishedVersion) -> PublishedVersion:
    """``version``, or a fresh signature of it (signed, stored and logged) when its
    validUntil is within one ttl. When the issuer's key cannot sign now, ``version``."""
    service: StatusService = app[STATUS]
    if not service.needs_renewal(version, now_ms()):
        return version
    try:
        signer = await authorized_signer(service, app[RESOLVER], version.issuer)
    except (StatusKeyNotAuthorized, ResolutionUnavailable) as err:
        _LOG.warning("cannot renew status list %s: %s", version.list_id, err.detail)
        return version
    renewed = await asyncio.to_thread(
        service.republish, version.list_id, signer, if_version=version.version
    )
    if renewed is None:  # someone else published meanwhile
        return await asyncio.to_thread(service.current_version, version.list_id)
    await _log_versions_of(app, [renewed])
    return renewed


RENEWAL_PERIOD_MAX_SECONDS: Final = 60.0
"""Longest pause between two rounds of renewing lists whose validUntil is near."""


async def renewal_ctx(app: web.Application) -> AsyncIterator[None]:
    """When lists have a validUntil, renew every one that is due in the background (not
    only when it is fetched), so that exported static copies and lists nobody fetched stay
    valid. A round every ttl / 2, at most :data:`RENEWAL_PERIOD_MAX_SECONDS` apart.

    A failure (the store is full or failing, the log refuses) is logged, makes the task
    unhealthy (``/healthz``, ``/metrics``: task ``status-renewal``) and is retried after
    1, 2, 4... seconds, at most one period; one list failing does not stop the others."""
    service: StatusService = app[STATUS]
    if service.settings.valid_ms is None:
        yield
        return
    period = min(RENEWAL_PERIOD_MAX_SECONDS, max(1.0, service.settings.ttl_ms / 2000))
    health = TaskHealth("status-renewal")

    async def round_() -> AnchorError | None:
        failure: AnchorError | None = None
        try:
            due = await asyncio.to_thread(service.due_for_renewal, now_ms())
        except AnchorError as err:
            return err
        for version in due:
            try:
                await _renewed(app, version)
            except AnchorError as err:  # the store or the log failed: retry it soon
                _LOG.warning("renewing status list %s failed: %s", version.list_id, err.detail)
                failure = err
        return failure

    async def loop() -> None:
        health.started()
        try:
            while True:
                failure = await round_()
                if failure is None:
                    health.succeeded()
                else:
                    health.failed(failure)
                    _LOG.warning("renewing status lists failed: %s", failure.diagnostics())
                await asyncio.sleep(period if failure is None else health.backoff(1.0, period))
        finally:
            health.stopped()

    await app[DUTIES].add("status-renewal", loop, health=health)  # on the sequencer only
    yield
    await app[DUTIES].remove("status-renewal")


@routes.get(f"/v1/status-lists/{{id:{LIST_ID_RE}}}")
async def get_list(request: web.Request) -> web.Response:
    list_id = request.match_info["id"]
    service = _service(request)
    raw = request.query.get("timestamp")
    if raw is not None:
        version = await asyncio.to_thread(service.version_at, list_id, parse_timestamp(raw))
    else:
        version = await _renewed(
            request.app, await asyncio.to_thread(service.current_version, list_id)
        )
    ttl_seconds = service.settings.ttl_ms // 1000
    cache = (
        IMMUTABLE_CACHE if version.superseded_ms is not None else f"public, max-age={ttl_seconds}"
    )
    headers = {"ETag": version.etag, "Cache-Control": cache}
    if _not_modified(request, version.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=version.document, content_type=STATUS_LIST_MEDIA_TYPE, headers=headers)


@routes.get(f"/v1/status-lists/{{id:{LIST_ID_RE}}}/history")
async def get_history(request: web.Request) -> web.Response:
    list_id = request.match_info["id"]
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", MAX_HISTORY_PAGE, minimum=1)
    index = optional_int_param(request, "index")
    service = _service(request)
    records = await asyncio.to_thread(
        service.history, list_id, after=after, limit=limit, index=index
    )
    answer: dict[str, Any] = {"listId": list_id, "changes": [r.to_json() for r in records]}
    if len(records) == min(limit, MAX_HISTORY_PAGE):
        answer["next"] = f"/v1/status-lists/{list_id}/history?after={records[-1].seq}"
    return web.json_response(answer)


@routes.get(f"/v1/status-lists/{{id:{LIST_ID_RE}}}/versions/{{digest}}")
async def get_version(request: web.Request) -> web.Response:
    list_id = request.match_info["id"]
    try:
        digest = parse_digest(request.match_info["digest"])
    except EncodingError as err:
        raise InvalidInput(err.detail) from None
    service = _service(request)
    version = await asyncio.to_thread(service.version_by_digest, list_id, digest)
    ttl = service.settings.ttl_ms
    answer: dict[str, Any] = {
        "listId": list_id,
        "issuer": version.issuer,
        **_version_json(version, version.log_index),
        "current": version.superseded_ms is None,
        "supersededAt": None if version.superseded_ms is None else iso_ms(version.superseded_ms),
        "ttl": ttl,
        "stale": version.is_stale(ttl, now_ms()),
        "receipt": receipt_location(digest.hex(), version.issuer),
    }
    if version.log_index is not None:
        answer["inclusionProof"] = f"/v1/proofs/inclusion?index={version.log_index}"
    return web.json_response(answer)


@routes.get("/v1/status-versions")
async def get_all_versions(request: web.Request) -> web.Response:
    """Every published list version with its signed credential, in publication order, so
    that an auditor can check each against the log (as ``log export`` writes them)."""
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", MAX_VERSIONS_PAGE, minimum=1)
    found = await asyncio.to_thread(_service(request).all_versions, after, limit)
    answer: dict[str, Any] = {
        "versions": [
            {
                "seq": seq,
                "listId": v.list_id,
                "version": v.version,
                "digest": v.digest.hex(),
                "logIndex": v.log_index,
                "credential": v.document.decode(),
            }
            for seq, v in found
        ]
    }
    if len(found) == min(limit, MAX_VERSIONS_PAGE):
        answer["next"] = f"/v1/status-versions?after={found[-1][0]}"
    return web.json_response(answer)


@routes.get("/v1/status-keys")
async def get_status_key(request: web.Request) -> web.Response:
    did = request.query.get("did")
    if not did:
        raise InvalidInput("query parameter 'did' is required")
    try:
        check_did(did)
    except EncodingError as err:
        raise InvalidInput(err.detail, hint=err.hint) from None
    info = await asyncio.to_thread(_service(request).key_info, did)
    if info is None:
        raise NotFound(f"{did} has no status list key yet")
    vm = await find_assertion_method(request.app[RESOLVER], did, info.public_key)
    return web.json_response(info.to_json(authorized=vm is not None))


# --- OpenAPI --------------------------------------------------------------------------------


def _list_kinds() -> list[dict[str, Any]]:
    """The list kinds :func:`check_list_kind` accepts, one schema each: a revocation or
    suspension list has 1-bit entries and no messages; a message list of statusSize k has
    the 2^k messages of its status values, in order."""
    one_bit = [p for p in MANAGED_PURPOSES if p != "message"]
    kinds: list[dict[str, Any]] = [
        {
            "properties": {"purpose": {"enum": one_bit}, "statusSize": {"const": 1}},
            "not": {"required": ["statusMessage"]},
        }
    ]
    for size in range(2, MAX_STATUS_SIZE + 1):
        count = 1 << size
        messages = [
            {
                "type": "object",
                "required": ["status", "message"],
                "properties": {"status": {"const": f"0x{n:x}"}, "message": {"type": "string"}},
            }
            for n in range(count)
        ]
        kinds.append(
            {
                "required": ["statusSize", "statusMessage"],
                "properties": {
                    "purpose": {"const": "message"},
                    "statusSize": {"const": size},
                    "statusMessage": {
                        "minItems": count,
                        "maxItems": count,
                        "prefixItems": messages,
                        "items": False,
                    },
                },
            }
        )
    return kinds


def openapi_paths() -> dict[str, Any]:
    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{LIST_ID_RE}$"},
    }
    message = {
        "type": "object",
        "required": ["status", "message"],
        "properties": {
            "status": {"type": "string", "pattern": "^0x[0-9a-fA-F]+$"},
            "message": {"type": "string"},
        },
    }
    kind = {
        "purpose": {"type": "string", "enum": list(MANAGED_PURPOSES)},
        "statusSize": {"type": "integer", "minimum": 1, "maximum": MAX_STATUS_SIZE},
        "statusMessage": {
            "type": "array",
            "items": message,
            "description": "for the message purpose only: one object per status value, "
            "in order (0x0, 0x1, ...)",
        },
    }
    kinds = _list_kinds()
    published = {
        "type": "object",
        "properties": {
            "version": {"type": "integer"},
            "digest": HEX_DIGEST,
            "published": {"type": "string", "format": "date-time"},
            "logIndex": {"type": ["integer", "null"]},
        },
    }
    status_list = {
        "type": "object",
        "required": ["id", "url", "issuer", "statusPurpose", "entries", "version"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "issuer": {"type": "string"},
            "statusPurpose": {"type": "string"},
            "statusSize": {"type": "integer"},
            "statusMessage": {"type": "array", "items": message},
            "entries": {"type": "integer"},
            "allocated": {"type": "integer"},
            "open": {"type": "boolean"},
            "created": {"type": "string"},
            "version": {"type": "integer"},
            "published": published,
            "changed": {"type": "integer"},
        },
    }
    key_info = {
        "type": "object",
        "required": ["did", "custody", "publicKeyMultibase", "instructions"],
        "properties": {
            "did": {"type": "string"},
            "custody": {"type": "string", "enum": ["generated", "uploaded"]},
            "publicKeyMultibase": {"type": "string"},
            "suggestedVerificationMethod": {"type": "string"},
            "instructions": {"type": "string"},
            "didDocumentAddition": {"type": "object"},
            "ethrAttribute": {"type": "object"},
            "authorized": {"type": "boolean"},
        },
    }
    change = {
        "type": "object",
        "required": ["index", "value"],
        "properties": {
            "index": {
                "type": ["string", "integer"],
                "description": "base-10 string (or a JSON integer)",
                "pattern": "^(0|[1-9][0-9]*)$",
                "maxLength": MAX_INDEX_DIGITS,
                "minimum": 0,
            },
            "value": {"type": "integer", "minimum": 0, "maximum": 255},
            "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
        },
    }
    entry = {"type": "object", "description": "a BitstringStatusListEntry for credentialStatus"}
    ed25519_b64url = {  # 32 bytes, canonical base64url
        "type": "string",
        "pattern": "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$",
    }
    return {
        "/v1/status-lists": {
            "post": {
                "summary": "Open a new status list and publish its first version (signed)",
                "security": SIGNED,
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["purpose"],
                        "properties": kind,
                        "oneOf": kinds,
                    }
                ),
                "responses": {
                    "201": json_response(status_list, "Created and published"),
                    **errors(400, 401, 403, 409, 503),
                },
            }
        },
        "/v1/status-lists/allocate": {
            "post": {
                "summary": "Allocate 1 to 10,000 entries at random positions (signed)",
                "description": "Idempotent per credential id; lists are opened as needed.",
                "security": SIGNED,
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["purpose"],
                        "oneOf": kinds,
                        "not": {"required": ["count", "credentialIds"]},
                        "properties": {
                            **kind,
                            "count": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_ALLOCATION,
                            },
                            "credentialIds": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_CREDENTIAL_ID_CHARS,
                                },
                                "minItems": 1,
                                "maxItems": MAX_ALLOCATION,
                                "description": "instead of count: allocate one entry per id",
                            },
                        },
                    }
                ),
                "responses": {
                    "201": json_response(
                        {
                            "type": "object",
                            "required": ["entries", "new"],
                            "properties": {
                                "entries": {"type": "array", "items": entry},
                                "new": {"type": "array", "items": {"type": "boolean"}},
                                "openedLists": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                        "Allocated (at least one new entry)",
                    ),
                    "200": json_response({"type": "object"}, "All entries existed already"),
                    **errors(400, 401, 403, 409, 413, 503),
                },
            }
        },
        "/v1/status-lists/{id}/statuses": {
            "post": {
                "summary": "Set statuses in one batch and publish the new version (signed)",
                "description": "All or nothing: undoing a revocation refuses the whole batch.",
                "security": SIGNED,
                "parameters": [id_param],
                "requestBody": json_request(
                    {
                        "type": "array",
                        "items": change,
                        "minItems": 1,
                        "maxItems": MAX_UPDATES,
                    }
                ),
                "responses": {
                    "200": json_response(status_list, "Applied and published"),
                    **errors(400, 401, 403, 404, 409, 413, 503),
                },
            }
        },
        "/v1/status-lists/{id}": {
            "get": {
                "summary": "The signed BitstringStatusListCredential (ETag, ttl caching)",
                "parameters": [
                    id_param,
                    {
                        "name": "timestamp",
                        "in": "query",
                        "description": "the version current at this time: unix seconds "
                        "(up to 12 digits, up to 9 decimals) or an RFC 3339 date-time",
                        "schema": {
                            "anyOf": [
                                {"type": "string", "pattern": f"^{_UNIX_SECONDS_RE.pattern}$"},
                                {"type": "string", "format": "date-time"},
                            ]
                        },
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The credential (RFC 8785 canonical JSON)",
                        "content": {STATUS_LIST_MEDIA_TYPE: {"schema": {"type": "object"}}},
                    },
                    "304": {"description": "Not modified (If-None-Match)"},
                    **errors(400, 404),
                },
            }
        },
        "/v1/status-lists/{id}/history": {
            "get": {
                "summary": "Recorded changes: who, when, old and new value, reason",
                "parameters": [
                    id_param,
                    int_query("after", "return changes after this seq (paging)"),
                    int_query("limit", f"at most this many (max {MAX_HISTORY_PAGE})", minimum=1),
                    int_query("index", "only changes of this entry"),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["listId", "changes"],
                            "properties": {
                                "listId": {"type": "string"},
                                "changes": {"type": "array", "items": {"type": "object"}},
                                "next": {"type": "string"},
                            },
                        }
                    ),
                    **errors(400, 404),
                },
            }
        },
        "/v1/status-lists/{id}/versions/{digest}": {
            "get": {
                "summary": "Was this version published, is it current or stale, where is it logged",
                "parameters": [
                    id_param,
                    {"name": "digest", "in": "path", "required": True, "schema": HEX_DIGEST},
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["listId", "version", "digest", "current", "stale"],
                            "properties": {
                                "listId": {"type": "string"},
                                "issuer": {"type": "string"},
                                "version": {"type": "integer"},
                                "digest": HEX_DIGEST,
                                "published": {"type": "string"},
                                "logIndex": {"type": ["integer", "null"]},
                                "current": {"type": "boolean"},
                                "supersededAt": {"type": ["string", "null"]},
                                "ttl": {"type": "integer"},
                                "stale": {"type": "boolean"},
                                "receipt": {"type": "string"},
                                "inclusionProof": {"type": "string"},
                            },
                        }
                    ),
                    **errors(400, 404),
                },
            }
        },
        "/v1/status-versions": {
            "get": {
                "summary": "Every published list version with its credential, for auditors",
                "parameters": [
                    int_query("after", "return versions after this seq (paging)"),
                    int_query("limit", f"at most this many (max {MAX_VERSIONS_PAGE})", minimum=1),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["versions"],
                            "properties": {
                                "versions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": [
                                            "seq",
                                            "listId",
                                            "version",
                                            "digest",
                                            "credential",
                                        ],
                                        "properties": {
                                            "seq": {"type": "integer"},
                                            "listId": {"type": "string"},
                                            "version": {"type": "integer"},
                                            "digest": HEX_DIGEST,
                                            "logIndex": {"type": ["integer", "null"]},
                                            "credential": {"type": "string"},
                                        },
                                    },
                                },
                                "next": {"type": "string"},
                            },
                        }
                    ),
                    **errors(400),
                },
            }
        },
        "/v1/status-keys": {
            "post": {
                "summary": "Get (did:web, did:ethr) or upload (did:key) the status key (signed)",
                "description": "Body {} for a service-generated key, or a did:key issuer's "
                "private Ed25519 JWK.",
                "security": SIGNED,
                "requestBody": json_request(
                    {
                        "oneOf": [
                            {"type": "object", "maxProperties": 0},
                            {
                                "type": "object",
                                "description": "a did:key issuer's private key (RFC 8037)",
                                "required": ["kty", "crv", "x", "d"],
                                "properties": {
                                    "kty": {"const": "OKP"},
                                    "crv": {"const": "Ed25519"},
                                    "x": ed25519_b64url,
                                    "d": ed25519_b64url,
                                },
                            },
                        ]
                    }
                ),
                "responses": {
                    "200": json_response(key_info),
                    **errors(400, 401, 403, 409, 503),
                },
            },
            "get": {
                "summary": "The public status key of an issuer and whether it is authorised",
                "parameters": [
                    {
                        "name": "did",
                        "in": "query",
                        "required": True,
                        "schema": DID_SCHEMA,
                    }
                ],
                "responses": {"200": json_response(key_info), **errors(400, 404, 503)},
            },
        },
    }
