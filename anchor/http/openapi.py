"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

Written by hand next to the routes; a test checks that every route the application serves is
described here and the other way round, and schemathesis fuzzes the server against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from anchor import __version__
from anchor.core.entry import MAX_DID_LENGTH

HEX_DIGEST = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "SHA-256, hex"}
B64 = {"type": "string", "contentEncoding": "base64"}
ANCHORED_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": ["latest"],
    "description": "'latest': prove against the latest included or final anchor's tree size "
    "(what LogAnchor v2's latest() holds); the response names that anchor",
}
ANCHOR_OBJECT = {
    "type": "object",
    "description": "The anchor proved against (as in GET /v1/anchors)",
    "required": ["treeSize", "root", "state", "contract", "transactionHash"],
}


def _problem_ref() -> dict[str, Any]:
    return {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request",
        401: "Missing or invalid HTTP Message Signature",
        403: "Not a registered issuer, or not this issuer's resource",
        404: "Not found",
        406: "Representation not supported",
        409: "Conflict",
        410: "Gone (deactivated)",
        413: "Too large",
        422: "Verification failed",
        429: "Too many requests from this client (Retry-After says when to retry)",
        501: "Not implemented",
        502: "Upstream (chain or DID host) failed",
        503: "Unavailable",
    }
    return {str(c): {"description": text[c], "content": _problem_ref()} for c in codes}


def json_request(schema: dict[str, Any]) -> dict[str, Any]:
    """A required JSON request body of ``schema``."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def json_response(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def int_query(
    name: str,
    description: str,
    *,
    required: bool = False,
    minimum: int = 0,
    maximum: int = 2**63 - 1,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum},
    }


def _int_schema(description: str, minimum: int, maximum: int = 2**63 - 1) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": minimum,
        "maximum": maximum,
        "description": description,
    }


def flag_query(name: str, description: str) -> dict[str, Any]:
    """A boolean query parameter (``anchor.http.routes.params.flag_param`` enforces the enum)."""
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
    }


_IDCHAR = r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})"
DID_PATTERN = rf"^did:[a-z0-9]+:(?:{_IDCHAR}*:)*{_IDCHAR}+$"
"""A DID (W3C DID Core §3.1), the syntax :func:`anchor.core.entry.check_did` accepts."""

DID_SCHEMA = {"type": "string", "pattern": DID_PATTERN, "maxLength": MAX_DID_LENGTH}
"""An issuer's DID (submitters, the registry)."""


SIGNED: list[dict[str, list[str]]] = [{"httpMessageSignature": []}]


def openapi_document(route_modules: Iterable[ModuleType]) -> dict[str, Any]:
    """The document of the service whose routes are ``route_modules`` (each may define
    ``openapi_paths() -> dict``, merged in order after the paths described here)."""
    entry_schema = {
        "type": "object",
        "required": ["index", "kind", "digest", "submitter", "entry", "leafHash"],
        "properties": {
            "index": {"type": "integer"},
            "kind": {"type": "string", "enum": ["credential", "status-list"]},
            "digest": HEX_DIGEST,
            "submitter": {"type": "string"},
            "entry": B64,
            "leafHash": B64,
            "appendedAt": {
                "type": "string",
                "format": "date-time",
                "description": "ISO 8601 UTC, to the millisecond",
            },
        },
    }
    paths: dict[str, Any] = {
        "/v1/entries": {
            "get": {
                "summary": "Log entries by index range (paged, for auditors replaying the log)",
                "parameters": [
                    int_query("start", "first index (default 0)"),
                    int_query(
                        "end",
                        "index after the last (default start+1000); a page holds at most "
                        "10,000 entries and stops at the tree size: a longer range is cut "
                        "short and `next` names the following page",
                    ),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["start", "end", "treeSize", "entries"],
                            "properties": {
                                "start": {"type": "integer"},
                                "end": {"type": "integer"},
                                "treeSize": {"type": "integer"},
                                "entries": {"type": "array", "items": entry_schema},
                                "next": {"type": "string"},
                            },
                        }
                    ),
                    **errors(400),
                },
            },
        },
        "/v1/proofs/inclusion": {
            "get": {
                "summary": "RFC 9162 inclusion proof of a leaf by index or digest",
                "description": "Give exactly one of `index` and `digest` (with `digest`, "
                "optionally `submitter`); no other parameter. A leaf or a size the log does "
                "not have is a 404.",
                "parameters": [
                    {
                        "name": "leaf",
                        "in": "query",
                        "required": True,
                        "style": "form",
                        "explode": True,
                        "description": "the leaf and tree size (each member is a query "
                        "parameter of its own)",
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "index": _int_schema("leaf index", 0),
                                "digest": {**HEX_DIGEST, "description": "entry digest"},
                                "submitter": {
                                    "type": "string",
                                    "description": "with digest: the submitting issuer's DID",
                                },
                                "size": _int_schema("tree size (default: latest checkpoint)", 1),
                                "anchored": ANCHORED_SCHEMA,
                            },
                            "not": {"required": ["size", "anchored"]},
                            "oneOf": [
                                {
                                    "required": ["index"],
                                    "not": {
                                        "anyOf": [
                                            {"required": ["digest"]},
                                            {"required": ["submitter"]},
                                        ]
                                    },
                                },
                                {"required": ["digest"], "not": {"required": ["index"]}},
                            ],
                        },
                    }
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["index", "treeSize", "leafHash", "proof", "root"],
                            "properties": {
                                "index": {"type": "integer"},
                                "treeSize": {"type": "integer"},
                                "leafHash": B64,
                                "proof": {"type": "array", "items": B64, "maxItems": 64},
                                "root": B64,
                                "checkpoint": {"type": "string"},
                                "anchor": ANCHOR_OBJECT,
                            },
                        }
                    ),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/proofs/consistency": {
            "get": {
                "summary": "RFC 9162 consistency proof between two tree sizes",
                "description": "size1 <= size2 <= the tree size; other sizes name no proof (404).",
                "parameters": [
                    {
                        "name": "sizes",
                        "in": "query",
                        "required": True,
                        "style": "form",
                        "explode": True,
                        "description": "the two tree sizes, or the older one and anchored=latest"
                        " (each member is a query parameter of its own)",
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["size1"],
                            "properties": {
                                "size1": _int_schema("older size", 1),
                                "size2": _int_schema("newer size (or give anchored)", 1),
                                "anchored": ANCHORED_SCHEMA,
                            },
                            "oneOf": [
                                {"required": ["size2"], "not": {"required": ["anchored"]}},
                                {"required": ["anchored"], "not": {"required": ["size2"]}},
                            ],
                        },
                    }
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["size1", "size2", "root1", "root2", "proof"],
                            "properties": {
                                "size1": {"type": "integer"},
                                "size2": {"type": "integer"},
                                "root1": B64,
                                "root2": B64,
                                "proof": {"type": "array", "items": B64},
                                "anchor": ANCHOR_OBJECT,
                            },
                        }
                    ),
                    **errors(400, 404, 503),
                },
            }
        },
        "/v1/checkpoint": {
            "get": {
                "summary": "The latest signed checkpoint (JSON, or the C2SP note as text/plain)",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["origin", "treeSize", "root", "note"],
                                    "properties": {
                                        "origin": {"type": "string"},
                                        "treeSize": {"type": "integer"},
                                        "root": B64,
                                        "signedAt": {"type": "string", "format": "date-time"},
                                        "note": {"type": "string"},
                                        "verifierKey": {"type": "string"},
                                    },
                                }
                            },
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                    **errors(503),
                },
            }
        },
        "/v1/checkpoints": {
            "get": {
                "summary": "Signed checkpoint notes, oldest first (paged)",
                "parameters": [
                    int_query("start", "notes of tree size >= start (default 0)"),
                    int_query(
                        "limit", "at most this many (default and max 1000)", minimum=1, maximum=1000
                    ),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["checkpoints"],
                            "properties": {
                                "checkpoints": {"type": "array", "items": {"type": "string"}},
                                "next": {"type": "string", "description": "the next page"},
                            },
                        }
                    ),
                    **errors(400),
                },
            }
        },
        "/v1/log": {
            "get": {
                "summary": "The log's origin and checkpoint verifier key, and its chain and "
                "LogAnchor contract (the trust root verifiers pin)",
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["origin", "verifierKey", "publicKey"],
                            "properties": {
                                "chain": {
                                    "type": ["string", "null"],
                                    "description": "CAIP-2 id of the anchoring chain "
                                    "(eip155:N; null before the chain answered)",
                                },
                                "contract": {
                                    "type": "string",
                                    "description": "the LogAnchor contract address (EIP-55)",
                                },
                                "origin": {"type": "string"},
                                "verifierKey": {"type": "string"},
                                "publicKey": B64,
                                "keyId": {"type": "string"},
                                "algorithm": {"type": "string"},
                                "hashing": {"type": "string"},
                                "entryEncoding": {"type": "integer"},
                                "rpc": {
                                    "type": ["string", "null"],
                                    "description": "the embedded chain's JSON-RPC endpoint "
                                    "(null on an external chain)",
                                },
                            },
                        }
                    )
                },
            }
        },
        "/1.0/identifiers/{did}": {
            "get": {
                "summary": "Resolve a DID (Universal Resolver API, DID Resolution HTTP binding)",
                "description": "The DID goes in the path as written "
                "(`/1.0/identifiers/did:web:host%3A8443`, its own escapes kept) or "
                "URL-encoded as a whole (`did%3Aweb%3Ahost%253A8443`, decoded once). A DID "
                "its method rejects (a did:key whose key does not decode) is `invalidDid`.",
                "parameters": [
                    {
                        "name": "did",
                        "in": "path",
                        "required": True,
                        "schema": DID_SCHEMA,
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Resolved",
                        "content": {
                            "application/did-resolution": {"schema": {"type": "object"}},
                            "application/did+json": {"schema": {"type": "object"}},
                        },
                    },
                    "400": {
                        "description": "invalidDid or invalidOptions (a request the HTTP "
                        "parser refuses: a problem document)",
                        "content": {
                            "application/did-resolution": {"schema": {"type": "object"}},
                            **_problem_ref(),
                        },
                    },
                    "404": {
                        "description": "notFound, or unknownNetwork (a did:ethr network this "
                        "service does not resolve)",
                        "content": {"application/did-resolution": {"schema": {"type": "object"}}},
                    },
                    "406": {
                        "description": "representationNotSupported",
                        "content": {"application/did-resolution": {"schema": {"type": "object"}}},
                    },
                    "410": {
                        "description": "deactivated",
                        "content": {"application/did-resolution": {"schema": {"type": "object"}}},
                    },
                    **errors(429),
                    "500": {
                        "description": "internalError",
                        "content": {"application/did-resolution": {"schema": {"type": "object"}}},
                    },
                    "501": {
                        "description": "methodNotSupported",
                        "content": {"application/did-resolution": {"schema": {"type": "object"}}},
                    },
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Health: store, log integrity, chain head and lag, last anchor age",
                "responses": {
                    "200": json_response({"type": "object", "required": ["status"]}),
                    "503": json_response(
                        {"type": "object", "required": ["status"]},
                        "Failing: a probe is unhealthy (status: failing; its member says why)",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": json_response({"type": "object"})},
            }
        },
    }
    for module in route_modules:
        describe = getattr(module, "openapi_paths", None)
        if describe is not None:
            for path, operations in describe().items():
                paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LER Anchor",
            "version": __version__,
            "description": (
                "Anchors Learning and Employment Record digests in an append-only RFC 9162 "
                "Merkle log whose checkpoints are anchored on an Ethereum-compatible chain. "
                "Writes are signed with RFC 9421 HTTP Message Signatures (Ed25519) by a key "
                "in the issuer's DID document under `authentication`; reads are public."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "required": ["type", "title", "status"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "hint": {"type": "string"},
                    },
                }
            },
            "securitySchemes": {
                "operatorToken": {"type": "http", "scheme": "bearer"},
                "httpMessageSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature",
                    "description": (
                        "RFC 9421 signature (label sig1, alg ed25519) over @method, "
                        "@target-uri and content-digest, with created and nonce; keyid is a "
                        "DID URL of a key under the issuer's `authentication`."
                    ),
                },
            },
        },
    }
