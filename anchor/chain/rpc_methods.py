"""The methods of the embedded chain's read-only JSON-RPC endpoint (:mod:`anchor.chain.rpc`)
and their limits: :data:`METHODS` maps each method served to a function of the eth-tester
instance and the request's parameters, which runs on the embedded chain's own thread
(:meth:`~anchor.chain.backends.EmbeddedChain.control`). Reads only: there is no transaction
pool (the embedded chain mines every transaction when it is sent), so ``pending`` reads as
``latest``.

Limits (named constants below): the ``eth_getLogs`` block range, results and filter sizes,
the ``eth_call`` / ``eth_estimateGas`` gas, the ``eth_feeHistory`` block count and
percentiles.

Not pure (reads the chain); no writes. Cost: a block or receipt read is a few database
lookups; ``eth_getLogs`` reads one header per block of its range (its bloom filter) and the
receipts of the blocks that may match; ``eth_feeHistory`` reads each block of its range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from eth._utils.calculations import fake_exponential
from eth.abc import BlockAPI, BlockHeaderAPI
from eth.exceptions import HeaderNotFound, Revert, VMError
from eth.vm.forks.cancun.constants import MIN_BLOB_BASE_FEE
from eth.vm.forks.prague.constants import BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE as BLOB_FEE_FRACTION
from eth.vm.forks.prague.constants import MAX_BLOB_GAS_PER_BLOCK
from eth_bloom.bloom import BloomFilter
from eth_tester.exceptions import BlockNotFound as TesterBlockNotFound
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import TransactionNotFound as TesterTransactionNotFound
from eth_typing import Address, BlockNumber

from anchor import __version__
from anchor.chain.durable import DurableTesterBackend
from anchor.chain.rpc_codec import (
    EXECUTION_REVERTED,
    LIMIT_EXCEEDED,
    RESOURCE_NOT_FOUND,
    _address,
    _block,
    _bloom_hex,
    _bool,
    _data,
    _hash,
    _invalid,
    _log,
    _param,
    _quantity,
    _rpc,
    _transaction,
)
from anchor.errors import JsonRpcError

MAX_LOG_BLOCK_RANGE: Final = 10_000
"""Most blocks one ``eth_getLogs`` may search (``ler-anchor audit`` asks for 5,000)."""
MAX_LOG_RESULTS: Final = 10_000
"""Most logs one ``eth_getLogs`` may return."""
MAX_FILTER_VALUES: Final = 32
"""Most addresses, and most alternatives per topic position, in a log filter."""
MAX_CALL_GAS: Final = 2_000_000
"""Most gas an ``eth_call`` or ``eth_estimateGas`` may use, and what one without ``gas``
gets. Reads of LogAnchor and the ERC-1056 registry need far less: checking a 64-hash proof
on LogAnchor v2 takes 104,000 gas, calldata included. py-evm runs the cheapest loop at about
6,000,000 gas a second, so one call holds the chain's thread for about a third of a second
at most, and an estimate for :data:`~anchor.chain.durable.ESTIMATE_GAS_RUNS` times that."""
MAX_FEE_HISTORY_BLOCKS: Final = 1024
"""Most blocks one ``eth_feeHistory`` may cover."""
MAX_FEE_PERCENTILES: Final = 100
"""Most reward percentiles one ``eth_feeHistory`` may ask for."""
PRIORITY_FEE_WEI: Final = 10**9
"""The tip the embedded chain suggests (``eth_maxPriorityFeePerGas``): 1 gwei."""

_CALL_FIELDS = frozenset(
    {
        "from",
        "to",
        "gas",
        "gasPrice",
        "maxFeePerGas",
        "maxPriorityFeePerGas",
        "value",
        "data",
        "input",
        "nonce",
        "type",
        "chainId",
        "accessList",
    }
)
ZERO_ADDRESS: Final = "0x" + "00" * 20

Tester = Any
"""An ``eth_tester.EthereumTester`` (untyped) whose backend is a DurableTesterBackend."""


# ---- chain reads -----------------------------------------------------------------------------


def _head(tester: Tester) -> int:
    return int(_backend(tester).chain.get_canonical_head().block_number)


def _backend(tester: Tester) -> DurableTesterBackend:
    backend = tester.backend
    assert isinstance(backend, DurableTesterBackend)
    return backend


def _block_number(tester: Tester, value: object, what: str = "block") -> int:
    """A block tag or number, as a number of a mined block (else RESOURCE_NOT_FOUND)."""
    if value is None or value in ("latest", "pending", "safe", "finalized"):
        return _head(tester)
    if value == "earliest":
        return 0
    if isinstance(value, dict):  # EIP-1898
        if "blockHash" in value:
            header = _canonical_header_by_hash(tester, _hash(value["blockHash"], what))
            if header is None:
                raise JsonRpcError(f"no block {value['blockHash']}", code=RESOURCE_NOT_FOUND)
            return int(header.block_number)
        return _block_number(tester, value.get("blockNumber"), what)
    number = _quantity(value, what)
    if number > _head(tester):
        raise JsonRpcError(f"block {number} is not mined yet", code=RESOURCE_NOT_FOUND)
    return number


def _canonical_header_by_hash(tester: Tester, block_hash: bytes) -> BlockHeaderAPI | None:
    chain = _backend(tester).chain
    try:
        header = chain.get_block_header_by_hash(block_hash)  # type: ignore[arg-type]
        canonical = chain.get_canonical_block_header_by_number(header.block_number)
    except HeaderNotFound:
        return None
    return header if canonical.hash == header.hash else None


# ---- methods --------------------------------------------------------------------------------


def _chain_id(tester: Tester, params: Sequence[object]) -> object:
    return hex(_backend(tester).chain.chain_id)


def _net_version(tester: Tester, params: Sequence[object]) -> object:
    return str(_backend(tester).chain.chain_id)


def _client_version(tester: Tester, params: Sequence[object]) -> object:
    return f"ler-anchor/{__version__}/embedded-py-evm"


def _block_number_method(tester: Tester, params: Sequence[object]) -> object:
    return hex(_head(tester))


def _get_block_by_number(tester: Tester, params: Sequence[object]) -> object:
    full = _bool(_param(params, 1, False), "full transactions")
    try:
        number = _block_number(tester, _param(params, 0, "latest"))
    except JsonRpcError as exc:
        if exc.code == RESOURCE_NOT_FOUND:
            return None
        raise
    return _block(tester.get_block_by_number(number, full))


def _get_block_by_hash(tester: Tester, params: Sequence[object]) -> object:
    block_hash = _hash(_param(params, 0), "block hash")
    full = _bool(_param(params, 1, False), "full transactions")
    try:
        return _block(tester.get_block_by_hash("0x" + block_hash.hex(), full))
    except TesterBlockNotFound:
        return None


def _get_transaction_by_hash(tester: Tester, params: Sequence[object]) -> object:
    tx_hash = _hash(_param(params, 0), "transaction hash")
    try:
        tx = tester.get_transaction_by_hash("0x" + tx_hash.hex())
    except TesterTransactionNotFound:
        return None
    number = tx.get("block_number")
    if not isinstance(number, int) or number > _head(tester):
        return None  # not mined (there is no pool: cannot happen outside tests)
    header = _backend(tester).chain.get_canonical_block_header_by_number(BlockNumber(number))
    return _transaction(tx, header.timestamp)


def _get_transaction_receipt(tester: Tester, params: Sequence[object]) -> object:
    tx_hash = _hash(_param(params, 0), "transaction hash")
    backend = _backend(tester)
    try:
        block, _tx, index = backend._locate(tx_hash)
    except TesterTransactionNotFound:
        return None
    if block.number > _head(tester):
        return None  # not mined (there is no pool: cannot happen outside tests)
    receipts = block.get_receipts(backend.chain.chaindb)
    first_log = sum(len(r.logs) for r in receipts[:index])
    receipt = dict(tester.get_transaction_receipt("0x" + tx_hash.hex()))
    receipt.pop("state_root", None)
    if receipt.get("to") == "":
        receipt["to"] = None
    receipt.pop("logs")  # numbered per receipt by eth-tester; block-wide below
    answer = _rpc(receipt)
    assert isinstance(answer, dict)
    answer["logsBloom"] = _bloom_hex(receipts[index].bloom)
    answer["blockTimestamp"] = hex(block.header.timestamp)
    answer["logs"] = [
        _log(block, _tx, index, first_log + i, lg.address, lg.topics, lg.data)
        for i, lg in enumerate(receipts[index].logs)
    ]
    return answer


def _topic_filter(value: object) -> list[list[bytes] | None]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 4:
        raise _invalid("topics must be a list of at most 4 positions")
    positions: list[list[bytes] | None] = []
    for i, position in enumerate(value):
        if position is None:
            positions.append(None)
        elif isinstance(position, str):
            positions.append([_hash(position, f"topic {i}")])
        elif isinstance(position, list) and len(position) <= MAX_FILTER_VALUES:
            if any(p is None for p in position):
                positions.append(None)  # a null alternative matches anything
            else:
                positions.append([_hash(p, f"topic {i}") for p in position])
        else:
            raise _invalid(f"topic {i} must be null, a hash or at most {MAX_FILTER_VALUES}")
    return positions


def _get_logs(tester: Tester, params: Sequence[object]) -> object:
    spec = _param(params, 0, {})
    if not isinstance(spec, dict):
        raise _invalid("the filter must be an object")
    chain = _backend(tester).chain
    if spec.get("blockHash") is not None:
        if "fromBlock" in spec or "toBlock" in spec:
            raise _invalid("give blockHash or fromBlock/toBlock, not both")
        header = _canonical_header_by_hash(tester, _hash(spec["blockHash"], "blockHash"))
        if header is None:
            raise JsonRpcError(f"no block {spec['blockHash']}", code=RESOURCE_NOT_FOUND)
        first = last = int(header.block_number)
    else:
        head = _head(tester)
        first = _block_number_or_beyond(spec.get("fromBlock"), head)
        last = _block_number_or_beyond(spec.get("toBlock"), head)
        if last - first + 1 > MAX_LOG_BLOCK_RANGE:
            raise JsonRpcError(
                f"eth_getLogs covers at most {MAX_LOG_BLOCK_RANGE} blocks; "
                f"asked for {last - first + 1}",
                code=LIMIT_EXCEEDED,
            )
        last = min(last, head)
    raw_addresses = spec.get("address")
    if raw_addresses is None:
        addresses: list[bytes] = []
    elif isinstance(raw_addresses, str):
        addresses = [bytes.fromhex(_address(raw_addresses, "address")[2:])]
    elif isinstance(raw_addresses, list) and len(raw_addresses) <= MAX_FILTER_VALUES:
        addresses = [bytes.fromhex(_address(a, "address")[2:]) for a in raw_addresses]
    else:
        raise _invalid(f"address must be an address or a list of at most {MAX_FILTER_VALUES}")
    topics = _topic_filter(spec.get("topics"))
    found: list[dict[str, Any]] = []
    for number in range(first, last + 1):
        header = chain.get_canonical_block_header_by_number(BlockNumber(number))
        if not _bloom_may_match(header.bloom, addresses, topics):
            continue
        block = chain.get_canonical_block_by_number(BlockNumber(number))
        log_index = 0
        receipts = block.get_receipts(chain.chaindb)
        for tx_index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            for entry in receipt.logs:
                if _log_matches(entry.address, entry.topics, addresses, topics):
                    found.append(
                        _log(
                            block, tx, tx_index, log_index, entry.address, entry.topics, entry.data
                        )
                    )
                    if len(found) > MAX_LOG_RESULTS:
                        raise JsonRpcError(
                            f"more than {MAX_LOG_RESULTS} logs match; narrow the block range",
                            code=LIMIT_EXCEEDED,
                        )
                log_index += 1
    return found


def _block_number_or_beyond(value: object, head: int) -> int:
    if value is None or value in ("latest", "pending", "safe", "finalized"):
        return head
    if value == "earliest":
        return 0
    return _quantity(value, "block")


def _bloom_may_match(
    bloom: int, addresses: Sequence[bytes], topics: Sequence[list[bytes] | None]
) -> bool:
    if not addresses and not any(topics):
        return True
    found = BloomFilter(bloom)
    if addresses and not any(a in found for a in addresses):
        return False
    return all(position is None or any(t in found for t in position) for position in topics)


def _log_matches(
    address: Address | bytes,
    log_topics: Sequence[int],
    addresses: Sequence[bytes],
    topics: Sequence[list[bytes] | None],
) -> bool:
    if addresses and bytes(address) not in addresses:
        return False
    if len(topics) > len(log_topics):
        return not any(topics[len(log_topics) :]) and _log_matches(
            address, log_topics, addresses, topics[: len(log_topics)]
        )
    for wanted, actual in zip(topics, log_topics, strict=False):
        if wanted is not None and actual.to_bytes(32, "big") not in wanted:
            return False
    return True


def _call_request(value: object) -> dict[str, Any]:
    """An ``eth_call`` / ``eth_estimateGas`` transaction object, in eth-tester's form."""
    if not isinstance(value, dict):
        raise _invalid("the transaction must be an object")
    unknown = set(value) - _CALL_FIELDS
    if unknown:
        raise _invalid(f"unknown transaction fields: {', '.join(sorted(unknown))}")
    tx: dict[str, Any] = {"from": _address(value.get("from") or ZERO_ADDRESS, "from")}
    if value.get("to") is not None:
        tx["to"] = _address(value["to"], "to")
    gas = MAX_CALL_GAS if value.get("gas") is None else _quantity(value["gas"], "gas")
    if gas > MAX_CALL_GAS:
        raise JsonRpcError(
            f"gas {gas} is above this endpoint's limit of {MAX_CALL_GAS}", code=LIMIT_EXCEEDED
        )
    tx["gas"] = gas
    if value.get("value") is not None:
        tx["value"] = _quantity(value["value"], "value")
    data = value.get("input", value.get("data"))
    if data is not None:
        tx["data"] = _data(data, "input")
    for name, field in (
        ("gasPrice", "gas_price"),
        ("maxFeePerGas", "max_fee_per_gas"),
        ("maxPriorityFeePerGas", "max_priority_fee_per_gas"),
    ):
        if value.get(name) is not None:
            tx[field] = _quantity(value[name], name)
    if value.get("nonce") is not None:
        tx["nonce"] = _quantity(value["nonce"], "nonce")
    return tx


def _revert(exc: TransactionFailed) -> JsonRpcError:
    from anchor.chain.backends import _tester_revert_data

    data = _tester_revert_data(exc)
    return JsonRpcError("execution reverted", code=EXECUTION_REVERTED, data="0x" + data.hex())


def _call(tester: Tester, params: Sequence[object]) -> object:
    tx = _call_request(_param(params, 0))
    number = _block_number(tester, _param(params, 1, "latest"))
    computation = _backend(tester).simulate(tx, number)
    if computation.is_error:
        raise JsonRpcError(
            "execution reverted",
            code=EXECUTION_REVERTED,
            data="0x" + computation.output.hex(),
        )
    return "0x" + computation.output.hex()


def _estimate_gas(tester: Tester, params: Sequence[object]) -> object:
    tx = _call_request(_param(params, 0))
    number = _block_number(tester, _param(params, 1, "latest"))
    try:
        return hex(_backend(tester).estimate(tx, number))
    except Revert as exc:
        data = exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else b""
        raise JsonRpcError(
            "execution reverted", code=EXECUTION_REVERTED, data="0x" + data.hex()
        ) from exc
    except VMError as exc:
        raise JsonRpcError(
            f"execution fails with {tx['gas']} gas: {type(exc).__name__}",
            code=EXECUTION_REVERTED,
        ) from exc


def _account_read(name: str) -> Callable[[Tester, Sequence[object]], object]:
    def read(tester: Tester, params: Sequence[object]) -> object:
        address = _address(_param(params, 0), "address")
        number = _block_number(tester, _param(params, 1, "latest"))
        value = getattr(tester, name)(address, number)
        return "0x" + bytes.fromhex(value[2:]).hex() if isinstance(value, str) else hex(value)

    return read


def _get_storage_at(tester: Tester, params: Sequence[object]) -> object:
    address = _address(_param(params, 0), "address")
    slot = _quantity(_param(params, 1), "slot")
    number = _block_number(tester, _param(params, 2, "latest"))
    header = _backend(tester).chain.get_canonical_block_header_by_number(BlockNumber(number))
    state = _backend(tester).chain.get_vm(header).state
    value = state.get_storage(bytes.fromhex(address[2:]), slot)  # type: ignore[arg-type]
    return "0x" + value.to_bytes(32, "big").hex()


def _next_base_fee(tester: Tester) -> int:
    return int(_backend(tester).chain.header.base_fee_per_gas or 0)


def _gas_price(tester: Tester, params: Sequence[object]) -> object:
    return hex(_next_base_fee(tester) + PRIORITY_FEE_WEI)


def _max_priority_fee(tester: Tester, params: Sequence[object]) -> object:
    return hex(PRIORITY_FEE_WEI)


def _fee_history(tester: Tester, params: Sequence[object]) -> object:
    raw_count = _param(params, 0)
    count = raw_count if isinstance(raw_count, int) else _quantity(raw_count, "block count")
    if isinstance(count, bool) or not 1 <= count <= MAX_FEE_HISTORY_BLOCKS:
        raise JsonRpcError(
            f"block count must be between 1 and {MAX_FEE_HISTORY_BLOCKS}", code=LIMIT_EXCEEDED
        )
    newest = _block_number(tester, _param(params, 1, "latest"), "newest block")
    raw_percentiles = _param(params, 2, [])
    if not isinstance(raw_percentiles, list) or len(raw_percentiles) > MAX_FEE_PERCENTILES:
        raise _invalid(f"reward percentiles must be a list of at most {MAX_FEE_PERCENTILES}")
    percentiles: list[float] = []
    for p in raw_percentiles:
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 100:
            raise _invalid("each reward percentile must be a number from 0 to 100")
        if percentiles and p < percentiles[-1]:
            raise _invalid("reward percentiles must be increasing")
        percentiles.append(float(p))
    chain = _backend(tester).chain
    oldest = max(0, newest - count + 1)
    base_fees: list[str] = []
    ratios: list[float] = []
    blob_fees: list[str] = []
    blob_ratios: list[float] = []
    rewards: list[list[str]] = []
    for number in range(oldest, newest + 1):
        block = chain.get_canonical_block_by_number(BlockNumber(number))
        header = block.header
        base_fee = int(header.base_fee_per_gas or 0)
        base_fees.append(hex(base_fee))
        ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
        blob_fees.append(hex(_blob_base_fee(header.excess_blob_gas)))
        blob_ratios.append(header.blob_gas_used / MAX_BLOB_GAS_PER_BLOCK)
        if percentiles:
            rewards.append([hex(r) for r in _rewards(chain, block, base_fee, percentiles)])
    if newest == _head(tester):
        following = chain.header
    else:
        following = chain.get_canonical_block_header_by_number(BlockNumber(newest + 1))
    base_fees.append(hex(int(following.base_fee_per_gas or 0)))
    blob_fees.append(hex(_blob_base_fee(following.excess_blob_gas)))
    answer: dict[str, object] = {
        "oldestBlock": hex(oldest),
        "baseFeePerGas": base_fees,
        "gasUsedRatio": ratios,
        "baseFeePerBlobGas": blob_fees,
        "blobGasUsedRatio": blob_ratios,
    }
    if percentiles:
        answer["reward"] = rewards
    return answer


def _blob_base_fee(excess_blob_gas: int) -> int:
    """The blob base fee (EIP-4844) of a block with this excess blob gas (Prague's rule)."""
    return int(fake_exponential(MIN_BLOB_BASE_FEE, excess_blob_gas, BLOB_FEE_FRACTION))


def _rewards(chain: Any, block: BlockAPI, base_fee: int, percentiles: list[float]) -> list[int]:
    """Each percentile of the block's tips, weighted by gas used (as nodes compute it)."""
    if not block.transactions:
        return [0] * len(percentiles)
    receipts = block.get_receipts(chain.chaindb)
    used: list[tuple[int, int]] = []
    previous = 0
    for tx, receipt in zip(block.transactions, receipts, strict=True):
        tip = min(tx.max_priority_fee_per_gas, tx.max_fee_per_gas - base_fee)
        used.append((tip, receipt.gas_used - previous))
        previous = receipt.gas_used
    used.sort()
    total = sum(gas for _, gas in used)
    out: list[int] = []
    for p in percentiles:
        threshold = total * p / 100
        running = 0
        chosen = used[-1][0]
        for tip, gas in used:
            running += gas
            if running >= threshold:
                chosen = tip
                break
        out.append(chosen)
    return out


def _constant(value: object) -> Callable[[Tester, Sequence[object]], object]:
    def answer(tester: Tester, params: Sequence[object]) -> object:
        return value

    return answer


METHODS: Final[dict[str, Callable[[Tester, Sequence[object]], object]]] = {
    "eth_chainId": _chain_id,
    "net_version": _net_version,
    "net_listening": _constant(True),
    "web3_clientVersion": _client_version,
    "eth_syncing": _constant(False),
    "eth_accounts": _constant([]),
    "eth_blockNumber": _block_number_method,
    "eth_getBlockByNumber": _get_block_by_number,
    "eth_getBlockByHash": _get_block_by_hash,
    "eth_getTransactionByHash": _get_transaction_by_hash,
    "eth_getTransactionReceipt": _get_transaction_receipt,
    "eth_getLogs": _get_logs,
    "eth_call": _call,
    "eth_estimateGas": _estimate_gas,
    "eth_getCode": _account_read("get_code"),
    "eth_getBalance": _account_read("get_balance"),
    "eth_getTransactionCount": _account_read("get_nonce"),
    "eth_getStorageAt": _get_storage_at,
    "eth_gasPrice": _gas_price,
    "eth_maxPriorityFeePerGas": _max_priority_fee,
    "eth_feeHistory": _fee_history,
}
"""The methods served: reads only."""
