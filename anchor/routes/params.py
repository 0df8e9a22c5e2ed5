"""Query-parameter parsing shared by the routes: every bad value is an InvalidInput."""

from __future__ import annotations

from aiohttp import web

from anchor.errors import InvalidInput

MAX_INT64 = 2**63 - 1


def int_param(
    request: web.Request, name: str, default: int | None = None, *, minimum: int = 0
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InvalidInput(f"query parameter {name!r} is required")
        return default
    if not raw.isascii() or not raw.isdigit() or (len(raw) > 1 and raw[0] == "0"):
        raise InvalidInput(f"query parameter {name!r} must be a non-negative integer, got {raw!r}")
    value = int(raw)
    if not minimum <= value <= MAX_INT64:
        raise InvalidInput(f"query parameter {name!r} must be between {minimum} and {MAX_INT64}")
    return value


def optional_int_param(request: web.Request, name: str, *, minimum: int = 0) -> int | None:
    if request.query.get(name) in (None, ""):
        return None
    return int_param(request, name, minimum=minimum)
