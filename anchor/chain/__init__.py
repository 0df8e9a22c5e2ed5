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
When the node no longer knows any attempt of a nonce that is still unused
(``eth_getTransactionByHash`` answers null while ``eth_getTransactionCount(latest)`` is at
most the nonce: dropped from its pool, or mined in a block reorganised away before the client
saw it), the newest attempt is broadcast again byte for byte on the next step
(:attr:`ChainClient.rebroadcasts` counts them), not after ``replace_after_seconds``.

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
fails on chain with the decoded reason, and the batcher anchors a newer checkpoint.

A reorg deeper than ``confirmations`` (of a ``final`` anchor) is noticed on the next step:
every step looks up, newest first, the block of each final anchor within ``reorg_depth``
blocks of the head (default :data:`DEFAULT_REORG_DEPTH`), and stops at the first that is
still canonical (its ancestors hold every older anchor), so it costs one block lookup per
step. A final anchor whose block is gone goes back to ``pending`` keeping its nonce (as
above; ``final -> pending``), or to ``included`` if its transaction is in another canonical
block (``final -> included``); receipts, built from final anchors only, wait meanwhile.
:meth:`ChainClient.reorg_status` reports such losses and those not yet covered by a final
anchor again (``/healthz``). Deeper than ``reorg_depth``, a loss is noticed at the next
start (see "Chain identity").

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

Modules
-------
:mod:`anchor.chain.values` (constants, errors, value types), :mod:`anchor.chain.backends`
(:class:`ChainBackend`, :class:`Web3Backend`, :class:`EmbeddedChain`),
:mod:`anchor.chain.reverts` (:class:`RevertDecoder`), :mod:`anchor.chain.ledger` (the tables
and their queries), :mod:`anchor.chain.sending` (sending anchors, applying receipts),
:mod:`anchor.chain.machine` (the state machine's steps) and :mod:`anchor.chain.client`
(:class:`ChainClient`, which wires them). Every name of these is re-exported here: import
from :mod:`anchor.chain`. Not re-exported (import them from their modules):
:mod:`anchor.chain.batcher` (the background task that anchors the log's checkpoints),
:mod:`anchor.chain.durable` (the embedded chain's storage) and :mod:`anchor.chain.rpc` (its
read-only JSON-RPC endpoint, with :mod:`anchor.chain.rpc_methods` and
:mod:`anchor.chain.rpc_codec`).
"""

from __future__ import annotations

from anchor.chain.backends import (
    BlockRef,
    ChainBackend,
    EmbeddedChain,
    Web3Backend,
)
from anchor.chain.client import (
    ChainClient,
)
from anchor.chain.ledger import (
    anchor_covering,
    current_chain,
    ensure_schema,
    latest_anchor,
    list_anchors,
)
from anchor.chain.reverts import (
    RevertDecoder,
)
from anchor.chain.values import (
    ALREADY_KNOWN_MARKERS,
    ANCHORED_EVENT_SIGNATURE,
    ANCHORED_TOPIC,
    BASE_FEE_MULTIPLIER,
    DEFAULT_CONFIRMATIONS_EMBEDDED,
    DEFAULT_CONFIRMATIONS_REMOTE,
    DEFAULT_MAX_FEE_CAP_WEI,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_PRIORITY_FEE_FLOOR_WEI,
    DEFAULT_REORG_DEPTH,
    DEFAULT_REPLACE_AFTER_SECONDS,
    DEFAULT_RPC_TIMEOUT_SECONDS,
    EMBEDDED_FUNDING_WEI,
    EMBEDDED_GENESIS_SALT_BYTES,
    ERROR_STRING_SELECTOR,
    FALLBACK_ANCHOR_GAS,
    FEE_HISTORY_BLOCKS,
    FEE_HISTORY_PERCENTILE,
    GAS_HEADROOM_DENOMINATOR,
    GAS_HEADROOM_NUMERATOR,
    GWEI,
    LIVE_STATES,
    MAX_REORG_DEPTH,
    NONCE_TOO_LOW_MARKERS,
    PANIC_SELECTOR,
    RECEIPT_STATUS_SUCCESS,
    REPLACEMENT_BUMP_DENOMINATOR,
    REPLACEMENT_BUMP_NUMERATOR,
    UNDERPRICED_MARKERS,
    AnchorRecord,
    AnchorState,
    BlockInfo,
    CallRequest,
    ChainConfig,
    ChainIdentity,
    ChainUnavailable,
    ExecutionReverted,
    FeeHistory,
    Fees,
    FinalReorg,
    LogInfo,
    ReceiptInfo,
    ReorgStatus,
    RevertReason,
    RpcRejected,
    TransactionInfo,
    TxRecord,
    TxState,
    iso_time,
)
from did_methods import ethstack  # noqa: F401  (puts back the recursion limit)

__all__ = [
    "ALREADY_KNOWN_MARKERS",
    "ANCHORED_EVENT_SIGNATURE",
    "ANCHORED_TOPIC",
    "BASE_FEE_MULTIPLIER",
    "DEFAULT_CONFIRMATIONS_EMBEDDED",
    "DEFAULT_CONFIRMATIONS_REMOTE",
    "DEFAULT_MAX_FEE_CAP_WEI",
    "DEFAULT_POLL_INTERVAL_SECONDS",
    "DEFAULT_PRIORITY_FEE_FLOOR_WEI",
    "DEFAULT_REORG_DEPTH",
    "DEFAULT_REPLACE_AFTER_SECONDS",
    "DEFAULT_RPC_TIMEOUT_SECONDS",
    "EMBEDDED_FUNDING_WEI",
    "EMBEDDED_GENESIS_SALT_BYTES",
    "ERROR_STRING_SELECTOR",
    "FALLBACK_ANCHOR_GAS",
    "FEE_HISTORY_BLOCKS",
    "FEE_HISTORY_PERCENTILE",
    "GAS_HEADROOM_DENOMINATOR",
    "GAS_HEADROOM_NUMERATOR",
    "GWEI",
    "LIVE_STATES",
    "MAX_REORG_DEPTH",
    "NONCE_TOO_LOW_MARKERS",
    "PANIC_SELECTOR",
    "RECEIPT_STATUS_SUCCESS",
    "REPLACEMENT_BUMP_DENOMINATOR",
    "REPLACEMENT_BUMP_NUMERATOR",
    "UNDERPRICED_MARKERS",
    "AnchorRecord",
    "AnchorState",
    "BlockInfo",
    "BlockRef",
    "CallRequest",
    "ChainBackend",
    "ChainClient",
    "ChainConfig",
    "ChainIdentity",
    "ChainUnavailable",
    "EmbeddedChain",
    "ExecutionReverted",
    "FeeHistory",
    "Fees",
    "FinalReorg",
    "LogInfo",
    "ReceiptInfo",
    "ReorgStatus",
    "RevertDecoder",
    "RevertReason",
    "RpcRejected",
    "TransactionInfo",
    "TxRecord",
    "TxState",
    "Web3Backend",
    "anchor_covering",
    "current_chain",
    "ensure_schema",
    "iso_time",
    "latest_anchor",
    "list_anchors",
]
