"""The anchoring state machine's steps of :class:`~anchor.chain.ChainClient` (see the package
docstring, "Anchor states" and "Reorgs"): :meth:`AnchorMachine._advance` re-checks recent
final anchors against reorganisations deeper than the confirmations, follows included anchors
to finality (or back to pending after a reorganisation), resolves submitted anchors (mined,
forgotten by the node, nonce used elsewhere, due for a fee bump) and sends pending ones.

Not pure: reads and writes the chain tables (in a worker thread) and talks to the node.
Cost per step: one head read, one block read for the final-anchor re-check, a receipt (and
block) read per included anchor, a receipt read per attempt of each submitted anchor's nonce
and a nonce read per submitted anchor, plus what sending costs (:mod:`anchor.chain.sending`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from anchor.chain.backends import ChainBackend
from anchor.chain.sending import AnchorSender
from anchor.chain.values import (
    AnchorRecord,
    AnchorState,
    BlockInfo,
    ChainConfig,
    ChainUnavailable,
    FinalReorg,
    RpcRejected,
    TxRecord,
    TxState,
    _now_ms,
)
from anchor.errors import ChainError
from anchor.log.store import LogStore

logger = logging.getLogger(__name__)

KEPT_FINAL_REORGS = 100
"""Final anchors lost to reorganisations that the client remembers (newest; the count is
kept in full)."""


class AnchorMachine(AnchorSender):
    """The steps of the state machine of :class:`~anchor.chain.ChainClient` (its base class);
    every method runs under the client's step lock."""

    def __init__(
        self, store: LogStore, backend: ChainBackend, config: ChainConfig, contract_address: str
    ) -> None:
        super().__init__(store, backend, config, contract_address)
        self.rebroadcasts = 0
        """Attempts broadcast again because the node had forgotten them (since start)."""
        self._final_reorgs: deque[FinalReorg] = deque(maxlen=KEPT_FINAL_REORGS)
        self._final_reorg_count = 0

    async def _advance(self, ref: int) -> None:
        """Advance every anchor of chain ``ref`` as far as possible now; raises the first
        :class:`ChainError` met after recording everything it could."""
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
                logger.warning("%s", extra.diagnostics())
            raise problems[0]

    def _record_final_reorgs(self, lost: Iterable[AnchorRecord]) -> None:
        now = _now_ms()
        for a in lost:
            if any((r.anchor_id, r.block_hash) == (a.id, a.block_hash) for r in self._final_reorgs):
                continue  # the same loss seen again (its handling was interrupted)
            self._final_reorg_count += 1
            self._final_reorgs.append(
                FinalReorg(a.id, a.size, a.block_number, a.block_hash, a.tx_hash, now)
            )

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
                    logger.info(
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
            logger.info(
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
                logger.warning(
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
        logger.warning(
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
                logger.info("re-broadcasting transaction 0x%s (nonce %d)", tx.hash.hex(), tx.nonce)
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
                logger.debug("could not look up transaction 0x%s: %s", tx.hash.hex(), exc.detail)
                return False
        newest = sent[0]
        logger.warning(
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
            logger.warning(
                "%s refused the forgotten transaction again (%s); %s",
                self.backend.description, exc.rpc_message, what,
            )  # fmt: skip
            if current.state is AnchorState.SUBMITTED:
                await self._maybe_replace(ref, current, wait=False)
        return True
