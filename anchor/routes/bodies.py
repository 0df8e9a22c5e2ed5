"""Request-body parsing: JSON objects only, with one clear error for anything else."""

from __future__ import annotations

import json
from typing import Any

from anchor.errors import InvalidInput


def json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidInput("the request needs a JSON object body")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInput(f"body is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidInput("body must be a JSON object")
    return value
