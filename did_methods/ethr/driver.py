"""did:ethr: the method driver, the resolver's entry point (:class:`EthrDriver`).

The driver holds the configured networks (:class:`EthrNetwork`: name, chain id, registry
address and how to reach the chain, from configuration only), picks the network a DID names,
reads the chain through a :class:`~did_methods.ethr.readers.ChainReader` (chain id check,
``changed`` and ``identityOwner`` at the head, the event history), cuts the history at the
requested version (``versionId`` / ``versionTime``) and builds the document and its metadata
(:func:`~did_methods.ethr.document.ethr_did_document`).

Errors are data: :meth:`EthrDriver.resolve` never raises; every failure is a
:class:`~did_methods.result.ResolutionResult` with its error code, and a message that names
the network and what to check, with the credential-like parts of RPC URLs redacted.

I/O: one resolution makes four requests (chain id, head, ``changed``, ``identityOwner``),
one ``eth_getLogs`` per block in which the identity changed and one block read per distinct
timestamp needed; all of it bounded by the driver's ``timeout``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import aiohttp
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3, Web3

from did_methods.ethr.abi import RegistryReadError
from did_methods.ethr.document import MULTIKEY_TYPE, NULL_ADDRESS, ethr_did_document, final_owner
from did_methods.ethr.events import RegistryEvent
from did_methods.ethr.identifier import (
    HEX_CHAIN_ID_RE,
    METHOD,
    NETWORK_NAME_RE,
    EthrIdentifier,
    InvalidEthrDidError,
    parse_ethr_did,
)
from did_methods.ethr.readers import (
    DEFAULT_TIMEOUT_SECONDS,
    AsyncWeb3ChainReader,
    ChainReader,
    ThreadedWeb3ChainReader,
    read_history,
    redact,
    source_secrets,
)
from did_methods.result import DEFAULT_CONTENT_TYPE, ErrorCode, ResolutionResult
from did_methods.syntax import ParsedDid

DEFAULT_NETWORK: Final = "mainnet"
"""Network of a DID without a network part (the specification's default)."""

PUBLIC_KEY_FORMAT_OPTION: Final = "publicKeyFormat"
PUBLIC_KEY_FORMATS: Final = (MULTIKEY_TYPE,)
"""Values of the ``publicKeyFormat`` option (absent: the specification's key types)."""

_VERSION_ID_RE = re.compile(r"[0-9]+")

ChainSource = str | AsyncWeb3[Any] | Web3 | ChainReader
"""How a network is reached: an RPC URL, an ``AsyncWeb3``, a synchronous ``Web3`` (run in a
thread) or a ready :class:`ChainReader` (bound to its own registry address)."""


@dataclass(frozen=True, slots=True)
class EthrNetwork:
    """One network did:ethr DIDs may name: ``did:ethr:<name>:...`` or ``did:ethr:<0xchainId>:...``.

    ``registry_address`` is the ERC-1056 registry (stored EIP-55 checksummed);
    ``web3_or_rpc`` says how to reach the chain (:data:`ChainSource`). Raises ``ValueError``
    for a malformed name, chain id or address.
    """

    name: str
    chain_id: int
    registry_address: str
    web3_or_rpc: ChainSource

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NETWORK_NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"network name {self.name!r} must be letters, digits, '.', '-', '_' "
                "(segments joined by ':')"
            )
        if HEX_CHAIN_ID_RE.fullmatch(self.name):
            raise ValueError(
                f"network name {self.name!r} looks like a hex chain id; hex chain ids are "
                "matched against chain_id already, choose a name"
            )
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int):
            raise ValueError(f"chain_id must be an integer, not {self.chain_id!r}")
        if self.chain_id <= 0:
            raise ValueError(f"chain_id must be positive, not {self.chain_id}")
        try:
            checksummed = to_checksum_address(self.registry_address)
        except (TypeError, ValueError):
            raise ValueError(
                f"registry_address {self.registry_address!r} is not an Ethereum address"
            ) from None
        object.__setattr__(self, "registry_address", checksummed)

    @property
    def hex_chain_id(self) -> str:
        """The chain id as DIDs write it (``0x7a69``)."""
        return hex(self.chain_id)


def _reader_for(
    network: EthrNetwork, *, timeout: float, session: aiohttp.ClientSession | None
) -> ChainReader:
    source = network.web3_or_rpc
    if isinstance(source, str):
        return AsyncWeb3ChainReader.from_url(
            source, network.registry_address, timeout=timeout, session=session
        )
    if isinstance(source, AsyncWeb3):
        return AsyncWeb3ChainReader(source, network.registry_address)
    if isinstance(source, Web3):
        return ThreadedWeb3ChainReader(source, network.registry_address)
    if isinstance(source, ChainReader):
        return source
    raise TypeError(
        f"network {network.name!r}: web3_or_rpc must be an RPC URL, an AsyncWeb3, a Web3 or "
        f"a ChainReader, not {type(source).__name__}"
    )


@dataclass(frozen=True, slots=True)
class _Version:
    """What the options ask for: a block (``versionId``), an instant (``versionTime``,
    unix seconds), or neither (the latest document)."""

    block: int | None = None
    time: int | None = None


def _version_request(options: Mapping[str, Any]) -> _Version | str:
    """The requested version, or why the options are invalid."""
    version_id = options.get("versionId")
    version_time = options.get("versionTime")
    if version_id is not None and version_time is not None:
        return "options 'versionId' and 'versionTime' are mutually exclusive"
    if version_id is not None:
        if isinstance(version_id, int) and not isinstance(version_id, bool) and version_id >= 0:
            return _Version(block=version_id)
        if isinstance(version_id, str) and _VERSION_ID_RE.fullmatch(version_id):
            return _Version(block=int(version_id))
        return (
            f"option 'versionId' of a did:ethr is a block number (decimal digits), "
            f"not {version_id!r}"
        )
    if version_time is not None:
        moment: datetime | None = None
        if isinstance(version_time, datetime):
            moment = version_time
        elif isinstance(version_time, str):
            try:
                moment = datetime.fromisoformat(version_time)
            except ValueError:
                moment = None
        if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
            return (
                "option 'versionTime' must be a date-time with a time zone such as "
                f"'2024-05-10T17:00:00Z', not {version_time!r}"
            )
        return _Version(time=math.floor(moment.timestamp()))
    return _Version()


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EthrDriver:
    """The did:ethr method driver (:class:`did_methods.resolver.MethodDriver`).

    ``networks`` are the networks served (unique names and chain ids); DIDs without a network
    part use ``default_network``. ``timeout`` bounds each resolution. ``session`` is an
    ``aiohttp`` session (borrowed, never closed here) for the networks given by RPC URL;
    without one the driver opens its own, closed by :meth:`aclose` (or ``async with``).
    """

    method = METHOD

    def __init__(
        self,
        networks: Iterable[EthrNetwork],
        *,
        default_network: str = DEFAULT_NETWORK,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._timeout = timeout
        self._default_network = default_network
        self._by_name: dict[str, EthrNetwork] = {}
        self._by_chain_id: dict[int, EthrNetwork] = {}
        self._readers: dict[str, ChainReader] = {}
        self._secrets: dict[str, tuple[str, ...]] = {}
        for network in networks:
            if network.name in self._by_name:
                raise ValueError(f"network {network.name!r} is configured twice")
            if network.chain_id in self._by_chain_id:
                other = self._by_chain_id[network.chain_id].name
                raise ValueError(
                    f"networks {other!r} and {network.name!r} have the same chain id "
                    f"{network.chain_id}"
                )
            self._by_name[network.name] = network
            self._by_chain_id[network.chain_id] = network
            self._readers[network.name] = _reader_for(network, timeout=timeout, session=session)
            self._secrets[network.name] = source_secrets(network.web3_or_rpc)

    @property
    def networks(self) -> tuple[EthrNetwork, ...]:
        """The configured networks."""
        return tuple(self._by_name.values())

    def network(self, label: str | None) -> EthrNetwork | None:
        """The network a DID's network label names (``None``: the default network)."""
        if label is None:
            label = self._default_network
        if HEX_CHAIN_ID_RE.fullmatch(label):
            return self._by_chain_id.get(int(label, 16))
        return self._by_name.get(label)

    async def aclose(self) -> None:
        """Close the HTTP sessions this driver opened (borrowed ones stay open)."""
        for reader in self._readers.values():
            if isinstance(reader, AsyncWeb3ChainReader):
                await reader.aclose()

    async def __aenter__(self) -> EthrDriver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def resolve(self, did: ParsedDid, options: Mapping[str, Any]) -> ResolutionResult:
        """Resolve ``did`` from its network's registry; every failure is a result."""
        try:
            identifier = parse_ethr_did(did)
        except InvalidEthrDidError as exc:
            return ResolutionResult.failure(ErrorCode.INVALID_DID, str(exc))
        network = self.network(identifier.network)
        if network is None:
            label = identifier.network or f"{self._default_network} (the default network)"
            known = ", ".join(f"{n.name} ({n.hex_chain_id})" for n in self._by_name.values())
            return ResolutionResult.failure(
                ErrorCode.UNKNOWN_NETWORK,
                f"no did:ethr network {label} is configured here (configured: {known or 'none'})",
            )
        version = _version_request(options)
        if isinstance(version, str):
            return ResolutionResult.failure(ErrorCode.INVALID_OPTIONS, version)
        key_format = options.get(PUBLIC_KEY_FORMAT_OPTION)
        if key_format is not None and key_format not in PUBLIC_KEY_FORMATS:
            return ResolutionResult.failure(
                ErrorCode.INVALID_OPTIONS,
                f"option {PUBLIC_KEY_FORMAT_OPTION!r} of a did:ethr may be "
                f"{', '.join(PUBLIC_KEY_FORMATS)} (or absent), not {key_format!r}",
            )
        accept = options.get("accept", DEFAULT_CONTENT_TYPE)
        reader = self._readers[network.name]
        where = f"network {network.name!r} (chain {network.chain_id}) via {reader}"
        try:
            async with asyncio.timeout(self._timeout):
                return await self._resolve_on_chain(
                    identifier, network, reader, version, key_format, accept
                )
        except TimeoutError:
            message = (
                f"reading {identifier.did} from {where} took more than {self._timeout:g}s; "
                "check that the node is up and responsive"
            )
        except RegistryReadError as exc:
            message = f"reading {identifier.did} from {where}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any transport failure must become data
            message = (
                f"reading {identifier.did} from {where} failed: {type(exc).__name__}: {exc}; "
                "check that the node is up and the network's RPC URL is right"
            )
        # Results travel to API clients: never let an RPC URL's API key through.
        return ResolutionResult.failure(
            ErrorCode.INTERNAL_ERROR, redact(message, self._secrets[network.name])
        )

    async def _resolve_on_chain(
        self,
        identifier: EthrIdentifier,
        network: EthrNetwork,
        reader: ChainReader,
        version: _Version,
        key_format: str | None,
        accept: str,
    ) -> ResolutionResult:
        served = await reader.chain_id()
        if served != network.chain_id:
            raise RegistryReadError(
                f"the node serves chain {served}, not the configured {network.chain_id}; fix "
                "the network's RPC URL or chain id"
            )
        head = await reader.block_number()
        if version.block is not None and version.block > head:
            return ResolutionResult.failure(
                ErrorCode.NOT_FOUND,
                f"versionId {version.block} of {identifier.did} does not exist: the chain is "
                f"at block {head}",
            )
        identity = identifier.address
        latest_change = await reader.changed(identity, head)
        owner = await reader.identity_owner(identity, head)
        history = await read_history(reader, identity, latest_change)
        replayed_owner = final_owner(identifier, history)
        if replayed_owner != NULL_ADDRESS and replayed_owner != owner:
            raise RegistryReadError(
                f"identityOwner({identity}) is {owner} but the registry's events say "
                f"{replayed_owner}: the node may be missing logs or the registry address "
                "may be wrong"
            )

        timestamps: dict[int, int] = {}

        async def timestamp(block: int) -> int:
            if block not in timestamps:
                timestamps[block] = await reader.block_timestamp(block)
            return timestamps[block]

        included: list[RegistryEvent] = []
        later: list[RegistryEvent] = []
        if version.time is not None:
            now = version.time
            for event in history:
                (included if await timestamp(event.block) <= now else later).append(event)
        else:
            cut = head if version.block is None else version.block
            now = await timestamp(cut)
            for event in history:
                (included if event.block <= cut else later).append(event)

        replay = ethr_did_document(
            identifier, network.chain_id, included, now=now, public_key_format=key_format
        )
        metadata: dict[str, Any] = {}
        if replay.deactivated:
            metadata["deactivated"] = True
        if replay.version_block is not None:
            metadata["versionId"] = str(replay.version_block)
            metadata["updated"] = _iso(await timestamp(replay.version_block))
        if later and not replay.deactivated:
            metadata["nextVersionId"] = str(later[0].block)
            metadata["nextUpdate"] = _iso(await timestamp(later[0].block))
        return ResolutionResult.success(
            replay.document, content_type=accept, document_metadata=metadata
        )
