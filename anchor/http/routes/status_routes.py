"""Status list routes: create, allocate, update (signed); read, history, versions (public);
the issuers' status keys.

This module parses HTTP, calls the :class:`~anchor.status.publisher.StatusPublisher` and
answers; the publisher checks each write (the service's own 400 and 413), authorises it and
orders the work. Writes are signed by the issuer (:mod:`anchor.auth.middleware`);
an issuer that touches another issuer's list gets 403. Every write that publishes a version
signs it with the issuer's status key, checked first against the issuer's DID document
(:func:`~anchor.status.authorisation.authorized_signer`, 409 with instructions when it is not
listed under ``assertionMethod``), and answers only once the version's digest is committed
to the log as a ``status-list`` entry.

``GET /v1/status-lists/{id}`` serves the signed credential's canonical JSON with a strong
``ETag`` (its SHA-256, the digest in the log), ``Cache-Control: public, max-age=<ttl>``,
``304`` on a matching ``If-None-Match`` and ``?timestamp=`` (RFC 3339 or unix seconds) for
the version that was current then.

Request and answer bodies, and these routes' OpenAPI paths, are
:mod:`anchor.http.routes.status_bodies`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from aiohttp import web

from anchor.auth.middleware import principal_of, require_signature
from anchor.core.entry import check_did, parse_digest
from anchor.errors import (
    ConfigError,
    Conflict,
    EncodingError,
    InvalidInput,
    NotFound,
)
from anchor.http.appkeys import CONFIG, RESOLVER, STATUS, STATUS_PUBLISHER
from anchor.http.routes.bodies import json_object, json_value
from anchor.http.routes.params import int_param, optional_int_param
from anchor.http.routes.status_bodies import (
    LIST_ID_RE,
    STATUS_LIST_MEDIA_TYPE,
    parse_changes,
    parse_timestamp,
    require_own_public_key,
    version_json,
    version_state_json,
    versions_page_json,
)
from anchor.http.routes.status_bodies import openapi_paths as openapi_paths
from anchor.keys import DID_KEY_PREFIX, Ed25519Key
from anchor.status.authorisation import find_assertion_method
from anchor.status.model import MAX_HISTORY_PAGE, MAX_VERSIONS_PAGE, now_ms
from anchor.status.publisher import StatusPublisher
from anchor.status.repository import StatusRepository

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

IMMUTABLE_CACHE: Final = "public, max-age=31536000, immutable"
"""Cache-Control of a superseded version asked for by ``?timestamp=``: it never changes."""


def _service(request: web.Request) -> StatusRepository:
    return request.app[STATUS]


def _publisher(request: web.Request) -> StatusPublisher:
    return request.app[STATUS_PUBLISHER]


def _base_url(request: web.Request) -> str:
    """Where lists are published: ``status_url``, else ``public_url``, else this host."""
    config = request.app[CONFIG]
    base = config.status_url or config.public_url
    return base.rstrip("/") if base else f"{request.scheme}://{request.host}"


def _json_body(raw: bytes) -> Any:
    return json_value(raw)


# --- writes ---------------------------------------------------------------------------------


@routes.post("/v1/status-lists")
@require_signature
async def create_list(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = json_object(await request.read())
    done = await _publisher(request).create_list(principal.did, body, _base_url(request))
    answer = {**done.list.to_json(), "published": version_json(done.version, done.log_index)}
    return web.json_response(answer, status=201, headers={"Location": done.list.url})


@routes.post("/v1/status-lists/allocate")
@require_signature
async def allocate(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = json_object(await request.read())
    allocation = await _publisher(request).allocate(principal.did, body, _base_url(request))
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
    done = await _publisher(request).update(principal.did, list_id, changes, principal.keyid)
    answer = {
        **done.result.list.to_json(),
        "changed": done.result.changed,
        "published": version_json(done.result.version, done.log_index),
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
        require_own_public_key(body, principal.did)
        try:
            key = Ed25519Key.from_jwk(body, source="the uploaded JWK")
        except ConfigError as err:
            raise InvalidInput(err.detail, hint=err.hint) from None
        info = await asyncio.to_thread(service.keys.upload_key, principal.did, key)
    else:
        found = await asyncio.to_thread(service.keys.key_info, principal.did, generate=True)
        if found is None:  # the issuer's DID method decides: a conflict with its custody
            raise Conflict(
                f"{principal.did} signs its status lists with its own did:key key",
                hint="upload the private JWK of your did:key as the body",
            )
        info = found
    vm = await find_assertion_method(request.app[RESOLVER], principal.did, info.public_key)
    return web.json_response(info.to_json(authorized=vm is not None))


# --- reads ----------------------------------------------------------------------------------


def _not_modified(request: web.Request, etag: str) -> bool:
    wanted = request.if_none_match
    if not wanted:
        return False
    return any(tag.value in ("*", etag.strip('"')) for tag in wanted)


@routes.get(f"/v1/status-lists/{{id:{LIST_ID_RE}}}")
async def get_list(request: web.Request) -> web.Response:
    list_id = request.match_info["id"]
    service = _service(request)
    raw = request.query.get("timestamp")
    if raw is not None:
        version = await asyncio.to_thread(service.version_at, list_id, parse_timestamp(raw))
    else:
        version = await _publisher(request).current(list_id)
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
    answer = version_state_json(list_id, version, service.settings.ttl_ms, now_ms())
    return web.json_response(answer)


@routes.get("/v1/status-versions")
async def get_all_versions(request: web.Request) -> web.Response:
    """Every published list version with its signed credential, in publication order, so
    that an auditor can check each against the log (as ``log export`` writes them)."""
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", MAX_VERSIONS_PAGE, minimum=1)
    found = await asyncio.to_thread(_service(request).all_versions, after, limit)
    return web.json_response(versions_page_json(found, limit))


@routes.get("/v1/status-keys")
async def get_status_key(request: web.Request) -> web.Response:
    did = request.query.get("did")
    if not did:
        raise InvalidInput("query parameter 'did' is required")
    try:
        check_did(did)
    except EncodingError as err:
        raise InvalidInput(err.detail, hint=err.hint) from None
    info = await asyncio.to_thread(_service(request).keys.key_info, did)
    if info is None:
        raise NotFound(f"{did} has no status list key yet")
    vm = await find_assertion_method(request.app[RESOLVER], did, info.public_key)
    return web.json_response(info.to_json(authorized=vm is not None))
