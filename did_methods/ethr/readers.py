"""did:ethr: reading an ERC-1056 registry from a chain (JSON-RPC calls, log queries, limits).

A :class:`ChainReader` makes the reads the driver needs: ``chain_id()``, ``block_number()``,
``block_timestamp(n)``, ``changed(identity, block)``, ``identity_owner(identity, block)`` and
``get_logs(identity, block)`` (decoded events). Two are provided:
:class:`AsyncWeb3ChainReader` (``AsyncWeb3`` over ``AsyncHTTPProvider`` for an RPC URL, or any
``AsyncWeb3``) and :class:`ThreadedWeb3ChainReader` (a synchronous ``Web3``, e.g. the embedded
``EthereumTesterProvider`` chain, whose calls run through a runner, by default
``asyncio.to_thread``). The calls are ABI-encoded by :mod:`did_methods.ethr.abi`, so every
reader shares the same decoding.

Limits: over an RPC URL each request is limited to the driver's timeout and tried
:data:`RPC_ATTEMPTS` times on a connection error or timeout; the driver bounds a whole
resolution by :data:`DEFAULT_TIMEOUT_SECONDS` (or its own ``timeout``). Messages never show
the parts of an RPC URL where providers put API keys (:func:`redact`).

:func:`read_history` walks an identity's event history backwards from its latest change.

I/O: every reader method is one JSON-RPC request (or one call on the synchronous chain);
:func:`read_history` makes one ``eth_getLogs`` per block in which the identity changed.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Protocol, TypeVar, cast, runtime_checkable

import aiohttp
from eth_typing import BlockNumber, ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3, Web3
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import LogReceipt

from did_methods.ethr.abi import (
    CHANGED_SELECTOR,
    OWNER_SELECTOR,
    RegistryReadError,
    call_params,
    decode_result,
)
from did_methods.ethr.events import RegistryEvent, decode_logs, registry_log_filter

DEFAULT_TIMEOUT_SECONDS: Final = 20.0
"""Limit on one whole resolution (every RPC call of it)."""
RPC_ATTEMPTS: Final = 2
"""Attempts per JSON-RPC request on a connection error or timeout (RPC URLs)."""
RPC_RETRY_BACKOFF_SECONDS: Final = 0.1
"""Pause before the second attempt (doubling for each further one)."""

REDACTED: Final = "***"
"""Stands for the parts of an RPC URL that may hold credentials, in messages."""


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of an RPC URL that may carry credentials (user info, path, query,
    fragment: providers put API keys there), longest first."""
    parts = urllib.parse.urlsplit(url)
    user_info = parts.netloc.rpartition("@")[0]
    path = parts.path if parts.path not in ("", "/") else ""
    found = {part for part in (user_info, path, parts.query, parts.fragment) if part}
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by :data:`REDACTED`."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _endpoint_uri(provider: object) -> str | None:
    uri = getattr(provider, "endpoint_uri", None)
    return str(uri) if uri else None


def source_secrets(source: object) -> tuple[str, ...]:
    """The credential-like parts of the RPC URL behind a network's chain source."""
    uri = source if isinstance(source, str) else _endpoint_uri(getattr(source, "provider", None))
    return url_secrets(uri) if uri else ()


def _provider_label(provider: object) -> str:
    """A provider for messages: its kind and, for HTTP, the URL without credentials."""
    uri = _endpoint_uri(provider)
    if uri is None:
        return type(provider).__name__
    return f"{type(provider).__name__} {redact(uri, url_secrets(uri))}"


@runtime_checkable
class ChainReader(Protocol):
    """The chain reads did:ethr needs, for one registry on one chain.

    Any failure may raise; the driver turns it into an ``internalError`` result.
    """

    async def chain_id(self) -> int:
        """The chain id the node serves (checked against the configuration)."""
        ...

    async def block_number(self) -> int:
        """The head block number."""
        ...

    async def block_timestamp(self, number: int) -> int:
        """The timestamp (unix seconds) of block ``number``."""
        ...

    async def changed(self, identity: str, block: int) -> int:
        """``changed(identity)`` at ``block``: the block of its latest change (0: none)."""
        ...

    async def identity_owner(self, identity: str, block: int) -> ChecksumAddress:
        """``identityOwner(identity)`` at ``block``."""
        ...

    async def get_logs(self, identity: str, block: int) -> list[RegistryEvent]:
        """The registry's events about ``identity`` in ``block``, decoded, in log order."""
        ...


_T = TypeVar("_T")


class ThreadRunner(Protocol):
    """Runs a blocking call off the event loop and awaits it (``asyncio.to_thread``)."""

    def __call__(self, func: Callable[[], _T], /) -> Awaitable[_T]:
        """Run ``func`` and give back its result."""
        ...


class AsyncWeb3ChainReader:
    """:class:`ChainReader` over an ``AsyncWeb3`` (an RPC URL through :meth:`from_url`)."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        registry_address: str,
        *,
        session: aiohttp.ClientSession | None = None,
        owns_provider: bool = False,
    ) -> None:
        """``session``, when given, is the ``aiohttp`` session the provider sends its requests
        with (borrowed: never closed here); ``owns_provider`` makes :meth:`aclose`
        disconnect the provider (its own sessions)."""
        self._w3 = w3
        self._registry = to_checksum_address(registry_address)
        self._session = session
        self._session_loops: set[int] = set()
        self._owns_provider = owns_provider and session is None

    @classmethod
    def from_url(
        cls,
        rpc_url: str,
        registry_address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        session: aiohttp.ClientSession | None = None,
    ) -> AsyncWeb3ChainReader:
        """A reader over JSON-RPC at ``rpc_url`` (``AsyncHTTPProvider``), each request
        limited to ``timeout`` seconds and tried :data:`RPC_ATTEMPTS` times."""
        provider = AsyncHTTPProvider(
            rpc_url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=ExceptionRetryConfiguration(
                errors=(aiohttp.ClientError, TimeoutError),
                retries=RPC_ATTEMPTS,
                backoff_factor=RPC_RETRY_BACKOFF_SECONDS,
            ),
        )
        return cls(AsyncWeb3(provider), registry_address, session=session, owns_provider=True)

    def __str__(self) -> str:
        return f"{_provider_label(self._w3.provider)} (registry {self._registry})"

    async def _ready(self) -> None:
        """Hand the borrowed session to the provider, once per event loop."""
        if self._session is None:
            return
        loop = id(asyncio.get_running_loop())
        if loop in self._session_loops:
            return
        provider = self._w3.provider
        if isinstance(provider, AsyncHTTPProvider):
            await provider.cache_async_session(self._session)
        self._session_loops.add(loop)

    async def chain_id(self) -> int:
        await self._ready()
        return int(await self._w3.eth.chain_id)

    async def block_number(self) -> int:
        await self._ready()
        return int(await self._w3.eth.block_number)

    async def block_timestamp(self, number: int) -> int:
        await self._ready()
        block = await self._w3.eth.get_block(BlockNumber(number))
        return int(block["timestamp"])

    async def changed(self, identity: str, block: int) -> int:
        await self._ready()
        raw = await self._w3.eth.call(
            call_params(self._registry, CHANGED_SELECTOR, identity), BlockNumber(block)
        )
        return int(decode_result("uint256", raw, f"changed({identity})"))

    async def identity_owner(self, identity: str, block: int) -> ChecksumAddress:
        await self._ready()
        raw = await self._w3.eth.call(
            call_params(self._registry, OWNER_SELECTOR, identity), BlockNumber(block)
        )
        return to_checksum_address(decode_result("address", raw, f"identityOwner({identity})"))

    async def get_logs(self, identity: str, block: int) -> list[RegistryEvent]:
        await self._ready()
        logs: list[LogReceipt] = await self._w3.eth.get_logs(
            registry_log_filter(self._registry, identity, block)
        )
        return decode_logs(cast(list[Mapping[str, Any]], logs), identity)

    async def aclose(self) -> None:
        """Disconnect the provider when this reader made it (never a borrowed session)."""
        if self._owns_provider:
            provider = self._w3.provider
            if isinstance(provider, AsyncHTTPProvider):
                await provider.disconnect()


class ThreadedWeb3ChainReader:
    """:class:`ChainReader` over a synchronous ``Web3`` whose calls go through ``run``.

    For the embedded ``EthereumTesterProvider`` chain (no HTTP endpoint) or any synchronous
    provider. ``run`` defaults to ``asyncio.to_thread``; pass the runner that owns the chain
    (e.g. a single-thread executor) when the chain object must not be used concurrently.
    """

    def __init__(
        self, w3: Web3, registry_address: str, *, run: ThreadRunner = asyncio.to_thread
    ) -> None:
        self._w3 = w3
        self._registry = to_checksum_address(registry_address)
        self._run = run

    def __str__(self) -> str:
        return f"{_provider_label(self._w3.provider)} (registry {self._registry})"

    async def chain_id(self) -> int:
        return int(await self._run(lambda: self._w3.eth.chain_id))

    async def block_number(self) -> int:
        return int(await self._run(lambda: self._w3.eth.block_number))

    async def block_timestamp(self, number: int) -> int:
        block = await self._run(lambda: self._w3.eth.get_block(BlockNumber(number)))
        return int(block["timestamp"])

    async def changed(self, identity: str, block: int) -> int:
        params = call_params(self._registry, CHANGED_SELECTOR, identity)
        raw = await self._run(lambda: self._w3.eth.call(params, BlockNumber(block)))
        return int(decode_result("uint256", raw, f"changed({identity})"))

    async def identity_owner(self, identity: str, block: int) -> ChecksumAddress:
        params = call_params(self._registry, OWNER_SELECTOR, identity)
        raw = await self._run(lambda: self._w3.eth.call(params, BlockNumber(block)))
        return to_checksum_address(decode_result("address", raw, f"identityOwner({identity})"))

    async def get_logs(self, identity: str, block: int) -> list[RegistryEvent]:
        params = registry_log_filter(self._registry, identity, block)
        logs = await self._run(lambda: self._w3.eth.get_logs(params))
        return decode_logs(cast(list[Mapping[str, Any]], logs), identity)


async def read_history(reader: ChainReader, identity: str, latest: int) -> list[RegistryEvent]:
    """Every registry event about ``identity``, oldest first, from the block ``latest`` of
    its latest change back through ``previousChange``."""
    blocks: list[list[RegistryEvent]] = []
    block = latest
    while block > 0:
        events = sorted(
            (event for event in await reader.get_logs(identity, block) if event.block == block),
            key=lambda event: event.log_index,
        )
        if not events:
            raise RegistryReadError(
                f"the registry says {identity} changed in block {block}, but the node returned "
                "no registry event of it there: the node may have pruned its logs or the "
                "registry address may be wrong"
            )
        blocks.append(events)
        earlier = [event.previous_change for event in events if event.previous_change < block]
        block = min(earlier) if earlier else 0
    return [event for group in reversed(blocks) for event in group]
