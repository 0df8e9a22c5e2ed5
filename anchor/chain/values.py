"""Constants, errors and value types of :mod:`anchor.chain` (see the package docstring for the
state machine they describe), and small helpers shared by its modules."""

from __future__ import annotations

import base64
import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError as EthUtilsValidationError

from anchor.errors import ChainError, ConfigError

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

DEFAULT_REORG_DEPTH: Final = 64
"""Blocks below the head within which final anchors are re-checked on every step: two
post-merge Ethereum epochs, past which a block is finalised and cannot be reorganised."""
MAX_REORG_DEPTH: Final = 100_000
"""Largest configurable re-check depth (the check stays one block lookup per round)."""

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
    reorg_depth: int = DEFAULT_REORG_DEPTH
    """Final anchors whose block is at most this many blocks below the head are re-checked
    canonical on every step (0: only at start; less than ``confirmations`` also checks none,
    as an anchor becomes final only that deep)."""
    embedded_dir: Path | None = None
    """Where the embedded chain is kept (None: in memory, gone when the client closes)."""

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
        if not 0 <= self.reorg_depth <= MAX_REORG_DEPTH:
            raise ConfigError(
                f"the reorg depth must be between 0 and {MAX_REORG_DEPTH}, not {self.reorg_depth}",
                hint=f"{DEFAULT_REORG_DEPTH} blocks covers a post-merge Ethereum finalisation",
            )

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

    def same_chain(self, other: ChainIdentity) -> bool:
        """Whether ``other`` is this chain (id and genesis), whatever its contract."""
        return (self.chain_id, self.genesis_hash) == (other.chain_id, other.genesis_hash)


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
class TransactionInfo:
    """What a node knows of a transaction (``eth_getTransactionByHash``): ``block_number``
    is None while it waits in the node's pool."""

    hash: bytes
    nonce: int
    block_number: int | None


@dataclass(frozen=True, slots=True)
class FinalReorg:
    """A final anchor that a reorganisation deeper than the confirmations removed, noticed
    while the service ran (or at its start)."""

    anchor_id: int
    size: int
    block_number: int | None
    block_hash: bytes | None
    tx_hash: bytes | None
    noticed_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "anchorId": self.anchor_id,
            "treeSize": self.size,
            "blockNumber": self.block_number,
            "blockHash": None if self.block_hash is None else "0x" + self.block_hash.hex(),
            "transactionHash": None if self.tx_hash is None else "0x" + self.tx_hash.hex(),
            "noticed": iso_time(self.noticed_ms // 1000),
        }


@dataclass(frozen=True, slots=True)
class ReorgStatus:
    """Final anchors lost to deep reorganisations since the client started: how many, the
    last one, and those not yet covered by a final anchor again (size at least theirs)."""

    count: int
    last: FinalReorg | None
    unrecovered: tuple[FinalReorg, ...]


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
