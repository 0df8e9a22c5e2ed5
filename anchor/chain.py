"""The chain: the LogAnchor contract on any Ethereum-compatible chain, and the state machine,
persisted in the database, that anchors checkpoints there.

Backends
--------
:class:`ChainBackend` is the one interface the rest of the service uses (the client below,
receipt verification). :class:`Web3Backend` implements it over ``AsyncWeb3`` for

* any JSON-RPC URL (:meth:`Web3Backend.connect`): one ``AsyncHTTPProvider`` with one aiohttp
  ``ClientSession`` per backend, closed by :meth:`Web3Backend.close`. web3's own request
  retries are off: the client's caller (the batcher) retries with backoff, and every state
  it needs is in the database, so a retry is always safe;
* the embedded in-process chain (:class:`EmbeddedChain`, the zero-setup default): eth-tester
  over py-evm. py-evm is synchronous and not thread-safe, so every request runs on one
  dedicated worker thread, through web3's ``AsyncEthereumTesterProvider`` (whose own
  ``make_request`` would run the EVM on the event loop). The contract is deployed at start
  by the anchoring account, which is therefore its owner and always authorised.

Transactions
------------
Built and signed locally (eth-account, EIP-1559 type 2) and sent with
``eth_sendRawTransaction``. The service owns the account's nonce (table ``chain_accounts``,
initialised from ``eth_getTransactionCount(pending)`` on first use). Every attempt is
recorded, with its hash and raw bytes, *before* it is broadcast, so a crash or an unreachable
node never loses one: an attempt the node never acknowledged is re-broadcast byte for byte.
Fees: ``maxPriorityFeePerGas`` is the median reward of recent blocks (``eth_feeHistory``,
falling back to ``eth_maxPriorityFeePerGas``) but at least ``priority_fee_floor_wei``, and
``maxFeePerGas`` twice the next base fee plus that tip, never above ``max_fee_cap_wei``. An
attempt not mined after ``replace_after_seconds`` is replaced (same nonce) with both fees
raised by 12.5% (geth requires 10% on both, anvil any raise); when that would pass the cap,
the client keeps waiting and says so (:attr:`ChainClient.at_fee_cap`, a warning line). When
the node answers "nonce too low", "already known" or "replacement underpriced", the receipts
of every attempt recorded for that nonce are looked up before anything is sent again.

Anchor states (column ``anchors.state``)
----------------------------------------
``pending``    a checkpoint waiting to be sent (fresh, or back after a reorg);
``submitted``  at least one attempt was broadcast and none is known to be mined;
``included``   an attempt succeeded (receipt status 1, ``Anchored`` event found) in a block
               fewer than ``confirmations`` blocks deep;
``final``      the block is ``confirmations`` deep and its hash was re-checked canonical;
``failed``     the contract refused it: the decoded custom error is in ``error``.

``pending -> submitted -> included -> final``; ``submitted -> failed`` (mined, reverted);
``pending -> failed`` (the pre-flight ``eth_estimateGas`` reverts: nothing is sent);
``included -> pending`` (a reorg removed the transaction); ``submitted -> pending`` (the
nonce was used by a transaction this service did not record); at start, ``final ->
pending`` / ``final -> failed`` when the chain lost final anchors (below). A failed anchor
does not count as anchored, so the batcher anchors the latest checkpoint again later.

Reorgs
------
Included anchors are re-checked on every step: a transaction whose receipt is gone, or whose
block is no longer the canonical block at that height, sends its anchor back to ``pending``
*keeping its nonce*; it is then sent again as a new transaction for the same checkpoint, on
the same nonce, with both fees 12.5% above every earlier attempt. The same nonce matters: a
real node may put the reorged transaction back in its pool, and whichever of the attempts the
new canonical chain includes, the anchor is the same (a second copy could only revert). The
contract accepts the root again because the reorg removed its record too; since one account
sends in nonce order, a reorg removes a suffix of our anchors, which are re-sent in nonce
order, so sizes still strictly increase. If the pre-flight of such a re-send reverts (only
possible if another authorised account anchored a larger size in between), it is sent anyway
with a fixed gas limit so the nonce is used and later transactions are not blocked; it then
fails on chain with the decoded reason, and the batcher anchors a newer checkpoint. A reorg
deeper than ``confirmations`` (of a ``final`` anchor) is only noticed at the next start
(see "Chain identity").

When the contract already has a larger size than a fresh anchor (``TreeSizeNotIncreasing``:
another log writes to this contract, or this database was restored from an old backup), the
anchor fails with that reason and a hint; the batcher tries the latest checkpoint again once
per anchor interval, which succeeds once the log is larger than the chain's size. When
it already has this exact root and size (e.g. after a database restore; the contract reports
``TreeSizeNotIncreasing`` or ``RootAlreadyAnchored``), the client finds the ``Anchored``
event (``eth_getLogs``) and adopts it instead of sending anything.

Chain identity
--------------
Table ``chains`` records chain id, genesis block hash and contract address (every embedded
chain gets a random genesis ``extraData``, so each has its own genesis hash). When the service
starts on another chain (e.g. a fresh embedded chain after a restart), it logs a warning and
the batcher anchors the latest checkpoint there (one anchor covers every earlier entry);
anchors recorded for the old chain are kept, shown as such, and never used for receipts.
On the same chain, the newest final anchor is looked up at start: if the chain lost it (a
development node restarted without its state keeps its genesis; a reorg deeper than the
confirmation depth), it goes back to pending and is anchored again, and older lost anchors
are marked failed.

Tables: ``chains``, ``chain_accounts``, ``anchors``, ``anchor_txs`` (see :func:`ensure_schema`).
"""

from __future__ import annotations

import ast
import asyncio
import base64
import enum
import logging
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import BlockNotFound as TesterBlockNotFound
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_typing import ABI, BlockIdentifier, ChecksumAddress, HexStr
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError as EthUtilsValidationError
from web3 import AsyncHTTPProvider, AsyncWeb3, EthereumTesterProvider, Web3
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    ProviderConnectionError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.providers.async_base import AsyncBaseProvider
from web3.providers.eth_tester import AsyncEthereumTesterProvider
from web3.types import FilterParams, LogReceipt, RPCEndpoint, RPCResponse, TxParams

from anchor.contracts import LOG_ANCHOR, deploy, load_artifact
from anchor.errors import ChainError, ConfigError, StoreError
from anchor.store import SQLiteStore

log = logging.getLogger(__name__)

T = TypeVar("T")

GWEI: Final = 10**9
"""Wei in one gwei."""

DEFAULT_CONFIRMATIONS_EMBEDDED: Final = 1
"""The embedded chain lives in this process and has a single block producer, so it cannot
reorganise on its own: an anchor is final as soon as it is included."""

DEFAULT_CONFIRMATIONS_REMOTE: Final = 12
"""Blocks (the including block counted) before an anchor on a JSON-RPC chain is final: the
classic proof-of-work depth, about 2.5 minutes on Ethereum. Post-merge Ethereum finalises
after 2 epochs (64-95 blocks): configure that depth when a reorg must be impossible, not just
improbable. L2 rollups: their own confirmation rules apply."""

DEFAULT_POLL_INTERVAL_SECONDS: Final = 2.0
"""How often the batcher advances the state machine (receipts, confirmations, replacements)."""

DEFAULT_REPLACE_AFTER_SECONDS: Final = 180.0
"""How long an attempt may stay unmined before it is replaced with higher fees."""

DEFAULT_MAX_FEE_CAP_WEI: Final = 300 * GWEI
"""Highest ``maxFeePerGas`` ever offered (about 0.016 ETH for one ~52k-gas anchor)."""

DEFAULT_PRIORITY_FEE_FLOOR_WEI: Final = GWEI // 10
"""Lowest ``maxPriorityFeePerGas`` offered (0.1 gwei), whatever recent blocks paid."""

DEFAULT_RPC_TIMEOUT_SECONDS: Final = 10.0
"""Total time one JSON-RPC request may take."""

REPLACEMENT_BUMP_NUMERATOR: Final = 9
REPLACEMENT_BUMP_DENOMINATOR: Final = 8
"""A replacement raises both fee fields to at least 9/8 (+12.5%) of every earlier attempt's:
more than geth's 10% rule, whose integer rounding can refuse exactly +10%."""

BASE_FEE_MULTIPLIER: Final = 2
"""``maxFeePerGas`` is this many times the next base fee plus the tip: it stays valid through
six consecutive full blocks (+12.5% base fee each)."""

FEE_HISTORY_BLOCKS: Final = 10
"""Recent blocks whose rewards set the priority fee."""

FEE_HISTORY_PERCENTILE: Final = 50.0
"""Percentile of each block's priority fees taken from ``eth_feeHistory``."""

GAS_HEADROOM_NUMERATOR: Final = 5
GAS_HEADROOM_DENOMINATOR: Final = 4
"""The gas limit is the node's estimate plus 25%."""

FALLBACK_ANCHOR_GAS: Final = 150_000
"""Gas limit of a re-send whose pre-flight reverts (sent anyway, to use its nonce)."""

EMBEDDED_GENESIS_SALT_BYTES: Final = 32
"""Random bytes put in the embedded chain's genesis ``extraData``: every embedded chain has
its own genesis hash (hence chain identity), even two started within the same second."""

EMBEDDED_FUNDING_WEI: Final = 1_000 * 10**18
"""Ether given to the anchoring account on the embedded chain (millions of anchors' worth)."""

ANCHORED_EVENT_SIGNATURE: Final = "Anchored(bytes32,uint64,address,uint64)"
ANCHORED_TOPIC: Final = keccak(text=ANCHORED_EVENT_SIGNATURE)
"""``topic0`` of LogAnchor's ``Anchored`` event."""

RECEIPT_STATUS_SUCCESS: Final = 1
"""``status`` of a transaction receipt whose execution did not revert."""

ERROR_STRING_SELECTOR: Final = bytes.fromhex("08c379a0")
"""Selector of Solidity's ``Error(string)`` (``require`` / ``revert("...")``)."""
PANIC_SELECTOR: Final = bytes.fromhex("4e487b71")
"""Selector of Solidity's ``Panic(uint256)`` (assertions, arithmetic)."""

NONCE_TOO_LOW_MARKERS: Final = ("nonce too low", "invalid transaction nonce", "nonce is too low")
"""Lower-case fragments of the node errors meaning: this nonce is already used on chain."""
ALREADY_KNOWN_MARKERS: Final = ("already known", "already imported", "known transaction")
"""...meaning: this very transaction is already in the node's pool."""
UNDERPRICED_MARKERS: Final = ("underpriced",)
"""...meaning: another transaction with this nonce pays more (replacement underpriced)."""


# ---- errors ---------------------------------------------------------------------------------


class ChainUnavailable(ChainError):
    """The RPC endpoint did not answer (connection refused, reset, timeout)."""


class RpcRejected(ChainError):
    """The node answered a request with a JSON-RPC error (``rpc_message`` is its text)."""

    def __init__(self, detail: str, *, rpc_message: str, hint: str | None = None) -> None:
        super().__init__(detail, hint=hint, rpc_message=rpc_message)
        self.rpc_message = rpc_message


class ExecutionReverted(ChainError):
    """A call or transaction reverted; ``reason`` is the decoded custom error when known."""

    def __init__(
        self,
        detail: str,
        *,
        data: bytes,
        reason: RevertReason | None = None,
        hint: str | None = None,
    ) -> None:
        extra: dict[str, Any] = {"revertData": "0x" + data.hex()}
        if reason is not None:
            extra["revertReason"] = str(reason)
        super().__init__(detail, hint=hint, **extra)
        self.data = data
        self.reason = reason


# ---- values ---------------------------------------------------------------------------------


class AnchorState(enum.StrEnum):
    """Where an anchor is in its life (see the module docstring)."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    INCLUDED = "included"
    FINAL = "final"
    FAILED = "failed"


LIVE_STATES: Final = (
    AnchorState.PENDING,
    AnchorState.SUBMITTED,
    AnchorState.INCLUDED,
    AnchorState.FINAL,
)
"""States of an anchor that is, or will be, on chain (everything but ``failed``)."""


class TxState(enum.StrEnum):
    """Where one transaction attempt is."""

    SIGNED = "signed"
    """Recorded; the node has not acknowledged it yet (it is re-broadcast)."""
    SENT = "sent"
    """Accepted by the node, no receipt yet."""
    MINED = "mined"
    """Included with status 1."""
    REVERTED = "reverted"
    """Included with status 0."""
    DROPPED = "dropped"
    """Never mined: another attempt used its nonce, or the node refused it."""
    REORGED = "reorged"
    """Was mined, then removed by a reorganisation."""


@dataclass(frozen=True, kw_only=True)
class ChainConfig:
    """How to reach the chain and how to anchor on it.

    ``rpc_url`` None means the embedded chain (``contract_address`` is then the one deployed
    at start). ``chain_key`` is the anchoring account's secp256k1 private key (32 bytes); it
    is left out of ``repr`` and never logged. ``confirmations`` None means
    :data:`DEFAULT_CONFIRMATIONS_EMBEDDED` or :data:`DEFAULT_CONFIRMATIONS_REMOTE`.
    """

    chain_key: bytes = field(repr=False)
    rpc_url: str | None = None
    contract_address: str | None = None
    confirmations: int | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS
    replace_after_seconds: float = DEFAULT_REPLACE_AFTER_SECONDS
    max_fee_cap_wei: int = DEFAULT_MAX_FEE_CAP_WEI
    priority_fee_floor_wei: int = DEFAULT_PRIORITY_FEE_FLOOR_WEI
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not isinstance(self.chain_key, bytes) or len(self.chain_key) != 32:
            raise ConfigError(
                "the chain key must be 32 bytes (a secp256k1 private key)",
                hint="check the chain key file or LER_ANCHOR_CHAIN_KEY",
            )
        try:
            Account.from_key(self.chain_key)
        except (ValueError, EthUtilsValidationError):
            raise ConfigError(
                "the chain key is not a valid secp256k1 private key",
                hint="generate a new key; it must be between 1 and the curve order",
            ) from None
        if self.rpc_url is not None:
            parts = urlsplit(self.rpc_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"RPC URL {_public_url(self.rpc_url)} is not an http(s) URL",
                    hint="give e.g. http://127.0.0.1:8545, or no URL for the embedded chain",
                )
        if self.contract_address is not None:
            if not is_address(self.contract_address):
                raise ConfigError(f"{self.contract_address!r} is not a contract address")
            object.__setattr__(self, "contract_address", to_checksum_address(self.contract_address))
        if self.confirmations is not None and self.confirmations < 1:
            raise ConfigError(f"confirmations must be at least 1, not {self.confirmations}")
        if self.poll_interval <= 0 or self.replace_after_seconds <= 0 or self.rpc_timeout <= 0:
            raise ConfigError("poll interval, replacement wait and RPC timeout must be positive")
        if (
            self.max_fee_cap_wei <= 0
            or not 0 <= self.priority_fee_floor_wei <= self.max_fee_cap_wei
        ):
            raise ConfigError("the fee cap must be positive and at least the priority fee floor")

    @property
    def embedded(self) -> bool:
        return self.rpc_url is None

    @property
    def effective_confirmations(self) -> int:
        if self.confirmations is not None:
            return self.confirmations
        return DEFAULT_CONFIRMATIONS_EMBEDDED if self.embedded else DEFAULT_CONFIRMATIONS_REMOTE

    @property
    def address(self) -> ChecksumAddress:
        """The anchoring account's address."""
        account: LocalAccount = Account.from_key(self.chain_key)
        return account.address


@dataclass(frozen=True, slots=True)
class ChainIdentity:
    """Which chain and contract: chain id, genesis block hash and contract address."""

    chain_id: int
    genesis_hash: bytes
    contract: ChecksumAddress

    @property
    def caip2(self) -> str:
        """The CAIP-2 chain id, ``eip155:<chain id>``."""
        return f"eip155:{self.chain_id}"


@dataclass(frozen=True, slots=True)
class BlockInfo:
    number: int
    hash: bytes
    timestamp: int
    base_fee: int | None


@dataclass(frozen=True, slots=True)
class LogInfo:
    address: ChecksumAddress
    topics: tuple[bytes, ...]
    data: bytes
    log_index: int
    block_number: int
    block_hash: bytes
    transaction_hash: bytes


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    transaction_hash: bytes
    status: int
    block_number: int
    block_hash: bytes
    gas_used: int
    logs: tuple[LogInfo, ...]


@dataclass(frozen=True, slots=True)
class FeeHistory:
    next_base_fee: int
    rewards: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Fees:
    """EIP-1559 fee fields of one attempt, in wei."""

    max_fee: int
    max_priority_fee: int

    def bumped(self) -> Fees:
        """Both fields raised by the replacement bump (rounded up)."""
        return Fees(_bump(self.max_fee), _bump(self.max_priority_fee))


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A message call (``eth_call`` / ``eth_estimateGas``)."""

    sender: str
    to: str
    data: bytes
    gas: int | None = None


@dataclass(frozen=True, slots=True)
class RevertReason:
    """A decoded revert: the custom error's name and arguments, and the raw data."""

    name: str
    args: tuple[Any, ...]
    data: bytes

    def __str__(self) -> str:
        return f"{self.name}({', '.join(_format_arg(a) for a in self.args)})"


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """One anchor as stored (see the module docstring for ``state``)."""

    id: int
    chain: ChainIdentity
    current_chain: bool
    size: int
    root: bytes
    state: AnchorState
    account: str
    nonce: int | None
    tx_hash: bytes | None
    block_number: int | None
    block_hash: bytes | None
    log_index: int | None
    block_time: int | None
    error: str | None
    reorgs: int
    created_ms: int
    updated_ms: int

    def to_json(self) -> dict[str, Any]:
        """The anchor as a JSON object (for ``GET /v1/anchors``)."""
        return {
            "id": self.id,
            "chain": self.chain.caip2,
            "contract": self.chain.contract,
            "currentChain": self.current_chain,
            "treeSize": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "state": self.state.value,
            "account": self.account,
            "nonce": self.nonce,
            "transactionHash": None if self.tx_hash is None else "0x" + self.tx_hash.hex(),
            "blockNumber": self.block_number,
            "blockHash": None if self.block_hash is None else "0x" + self.block_hash.hex(),
            "logIndex": self.log_index,
            "blockTime": None if self.block_time is None else iso_time(self.block_time),
            "error": self.error,
            "reorgs": self.reorgs,
            "created": iso_time(self.created_ms // 1000),
            "updated": iso_time(self.updated_ms // 1000),
        }


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One recorded transaction attempt."""

    hash: bytes
    anchor_id: int
    account: str
    nonce: int
    gas: int
    fees: Fees
    raw: bytes = field(repr=False)
    state: TxState
    error: str | None
    created_ms: int


def iso_time(seconds: int) -> str:
    """``seconds`` since the epoch as ISO 8601 UTC, e.g. ``2025-01-31T12:00:00Z``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bump(value: int) -> int:
    return -(-value * REPLACEMENT_BUMP_NUMERATOR // REPLACEMENT_BUMP_DENOMINATOR)


def _format_arg(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and is_address(value):
        return to_checksum_address(value)
    return str(value)


def _public_url(url: str) -> str:
    """An RPC URL without path, query and credentials (hosted endpoints put API keys there)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _now_ms() -> int:
    return int(time.time() * 1000)


# ---- backends -------------------------------------------------------------------------------

BlockRef = int | Literal["latest", "pending"]


class ChainBackend(Protocol):
    """What the service needs from a chain; every failure is a :class:`ChainError`:
    :class:`ChainUnavailable` (no answer), :class:`RpcRejected` (an error answer) or
    :class:`ExecutionReverted` (a reverting call, with its revert data)."""

    description: str
    """Where the chain is, for messages (no credentials)."""

    async def chain_id(self) -> int: ...

    async def block(self, which: BlockRef) -> BlockInfo | None:
        """A block by number (None if there is none) or the latest one."""
        ...

    async def transaction_count(self, address: str, which: Literal["latest", "pending"]) -> int: ...

    async def fee_history(self, blocks: int, percentile: float) -> FeeHistory: ...

    async def max_priority_fee(self) -> int: ...

    async def estimate_gas(self, request: CallRequest) -> int:
        """Gas ``request`` needs on the latest block (not the pending one)."""
        ...

    async def call(self, request: CallRequest, block: BlockRef = "latest") -> bytes: ...

    async def send_raw_transaction(self, raw: bytes) -> bytes:
        """Broadcast a signed transaction; returns its hash."""
        ...

    async def transaction_receipt(self, tx_hash: bytes) -> ReceiptInfo | None:
        """The receipt of a transaction in the canonical chain, else None."""
        ...

    async def logs(
        self, address: str, topics: Sequence[bytes | None], from_block: int, to_block: BlockRef
    ) -> list[LogInfo]: ...

    async def code(self, address: str) -> bytes: ...

    async def close(self) -> None: ...


class Web3Backend:
    """:class:`ChainBackend` over an ``AsyncWeb3`` (any async provider)."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        *,
        description: str,
        closer: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.w3 = w3
        self.description = description
        self._closer = closer
        self._closed = False

    @classmethod
    async def connect(
        cls, rpc_url: str, *, timeout: float = DEFAULT_RPC_TIMEOUT_SECONDS
    ) -> Web3Backend:
        """A backend for a JSON-RPC endpoint: one provider, one HTTP session."""
        provider = AsyncHTTPProvider(rpc_url, exception_retry_configuration=None)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        await provider.cache_async_session(session)

        async def closer() -> None:
            await provider.disconnect()
            await session.close()

        return cls(AsyncWeb3(provider), description=_public_url(rpc_url), closer=closer)

    def __repr__(self) -> str:
        return f"Web3Backend({self.description})"

    async def _rpc(self, what: str, request: Awaitable[T]) -> T:
        """Await ``request``, translating every provider failure into a :class:`ChainError`."""
        try:
            return await request
        except ContractLogicError as exc:
            data = exc.data if isinstance(exc.data, str) else ""
            raise ExecutionReverted(
                f"{what} reverted on {self.description}", data=_hex_bytes(data)
            ) from exc
        except TransactionFailed as exc:
            raise ExecutionReverted(
                f"{what} reverted on {self.description}", data=_tester_revert_data(exc)
            ) from exc
        except (aiohttp.ClientError, TimeoutError, ProviderConnectionError, OSError) as exc:
            raise ChainUnavailable(
                f"{self.description} did not answer {what}: {type(exc).__name__}: {exc}",
                hint="check that the node is running and reachable; the service keeps retrying",
            ) from exc
        except Web3RPCError as exc:
            message = _rpc_error_message(exc)
            raise RpcRejected(
                f"{self.description} refused {what}: {message}", rpc_message=message
            ) from exc
        except (Web3Exception, TesterValidationError, EthUtilsValidationError) as exc:
            raise RpcRejected(
                f"{self.description} refused {what}: {exc}", rpc_message=str(exc)
            ) from exc

    async def chain_id(self) -> int:
        return int(await self._rpc("eth_chainId", self.w3.eth.chain_id))

    async def block(self, which: BlockRef) -> BlockInfo | None:
        async def get() -> BlockInfo | None:
            try:
                data = await self.w3.eth.get_block(which)
            except (BlockNotFound, TesterBlockNotFound):
                return None
            base_fee = data.get("baseFeePerGas")
            return BlockInfo(
                number=int(data["number"]),
                hash=bytes(data["hash"]),
                timestamp=int(data["timestamp"]),
                base_fee=None if base_fee is None else int(base_fee),
            )

        return await self._rpc("eth_getBlockByNumber", get())

    async def transaction_count(self, address: str, which: Literal["latest", "pending"]) -> int:
        request = self.w3.eth.get_transaction_count(to_checksum_address(address), which)
        return int(await self._rpc("eth_getTransactionCount", request))

    async def fee_history(self, blocks: int, percentile: float) -> FeeHistory:
        data = await self._rpc(
            "eth_feeHistory", self.w3.eth.fee_history(blocks, "latest", [percentile])
        )
        base_fees = data["baseFeePerGas"]
        if not base_fees:
            raise RpcRejected("eth_feeHistory returned no base fee", rpc_message="no base fee")
        rewards = tuple(int(r[0]) for r in data.get("reward", []) if r)
        return FeeHistory(next_base_fee=int(base_fees[-1]), rewards=rewards)

    async def max_priority_fee(self) -> int:
        return int(await self._rpc("eth_maxPriorityFeePerGas", self.w3.eth.max_priority_fee))

    @staticmethod
    def _params(request: CallRequest) -> TxParams:
        params: TxParams = {
            "from": to_checksum_address(request.sender),
            "to": to_checksum_address(request.to),
            "data": HexStr("0x" + request.data.hex()),
        }
        if request.gas is not None:
            params["gas"] = request.gas
        return params

    async def estimate_gas(self, request: CallRequest) -> int:
        return int(
            await self._rpc(
                "eth_estimateGas", self.w3.eth.estimate_gas(self._params(request), "latest")
            )
        )

    async def call(self, request: CallRequest, block: BlockRef = "latest") -> bytes:
        identifier = cast(BlockIdentifier, block)
        return bytes(
            await self._rpc("eth_call", self.w3.eth.call(self._params(request), identifier))
        )

    async def send_raw_transaction(self, raw: bytes) -> bytes:
        return bytes(
            await self._rpc("eth_sendRawTransaction", self.w3.eth.send_raw_transaction(raw))
        )

    async def transaction_receipt(self, tx_hash: bytes) -> ReceiptInfo | None:
        async def get() -> ReceiptInfo | None:
            try:
                data = await self.w3.eth.get_transaction_receipt(HexStr("0x" + tx_hash.hex()))
            except TransactionNotFound:
                return None
            if data.get("blockHash") is None:  # some nodes answer for pending transactions
                return None
            return ReceiptInfo(
                transaction_hash=bytes(data["transactionHash"]),
                status=int(data["status"]),
                block_number=int(data["blockNumber"]),
                block_hash=bytes(data["blockHash"]),
                gas_used=int(data["gasUsed"]),
                logs=tuple(_log_info(entry) for entry in data["logs"]),
            )

        return await self._rpc("eth_getTransactionReceipt", get())

    async def logs(
        self, address: str, topics: Sequence[bytes | None], from_block: int, to_block: BlockRef
    ) -> list[LogInfo]:
        params: FilterParams = {
            "address": to_checksum_address(address),
            "topics": [None if t is None else HexStr("0x" + t.hex()) for t in topics],
            "fromBlock": from_block,
            "toBlock": cast(BlockIdentifier, to_block),
        }
        found = await self._rpc("eth_getLogs", self.w3.eth.get_logs(params))
        return [_log_info(entry) for entry in found]

    async def code(self, address: str) -> bytes:
        request = self.w3.eth.get_code(to_checksum_address(address))
        return bytes(await self._rpc("eth_getCode", request))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._closer is not None:
            await self._closer()


def _log_info(entry: LogReceipt) -> LogInfo:
    return LogInfo(
        address=to_checksum_address(entry["address"]),
        topics=tuple(bytes(t) for t in entry["topics"]),
        data=bytes(entry["data"]),
        log_index=int(entry["logIndex"]),
        block_number=int(entry["blockNumber"]),
        block_hash=bytes(entry["blockHash"]),
        transaction_hash=bytes(entry["transactionHash"]),
    )


def _hex_bytes(text: str) -> bytes:
    body = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        return bytes.fromhex(body)
    except ValueError:
        return b""


def _tester_revert_data(exc: TransactionFailed) -> bytes:
    """eth-tester reports a revert as ``TransactionFailed("execution reverted: b'...'")``
    (the ``repr`` of the revert data) or with the decoded ``Error(string)`` message."""
    text = str(exc.args[0]) if exc.args else ""
    start = text.find("b'")
    if start < 0:
        start = text.find('b"')
    if start < 0:
        return b""
    try:
        value = ast.literal_eval(text[start:])
    except (ValueError, SyntaxError):
        return b""
    return value if isinstance(value, bytes) else b""


def _rpc_error_message(exc: Web3RPCError) -> str:
    response = exc.rpc_response
    if isinstance(response, dict):
        error = response.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(exc.user_message or exc)


class _ThreadedTesterProvider(AsyncEthereumTesterProvider):
    """web3's async eth-tester provider (its middleware formats requests and answers), with
    each request run by the synchronous provider on the embedded chain's own thread."""

    def __init__(self, sync_provider: EthereumTesterProvider, executor: ThreadPoolExecutor):
        AsyncBaseProvider.__init__(self)  # not the parent's: it would build a second chain
        self.ethereum_tester = sync_provider.ethereum_tester
        self.api_endpoints = cast(Any, sync_provider.api_endpoints)
        self._sync_provider = sync_provider
        self._executor = executor

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._sync_provider.make_request, method, params
        )


def _new_tester_provider() -> EthereumTesterProvider:
    salt = secrets.token_bytes(EMBEDDED_GENESIS_SALT_BYTES)
    genesis = PyEVMBackend.generate_genesis_params(overrides={"extra_data": salt})
    return EthereumTesterProvider(EthereumTester(PyEVMBackend(genesis_parameters=genesis)))


class EmbeddedChain:
    """The in-process chain (eth-tester over py-evm) with LogAnchor deployed by ``owner``.

    It lives as long as this object: a new one has a new genesis block, hence a new chain
    identity. :meth:`control` runs code against the ``EthereumTester`` (mining, snapshots)
    on the chain's thread, for tests and tools.
    """

    def __init__(
        self,
        backend: Web3Backend,
        executor: ThreadPoolExecutor,
        sync_provider: EthereumTesterProvider,
        contract_address: ChecksumAddress,
    ) -> None:
        self.backend = backend
        self.contract_address = contract_address
        self._executor = executor
        self._sync_provider = sync_provider

    @classmethod
    async def start(cls, owner_key: bytes) -> EmbeddedChain:
        """A fresh chain; the owner key's account is funded and deploys LogAnchor."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-chain")
        loop = asyncio.get_running_loop()
        sync_provider = await loop.run_in_executor(executor, _new_tester_provider)
        backend = Web3Backend(
            AsyncWeb3(_ThreadedTesterProvider(sync_provider, executor)),
            description="the embedded chain",
        )
        owner: LocalAccount = Account.from_key(owner_key)
        chain = cls(backend, executor, sync_provider, to_checksum_address("0x" + "00" * 20))
        await chain.fund(owner.address, EMBEDDED_FUNDING_WEI)
        artifact = load_artifact(LOG_ANCHOR)
        deployment = await loop.run_in_executor(
            executor, deploy, Web3(sync_provider), artifact, owner
        )
        chain.contract_address = deployment.address
        log.info("embedded chain started; LogAnchor deployed at %s", deployment.address)
        return chain

    async def control(self, action: Callable[[Any], T]) -> T:
        """Run ``action(ethereum_tester)`` on the chain's thread."""
        tester = self._sync_provider.ethereum_tester
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, action, tester)

    async def deploy(self, name: str, owner_key: bytes) -> ChecksumAddress:
        """Deploy the artifact ``name`` (e.g. the ERC-1056 registry) signed by ``owner_key``."""
        loop = asyncio.get_running_loop()
        owner: LocalAccount = Account.from_key(owner_key)
        deployment = await loop.run_in_executor(
            self._executor, deploy, Web3(self._sync_provider), load_artifact(name), owner
        )
        return deployment.address

    def ethr_reader_web3(self) -> tuple[Web3, Callable[[Callable[[], T]], Awaitable[T]]]:
        """A synchronous ``Web3`` on this chain and the runner that owns its thread (for
        the did:ethr driver's threaded reader)."""
        loop_executor = self._executor

        async def run(fn: Callable[[], T]) -> T:
            return await asyncio.get_running_loop().run_in_executor(loop_executor, fn)

        return Web3(self._sync_provider), run

    async def fund(self, address: str, wei: int) -> None:
        """Send ``wei`` to ``address`` from one of the chain's pre-funded accounts."""
        target = to_checksum_address(address)

        def send(tester: Any) -> None:
            funder = tester.get_accounts()[0]
            tester.send_transaction({"from": funder, "to": target, "value": wei, "gas": 21_000})

        await self.control(send)

    async def close(self) -> None:
        await self.backend.close()
        self._executor.shutdown(wait=True)


# ---- revert reasons -------------------------------------------------------------------------


class RevertDecoder:
    """Decodes revert data with the custom errors of an ABI (plus ``Error`` / ``Panic``)."""

    def __init__(self, abi: ABI) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {
            ERROR_STRING_SELECTOR: ("Error", ["string"]),
            PANIC_SELECTOR: ("Panic", ["uint256"]),
        }
        for item in abi:
            if item.get("type") != "error":
                continue
            name = str(item.get("name"))
            types = [str(i["type"]) for i in _abi_inputs(item)]
            selector = keccak(text=f"{name}({','.join(types)})")[:4]
            self._errors[selector] = (name, types)

    def decode(self, data: bytes) -> RevertReason:
        if not data:
            return RevertReason("Reverted", (), data)
        known = self._errors.get(data[:4])
        if known is None:
            return RevertReason("UnknownError", ("0x" + data.hex(),), data)
        name, types = known
        try:
            args = abi_decode(types, data[4:])
        except DecodingError:
            return RevertReason(name, ("<undecodable>",), data)
        return RevertReason(name, tuple(args), data)


# ---- the database ---------------------------------------------------------------------------


def ensure_schema(store: SQLiteStore) -> None:
    """Create the chain tables if they do not exist (idempotent)."""
    with store.transaction() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS chains ("
            " id INTEGER PRIMARY KEY,"
            " chain_id INTEGER NOT NULL,"
            " genesis_hash BLOB NOT NULL,"
            " contract TEXT NOT NULL,"
            " current INTEGER NOT NULL DEFAULT 0,"
            " first_seen INTEGER NOT NULL,"
            " UNIQUE (chain_id, genesis_hash, contract))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS chain_accounts ("
            " chain INTEGER NOT NULL REFERENCES chains (id),"
            " address TEXT NOT NULL,"
            " next_nonce INTEGER NOT NULL,"
            " PRIMARY KEY (chain, address))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS anchors ("
            " id INTEGER PRIMARY KEY,"
            " chain INTEGER NOT NULL REFERENCES chains (id),"
            " size INTEGER NOT NULL,"
            " root BLOB NOT NULL,"
            " state TEXT NOT NULL,"
            " account TEXT NOT NULL,"
            " nonce INTEGER,"
            " tx_hash BLOB,"
            " block_number INTEGER,"
            " block_hash BLOB,"
            " log_index INTEGER,"
            " block_time INTEGER,"
            " error TEXT,"
            " reorgs INTEGER NOT NULL DEFAULT 0,"
            " created INTEGER NOT NULL,"
            " updated INTEGER NOT NULL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS anchors_by_state ON anchors (chain, state, size)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS anchor_txs ("
            " chain INTEGER NOT NULL REFERENCES chains (id),"
            " hash BLOB NOT NULL,"
            " anchor INTEGER NOT NULL REFERENCES anchors (id),"
            " account TEXT NOT NULL,"
            " nonce INTEGER NOT NULL,"
            " gas INTEGER NOT NULL,"
            " max_fee INTEGER NOT NULL,"
            " max_priority_fee INTEGER NOT NULL,"
            " raw BLOB NOT NULL,"
            " state TEXT NOT NULL,"
            " error TEXT,"
            " created INTEGER NOT NULL,"
            " PRIMARY KEY (chain, hash))"
        )
        conn.execute(
            "CREATE INDEX IF NOT EXISTS anchor_txs_by_nonce ON anchor_txs (chain, account, nonce)"
        )


_ANCHOR_COLUMNS = (
    "a.id, c.chain_id, c.genesis_hash, c.contract, c.current, a.size, a.root, a.state,"
    " a.account, a.nonce, a.tx_hash, a.block_number, a.block_hash, a.log_index, a.block_time,"
    " a.error, a.reorgs, a.created, a.updated"
)
_ANCHOR_FROM = "anchors a JOIN chains c ON c.id = a.chain"
_TX_COLUMNS = (
    "hash, anchor, account, nonce, gas, max_fee, max_priority_fee, raw, state, error, created"
)


def _anchor_record(row: Sequence[Any]) -> AnchorRecord:
    return AnchorRecord(
        id=int(row[0]),
        chain=ChainIdentity(int(row[1]), bytes(row[2]), to_checksum_address(row[3])),
        current_chain=bool(row[4]),
        size=int(row[5]),
        root=bytes(row[6]),
        state=AnchorState(row[7]),
        account=str(row[8]),
        nonce=None if row[9] is None else int(row[9]),
        tx_hash=None if row[10] is None else bytes(row[10]),
        block_number=None if row[11] is None else int(row[11]),
        block_hash=None if row[12] is None else bytes(row[12]),
        log_index=None if row[13] is None else int(row[13]),
        block_time=None if row[14] is None else int(row[14]),
        error=None if row[15] is None else str(row[15]),
        reorgs=int(row[16]),
        created_ms=int(row[17]),
        updated_ms=int(row[18]),
    )


def _tx_record(row: Sequence[Any]) -> TxRecord:
    return TxRecord(
        hash=bytes(row[0]),
        anchor_id=int(row[1]),
        account=str(row[2]),
        nonce=int(row[3]),
        gas=int(row[4]),
        fees=Fees(int(row[5]), int(row[6])),
        raw=bytes(row[7]),
        state=TxState(row[8]),
        error=None if row[9] is None else str(row[9]),
        created_ms=int(row[10]),
    )


def current_chain(store: SQLiteStore) -> tuple[int, ChainIdentity] | None:
    """The row id and identity of the chain the service last started on, if any."""
    ensure_schema(store)
    row = (
        store.reader()
        .execute("SELECT id, chain_id, genesis_hash, contract FROM chains WHERE current = 1")
        .fetchone()
    )
    if row is None:
        return None
    return int(row[0]), ChainIdentity(int(row[1]), bytes(row[2]), to_checksum_address(row[3]))


def list_anchors(
    store: SQLiteStore,
    *,
    all_chains: bool = False,
    states: Iterable[AnchorState] | None = None,
    limit: int = 100,
) -> list[AnchorRecord]:
    """Anchors, newest first: those of the current chain, or of every chain recorded."""
    ensure_schema(store)
    where = [] if all_chains else ["c.current = 1"]
    args: list[Any] = []
    if states is not None:
        wanted = [AnchorState(s).value for s in states]
        where.append(f"a.state IN ({','.join('?' * len(wanted))})")
        args.extend(wanted)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = (
        store.reader()
        .execute(
            f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} {clause} "  # noqa: S608
            "ORDER BY a.id DESC LIMIT ?",
            (*args, limit),
        )
        .fetchall()
    )
    return [_anchor_record(r) for r in rows]


def anchor_covering(
    store: SQLiteStore, index: int, *, final_only: bool = False, newest: bool = False
) -> AnchorRecord | None:
    """An anchor on the current chain that covers leaf ``index`` (its size is above it):
    the smallest such size, or the largest with ``newest``; ``included`` or ``final`` ones,
    or only ``final`` ones with ``final_only``."""
    ensure_schema(store)
    states = (AnchorState.FINAL,) if final_only else (AnchorState.INCLUDED, AnchorState.FINAL)
    order = "DESC" if newest else "ASC"
    row = (
        store.reader()
        .execute(
            f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} "  # noqa: S608
            f"WHERE c.current = 1 AND a.size > ? AND a.state IN ({','.join('?' * len(states))}) "
            f"ORDER BY a.size {order} LIMIT 1",
            (index, *(s.value for s in states)),
        )
        .fetchone()
    )
    return None if row is None else _anchor_record(row)


class _Ledger:
    """The state machine's reads and writes (synchronous; the client runs them in a thread).
    Every method that changes state does so in one transaction."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    # -- identity ---------------------------------------------------------------------------

    def adopt_identity(self, identity: ChainIdentity) -> tuple[int, ChainIdentity | None]:
        """Make ``identity`` the current chain; returns its row id and the previous current
        chain when it was another one."""
        now = _now_ms()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT id, chain_id, genesis_hash, contract FROM chains WHERE current = 1"
            ).fetchone()
            previous = (
                None
                if row is None
                else ChainIdentity(int(row[1]), bytes(row[2]), to_checksum_address(row[3]))
            )
            if previous == identity:
                return int(row[0]), None
            conn.execute("UPDATE chains SET current = 0 WHERE current = 1")
            conn.execute(
                "INSERT INTO chains (chain_id, genesis_hash, contract, current, first_seen) "
                "VALUES (?, ?, ?, 1, ?) ON CONFLICT (chain_id, genesis_hash, contract) "
                "DO UPDATE SET current = 1",
                (identity.chain_id, identity.genesis_hash, identity.contract, now),
            )
            ref = conn.execute(
                "SELECT id FROM chains WHERE chain_id = ? AND genesis_hash = ? AND contract = ?",
                (identity.chain_id, identity.genesis_hash, identity.contract),
            ).fetchone()[0]
            return int(ref), previous

    # -- reads ------------------------------------------------------------------------------

    def anchors_in(self, ref: int, states: Sequence[AnchorState]) -> list[AnchorRecord]:
        rows = (
            self.store.reader()
            .execute(
                f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} "  # noqa: S608
                f"WHERE a.chain = ? AND a.state IN ({','.join('?' * len(states))}) "
                "ORDER BY a.nonce IS NULL, a.nonce, a.size",
                (ref, *(s.value for s in states)),
            )
            .fetchall()
        )
        return [_anchor_record(r) for r in rows]

    def anchor(self, anchor_id: int) -> AnchorRecord:
        row = (
            self.store.reader()
            .execute(f"SELECT {_ANCHOR_COLUMNS} FROM {_ANCHOR_FROM} WHERE a.id = ?", (anchor_id,))  # noqa: S608
            .fetchone()
        )
        if row is None:
            raise StoreError(f"anchor {anchor_id} is missing")
        return _anchor_record(row)

    def attempts(self, ref: int, account: str, nonce: int) -> list[TxRecord]:
        """Every attempt recorded for ``nonce``, newest first."""
        rows = (
            self.store.reader()
            .execute(
                f"SELECT {_TX_COLUMNS} FROM anchor_txs "  # noqa: S608
                "WHERE chain = ? AND account = ? AND nonce = ? ORDER BY created DESC, rowid DESC",
                (ref, account, nonce),
            )
            .fetchall()
        )
        return [_tx_record(r) for r in rows]

    def attempts_of(self, anchor_id: int) -> list[TxRecord]:
        rows = (
            self.store.reader()
            .execute(
                f"SELECT {_TX_COLUMNS} FROM anchor_txs WHERE anchor = ? "  # noqa: S608
                "ORDER BY created, rowid",
                (anchor_id,),
            )
            .fetchall()
        )
        return [_tx_record(r) for r in rows]

    def next_nonce(self, ref: int, account: str) -> int | None:
        row = (
            self.store.reader()
            .execute(
                "SELECT next_nonce FROM chain_accounts WHERE chain = ? AND address = ?",
                (ref, account),
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    # -- writes -----------------------------------------------------------------------------

    def enqueue(self, ref: int, account: str, size: int, root: bytes) -> AnchorRecord:
        """A pending anchor for (size, root), unless a live anchor already covers ``size``; a
        fresh pending anchor (never sent) for a smaller size is moved up to this one."""
        now = _now_ms()
        live = [s.value for s in LIVE_STATES]
        with self.store.transaction() as conn:
            row = conn.execute(
                f"SELECT id FROM anchors WHERE chain = ? AND size >= ? "  # noqa: S608
                f"AND state IN ({','.join('?' * len(live))}) ORDER BY size DESC LIMIT 1",
                (ref, size, *live),
            ).fetchone()
            if row is None:
                fresh = conn.execute(
                    "SELECT id FROM anchors WHERE chain = ? AND state = ? AND nonce IS NULL "
                    "AND NOT EXISTS (SELECT 1 FROM anchor_txs t WHERE t.anchor = anchors.id) "
                    "ORDER BY size DESC LIMIT 1",
                    (ref, AnchorState.PENDING.value),
                ).fetchone()
                if fresh is not None:
                    conn.execute(
                        "UPDATE anchors SET size = ?, root = ?, updated = ? WHERE id = ?",
                        (size, root, now, fresh[0]),
                    )
                    anchor_id = int(fresh[0])
                else:
                    anchor_id = int(
                        conn.execute(
                            "INSERT INTO anchors (chain, size, root, state, account, created,"
                            " updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (ref, size, root, AnchorState.PENDING.value, account, now, now),
                        ).lastrowid
                        or 0
                    )
            else:
                anchor_id = int(row[0])
        return self.anchor(anchor_id)

    def record_attempt(
        self, anchor_id: int, ref: int, account: str, nonce: int, gas: int, fees: Fees,
        tx_hash: bytes, raw: bytes,
    ) -> TxRecord:  # fmt: skip
        """Record a signed attempt (before it is broadcast) and mark its anchor submitted."""
        now = _now_ms()
        with self.store.transaction() as conn:
            conn.execute(
                f"INSERT INTO anchor_txs ({_TX_COLUMNS}, chain) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) "
                # The very same transaction again (same key, nonce, fees and data), e.g.
                # after the chain was reset: it is one attempt, now of this anchor.
                "ON CONFLICT (chain, hash) DO UPDATE SET anchor = excluded.anchor,"
                " state = excluded.state, error = NULL, created = excluded.created",
                (tx_hash, anchor_id, account, nonce, gas, fees.max_fee, fees.max_priority_fee,
                 raw, TxState.SIGNED.value, now, ref),
            )  # fmt: skip
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = ?, error = NULL, updated = ? WHERE id = ?",
                (AnchorState.SUBMITTED.value, nonce, now, anchor_id),
            )
            conn.execute(
                "INSERT INTO chain_accounts (chain, address, next_nonce) VALUES (?, ?, ?) "
                "ON CONFLICT (chain, address) DO UPDATE SET "
                "next_nonce = max(next_nonce, excluded.next_nonce)",
                (ref, account, nonce + 1),
            )
        return TxRecord(
            tx_hash, anchor_id, account, nonce, gas, fees, raw, TxState.SIGNED, None, now
        )

    def set_tx_state(
        self, ref: int, tx_hash: bytes, state: TxState, error: str | None = None
    ) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchor_txs SET state = ?, error = coalesce(?, error)"
                " WHERE chain = ? AND hash = ?",
                (state.value, error, ref, tx_hash),
            )

    def mark_mined(
        self, ref: int, tx: TxRecord, receipt: ReceiptInfo, log_index: int, block_time: int
    ) -> None:
        """``tx`` succeeded: its anchor is included; every other attempt of its nonce is
        dropped, and any other anchor waiting on that nonce needs a fresh one."""
        now = _now_ms()
        with self.store.transaction() as conn:
            self._settle_nonce(conn, ref, tx, TxState.MINED, None, now)
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = ?, tx_hash = ?, block_number = ?,"
                " block_hash = ?, log_index = ?, block_time = ?, error = NULL, updated = ?"
                " WHERE id = ?",
                (AnchorState.INCLUDED.value, tx.nonce, tx.hash, receipt.block_number,
                 receipt.block_hash, log_index, block_time, now, tx.anchor_id),
            )  # fmt: skip

    def mark_reverted(self, ref: int, tx: TxRecord, reason: str) -> None:
        now = _now_ms()
        with self.store.transaction() as conn:
            self._settle_nonce(conn, ref, tx, TxState.REVERTED, reason, now)
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = ?, tx_hash = ?, error = ?, updated = ?"
                " WHERE id = ?",
                (AnchorState.FAILED.value, tx.nonce, tx.hash, reason, now, tx.anchor_id),
            )

    @staticmethod
    def _settle_nonce(
        conn: sqlite3.Connection, ref: int, tx: TxRecord, state: TxState, error: str | None,
        now: int,
    ) -> None:  # fmt: skip
        conn.execute(
            "UPDATE anchor_txs SET state = ?, error = ? WHERE chain = ? AND hash = ?",
            (state.value, error, ref, tx.hash),
        )
        conn.execute(
            "UPDATE anchor_txs SET state = ? WHERE chain = ? AND account = ? AND nonce = ?"
            " AND hash != ? AND state IN (?, ?)",
            (TxState.DROPPED.value, ref, tx.account, tx.nonce, tx.hash, TxState.SIGNED.value,
             TxState.SENT.value),
        )  # fmt: skip
        conn.execute(
            "UPDATE anchors SET state = ?, nonce = NULL, updated = ? WHERE chain = ?"
            " AND account = ? AND nonce = ? AND id != ? AND state IN (?, ?)",
            (AnchorState.PENDING.value, now, ref, tx.account, tx.nonce, tx.anchor_id,
             AnchorState.PENDING.value, AnchorState.SUBMITTED.value),
        )  # fmt: skip

    def mark_adopted(self, anchor_id: int, event: LogInfo, block_time: int) -> None:
        now = _now_ms()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchors SET state = ?, tx_hash = ?, block_number = ?, block_hash = ?,"
                " log_index = ?, block_time = ?, error = NULL, updated = ? WHERE id = ?",
                (AnchorState.INCLUDED.value, event.transaction_hash, event.block_number,
                 event.block_hash, event.log_index, block_time, now, anchor_id),
            )  # fmt: skip

    def mark_final(self, anchor_id: int) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchors SET state = ?, updated = ? WHERE id = ? AND state = ?",
                (AnchorState.FINAL.value, _now_ms(), anchor_id, AnchorState.INCLUDED.value),
            )

    def mark_failed(self, anchor_id: int, reason: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE anchors SET state = ?, error = ?, updated = ? WHERE id = ?",
                (AnchorState.FAILED.value, reason, _now_ms(), anchor_id),
            )

    def mark_reorged(self, ref: int, anchor: AnchorRecord, why: str) -> None:
        """Back to pending, keeping the nonce; the mined attempt becomes ``reorged``."""
        with self.store.transaction() as conn:
            if anchor.tx_hash is not None:
                conn.execute(
                    "UPDATE anchor_txs SET state = ? WHERE chain = ? AND hash = ?",
                    (TxState.REORGED.value, ref, anchor.tx_hash),
                )
            conn.execute(
                "UPDATE anchors SET state = ?, tx_hash = NULL, block_number = NULL,"
                " block_hash = NULL, log_index = NULL, block_time = NULL, error = ?,"
                " reorgs = reorgs + 1, updated = ? WHERE id = ?",
                (AnchorState.PENDING.value, why, _now_ms(), anchor.id),
            )

    def forget_lost_anchors(self, ref: int, lost: Sequence[int], why: str) -> None:
        """The chain lost these final anchors (``lost``, newest first: a reset or a deep
        reorg). The newest goes back to pending, to be anchored again, as does every other
        unfinished anchor, without a nonce; older lost ones fail; attempts in flight are
        dropped; the stored nonce is forgotten (read again from the chain on next use)."""
        now = _now_ms()
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE anchors SET state = ?, error = ?, updated = ? WHERE id = ?",
                [(AnchorState.FAILED.value, why, now, anchor_id) for anchor_id in lost[1:]],
            )
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = NULL, tx_hash = NULL, block_number = NULL,"
                " block_hash = NULL, log_index = NULL, block_time = NULL, error = ?,"
                " reorgs = reorgs + (id = ?), updated = ?"
                " WHERE chain = ? AND (id = ? OR state IN (?, ?, ?))",
                (AnchorState.PENDING.value, why, lost[0], now, ref, lost[0],
                 AnchorState.PENDING.value, AnchorState.SUBMITTED.value,
                 AnchorState.INCLUDED.value),
            )  # fmt: skip
            conn.execute(
                "UPDATE anchor_txs SET state = ? WHERE chain = ? AND state IN (?, ?)",
                (TxState.DROPPED.value, ref, TxState.SIGNED.value, TxState.SENT.value),
            )
            conn.execute("DELETE FROM chain_accounts WHERE chain = ?", (ref,))

    def release_nonce(self, ref: int, anchor: AnchorRecord, why: str, chain_next: int) -> None:
        """The anchor's nonce is used by something else (or was never used): its attempts are
        dropped, it goes back to pending without a nonce, and the stored next nonce follows
        the chain's."""
        now = _now_ms()
        with self.store.transaction() as conn:
            if anchor.nonce is not None:
                conn.execute(
                    "UPDATE anchor_txs SET state = ? WHERE anchor = ? AND nonce = ?"
                    " AND state IN (?, ?)",
                    (TxState.DROPPED.value, anchor.id, anchor.nonce, TxState.SIGNED.value,
                     TxState.SENT.value),
                )  # fmt: skip
            conn.execute(
                "UPDATE anchors SET state = ?, nonce = NULL, error = ?, updated = ? WHERE id = ?",
                (AnchorState.PENDING.value, why, now, anchor.id),
            )
            conn.execute(
                "INSERT INTO chain_accounts (chain, address, next_nonce) VALUES (?, ?, ?) "
                "ON CONFLICT (chain, address) DO UPDATE SET next_nonce = excluded.next_nonce",
                (ref, anchor.account, chain_next),
            )


# ---- the client -----------------------------------------------------------------------------


class ChainClient:
    """Anchors checkpoints with the LogAnchor contract at ``contract_address`` through
    ``backend``, keeping its state machine in ``store`` (see the module docstring).

    :meth:`step` advances every anchor as far as it can go now; call it periodically (the
    batcher does). It is safe to call again after any error: all state is in the database.
    """

    def __init__(
        self,
        store: SQLiteStore,
        backend: ChainBackend,
        config: ChainConfig,
        contract_address: str,
        *,
        embedded: EmbeddedChain | None = None,
        owns_backend: bool = False,
        owns_embedded: bool = False,
    ) -> None:
        ensure_schema(store)
        self.store = store
        self.backend = backend
        self.config = config
        self.contract_address = to_checksum_address(contract_address)
        self.embedded = embedded
        self._owns_backend = owns_backend
        self._owns_embedded = owns_embedded
        self._account: LocalAccount = Account.from_key(config.chain_key)
        self.address: ChecksumAddress = self._account.address
        artifact = load_artifact(LOG_ANCHOR)
        self._decoder = RevertDecoder(artifact.abi)
        self._anchor_selector = _function_selector(artifact.abi, "anchor")
        self._ledger = _Ledger(store)
        self._identity: ChainIdentity | None = None
        self._ref: int | None = None
        self._lock = asyncio.Lock()
        self.at_fee_cap = False
        """True while an unmined attempt cannot be replaced because of ``max_fee_cap_wei``."""

    def __repr__(self) -> str:
        return (
            f"ChainClient({self.backend.description}, contract={self.contract_address}, "
            f"account={self.address})"
        )

    @classmethod
    async def open(
        cls, store: SQLiteStore, config: ChainConfig, *, embedded: EmbeddedChain | None = None
    ) -> ChainClient:
        """A client for ``config``: the JSON-RPC endpoint at ``config.rpc_url``, or the
        embedded chain (``embedded`` if given, else a new one this client owns and closes)."""
        if config.rpc_url is not None:
            if config.contract_address is None:
                raise ConfigError(
                    "a contract address is needed with an RPC URL",
                    hint="deploy LogAnchor with `ler-anchor deploy` and pass its address",
                )
            backend = await Web3Backend.connect(config.rpc_url, timeout=config.rpc_timeout)
            return cls(store, backend, config, config.contract_address, owns_backend=True)
        chain = embedded if embedded is not None else await EmbeddedChain.start(config.chain_key)
        return cls(
            store,
            chain.backend,
            config,
            chain.contract_address,
            embedded=chain,
            owns_embedded=embedded is None,
        )

    async def close(self) -> None:
        """Close the backend (or the embedded chain) if this client opened it."""
        if self._owns_backend:
            self._owns_backend = False
            await self.backend.close()
        if self._owns_embedded and self.embedded is not None:
            self._owns_embedded = False
            await self.embedded.close()

    @property
    def identity(self) -> ChainIdentity | None:
        """The chain identity, known after :meth:`start`."""
        return self._identity

    @property
    def confirmations(self) -> int:
        return self.config.effective_confirmations

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a database operation in a worker thread; SQLite failures become StoreError."""
        try:
            return await asyncio.to_thread(fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(
                f"the anchor tables could not be read or written: {exc}",
                hint="check the database file, its disk and its permissions",
            ) from exc

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> ChainIdentity:
        """Read the chain identity, check the contract exists and record the identity; a
        change from the recorded one is logged (and the batcher re-anchors)."""
        chain_id = await self.backend.chain_id()
        genesis = await self.backend.block(0)
        if genesis is None:
            raise ChainError(f"{self.backend.description} has no genesis block")
        identity = ChainIdentity(chain_id, genesis.hash, self.contract_address)
        code = await self.backend.code(self.contract_address)
        if not code:
            raise ConfigError(
                f"there is no contract at {self.contract_address} on {identity.caip2} "
                f"({self.backend.description})",
                hint="check the contract address and the RPC URL, or deploy LogAnchor there",
            )
        ref, previous = await self._db(self._ledger.adopt_identity, identity)
        if previous is not None:
            log.warning(
                "the chain changed: the database recorded %s (genesis 0x%s, contract %s), the "
                "service now runs on %s (genesis 0x%s, contract %s); anchors of the old chain "
                "are kept but no longer used for receipts, and the latest checkpoint will be "
                "anchored again",
                previous.caip2, previous.genesis_hash.hex(), previous.contract,
                identity.caip2, identity.genesis_hash.hex(), identity.contract,
            )  # fmt: skip
        else:
            await self._check_continuity(ref, identity)
        self._identity, self._ref = identity, ref
        return identity

    async def _check_continuity(self, ref: int, identity: ChainIdentity) -> None:
        """Check that the final anchors recorded for this chain are still in it. A node reset
        to the same genesis (a development chain restarted without its state) or a
        reorganisation deeper than the confirmation depth loses them: the newest lost one
        goes back to pending (it is anchored again and covers every earlier entry), older
        lost ones are marked failed, transactions in flight are dropped and the nonce is
        read again from the chain."""
        finals = await self._db(self._ledger.anchors_in, ref, (AnchorState.FINAL,))
        gone: list[AnchorRecord] = []
        for anchor in sorted(finals, key=lambda a: a.size, reverse=True):
            if anchor.tx_hash is None:
                continue
            receipt = await self.backend.transaction_receipt(anchor.tx_hash)
            if receipt is not None and receipt.block_hash == anchor.block_hash:
                break
            gone.append(anchor)
        if not gone:
            return
        why = "no longer on the chain (it was reset, or reorganised deeper than the confirmations)"
        await self._db(self._ledger.forget_lost_anchors, ref, [a.id for a in gone], why)
        log.warning(
            "%d final anchor(s) recorded for %s are no longer on it (the newest: tree size %d, "
            "transaction 0x%s): the chain was reset or reorganised deeper than %d "
            "confirmations; the newest is anchored again, older ones are marked failed",
            len(gone), identity.caip2, gone[0].size, (gone[0].tx_hash or b"").hex(),
            self.confirmations,
        )  # fmt: skip

    async def _started(self) -> tuple[ChainIdentity, int]:
        if self._identity is None or self._ref is None:
            await self.start()
        assert self._identity is not None
        assert self._ref is not None
        return self._identity, self._ref

    # -- queries ----------------------------------------------------------------------------

    async def enqueue(self, size: int, root: bytes) -> AnchorRecord:
        """Ask for (size, root) to be anchored; no-op if a live anchor covers ``size``."""
        _, ref = await self._started()
        return await self._db(self._ledger.enqueue, ref, self.address, size, root)

    async def anchors(
        self,
        *,
        all_chains: bool = False,
        states: Iterable[AnchorState] | None = None,
        limit: int = 100,
    ) -> list[AnchorRecord]:
        """Anchors with their states, newest first (current chain unless ``all_chains``)."""
        return await self._db(
            lambda: list_anchors(self.store, all_chains=all_chains, states=states, limit=limit)
        )

    async def attempts(self, anchor_id: int) -> list[TxRecord]:
        """The transaction attempts recorded for an anchor, oldest first."""
        return await self._db(self._ledger.attempts_of, anchor_id)

    def decode_revert(self, data: bytes) -> RevertReason:
        return self._decoder.decode(data)

    # -- the state machine ------------------------------------------------------------------

    async def step(self) -> None:
        """Advance every anchor of the current chain as far as possible now.

        Raises the first :class:`ChainError` met (after recording everything it could);
        calling again later continues from the recorded state.
        """
        async with self._lock:
            _, ref = await self._started()
            problems: list[ChainError] = []
            head = await self.backend.block("latest")
            if head is None:
                raise ChainError(f"{self.backend.description} has no latest block")
            await self._check_included(ref, head, problems)
            await self._advance_submitted(ref, problems)
            await self._send_pending(ref, problems)
            if problems:
                for extra in problems[1:]:
                    log.warning("%s", extra.diagnostics())
                raise problems[0]

    async def _check_included(self, ref: int, head: BlockInfo, problems: list[ChainError]) -> None:
        for anchor in await self._db(self._ledger.anchors_in, ref, (AnchorState.INCLUDED,)):
            assert anchor.tx_hash is not None
            receipt = await self.backend.transaction_receipt(anchor.tx_hash)
            if receipt is None:
                await self._reorged(ref, anchor, "its transaction is no longer in the chain")
                continue
            if receipt.block_hash != anchor.block_hash:
                tx = await self._attempt(ref, anchor.tx_hash, anchor)
                if tx is None:
                    await self._reorged(ref, anchor, "its block is no longer canonical")
                else:
                    log.info(
                        "anchor of tree size %d moved to block %d after a reorganisation",
                        anchor.size, receipt.block_number,
                    )  # fmt: skip
                    await self._apply_receipt(ref, tx, receipt, problems)
                continue
            depth = head.number - receipt.block_number + 1
            if depth < self.confirmations:
                continue
            canonical = await self.backend.block(receipt.block_number)
            if canonical is None or canonical.hash != anchor.block_hash:
                await self._reorged(ref, anchor, "its block is no longer canonical")
                continue
            await self._db(self._ledger.mark_final, anchor.id)
            log.info(
                "anchor of tree size %d is final (transaction 0x%s, block %d, %d confirmations)",
                anchor.size, anchor.tx_hash.hex(), receipt.block_number, depth,
            )  # fmt: skip

    async def _attempt(self, ref: int, tx_hash: bytes, anchor: AnchorRecord) -> TxRecord | None:
        if anchor.nonce is None:
            return None
        for tx in await self._db(self._ledger.attempts, ref, anchor.account, anchor.nonce):
            if tx.hash == tx_hash:
                return tx
        return None

    async def _reorged(self, ref: int, anchor: AnchorRecord, why: str) -> None:
        detail = f"removed by a reorganisation: {why} (was in block {anchor.block_number})"
        await self._db(self._ledger.mark_reorged, ref, anchor, detail)
        log.warning(
            "anchor of tree size %d (transaction 0x%s) was %s; it will be anchored again",
            anchor.size, (anchor.tx_hash or b"").hex(), detail,
        )  # fmt: skip

    async def _advance_submitted(self, ref: int, problems: list[ChainError]) -> None:
        submitted = await self._db(self._ledger.anchors_in, ref, (AnchorState.SUBMITTED,))
        for position, anchor in enumerate(submitted):
            assert anchor.nonce is not None
            try:
                await self._rebroadcast(ref, anchor)
                if await self._resolve_nonce(ref, anchor.account, anchor.nonce, problems):
                    continue
                used = await self.backend.transaction_count(anchor.account, "latest")
                if used > anchor.nonce:
                    # A block may have arrived between the two questions: ask once more.
                    if await self._resolve_nonce(ref, anchor.account, anchor.nonce, problems):
                        continue
                    why = (
                        f"nonce {anchor.nonce} of {anchor.account} was used by a transaction "
                        "this service did not record"
                    )
                    pending = await self.backend.transaction_count(anchor.account, "pending")
                    await self._db(self._ledger.release_nonce, ref, anchor, why, pending)
                    problems.append(
                        ChainError(why, hint="is the anchoring key used by another program?")
                    )
                    continue
                if position == 0 and anchor.account == self.address:
                    await self._maybe_replace(ref, anchor)
            except ChainError as err:
                problems.append(err)
                if isinstance(err, ChainUnavailable):
                    return

    async def _rebroadcast(self, ref: int, anchor: AnchorRecord) -> None:
        """Broadcast again the attempts the node never acknowledged (e.g. it was down)."""
        for tx in await self._db(self._ledger.attempts_of, anchor.id):
            if tx.state is TxState.SIGNED:
                log.info("re-broadcasting transaction 0x%s (nonce %d)", tx.hash.hex(), tx.nonce)
                await self._broadcast(ref, tx)

    async def _resolve_nonce(
        self, ref: int, account: str, nonce: int, problems: list[ChainError]
    ) -> bool:
        """Look up the receipts of every attempt recorded for ``nonce``; apply the one that
        was mined, if any. True when one was."""
        for tx in await self._db(self._ledger.attempts, ref, account, nonce):
            receipt = await self.backend.transaction_receipt(tx.hash)
            if receipt is not None:
                await self._apply_receipt(ref, tx, receipt, problems)
                return True
        return False

    async def _apply_receipt(
        self, ref: int, tx: TxRecord, receipt: ReceiptInfo, problems: list[ChainError]
    ) -> None:
        anchor = await self._db(self._ledger.anchor, tx.anchor_id)
        if receipt.status == RECEIPT_STATUS_SUCCESS:
            event = self._find_event(receipt.logs, anchor.root, anchor.size)
            if event is None:
                missing = "mined, but no Anchored event for this root and size was emitted"
                await self._db(self._ledger.mark_reverted, ref, tx, missing)
                problems.append(ChainError(f"anchor of tree size {anchor.size}: {missing}"))
                return
            block = await self.backend.block(receipt.block_number)
            if block is None or block.hash != receipt.block_hash:
                raise ChainError(
                    f"block {receipt.block_number} changed while reading it; retrying later"
                )
            await self._db(
                self._ledger.mark_mined, ref, tx, receipt, event.log_index, block.timestamp
            )
            log.info(
                "anchor of tree size %d included: transaction 0x%s in block %d",
                anchor.size, tx.hash.hex(), receipt.block_number,
            )  # fmt: skip
            return
        reason = await self._revert_reason(anchor, tx, receipt)
        await self._db(self._ledger.mark_reverted, ref, tx, str(reason))
        problems.append(
            ExecutionReverted(
                f"the anchor of tree size {anchor.size} reverted on chain "
                f"(transaction 0x{tx.hash.hex()}, block {receipt.block_number}): {reason}",
                data=reason.data,
                reason=reason,
                hint=_revert_hint(reason),
            )
        )

    def _find_event(self, logs: Iterable[LogInfo], root: bytes, size: int) -> LogInfo | None:
        for entry in logs:
            if (
                entry.address == self.contract_address
                and len(entry.topics) >= 3
                and entry.topics[0] == ANCHORED_TOPIC
                and entry.topics[1] == root
                and int.from_bytes(entry.topics[2], "big") == size
            ):
                return entry
        return None

    async def _revert_reason(
        self, anchor: AnchorRecord, tx: TxRecord, receipt: ReceiptInfo
    ) -> RevertReason:
        """Replay the call on the state after its block (this contract's conditions only
        ever get stricter) to learn why it reverted."""
        request = CallRequest(
            tx.account, self.contract_address, self._calldata(anchor.root, anchor.size), tx.gas
        )
        try:
            await self.backend.call(request, receipt.block_number)
        except ExecutionReverted as exc:
            return self._decoder.decode(exc.data)
        if receipt.gas_used >= tx.gas:
            return RevertReason("OutOfGas", (tx.gas,), b"")
        return RevertReason("Reverted", (), b"")

    async def _maybe_replace(self, ref: int, anchor: AnchorRecord) -> None:
        assert anchor.nonce is not None
        attempts = await self._db(self._ledger.attempts, ref, anchor.account, anchor.nonce)
        if not attempts:
            return
        newest = max(tx.created_ms for tx in attempts)
        if (_now_ms() - newest) / 1000 < self.config.replace_after_seconds:
            return
        fees = self._bumped_fees(attempts, await self._suggest_fees())
        if fees.max_fee > self.config.max_fee_cap_wei:
            if not self.at_fee_cap:
                log.warning(
                    "the anchor of tree size %d (nonce %d) is not mined after %.0f s, but a "
                    "replacement would offer %d wei per gas, above the cap of %d; waiting",
                    anchor.size, anchor.nonce, self.config.replace_after_seconds,
                    fees.max_fee, self.config.max_fee_cap_wei,
                )  # fmt: skip
            self.at_fee_cap = True
            return
        self.at_fee_cap = False
        log.info(
            "replacing the unmined anchor of tree size %d (nonce %d): fees %d / %d wei",
            anchor.size, anchor.nonce, fees.max_fee, fees.max_priority_fee,
        )  # fmt: skip
        await self._sign_and_send(ref, anchor, anchor.nonce, fees, attempts[0].gas)

    @staticmethod
    def _bumped_fees(attempts: Sequence[TxRecord], suggested: Fees) -> Fees:
        """At least the suggestion, and both fields 12.5% above every earlier attempt's."""
        max_fee = max(suggested.max_fee, *(_bump(tx.fees.max_fee) for tx in attempts))
        tip = max(suggested.max_priority_fee, *(_bump(tx.fees.max_priority_fee) for tx in attempts))
        return Fees(max(max_fee, tip), tip)

    async def _suggest_fees(self) -> Fees:
        try:
            history = await self.backend.fee_history(FEE_HISTORY_BLOCKS, FEE_HISTORY_PERCENTILE)
            base_fee = history.next_base_fee
            rewards = sorted(r for r in history.rewards if r > 0)
            tip = rewards[len(rewards) // 2] if rewards else await self.backend.max_priority_fee()
        except RpcRejected:  # a node without eth_feeHistory
            latest = await self.backend.block("latest")
            base_fee = 0 if latest is None or latest.base_fee is None else latest.base_fee
            tip = await self.backend.max_priority_fee()
        tip = max(tip, self.config.priority_fee_floor_wei)
        cap = self.config.max_fee_cap_wei
        max_fee = min(BASE_FEE_MULTIPLIER * base_fee + tip, cap)
        return Fees(max_fee, min(tip, max_fee))

    async def _send_pending(self, ref: int, problems: list[ChainError]) -> None:
        busy = bool(await self._db(self._ledger.anchors_in, ref, (AnchorState.SUBMITTED,)))
        for anchor in await self._db(self._ledger.anchors_in, ref, (AnchorState.PENDING,)):
            if anchor.nonce is None and busy:
                continue  # a fresh anchor waits until nothing else is in flight
            try:
                await self._send_anchor(ref, anchor, problems)
            except ChainError as err:
                problems.append(err)
                return
            busy = True

    async def _send_anchor(
        self, ref: int, anchor: AnchorRecord, problems: list[ChainError]
    ) -> None:
        previous: list[TxRecord] = []
        if anchor.nonce is not None:
            # Before anything is sent again: is one of the earlier attempts on chain (again)?
            if await self._resolve_nonce(ref, anchor.account, anchor.nonce, problems):
                return
            previous = await self._db(self._ledger.attempts, ref, anchor.account, anchor.nonce)
        data = self._calldata(anchor.root, anchor.size)
        try:
            estimate = await self.backend.estimate_gas(
                CallRequest(self.address, self.contract_address, data)
            )
            gas = estimate * GAS_HEADROOM_NUMERATOR // GAS_HEADROOM_DENOMINATOR
        except ExecutionReverted as exc:
            reason = self._decoder.decode(exc.data)
            if anchor.nonce is None:
                # The contract checks the size before the root: an anchor of exactly this
                # root and size reverts with either error.
                adoptable = reason.name in ("RootAlreadyAnchored", "TreeSizeNotIncreasing")
                if adoptable and await self._adopt(anchor):
                    return
                detail = f"the contract refuses to anchor tree size {anchor.size}: {reason}"
                await self._db(self._ledger.mark_failed, anchor.id, str(reason))
                raise ExecutionReverted(
                    detail, data=exc.data, reason=reason, hint=_revert_hint(reason)
                ) from exc
            log.warning(
                "re-sending the anchor of tree size %d on nonce %d although it would revert "
                "(%s), so that the nonce is used",
                anchor.size, anchor.nonce, reason,
            )  # fmt: skip
            gas = FALLBACK_ANCHOR_GAS
        suggested = await self._suggest_fees()
        if previous:
            fees = self._bumped_fees(previous, suggested)
            cap = self.config.max_fee_cap_wei
            fees = Fees(min(fees.max_fee, cap), min(fees.max_priority_fee, cap))
        else:
            fees = suggested
        nonce = anchor.nonce if anchor.nonce is not None else await self._next_nonce(ref)
        await self._sign_and_send(ref, anchor, nonce, fees, gas)

    async def _next_nonce(self, ref: int) -> int:
        stored = await self._db(self._ledger.next_nonce, ref, self.address)
        used = await self.backend.transaction_count(self.address, "latest")
        if stored is None:
            pending = await self.backend.transaction_count(self.address, "pending")
            return max(pending, used)
        if used > stored:
            log.warning(
                "the chain has %d transactions from %s, the service expected %d: the key is "
                "used elsewhere, or the database is older than the chain",
                used, self.address, stored,
            )  # fmt: skip
            return used
        return stored

    async def _adopt(self, anchor: AnchorRecord) -> bool:
        """If this very root and size are already anchored (not by an attempt we recorded,
        e.g. after a database restore), record that anchor instead of sending one."""
        size_topic = anchor.size.to_bytes(32, "big")
        try:
            events = await self.backend.logs(
                self.contract_address, [ANCHORED_TOPIC, anchor.root, size_topic], 0, "latest"
            )
        except RpcRejected as exc:  # e.g. a provider limiting eth_getLogs ranges
            log.warning("could not search the chain for an earlier anchor: %s", exc.detail)
            return False
        event = self._find_event(events, anchor.root, anchor.size)
        if event is None:
            return False
        block = await self.backend.block(event.block_number)
        if block is None or block.hash != event.block_hash:
            return False
        await self._db(self._ledger.mark_adopted, anchor.id, event, block.timestamp)
        log.info(
            "tree size %d was already anchored on chain (transaction 0x%s); adopted it",
            anchor.size, event.transaction_hash.hex(),
        )  # fmt: skip
        return True

    async def _sign_and_send(
        self, ref: int, anchor: AnchorRecord, nonce: int, fees: Fees, gas: int
    ) -> None:
        identity, _ = await self._started()
        transaction: dict[str, Any] = {
            "type": 2,
            "chainId": identity.chain_id,
            "nonce": nonce,
            "to": self.contract_address,
            "value": 0,
            "data": "0x" + self._calldata(anchor.root, anchor.size).hex(),
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.max_priority_fee,
        }
        signed = self._account.sign_transaction(transaction)
        tx = await self._db(
            self._ledger.record_attempt, anchor.id, ref, self.address, nonce, gas, fees,
            bytes(signed.hash), bytes(signed.raw_transaction),
        )  # fmt: skip
        log.info(
            "anchoring tree size %d: transaction 0x%s (nonce %d, max fee %d, tip %d wei)",
            anchor.size, tx.hash.hex(), nonce, fees.max_fee, fees.max_priority_fee,
        )  # fmt: skip
        await self._broadcast(ref, tx)

    async def _broadcast(self, ref: int, tx: TxRecord) -> None:
        try:
            await self.backend.send_raw_transaction(tx.raw)
        except RpcRejected as exc:
            message = exc.rpc_message.lower()
            if any(m in message for m in ALREADY_KNOWN_MARKERS):
                await self._db(self._ledger.set_tx_state, ref, tx.hash, TxState.SENT)
                return
            nonce_used = any(m in message for m in NONCE_TOO_LOW_MARKERS)
            underpriced = any(m in message for m in UNDERPRICED_MARKERS)
            if nonce_used or underpriced:
                problems: list[ChainError] = []
                if await self._resolve_nonce(ref, tx.account, tx.nonce, problems):
                    if problems:
                        raise problems[0] from exc
                    return
            await self._db(
                self._ledger.set_tx_state, ref, tx.hash, TxState.DROPPED, exc.rpc_message
            )
            anchor = await self._db(self._ledger.anchor, tx.anchor_id)
            live = [
                t
                for t in await self._db(self._ledger.attempts, ref, tx.account, tx.nonce)
                if t.state in (TxState.SIGNED, TxState.SENT)
            ]
            if anchor.state is AnchorState.SUBMITTED and not live and not underpriced:
                pending = await self.backend.transaction_count(tx.account, "pending")
                await self._db(
                    self._ledger.release_nonce, ref, anchor, f"refused: {exc.rpc_message}", pending
                )
            raise
        await self._db(self._ledger.set_tx_state, ref, tx.hash, TxState.SENT)

    def _calldata(self, root: bytes, size: int) -> bytes:
        return self._anchor_selector + abi_encode(["bytes32", "uint64"], [root, size])


def _abi_inputs(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    inputs = item.get("inputs", [])
    return list(inputs) if isinstance(inputs, list) else []


def _function_selector(abi: ABI, name: str) -> bytes:
    for item in abi:
        if item.get("type") == "function" and item.get("name") == name:
            types = ",".join(str(i["type"]) for i in _abi_inputs(item))
            return keccak(text=f"{name}({types})")[:4]
    raise ConfigError(f"the LogAnchor ABI has no function {name!r}")


def _revert_hint(reason: RevertReason) -> str | None:
    hints = {
        "NotAuthorised": "authorise the anchoring account with the contract owner's key",
        "TreeSizeNotIncreasing": (
            "the contract already anchors a larger tree: another log writes to this contract, "
            "or this database is older than the chain (restore the latest backup); anchoring "
            "resumes once the log is larger"
        ),
        "RootAlreadyAnchored": "this root is already anchored; nothing to do",
        "ZeroRoot": "the zero root cannot be anchored",
    }
    return hints.get(reason.name)
