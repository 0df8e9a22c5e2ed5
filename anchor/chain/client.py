"""The anchoring client of :mod:`anchor.chain`: :class:`ChainClient` and its state machine (see
the package docstring)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from anchor.chain.backends import (
    ChainBackend,
    EmbeddedChain,
    Web3Backend,
)
from anchor.chain.ledger import (
    _Ledger,
    ensure_schema,
    list_anchors,
)
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
    BlockInfo,
    CallRequest,
    ChainConfig,
    ChainIdentity,
    ChainUnavailable,
    ExecutionReverted,
    Fees,
    FinalReorg,
    LogInfo,
    ReceiptInfo,
    ReorgStatus,
    RevertReason,
    RpcRejected,
    TxRecord,
    TxState,
    _bump,
    _now_ms,
)
from anchor.contracts import LOG_ANCHOR, load_artifact
from anchor.errors import ChainError, ConfigError, StoreError
from anchor.store import LogStore

log = logging.getLogger("anchor.chain")  # the package's logger, as before the split

T = TypeVar("T")

KEPT_FINAL_REORGS = 100
"""Final anchors lost to reorganisations that the client remembers (newest; the count is
kept in full)."""


# ---- the client -----------------------------------------------------------------------------


class ChainClient:
    """Anchors checkpoints with the LogAnchor contract at ``contract_address`` through
    ``backend``, keeping its state machine in ``store`` (see the module docstring).

    :meth:`step` advances every anchor as far as it can go now; call it periodically (the
    batcher does). It is safe to call again after any error: all state is in the database.
    """

    def __init__(
        self,
        store: LogStore,
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
        self.rebroadcasts = 0
        """Attempts broadcast again because the node had forgotten them (since start)."""
        self._final_reorgs: deque[FinalReorg] = deque(maxlen=KEPT_FINAL_REORGS)
        self._final_reorg_count = 0

    def __repr__(self) -> str:
        return (
            f"ChainClient({self.backend.description}, contract={self.contract_address}, "
            f"account={self.address})"
        )

    @classmethod
    async def open(
        cls, store: LogStore, config: ChainConfig, *, embedded: EmbeddedChain | None = None
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
        chain = embedded or await EmbeddedChain.start(config.chain_key, config.embedded_dir)
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
    def final_reorg_count(self) -> int:
        """Final anchors lost to reorganisations since start (see :meth:`reorg_status`)."""
        return self._final_reorg_count

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
        if previous is not None and previous.same_chain(identity):
            log.warning(
                "the anchoring contract moved on %s from %s to %s (e.g. LogAnchor v1 to v2): "
                "receipts naming %s still verify against its events; the latest checkpoint is "
                "anchored on %s and later receipts name it",
                identity.caip2, previous.contract, identity.contract, previous.contract,
                identity.contract,
            )  # fmt: skip
        elif previous is not None:
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
        self._record_final_reorgs(gone)
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

    async def reorg_status(self) -> ReorgStatus:
        """Final anchors lost to reorganisations since start; an entry is unrecovered until
        a final anchor of at least its size is on the current chain again."""
        lost = tuple(self._final_reorgs)
        unrecovered: tuple[FinalReorg, ...] = ()
        if lost and self._ref is not None:
            covered = await self._db(self._ledger.largest_final_size, self._ref)
            unrecovered = tuple(r for r in lost if r.size > covered)
        return ReorgStatus(self._final_reorg_count, lost[-1] if lost else None, unrecovered)

    def _record_final_reorgs(self, lost: Iterable[AnchorRecord]) -> None:
        now = _now_ms()
        for a in lost:
            if any((r.anchor_id, r.block_hash) == (a.id, a.block_hash) for r in self._final_reorgs):
                continue  # the same loss seen again (its handling was interrupted)
            self._final_reorg_count += 1
            self._final_reorgs.append(
                FinalReorg(a.id, a.size, a.block_number, a.block_hash, a.tx_hash, now)
            )

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
            await self._check_final(ref, head, problems)
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

    async def _check_final(self, ref: int, head: BlockInfo, problems: list[ChainError]) -> None:
        """Re-check the final anchors whose block is within ``reorg_depth`` of the head,
        newest first, one block lookup each: the first whose block is still canonical ends
        the check (its ancestors, which hold every older anchor, are canonical too). One
        that is not was removed by a reorganisation deeper than the confirmations: it is
        included again if its transaction moved to another block, else anchored again."""
        if self.config.reorg_depth == 0:
            return
        recent = await self._db(
            self._ledger.finals_since, ref, head.number - self.config.reorg_depth
        )
        for anchor in recent:
            assert anchor.block_number is not None
            canonical = await self.backend.block(anchor.block_number)
            if canonical is not None and canonical.hash == anchor.block_hash:
                break
            receipt = None
            if anchor.tx_hash is not None:
                receipt = await self.backend.transaction_receipt(anchor.tx_hash)
            tx = None
            if receipt is not None and receipt.block_hash != anchor.block_hash:
                assert anchor.tx_hash is not None
                tx = await self._attempt(ref, anchor.tx_hash, anchor)
            self._record_final_reorgs([anchor])
            if receipt is None or tx is None:
                await self._reorged(ref, anchor, "its final block is no longer canonical")
            else:
                log.warning(
                    "final anchor of tree size %d moved from block %d to block %d after a "
                    "reorganisation deeper than %d confirmations; it is final again once "
                    "confirmed",
                    anchor.size, anchor.block_number, receipt.block_number, self.confirmations,
                )  # fmt: skip
                await self._apply_receipt(ref, tx, receipt, problems)

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
                if await self._resend_forgotten(ref, anchor):
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

    async def _resend_forgotten(self, ref: int, anchor: AnchorRecord) -> bool:
        """When the node knows none of the attempts sent for the anchor's nonce (which the
        caller checked is still unused): dropped from its pool, or mined in a block that a
        reorganisation removed before this service saw it. The newest attempt is broadcast
        again, byte for byte, at once rather than after ``replace_after_seconds``. True
        when it was."""
        assert anchor.nonce is not None
        attempts = await self._db(self._ledger.attempts, ref, anchor.account, anchor.nonce)
        sent = [tx for tx in attempts if tx.state is TxState.SENT]  # newest first
        if not sent:
            return False
        for tx in sent:
            try:
                if await self.backend.transaction(tx.hash) is not None:
                    return False
            except RpcRejected as exc:  # a node without it: replacement after the wait
                log.debug("could not look up transaction 0x%s: %s", tx.hash.hex(), exc.detail)
                return False
        newest = sent[0]
        log.warning(
            "%s forgot the anchor transaction 0x%s (tree size %d, nonce %d); broadcasting it "
            "again",
            self.backend.description, newest.hash.hex(), anchor.size, newest.nonce,
        )  # fmt: skip
        self.rebroadcasts += 1
        try:
            await self._broadcast(ref, newest)
        except RpcRejected as exc:
            # Refused now (e.g. its fee cap is below the base fee). Either its nonce was
            # released (the anchor is pending: sent again later in this step), or it is
            # replaced on the same nonce with current fees at once.
            current = await self._db(self._ledger.anchor, anchor.id)
            if current.state is AnchorState.SUBMITTED and current.account == self.address:
                what = "replacing it now"
            elif current.state is AnchorState.PENDING:
                what = "sending the anchor again as a new transaction"
            else:
                raise
            log.warning(
                "%s refused the forgotten transaction again (%s); %s",
                self.backend.description, exc.rpc_message, what,
            )  # fmt: skip
            if current.state is AnchorState.SUBMITTED:
                await self._maybe_replace(ref, current, wait=False)
        return True

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
