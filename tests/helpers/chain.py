"""Helpers for the chain, batcher and receipt tests: one :class:`Chain` interface over the
embedded chain and a private anvil node (mining control, reorgs, extra accounts), a log on a
temporary SQLite file, a TCP proxy whose port can be closed and reopened (an RPC endpoint
that goes away and comes back), and the receipt mutation checks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak

from anchor.chain import (
    ANCHORED_TOPIC,
    GWEI,
    AnchorState,
    ChainBackend,
    ChainClient,
    ChainConfig,
    EmbeddedChain,
    LogInfo,
    Web3Backend,
    list_anchors,
)
from anchor.chain.batcher import Batcher, BatcherConfig
from anchor.chain.contracts import LOG_ANCHOR_V2, deploy, load_artifact
from anchor.core.checkpoint import NoteSigner
from anchor.core.entry import Entry, EntryKind
from anchor.errors import VerificationError
from anchor.log.log import Log
from anchor.log.store import SQLiteStore
from anchor.verify.receipt import verify_receipt
from anchor.verify.trust import TrustRoot
from helpers.anvil import HOST, AnvilNode, free_port

EMBEDDED = "embedded"
ANVIL = "anvil"
CHAINS = [EMBEDDED, pytest.param(ANVIL, marks=pytest.mark.anvil)]
"""Parameters of the ``chain`` fixture each test module defines."""

POLL_SECONDS = 0.02
"""Poll interval of the clients and batchers under test."""
WAIT_SECONDS = 20.0
"""Longest a test waits for a state (a failure, not a slow pass, when reached)."""
LOG_ORIGIN = "ler-anchor.test/log"
SUBMITTER = "did:web:college.example"
OWNER_KEY = hashlib.sha256(b"LER Anchor test owner").digest()
"""The embedded chain's anchoring (owner) key; anvil tests use anvil's first account."""
OTHER_KEY = hashlib.sha256(b"LER Anchor test other account").digest()
FUNDING_WEI = 10**20


def entry(i: int) -> Entry:
    return Entry(EntryKind.CREDENTIAL, hashlib.sha256(i.to_bytes(8, "big")).digest(), SUBMITTER)


LOG_SIGNER = NoteSigner(LOG_ORIGIN, hashlib.sha256(b"log key").digest())
"""The checkpoint key of the logs :func:`open_log` opens."""


def open_log(path: Path) -> Log:
    """A log on the SQLite file ``path`` (open it twice for a "restarted service")."""
    return Log(SQLiteStore(path), LOG_SIGNER)


@dataclass
class Chain:
    """A chain under test: embedded or a private anvil node, with LogAnchor deployed by the
    owner, and the knobs the tests need."""

    name: str
    owner_key: bytes = field(repr=False)
    other_key: bytes = field(repr=False)
    contract: str
    backend: ChainBackend
    embedded: EmbeddedChain | None = None
    node: AnvilNode | None = None

    @property
    def rpc_url(self) -> str | None:
        return None if self.node is None else self.node.rpc_url

    def config(self, **overrides: Any) -> ChainConfig:
        settings: dict[str, Any] = {
            "chain_key": self.owner_key,
            "rpc_url": self.rpc_url,
            "contract_address": self.contract,
            "confirmations": 1,
            "poll_interval": POLL_SECONDS,
            "replace_after_seconds": 60.0,
        }
        settings.update(overrides)
        return ChainConfig(**settings)

    async def client(self, store: SQLiteStore, **overrides: Any) -> ChainClient:
        return await ChainClient.open(store, self.config(**overrides), embedded=self.embedded)

    async def set_automine(self, enabled: bool) -> None:
        if self.node is not None:
            self.node.set_automine(enabled)
        elif enabled:
            await self._control(lambda t: t.enable_auto_mine_transactions())
        else:
            await self._control(lambda t: t.disable_auto_mine_transactions())

    async def mine(self, blocks: int = 1) -> None:
        if self.node is not None:
            self.node.mine(blocks)
        else:
            await self._control(lambda t: t.mine_blocks(blocks))

    async def snapshot(self) -> Any:
        if self.node is not None:
            return self.node.snapshot()
        return await self._control(lambda t: t.take_snapshot())

    async def reorg(self, snapshot: Any, depth: int) -> None:
        """Replace the last ``depth`` blocks (mined after ``snapshot``) by a longer branch
        without their transactions: ``anvil_reorg`` on anvil; on the embedded chain, a revert
        to the snapshot and ``depth + 1`` new blocks."""
        if self.node is not None:
            self.node.reorg(depth)
            return
        await self._control(lambda t: t.revert_to_snapshot(snapshot))
        await self.mine(depth + 1)

    async def fund(self, address: str) -> None:
        if self.embedded is not None:
            await self.embedded.fund(address, FUNDING_WEI)

    async def anchored_events(self) -> list[LogInfo]:
        return await self.backend.logs(self.contract, [ANCHORED_TOPIC], 0, "latest")

    async def send_call(
        self, key: bytes, function: str, types: list[str], args: list[Any], *, tip: int = GWEI
    ) -> bytes:
        """Sign and send a call of the contract's ``function`` with ``key`` (test side)."""
        account = Account.from_key(key)
        data = keccak(text=f"{function}({','.join(types)})")[:4] + encode(types, args)
        latest = await self.backend.block("latest")
        assert latest is not None
        base_fee = latest.base_fee or GWEI
        transaction = {
            "type": 2,
            "chainId": await self.backend.chain_id(),
            "nonce": await self.backend.transaction_count(account.address, "pending"),
            "to": self.contract,
            "value": 0,
            "data": "0x" + data.hex(),
            "gas": 200_000,
            "maxFeePerGas": 4 * base_fee + tip,
            "maxPriorityFeePerGas": tip,
        }
        signed = account.sign_transaction(transaction)
        return await self.backend.send_raw_transaction(bytes(signed.raw_transaction))

    async def _control(self, action: Callable[[Any], Any]) -> Any:
        assert self.embedded is not None
        return await self.embedded.control(action)

    async def close(self) -> None:
        if self.embedded is not None:
            await self.embedded.close()
        else:
            await self.backend.close()


async def open_chain(name: str, anvil_factory: Callable[..., AnvilNode], *anvil_args: str) -> Chain:
    """A fresh embedded chain, or a fresh anvil node (started with ``anvil_args``), with
    LogAnchor deployed."""
    if name == EMBEDDED:
        embedded = await EmbeddedChain.start(OWNER_KEY)
        chain = Chain(
            name=name,
            owner_key=OWNER_KEY,
            other_key=OTHER_KEY,
            contract=embedded.contract_address,
            backend=embedded.backend,
            embedded=embedded,
        )
        await chain.fund(Account.from_key(OTHER_KEY).address)
        return chain
    node = anvil_factory(*anvil_args)
    owner = node.accounts[0]
    deployment = await asyncio.to_thread(deploy, node.web3(), load_artifact(LOG_ANCHOR_V2), owner)
    return Chain(
        name=name,
        owner_key=bytes(owner.key),
        other_key=bytes(node.accounts[1].key),
        contract=deployment.address,
        backend=await Web3Backend.connect(node.rpc_url),
        node=node,
    )


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


def holds(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``predicate`` as a condition for :func:`wait_for`."""

    async def check() -> bool:
        return predicate()

    return check


# ---- receipts --------------------------------------------------------------------------------


def _flip_base64(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


def _flip_hex(text: str) -> str:
    last = "1" if text[-1] != "1" else "2"
    return text[:-1] + last


def _mutated(receipt: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(receipt)
    change(copied)
    return copied


RECEIPT_MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "entry bytes": (lambda r: r["entry"].update(bytes=_flip_base64(r["entry"]["bytes"])), "entry"),
    "entry digest": (lambda r: r["entry"].update(digest=_flip_hex(r["entry"]["digest"])), "entry"),
    "proof": (
        lambda r: r["inclusionProof"].__setitem__(0, _flip_base64(r["inclusionProof"][0])),
        "proof",
    ),
    "root": (
        lambda r: r["checkpoint"].update(root=_flip_base64(r["checkpoint"]["root"])),
        "checkpoint",
    ),
    "transaction hash": (
        lambda r: r["anchor"].update(transactionHash=_flip_hex(r["anchor"]["transactionHash"])),
        "transaction",
    ),
    "block hash": (
        lambda r: r["anchor"].update(blockHash=_flip_hex(r["anchor"]["blockHash"])),
        "block",
    ),
}
"""Single changes to a receipt, and the ``what`` of the VerificationError each must raise."""


async def trust_root(chain: Chain, log: Log | None = None) -> TrustRoot:
    """The trust root of ``log`` (default: the logs :func:`open_log` opens) anchored by
    ``chain``'s LogAnchor: what a verifier pins, known without looking at any receipt."""
    verifier = (log.signer if log is not None else LOG_SIGNER).verifier
    chain_id = await chain.backend.chain_id()
    return TrustRoot(verifier.name, verifier.vkey(), f"eip155:{chain_id}", chain.contract)


async def assert_receipt_sound(receipt: dict[str, Any], chain: Chain) -> None:
    """The receipt verifies on ``chain`` against its trust root, and fails after each single
    mutation (entry, proof, root, transaction hash, block hash) with the right ``what``."""
    trust = await trust_root(chain)
    check = await verify_receipt(receipt, chain.backend, trust=trust)
    assert check.receipt.leaf_index == receipt["leafIndex"]
    for label, (change, what) in RECEIPT_MUTATIONS.items():
        with pytest.raises(VerificationError) as caught:
            await verify_receipt(_mutated(receipt, change), chain.backend, trust=trust)
        assert caught.value.what == what, (label, caught.value.detail)


# ---- an endpoint that goes away ----------------------------------------------------------------


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_port``. :meth:`close_port` closes the
    listening socket and every open connection (clients get "connection refused");
    :meth:`open_port` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def open_port(self) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, self.port)

    async def close_port(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()


ANCHORS_PER_BLOCK = 10
"""Anchor transactions mined per block by :func:`anchor_directly`."""


async def anchor_directly(client: ChainClient, count: int, *, first_size: int = 1) -> None:
    """Give ``client`` (on an embedded chain) ``count`` final anchors fast: the anchor
    transactions are signed by its key and mined :data:`ANCHORS_PER_BLOCK` to a block on
    the chain's thread, then recorded in its ledger as the client records them (attempt,
    mined at the event's block and log index, final). Much faster than stepping the client
    through each anchor (gas estimation, fee queries, receipts), for tests and benchmarks of
    logs with many anchors."""
    from anchor.chain import Fees, ReceiptInfo
    from anchor.chain.ledger import _Ledger

    embedded = client.embedded
    identity = client.identity
    assert embedded is not None
    assert identity is not None
    account = Account.from_key(client.config.chain_key)
    fees = Fees(100 * GWEI, GWEI)
    gas = 120_000
    selector = keccak(text="anchor(bytes32,uint64)")[:4]
    start_nonce = await client.backend.transaction_count(account.address, "latest")
    sizes = range(first_size, first_size + count)
    roots = {size: hashlib.sha256(b"anchor %d" % size).digest() for size in sizes}

    def send(tester: Any) -> list[tuple[int, int, bytes, bytes, ReceiptInfo, int, int]]:
        backend = tester.backend  # below eth-tester's auto-mining: blocks of several
        chain = backend.chain
        pending: list[tuple[int, int, bytes, bytes]] = []
        mined: list[tuple[int, int, bytes, bytes, ReceiptInfo, int, int]] = []

        def mine() -> None:
            (block_hash,) = backend.mine_blocks()
            block = chain.get_block_by_hash(block_hash)
            receipts = block.get_receipts(chain.chaindb)
            log_index = 0  # block-wide, as nodes number logs
            for (size, nonce, tx_hash, raw), receipt in zip(pending, receipts, strict=True):
                assert receipt.state_root == b"\x01", f"anchor of size {size} reverted"
                info = ReceiptInfo(tx_hash, 1, block.number, block.hash, 0, ())
                mined.append((size, nonce, tx_hash, raw, info, log_index, block.header.timestamp))
                log_index += len(receipt.logs)
            pending.clear()

        for i, size in enumerate(sizes):
            signed = account.sign_transaction(
                {
                    "type": 2,
                    "chainId": identity.chain_id,
                    "nonce": start_nonce + i,
                    "to": client.contract_address,
                    "value": 0,
                    "data": selector + encode(["bytes32", "uint64"], [roots[size], size]),
                    "gas": gas,
                    "maxFeePerGas": fees.max_fee,
                    "maxPriorityFeePerGas": fees.max_priority_fee,
                }
            )
            raw = bytes(signed.raw_transaction)
            backend.send_raw_transaction(raw)
            pending.append((size, start_nonce + i, bytes(signed.hash), raw))
            if len(pending) == ANCHORS_PER_BLOCK:
                mine()
        if pending:
            mine()
        return mined

    mined = await embedded.control(send)
    ledger = _Ledger(client.store)

    def record() -> None:
        ref, _ = ledger.adopt_identity(identity)
        for size, nonce, tx_hash, raw, receipt, log_index, block_time in mined:
            anchor = ledger.enqueue(ref, account.address, size, roots[size])
            tx = ledger.record_attempt(
                anchor.id, ref, account.address, nonce, gas, fees, tx_hash, raw
            )
            ledger.mark_mined(ref, tx, receipt, log_index, block_time)
            ledger.mark_final(anchor.id)

    await asyncio.to_thread(record)


# --- a batcher in the background (batcher, backup and verification tests) ------------------


def fast(**overrides: float) -> BatcherConfig:
    settings = {"anchor_interval": 1000.0, "poll_interval": POLL_SECONDS, "max_backoff": 0.2}
    settings.update(overrides)
    return BatcherConfig(
        anchor_interval=settings["anchor_interval"],
        anchor_size=int(settings.get("anchor_size", 10_000)),
        poll_interval=settings["poll_interval"],
        max_backoff=settings["max_backoff"],
    )


def all_final(log: Log, count: int) -> Callable[[], Awaitable[bool]]:
    def check() -> bool:
        anchors = list_anchors(log.store)
        return len(anchors) == count and all(a.state is AnchorState.FINAL for a in anchors)

    return holds(check)


class Running:
    """A batcher running in the background, closed (and awaited) on exit."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Batcher:
        self.task = asyncio.create_task(self.batcher.run())
        return self.batcher

    async def __aexit__(self, *exc: object) -> None:
        await self.batcher.close()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=10)
