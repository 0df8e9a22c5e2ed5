"""The operator's admin API: the issuer registry, behind a bearer token.

With no ``--operator-token`` configured the admin API answers 403 to everything.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from aiohttp import web

from anchor.auth.issuers import MAX_NAME_LENGTH
from anchor.errors import AdminUnauthorized, Forbidden, InvalidInput
from anchor.http.appkeys import CONFIG, ISSUERS
from anchor.http.openapi import DID_SCHEMA, errors, flag_query, json_request, json_response
from anchor.http.routes.bodies import json_object
from anchor.http.routes.params import did_from_path, flag_param

routes = web.RouteTableDef()


def require_operator(request: web.Request) -> None:
    token = request.app[CONFIG].operator_token
    if not token:
        raise Forbidden("the admin API is disabled", hint="start the service with --operator-token")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise AdminUnauthorized("the admin API needs 'Authorization: Bearer <operator token>'")
    if not given.isascii() or not hmac.compare_digest(given.encode(), token.encode()):
        raise AdminUnauthorized("wrong operator token")


@routes.get("/v1/admin/issuers")
async def list_issuers(request: web.Request) -> web.Response:
    require_operator(request)
    include = flag_param(request, "all")
    issuers = await asyncio.to_thread(request.app[ISSUERS].list, include_removed=include)
    return web.json_response({"issuers": [i.to_json() for i in issuers]})


@routes.post("/v1/admin/issuers")
async def add_issuer(request: web.Request) -> web.Response:
    require_operator(request)
    body = json_object(await request.read())
    extra = sorted(set(body) - {"did", "name"})
    if extra:
        raise InvalidInput(f"unknown member(s) {', '.join(extra)}", hint='send {"did", "name"?}')
    did = body.get("did")
    name = body.get("name", "")
    if not isinstance(did, str) or not isinstance(name, str):
        raise InvalidInput('body must be {"did": string, "name"?: string}')
    issuer = await asyncio.to_thread(request.app[ISSUERS].add, did, name)
    return web.json_response(issuer.to_json(), status=201)


@routes.delete("/v1/admin/issuers/{did}")
async def remove_issuer(request: web.Request) -> web.Response:
    require_operator(request)
    did = did_from_path(request, "/v1/admin/issuers/")
    issuer = await asyncio.to_thread(request.app[ISSUERS].remove, did)
    return web.json_response(issuer.to_json())


def openapi_paths() -> dict[str, Any]:
    issuer = {
        "type": "object",
        "required": ["did", "name", "addedAt", "active"],
        "properties": {
            "did": {"type": "string"},
            "name": {"type": "string"},
            "addedAt": {"type": "integer"},
            "removedAt": {"type": ["integer", "null"]},
            "active": {"type": "boolean"},
        },
    }
    security: list[dict[str, list[str]]] = [{"operatorToken": []}]
    return {
        "/v1/admin/issuers": {
            "get": {
                "summary": "List registered issuers (operator)",
                "security": security,
                "parameters": [flag_query("all", "include removed issuers")],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "properties": {"issuers": {"type": "array", "items": issuer}},
                        }
                    ),
                    **errors(400, 401, 403),
                },
            },
            "post": {
                "summary": "Register an issuer DID (operator)",
                "security": security,
                "requestBody": json_request(
                    {
                        "type": "object",
                        "required": ["did"],
                        "additionalProperties": False,
                        "properties": {
                            "did": DID_SCHEMA,
                            "name": {
                                "type": "string",
                                "maxLength": MAX_NAME_LENGTH,
                                "pattern": "^[^\\x00-\\x1f]*$",
                            },
                        },
                    }
                ),
                "responses": {
                    "201": json_response(issuer, "Registered"),
                    **errors(400, 401, 403, 409),
                },
            },
        },
        "/v1/admin/issuers/{did}": {
            "delete": {
                "summary": "Remove an issuer (operator)",
                "security": security,
                "parameters": [
                    {"name": "did", "in": "path", "required": True, "schema": DID_SCHEMA}
                ],
                "responses": {"200": json_response(issuer), **errors(400, 401, 403, 404)},
            }
        },
    }
