"""The anchoring client of :mod:`anchor.chain`: :class:`ChainClient` wires the state machine
(:mod:`anchor.chain.machine`, :mod:`anchor.chain.sending`) to a backend, the database and the
chain identity: it opens and closes the backend (or the embedded chain), creates the chain
tables when it is made (the service opens it once at start: read paths never create them),
records the chain identity at start (checking that the final anchors recorded for it are
still there), serialises :meth:`ChainClient.step` and answers the queries of the service.

Not pure: reads and writes the chain tables and talks to the node. Cost: :meth:`start` reads
the chain id, the genesis block, the contract code and one receipt per lost final anchor;
a query is one indexed read; a step is described in :mod:`anchor.chain.machine`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from anchor.chain.backends import (
    ChainBackend,
    EmbeddedChain,
    Web3Backend,
)
from anchor.chain.ledger import (
    ensure_schema,
    list_anchors,
)
from anchor.chain.machine import KEPT_FINAL_REORGS, AnchorMachine
from anchor.chain.values import (
    AnchorRecord,
    AnchorState,
    ChainConfig,
    ChainIdentity,
    FinalReorg,
    ReorgStatus,
    RevertReason,
    TxRecord,
)
from anchor.errors import ChainError, ConfigError
from anchor.log.store import LogStore

logger = logging.getLogger(__name__)

__all__ = ["KEPT_FINAL_REORGS", "ChainClient"]


# ---- the client -----------------------------------------------------------------------------


class ChainClient(AnchorMachine):
    """Anchors checkpoints with the LogAnchor contract at ``contract_address`` through
    ``backend``, keeping its state machine in ``store`` (see the package docstring); the
    steps are its base :class:`~anchor.chain.machine.AnchorMachine`'s, sending and receipts
    :class:`~anchor.chain.sending.AnchorSender`'s.

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
        super().__init__(store, backend, config, contract_address)
        self.embedded = embedded
        self._owns_backend = owns_backend
        self._owns_embedded = owns_embedded
        self._lock = asyncio.Lock()

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
            logger.warning(
                "the anchoring contract moved on %s from %s to %s (e.g. LogAnchor v1 to v2): "
                "receipts naming %s still verify against its events; the latest checkpoint is "
                "anchored on %s and later receipts name it",
                identity.caip2, previous.contract, identity.contract, previous.contract,
                identity.contract,
            )  # fmt: skip
        elif previous is not None:
            logger.warning(
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
        logger.warning(
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

    # -- the state machine ------------------------------------------------------------------

    async def step(self) -> None:
        """Advance every anchor of the current chain as far as possible now.

        Raises the first :class:`ChainError` met (after recording everything it could);
        calling again later continues from the recorded state.
        """
        async with self._lock:
            _, ref = await self._started()
            await self._advance(ref)
