"""Chain backends of :mod:`anchor.chain`: the :class:`ChainBackend` protocol, :class:`Web3Backend`
over any JSON-RPC endpoint, and the embedded in-process chain (:class:`EmbeddedChain`)."""

from __future__ import annotations

import ast
import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

import aiohttp
from eth.db.atomic import AtomicDB
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import BlockNotFound as TesterBlockNotFound
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_typing import BlockIdentifier, BlockNumber, ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
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

from anchor.chain.contracts import LOG_ANCHOR_V2, deploy, load_artifact
from anchor.chain.durable import (
    CHAIN_FILE_NAME,
    DurableTesterBackend,
    SQLiteKeyValue,
    new_chain,
    open_chain,
)
from anchor.chain.values import (
    DEFAULT_RPC_TIMEOUT_SECONDS,
    EMBEDDED_FUNDING_WEI,
    EMBEDDED_GENESIS_SALT_BYTES,
    BlockInfo,
    CallRequest,
    ChainUnavailable,
    ExecutionReverted,
    FeeHistory,
    LogInfo,
    ReceiptInfo,
    RpcRejected,
    TransactionInfo,
    _public_url,
)
from anchor.errors import ConfigError, StoreError

logger = logging.getLogger(__name__)

T = TypeVar("T")


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

    async def transaction(self, tx_hash: bytes) -> TransactionInfo | None:
        """The transaction as the node knows it (pending or mined), None if it does not."""
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

    async def transaction(self, tx_hash: bytes) -> TransactionInfo | None:
        async def get() -> TransactionInfo | None:
            try:
                data = await self.w3.eth.get_transaction(HexStr("0x" + tx_hash.hex()))
            except TransactionNotFound:
                return None
            number = data.get("blockNumber")
            return TransactionInfo(
                hash=bytes(data["hash"]),
                nonce=int(data["nonce"]),
                block_number=None if number is None else int(number),
            )

        return await self._rpc("eth_getTransactionByHash", get())

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


def _open_tester(
    directory: Path | None,
) -> tuple[EthereumTesterProvider, SQLiteKeyValue | None, bool]:
    """The embedded chain's provider: the chain kept in ``directory`` (made there if it holds
    none), or a chain in memory. Also returns its store and whether the chain is new."""
    salt = secrets.token_bytes(EMBEDDED_GENESIS_SALT_BYTES)
    genesis = PyEVMBackend.generate_genesis_params(overrides={"extra_data": salt})
    store: SQLiteKeyValue | None = None
    if directory is None:
        chain, fresh = new_chain(AtomicDB(), genesis), True
    else:
        store = SQLiteKeyValue(directory / CHAIN_FILE_NAME)
        recorded = store.meta(META_GENESIS)
        if recorded is None:
            chain, fresh = new_chain(AtomicDB(store), genesis), True
            store.flush({META_GENESIS: chain.get_canonical_head().hash.hex()})
        else:
            chain, fresh = open_chain(AtomicDB(store)), False
            found = chain.get_canonical_block_header_by_number(BlockNumber(0)).hash.hex()
            if found != recorded:
                store.close()
                raise StoreError(
                    f"the embedded chain in {directory} is damaged: its genesis block is "
                    f"0x{found}, its record says 0x{recorded}",
                    hint="restore the chain directory from a backup",
                )
    tester = EthereumTester(DurableTesterBackend(chain, store))
    return EthereumTesterProvider(tester), store, fresh


META_GENESIS = "genesis"
META_OWNER = "owner"
META_CONTRACT = "contract:"
"""Names in the embedded chain's ``meta`` table: its genesis hash, the account that deployed
its contracts, and each contract's address (``contract:<artifact name>``)."""


class EmbeddedChain:
    """The in-process chain (eth-tester over py-evm) with LogAnchor deployed by ``owner``.

    Kept in a directory (:mod:`anchor.chain.durable`), it is the same chain after every
    restart, its contracts deployed once; without one it lives in memory as long as this
    object. :meth:`control` runs code against the ``EthereumTester`` (mining, snapshots)
    on the chain's thread, for tests and tools.
    """

    def __init__(
        self,
        backend: Web3Backend,
        executor: ThreadPoolExecutor,
        sync_provider: EthereumTesterProvider,
        contract_address: ChecksumAddress,
        store: SQLiteKeyValue | None = None,
    ) -> None:
        self.backend = backend
        self.contract_address = contract_address
        self._executor = executor
        self._sync_provider = sync_provider
        self._store = store
        self._meta: dict[str, str] = {}
        self.durable = store is not None
        """True when the chain is kept on disk."""

    @classmethod
    async def start(cls, owner_key: bytes, directory: Path | None = None) -> EmbeddedChain:
        """The chain kept in ``directory`` (or a new one in memory). A new chain funds the
        owner key's account, which deploys LogAnchor (v2); a kept one must have the same owner."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-chain")
        loop = asyncio.get_running_loop()
        try:
            sync_provider, store, fresh = await loop.run_in_executor(
                executor, _open_tester, directory
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        backend = Web3Backend(
            AsyncWeb3(_ThreadedTesterProvider(sync_provider, executor)),
            description="the embedded chain",
        )
        owner: LocalAccount = Account.from_key(owner_key)
        chain = cls(backend, executor, sync_provider, to_checksum_address("0x" + "00" * 20), store)
        try:
            recorded_owner = await chain._recorded(META_OWNER)
            if recorded_owner is not None and recorded_owner != owner.address:
                raise ConfigError(
                    f"the embedded chain in {directory} was made for the anchoring account "
                    f"{recorded_owner}, not {owner.address}",
                    hint="restore the chain key file it was made with, or move the chain "
                    "directory away to start a new chain (its receipts then no longer verify)",
                )
            if fresh or recorded_owner is None:
                await chain.fund(owner.address, EMBEDDED_FUNDING_WEI)
                await chain._record(META_OWNER, owner.address)
            chain.contract_address = await chain.deploy_once(LOG_ANCHOR_V2, owner_key)
        except BaseException:
            await chain.close()
            raise
        logger.info(
            "embedded chain %s; LogAnchor at %s",
            "started" if fresh else f"opened from {directory}",
            chain.contract_address,
        )
        return chain

    async def _recorded(self, name: str) -> str | None:
        if self._store is None:
            return self._meta.get(name)
        store = self._store
        return await asyncio.get_running_loop().run_in_executor(self._executor, store.meta, name)

    async def _record(self, name: str, value: str) -> None:
        self._meta[name] = value
        if self._store is not None:
            store = self._store
            await asyncio.get_running_loop().run_in_executor(
                self._executor, store.flush, {name: value}
            )

    async def deploy_once(self, name: str, owner_key: bytes) -> ChecksumAddress:
        """The address of the artifact ``name`` on this chain, deployed by ``owner_key`` the
        first time it is asked for (and recorded with the chain)."""
        recorded = await self._recorded(META_CONTRACT + name)
        if recorded is not None:
            address = to_checksum_address(recorded)
            if await self.backend.code(address):
                return address
            logger.warning("the embedded chain lost contract %s at %s; deploying it again",
                        name, address)  # fmt: skip
        address = await self.deploy(name, owner_key)
        await self._record(META_CONTRACT + name, address)
        return address

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
        if self._store is not None:
            store, self._store = self._store, None
            await asyncio.get_running_loop().run_in_executor(self._executor, store.close)
        self._executor.shutdown(wait=True)
