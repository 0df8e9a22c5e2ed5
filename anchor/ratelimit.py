"""Per-client rate limits for the public routes that make the service fetch on a caller's
behalf (``POST /v1/verify``, DID resolution): token buckets keyed by client address.

Each client may make ``per_minute`` such requests in any minute, in bursts of up to that
many; beyond it the service answers 429 with ``Retry-After``. Memory is bounded: at most
:data:`MAX_CLIENTS` buckets are kept, the least recently seen dropped first. Behind a
reverse proxy every request comes from the proxy's address, so limit there instead (and set
the service's rate to 0, which turns the limit off).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from anchor.errors import RateLimited

MAX_CLIENTS: Final = 65_536
"""Most client buckets kept in memory at once."""


class RateLimiter:
    """Token buckets of ``per_minute`` tokens, refilled continuously, one per client."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if per_minute < 1:
            raise ValueError("a rate limit allows at least one request per minute")
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """Spend one token of ``client``'s bucket: 0.0 when allowed, otherwise the seconds
        until a token is available (nothing is spent then)."""
        now = self._clock()
        tokens, then = self._buckets.pop(client, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - then) * self._per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._per_second
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait


def middleware(limiter: RateLimiter, routes: Collection[str]) -> Middleware:
    """Limit the requests to the ``routes`` (canonical paths, e.g. ``/1.0/identifiers/{did}``)
    per client address; other routes pass untouched."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None and resource.canonical in routes:
            wait = limiter.take(request.remote or "unknown")
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise RateLimited(
                    f"too many requests to {resource.canonical} from this address",
                    hint=f"retry in {seconds} s",
                    retryAfter=seconds,
                )
        return await handler(request)

    return limit
