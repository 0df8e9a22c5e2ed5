"""Which addresses the service's own HTTP client may connect to.

``POST /v1/verify`` and DID resolution fetch URLs that callers choose (a credential's status
list, a did:web document). On a public service that would let anyone make it request
addresses inside its own network (server-side request forgery: cloud metadata endpoints,
admin consoles, databases). Under the ``public`` policy the client connects only to
globally routable addresses, plus the service's own listening port on this machine (its
status lists). The check runs on the address actually connected to, after DNS, so neither
an IP literal nor a name that resolves (or re-resolves) to a private address gets through.

Pools (:func:`client_session`): the service fetches through two sessions, one to verify
callers' credentials and one to authenticate signers, each with its own pool of
:data:`CONNECTIONS_PER_POOL` connections, at most :data:`CONNECTIONS_PER_HOST` per host, and
a timeout on every phase (:data:`VERIFY_TIMEOUT`, :data:`AUTH_TIMEOUT`): a host that accepts
connections and never answers holds a few connections of one pool for a bounded time.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Collection
from typing import Any, Final

import aiohttp

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
"""One ``socket.getaddrinfo`` result, as aiohttp hands it to a socket factory."""

PUBLIC: Final = "public"
"""Connect only to globally routable addresses (and the service's own port)."""

ANY: Final = "any"
"""Connect anywhere: for private deployments and tests."""

POLICIES: Final = (PUBLIC, ANY)


class RefusedAddress(OSError):
    """A connection to a non-public address refused under the ``public`` policy."""


def is_public(address: str) -> bool:
    """Whether ``address`` (an IPv4 or IPv6 address, IPv4-mapped allowed) is globally
    routable and unicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def guarded_socket_factory(
    own: Collection[tuple[str, int]] = (),
) -> Callable[[AddrInfo], socket.socket]:
    """A socket factory for :class:`aiohttp.TCPConnector` that refuses non-public addresses,
    except the ``(address, port)`` pairs in ``own``."""
    allowed = {(ipaddress.ip_address(a.split("%", 1)[0]), port) for a, port in own}

    def factory(addr_info: AddrInfo) -> socket.socket:
        family, kind, proto, _canonical, sockaddr = addr_info
        host, port = str(sockaddr[0]), int(sockaddr[1])
        if not is_public(host) and (ipaddress.ip_address(host.split("%", 1)[0]), port) not in (
            allowed
        ):
            raise RefusedAddress(
                errno.EACCES,
                f"refusing to connect to the non-public address {host} port {port} "
                "(the service fetches only public addresses; see --outbound-networks)",
            )
        return socket.socket(family=family, type=kind, proto=proto)

    return factory


def own_addresses(host: str, port: int) -> list[tuple[str, int]]:
    """The addresses at which the service itself listens on ``host``:``port``, as seen from
    this machine (all loopback addresses when it listens on every interface)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming, not binding
        return [("127.0.0.1", port), ("::1", port)]
    try:
        ipaddress.ip_address(host)
    except ValueError:  # a name: whatever it resolves to here
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return []
        return [(str(info[4][0]), port) for info in infos]
    return [(host, port)]


def connector(policy: str, own: Collection[tuple[str, int]]) -> aiohttp.TCPConnector | None:
    """The connector for the service's client session under ``policy`` (``None``: aiohttp's
    default, for ``any``)."""
    if policy == ANY:
        return None
    return aiohttp.TCPConnector(socket_factory=guarded_socket_factory(own))


# -- the service's connection pools ---------------------------------------------------------

CONNECTIONS_PER_POOL: Final = 100
"""Most connections one of the service's client sessions holds open at once."""

CONNECTIONS_PER_HOST: Final = 4
"""Most concurrent connections to one host (scheme, host, port) from one session: a host
that never answers ties up at most this many, whoever names it."""

VERIFY_TIMEOUT: Final = aiohttp.ClientTimeout(total=15, connect=5, sock_connect=5, sock_read=10)
"""Every phase of a fetch made to verify a caller's credential (status lists, did:web of
issuers): waiting for a pooled connection and connecting (5 s), each read (10 s), all (15 s)."""

AUTH_TIMEOUT: Final = aiohttp.ClientTimeout(total=10, connect=3, sock_connect=3, sock_read=5)
"""Every phase of a fetch made to authenticate a signed request (did:web of signers)."""


def client_session(
    policy: str,
    own: Collection[tuple[str, int]],
    *,
    timeout: aiohttp.ClientTimeout,
    limit: int = CONNECTIONS_PER_POOL,
    limit_per_host: int = CONNECTIONS_PER_HOST,
) -> aiohttp.ClientSession:
    """A client session with its own connection pool of ``limit`` connections, at most
    ``limit_per_host`` per host, connecting under ``policy`` (see :func:`connector`) and
    with ``timeout`` on every phase. The service keeps one for verification and one for
    authentication, so fetches for callers' credentials cannot starve signed writes."""
    factory = None if policy == ANY else guarded_socket_factory(own)
    pool = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, socket_factory=factory)
    return aiohttp.ClientSession(
        connector=pool, timeout=timeout, headers={"User-Agent": "ler-anchor"}
    )
