"""How :class:`~anchor.chain.ChainClient` sends anchors and reads their receipts (see the
package docstring, "Transactions"): :class:`AnchorSender` holds the client's state (the
account, the contract, the ledger) and sends pending anchors (pre-flight gas estimate, fees,
nonces, signing, recording each attempt before it is broadcast, replacements, adoption of an
anchor already on chain), and applies a mined attempt's receipt (``Anchored`` event found:
included; reverted: failed with the decoded reason).

Not pure: reads and writes the chain tables (in a worker thread) and talks to the node.
Cost: per anchor sent, a gas estimate, a fee history, a nonce read and one broadcast; per
receipt, one block read (and one replayed call for a revert).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from anchor.chain.backends import ChainBackend
from anchor.chain.contracts import LOG_ANCHOR, load_artifact
from anchor.chain.ledger import _Ledger
from anchor.chain.reverts import (
    RevertDecoder,
    _function_selector,
    _revert_hint,
)
from anchor.chain.values import (
    ALREADY_KNOWN_MARKERS,
    ANCHORED_TOPIC,
    BASE_FEE_MULTIPLIER,
    FALLBACK_ANCHOR_GAS,
    FEE_HISTORY_BLOCKS,
    FEE_HISTORY_PERCENTILE,
    GAS_HEADROOM_DENOMINATOR,
    GAS_HEADROOM_NUMERATOR,
    NONCE_TOO_LOW_MARKERS,
    RECEIPT_STATUS_SUCCESS,
    UNDERPRICED_MARKERS,
    AnchorRecord,
    AnchorState,
    CallRequest,
    ChainConfig,
    ChainIdentity,
    ExecutionReverted,
    Fees,
    LogInfo,
    ReceiptInfo,
    RevertReason,
    RpcRejected,
    TxRecord,
    TxState,
    _bump,
    _now_ms,
)
from anchor.errors import ChainError, StoreError
from anchor.log.store import LogStore

logger = logging.getLogger(__name__)

T = TypeVar("T")


class AnchorSender:
    """The sending half of the state machine of :class:`~anchor.chain.ChainClient` (its base
    class); every method runs under the client's step lock."""

    def __init__(
        self, store: LogStore, backend: ChainBackend, config: ChainConfig, contract_address: str
    ) -> None:
        self.store = store
        self.backend = backend
        self.config = config
        self.contract_address = to_checksum_address(contract_address)
        self._account: LocalAccount = Account.from_key(config.chain_key)
        self.address: ChecksumAddress = self._account.address
        artifact = load_artifact(LOG_ANCHOR)
        self._decoder = RevertDecoder(artifact.abi)
        self._anchor_selector = _function_selector(artifact.abi, "anchor")
        self._ledger = _Ledger(store)
        self._identity: ChainIdentity | None = None
        self._ref: int | None = None
        self.at_fee_cap = False
        """True while an unmined attempt cannot be replaced because of ``max_fee_cap_wei``."""

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

    # -- receipts ----------------------------------------------------------------------------

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
            logger.info(
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

    # -- sending -----------------------------------------------------------------------------

    async def _maybe_replace(self, ref: int, anchor: AnchorRecord, *, wait: bool = True) -> None:
        assert anchor.nonce is not None
        attempts = await self._db(self._ledger.attempts, ref, anchor.account, anchor.nonce)
        if not attempts:
            return
        newest = max(tx.created_ms for tx in attempts)
        if wait and (_now_ms() - newest) / 1000 < self.config.replace_after_seconds:
            return
        fees = self._bumped_fees(attempts, await self._suggest_fees())
        if fees.max_fee > self.config.max_fee_cap_wei:
            if not self.at_fee_cap:
                logger.warning(
                    "the anchor of tree size %d (nonce %d) is not mined after %.0f s, but a "
                    "replacement would offer %d wei per gas, above the cap of %d; waiting",
                    anchor.size, anchor.nonce, self.config.replace_after_seconds,
                    fees.max_fee, self.config.max_fee_cap_wei,
                )  # fmt: skip
            self.at_fee_cap = True
            return
        self.at_fee_cap = False
        logger.info(
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
            logger.warning(
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
            logger.warning(
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
            logger.warning("could not search the chain for an earlier anchor: %s", exc.detail)
            return False
        event = self._find_event(events, anchor.root, anchor.size)
        if event is None:
            return False
        block = await self.backend.block(event.block_number)
        if block is None or block.hash != event.block_hash:
            return False
        await self._db(self._ledger.mark_adopted, anchor.id, event, block.timestamp)
        logger.info(
            "tree size %d was already anchored on chain (transaction 0x%s); adopted it",
            anchor.size, event.transaction_hash.hex(),
        )  # fmt: skip
        return True

    async def _sign_and_send(
        self, ref: int, anchor: AnchorRecord, nonce: int, fees: Fees, gas: int
    ) -> None:
        identity = self._identity
        assert identity is not None  # read by the step that sends
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
        logger.info(
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
