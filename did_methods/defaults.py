"""Ready-made resolvers with the drivers of this package (did:key, did:web, did:ethr).

:func:`build_resolver` registers the drivers on a new :class:`Resolver`, did:web on the
caller's ``aiohttp.ClientSession`` (the service's one shared session); :func:`open_resolver`
also owns a session, for scripts and the CLI. did:ethr is registered when networks are
configured (``ethr_networks``); its RPC requests then go through the same session.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp

from did_methods.ethr import DEFAULT_NETWORK, EthrDriver, EthrNetwork
from did_methods.key import KeyDriver
from did_methods.resolver import DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_TTL_SECONDS, Resolver
from did_methods.web import DEFAULT_TIMEOUT_SECONDS, MAX_DOCUMENT_BYTES, WebDriver


def build_resolver(
    session: aiohttp.ClientSession | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    web_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    cache_ttl: float = DEFAULT_CACHE_TTL_SECONDS,
    cache_max_entries: int = DEFAULT_CACHE_MAX_ENTRIES,
    ethr_networks: Sequence[EthrNetwork] = (),
    ethr_default_network: str = DEFAULT_NETWORK,
) -> Resolver:
    """A resolver for did:key, did:web when ``session`` is given, and did:ethr when
    ``ethr_networks`` are given.

    did:key results are not cached (recomputing them is as cheap as a cache hit).
    ``ssl_context``/``ca_file``, ``web_timeout`` and ``max_document_bytes`` configure
    did:web (see :class:`~did_methods.web.WebDriver`). did:ethr
    (:class:`~did_methods.ethr.EthrDriver`) reaches RPC URLs through ``session``; without
    one it opens its own connections, closed by ``await resolver.driver("ethr").aclose()``.
    """
    resolver = Resolver(cache_ttl=cache_ttl, cache_max_entries=cache_max_entries)
    resolver.register("key", KeyDriver(), cacheable=False)
    if session is not None:
        resolver.register(
            "web",
            WebDriver(
                session,
                ssl_context=ssl_context,
                ca_file=ca_file,
                timeout=web_timeout,
                max_document_bytes=max_document_bytes,
            ),
        )
    if ethr_networks:
        resolver.register(
            "ethr",
            EthrDriver(ethr_networks, default_network=ethr_default_network, session=session),
        )
    return resolver


@asynccontextmanager
async def open_resolver(
    *,
    ssl_context: ssl.SSLContext | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    web_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    cache_ttl: float = DEFAULT_CACHE_TTL_SECONDS,
    cache_max_entries: int = DEFAULT_CACHE_MAX_ENTRIES,
    ethr_networks: Sequence[EthrNetwork] = (),
    ethr_default_network: str = DEFAULT_NETWORK,
) -> AsyncIterator[Resolver]:
    """:func:`build_resolver` with its own ``aiohttp.ClientSession``, closed on exit."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    ) as session:
        yield build_resolver(
            session,
            ssl_context=ssl_context,
            ca_file=ca_file,
            web_timeout=web_timeout,
            max_document_bytes=max_document_bytes,
            cache_ttl=cache_ttl,
            cache_max_entries=cache_max_entries,
            ethr_networks=ethr_networks,
            ethr_default_network=ethr_default_network,
        )
