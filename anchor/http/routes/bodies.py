"""Request-body parsing: JSON objects only, with one clear error for anything else.

Bodies are parsed through :func:`anchor.core.jsonlimits.loads`: at most ``MAX_REQUEST_BYTES``
(the application's ``client_max_size``), :data:`~anchor.core.jsonlimits.MAX_JSON_DEPTH` levels
of nesting and :data:`~anchor.core.jsonlimits.MAX_JSON_VALUES` values (413 beyond either).
"""

from __future__ import annotations

from typing import Any, Final

from anchor.core import jsonlimits
from anchor.errors import InvalidInput

MAX_BODY_BYTES: Final = 4 * 1024 * 1024
"""Largest JSON body parsed (the same as the application's request size limit)."""


def json_value(body: bytes) -> Any:
    """Any JSON value, within the limits."""
    if not body:
        raise InvalidInput("the request needs a JSON body")
    return jsonlimits.loads(body, max_bytes=MAX_BODY_BYTES, what="the body")


def json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidInput("the request needs a JSON object body")
    value = json_value(body)
    if not isinstance(value, dict):
        raise InvalidInput("body must be a JSON object")
    return value
