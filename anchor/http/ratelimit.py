"""Per-client rate limits for the public routes that make the service fetch on a caller's
behalf (``POST /v1/verify``, DID resolution): token buckets keyed by client address.

Each client may spend ``per_minute`` tokens in any minute, in bursts of up to that many;
beyond it the service answers 429 with ``Retry-After``. A request costs one token, and a
verification one more per status list it makes the service fetch (see
:mod:`anchor.http.routes.verify_routes`), so the limit bounds outbound fetches, not only requests.
A client is its IPv4 address, or its IPv6 /64 network (:data:`IPV6_CLIENT_PREFIX`: one
host usually owns a whole /64). Memory is bounded: at most :data:`MAX_CLIENTS` buckets are
kept, the least recently seen dropped first. Behind a reverse proxy every request comes from
the proxy's address, so limit there instead (and set the service's rate to 0, which turns
the limit off).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from anchor.errors import RateLimited
from anchor.http.appkeys import LIMITER

MAX_CLIENTS: Final = 65_536
"""Most client buckets kept in memory at once."""

IPV6_CLIENT_PREFIX: Final = 64
"""IPv6 clients are grouped by network of this prefix length (one bucket per /64)."""


def client_key(remote: str | None) -> str:
    """The bucket of a client address: the address itself (IPv4, IPv4-mapped IPv6), or its
    IPv6 /64 network; ``unknown`` when there is none (a Unix socket)."""
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


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

    def take(self, client: str, tokens: int = 1) -> float:
        """Spend ``tokens`` of ``client``'s bucket: 0.0 when allowed, otherwise the seconds
        until that many are available (nothing is spent then). More tokens than the bucket
        holds cost the whole bucket."""
        cost = min(float(tokens), self._capacity)
        now = self._clock()
        have, then = self._buckets.pop(client, (self._capacity, now))
        have = min(self._capacity, have + (now - then) * self._per_second)
        wait = 0.0
        if cost <= have:
            have -= cost
        else:
            wait = (cost - have) / self._per_second
        self._buckets[client] = (have, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait


def charge(request: web.Request, tokens: int, what: str) -> None:
    """Charge ``tokens`` more to the client of ``request`` (for the fetches it causes);
    raises :class:`RateLimited` when its bucket does not hold them. No limiter: free."""
    limiter = request.app.get(LIMITER)
    if limiter is None or tokens <= 0:
        return
    wait = limiter.take(client_key(request.remote), tokens)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"{what} would make the service fetch {tokens} documents; this address may not "
            "make it fetch that many now",
            hint=f"retry in {seconds} s",
            retry_after=seconds,
        )


def middleware(limiter: RateLimiter, routes: Collection[str]) -> Middleware:
    """Limit the requests to the ``routes`` (canonical paths, e.g. ``/1.0/identifiers/{did}``)
    per client address; other routes pass untouched."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is not None and resource.canonical in routes:
            wait = limiter.take(client_key(request.remote))
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise RateLimited(
                    f"too many requests to {resource.canonical} from this address",
                    hint=f"retry in {seconds} s",
                    retry_after=seconds,
                )
        return await handler(request)

    return limit
