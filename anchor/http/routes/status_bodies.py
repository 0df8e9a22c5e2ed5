"""The status routes' bodies: parsing requests (status changes, ``?timestamp=``, an uploaded
status key), shaping answers (published versions) and the OpenAPI paths of
:mod:`anchor.http.routes.status_routes`, which handles only HTTP.

Pure: no I/O; the parsers raise :class:`~anchor.errors.InvalidInput` (or
:class:`~anchor.errors.Forbidden` for another issuer's key). Cost: linear in the body; the
OpenAPI paths are built once per document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from anchor.errors import ConfigError, Forbidden, InvalidInput
from anchor.http.openapi import (
    DID_SCHEMA,
    HEX_DIGEST,
    SIGNED,
    errors,
    int_query,
    json_request,
    json_response,
)
from anchor.http.routes.links import receipt_location
from anchor.http.routes.params import json_integer
from anchor.keys import b64url_decode, did_key_for
from anchor.status.bitstring import MAX_STATUS_SIZE
from anchor.status.credential import MAX_INDEX_DIGITS
from anchor.status.model import (
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
    check_batch_size,
    iso_ms,
)

STATUS_LIST_MEDIA_TYPE: Final = "application/vc"
"""Media type of a VC Data Model 2.0 credential with an embedded proof."""

_INDEX_RE: Final = re.compile(r"0|[1-9][0-9]*")
LIST_ID_RE: Final = f"[0-9a-f]{{{2 * LIST_ID_BYTES}}}"
"""A status list id (:data:`~anchor.status.model.LIST_ID_BYTES` random bytes, hex): the
routes match only these, so ``/v1/status-lists/allocate`` is no list."""
_UNIX_SECONDS_RE: Final = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_DATE_TIME_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?P<fraction>\.[0-9]{1,9})?(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


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
    check_batch_size(len(items))  # the service's limit, before any item is parsed
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


def version_json(version: PublishedVersion, log_index: int | None) -> dict[str, Any]:
    return {
        "version": version.version,
        "digest": version.digest.hex(),
        "published": iso_ms(version.created_ms),
        "logIndex": log_index,
    }


def version_state_json(
    list_id: str, version: PublishedVersion, ttl_ms: int, now: int
) -> dict[str, Any]:
    """The answer of ``GET /v1/status-lists/{id}/versions/{digest}``: the version, whether it
    is current or stale at ``now`` (ms), and where its receipt and inclusion proof are."""
    answer: dict[str, Any] = {
        "listId": list_id,
        "issuer": version.issuer,
        **version_json(version, version.log_index),
        "current": version.superseded_ms is None,
        "supersededAt": None if version.superseded_ms is None else iso_ms(version.superseded_ms),
        "ttl": ttl_ms,
        "stale": version.is_stale(ttl_ms, now),
        "receipt": receipt_location(version.digest.hex(), version.issuer),
    }
    if version.log_index is not None:
        answer["inclusionProof"] = f"/v1/proofs/inclusion?index={version.log_index}"
    return answer


def versions_page_json(found: list[tuple[int, PublishedVersion]], limit: int) -> dict[str, Any]:
    """The answer of ``GET /v1/status-versions``: each version with its sequence number and
    signed credential, and the next page's link when this one is full."""
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
    return answer


def require_own_public_key(jwk: dict[str, Any], did: str) -> None:
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


# --- OpenAPI --------------------------------------------------------------------------------------


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
