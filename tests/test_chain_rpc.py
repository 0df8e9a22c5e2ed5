"""``POST /v1/chain/rpc``: the embedded chain's read-only JSON-RPC endpoint, served by the real
application over a socket. Its read methods answer in the shape anvil answers (the same
contract deployed on both and read with the same requests); writes and unknown methods answer
JSON-RPC errors and change nothing; the limits hold; on an external chain it is a 404."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers.anvil import AnvilNode
from helpers.service import service_config

from anchor import keys
from anchor.chain import rpc
from anchor.chain.contracts import LOG_ANCHOR, LOG_ANCHOR_V2, deploy, load_artifact
from anchor.http.app import create_app
from anchor.http.appkeys import CHAIN, CHAIN_RPC

PATH = "/v1/chain/rpc"
LOOP_FOREVER = "0x5b600056"  # init code JUMPDEST PUSH1 0 JUMP: burns all the gas it is given
OWNER_SELECTOR = "0x8da5cb5b"  # owner()
ANCHOR_SELECTOR = "0xdb2c4aca"  # anchor(bytes32,uint64)


async def call(client: TestClient, method: str, *params: object) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
    resp = await client.post(PATH, json=body)
    assert resp.status == 200
    answer: dict[str, Any] = await resp.json()
    assert answer["id"] == 7
    return answer


async def result(client: TestClient, method: str, *params: object) -> Any:
    answer = await call(client, method, *params)
    assert "error" not in answer, answer
    return answer["result"]


def counting_loop(turns: int) -> str:
    """Init code that counts ``turns`` down (26 gas a turn), then stops: it succeeds with
    enough gas and fails with one less."""
    return "0x62" + turns.to_bytes(3, "big").hex() + "5b600190038060045700"


def anvil_call(node: AnvilNode, method: str, *params: object) -> dict[str, Any]:
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})
    request = urllib.request.Request(
        node.rpc_url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def shape(value: object) -> object:
    """The JSON shape of an answer: keys, and for strings whether hex data or a quantity."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    if isinstance(value, str) and value.startswith("0x"):
        return "quantity" if len(value) < 18 or len(value) % 2 else f"data{len(value)}"
    return type(value).__name__


def assert_same_shape(ours: object, theirs: object, where: str, optional: set[str]) -> None:
    """Every field anvil gives, ours gives too, in the same form (``optional``: fields of
    chain features the embedded chain does not have)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        missing = set(theirs) - set(ours) - optional
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key in set(theirs) & set(ours):
            assert_same_shape(ours[key], theirs[key], f"{where}.{key}", optional)
    elif isinstance(theirs, list):
        assert isinstance(ours, list), where
        if ours and theirs:
            assert_same_shape(ours[0], theirs[0], where + "[0]", optional)
    elif theirs in ("quantity",) or str(theirs).startswith("data"):
        assert ours in ("quantity",) or str(ours).startswith("data"), f"{where}: {ours}"
    elif where.endswith(".blockTimestamp") and theirs == "int":
        assert ours == "quantity", where  # anvil answers a number here, the spec a quantity
    else:
        assert ours == theirs, f"{where}: {ours} != {theirs}"


@pytest.mark.anvil
async def test_reads_answer_like_anvil(client: TestClient, anvil: AnvilNode) -> None:
    snapshot = anvil.snapshot()
    try:
        deployment = await asyncio.to_thread(
            deploy, anvil.web3(), load_artifact(LOG_ANCHOR_V2), anvil.accounts[0]
        )
        theirs_contract = deployment.address
        ours_contract = client.app[CHAIN].contract_address
        deploy_tx_theirs = "0x" + bytes(deployment.receipt["transactionHash"]).hex()
        ours_deploy_block = await result(client, "eth_getBlockByNumber", "0x2", False)
        deploy_tx_ours = ours_deploy_block["transactions"][0]
        receipt_theirs = anvil_call(anvil, "eth_getTransactionReceipt", deploy_tx_theirs)
        block_theirs = receipt_theirs["result"]["blockNumber"]
        optional = {"blobGasPrice"}  # no blobs on the embedded chain
        pairs = [
            (("eth_getBlockByNumber", "latest", False), ("eth_getBlockByNumber", "latest", False)),
            (("eth_getBlockByNumber", "0x2", True), ("eth_getBlockByNumber", block_theirs, True)),
            (("eth_getTransactionByHash", deploy_tx_ours),
             ("eth_getTransactionByHash", deploy_tx_theirs)),
            (("eth_getTransactionReceipt", deploy_tx_ours),
             ("eth_getTransactionReceipt", deploy_tx_theirs)),
            (("eth_getLogs", {"address": ours_contract, "fromBlock": "0x0"}),
             ("eth_getLogs", {"address": theirs_contract, "fromBlock": "0x0"})),
            (("eth_call", {"to": ours_contract, "data": OWNER_SELECTOR}, "latest"),
             ("eth_call", {"to": theirs_contract, "data": OWNER_SELECTOR}, "latest")),
            (("eth_estimateGas", {"to": ours_contract, "data": OWNER_SELECTOR}),
             ("eth_estimateGas", {"to": theirs_contract, "data": OWNER_SELECTOR})),
            (("eth_feeHistory", "0x2", "latest", [25, 75]),
             ("eth_feeHistory", "0x2", "latest", [25, 75])),
            (("eth_chainId",), ("eth_chainId",)),
            (("eth_blockNumber",), ("eth_blockNumber",)),
            (("eth_gasPrice",), ("eth_gasPrice",)),
            (("eth_maxPriorityFeePerGas",), ("eth_maxPriorityFeePerGas",)),
            (("net_version",), ("net_version",)),
            (("eth_getBalance", ours_contract, "latest"),
             ("eth_getBalance", theirs_contract, "latest")),
            (("eth_getTransactionCount", ours_contract, "latest"),
             ("eth_getTransactionCount", theirs_contract, "latest")),
            (("eth_getStorageAt", ours_contract, "0x0", "latest"),
             ("eth_getStorageAt", theirs_contract, "0x0", "latest")),
            (("eth_getBlockByNumber", "0xffffff", False),
             ("eth_getBlockByNumber", "0xffffff", False)),
            (("eth_getTransactionReceipt", "0x" + "ab" * 32),
             ("eth_getTransactionReceipt", "0x" + "ab" * 32)),
        ]  # fmt: skip
        for ours_request, theirs_request in pairs:
            ours = await call(client, *ours_request)
            theirs = anvil_call(anvil, *theirs_request)
            assert ("error" in ours) == ("error" in theirs), (ours_request, ours, theirs)
            assert_same_shape(
                shape(ours.get("result")), shape(theirs.get("result")), ours_request[0], optional
            )
        # values that must agree exactly
        code_ours = await result(client, "eth_getCode", ours_contract, "latest")
        code_theirs = anvil_call(anvil, "eth_getCode", theirs_contract, "latest")["result"]
        assert len(code_ours) == len(code_theirs) > 1000
        logs = await result(client, "eth_getLogs", {"address": ours_contract, "fromBlock": "0x0"})
        receipt = await result(client, "eth_getTransactionReceipt", deploy_tx_ours)
        assert logs == receipt["logs"]
        assert receipt["contractAddress"] == ours_contract
        assert receipt["to"] is None
        block = await result(client, "eth_getBlockByHash", receipt["blockHash"], False)
        assert block["number"] == receipt["blockNumber"]
        # the same revert: anchoring from an account that is not authorised
        request = {"to": "CONTRACT", "data": ANCHOR_SELECTOR + "11" * 32 + "00" * 31 + "05"}
        ours = await call(client, "eth_call", {**request, "to": ours_contract}, "latest")
        theirs = anvil_call(anvil, "eth_call", {**request, "to": theirs_contract}, "latest")
        assert ours["error"]["code"] == theirs["error"]["code"] == rpc.EXECUTION_REVERTED
        assert ours["error"]["data"] == theirs["error"]["data"]
        # unknown methods
        ours = await call(client, "eth_noSuchMethod")
        theirs = anvil_call(anvil, "eth_noSuchMethod")
        assert ours["error"]["code"] == theirs["error"]["code"] == rpc.METHOD_NOT_FOUND
    finally:
        anvil.revert(snapshot)


async def test_writes_and_unknown_methods_get_json_rpc_errors(
    client: TestClient, tmp_path: Path
) -> None:
    from eth_account import Account

    config = service_config(tmp_path)
    owner = Account.from_key(keys.load_key(config.chain_key_path, "secp256k1").to_hex())
    head = await result(client, "eth_blockNumber")
    nonce = await result(client, "eth_getTransactionCount", owner.address, "latest")
    chain_id = int(await result(client, "eth_chainId"), 16)
    signed = owner.sign_transaction(
        {"type": 2, "chainId": chain_id, "nonce": int(nonce, 16), "to": owner.address,
         "value": 1, "gas": 21_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
    )  # fmt: skip
    raw = "0x" + bytes(signed.raw_transaction).hex()
    writes = [
        ("eth_sendRawTransaction", raw),
        ("eth_sendTransaction", {"from": owner.address, "to": owner.address, "value": "0x1"}),
        ("eth_sign", owner.address, "0x00"),
        ("evm_mine",),
        ("evm_snapshot",),
        ("anvil_setBalance", owner.address, "0x1"),
        ("hardhat_mine",),
        ("personal_unlockAccount", owner.address, ""),
        ("eth_newFilter", {}),
    ]
    for method, *params in writes:
        answer = await call(client, method, *params)
        assert answer["error"]["code"] == rpc.METHOD_NOT_SUPPORTED, answer
        assert "read-only" in answer["error"]["message"]
    for method in ("eth_noSuchMethod", "foo", "x" * 200):
        answer = await call(client, method)
        assert answer["error"]["code"] == rpc.METHOD_NOT_FOUND
    assert await result(client, "eth_blockNumber") == head
    assert await result(client, "eth_getTransactionCount", owner.address, "latest") == nonce
    assert await result(client, "eth_getTransactionByHash", "0x" + bytes(signed.hash).hex()) is None


async def test_batches_requests_and_limits(client: TestClient) -> None:
    contract = client.app[CHAIN].contract_address
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": ["0x00"]},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": None, "method": "eth_getCode", "params": [contract, "latest"]},
        "not a request",
    ]
    resp = await client.post(PATH, json=batch)
    answers = await resp.json()
    assert [a["id"] for a in answers] == ["a", 2, None, None]
    assert answers[0]["result"] == hex(client.app[CHAIN].identity.chain_id)  # type: ignore[union-attr]
    assert answers[1]["error"]["code"] == rpc.METHOD_NOT_SUPPORTED
    assert len(answers[2]["result"]) > 1000
    assert answers[3]["error"]["code"] == rpc.INVALID_REQUEST

    one = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}
    resp = await client.post(PATH, json=[one] * rpc.MAX_RPC_BATCH)
    assert len(await resp.json()) == rpc.MAX_RPC_BATCH
    resp = await client.post(PATH, json=[one] * (rpc.MAX_RPC_BATCH + 1))
    assert (await resp.json())["error"]["code"] == rpc.LIMIT_EXCEEDED
    resp = await client.post(PATH, json=[])
    assert (await resp.json())["error"]["code"] == rpc.INVALID_REQUEST
    resp = await client.post(PATH, json={"jsonrpc": "2.0", "method": "eth_blockNumber"})
    assert resp.status == 204

    too_big = json.dumps([one] * 10_000).encode()
    assert len(too_big) > rpc.MAX_RPC_BODY_BYTES
    resp = await client.post(PATH, data=too_big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"
    for body in (b"{not json", b"[" * 100_000):
        resp = await client.post(PATH, data=body)
        assert resp.status == 200
        assert (await resp.json())["error"]["code"] == rpc.PARSE_ERROR

    span = hex(rpc.MAX_LOG_BLOCK_RANGE + 1)
    answer = await call(client, "eth_getLogs", {"fromBlock": "0x1", "toBlock": span})
    assert answer["error"]["code"] == rpc.LIMIT_EXCEEDED
    within = await call(client, "eth_getLogs", {"fromBlock": "0x0", "toBlock": hex(10**3)})
    assert len(within["result"]) >= 1
    answer = await call(client, "eth_call", {"to": contract, "gas": hex(rpc.MAX_CALL_GAS + 1)})
    assert answer["error"]["code"] == rpc.LIMIT_EXCEEDED
    owner = await result(client, "eth_call", {"to": contract, "data": OWNER_SELECTOR})
    assert owner[-40:] == client.app[CHAIN].address[2:].lower()
    answer = await call(client, "eth_feeHistory", hex(rpc.MAX_FEE_HISTORY_BLOCKS + 1), "latest")
    assert answer["error"]["code"] == rpc.LIMIT_EXCEEDED
    answer = await call(
        client, "eth_getLogs", {"address": [contract] * (rpc.MAX_FILTER_VALUES + 1)}
    )
    assert answer["error"]["code"] == rpc.INVALID_PARAMS
    for bad in (
        ("eth_getBlockByNumber", "0xzz", False),
        ("eth_getBlockByNumber", "latest", "yes"),
        ("eth_getBalance", "0x1234", "latest"),
        ("eth_getTransactionReceipt", "0x12"),
        ("eth_call", {"to": contract, "nonsense": 1}),
        ("eth_getLogs", {"topics": ["0x12"]}),
    ):
        answer = await call(client, *bad)
        assert answer["error"]["code"] == rpc.INVALID_PARAMS, (bad, answer)
    future = await call(client, "eth_getBalance", contract, hex(10**6))
    assert future["error"]["code"] == rpc.RESOURCE_NOT_FOUND


async def test_an_estimate_is_exact_and_costs_a_bounded_number_of_calls(
    client: TestClient,
) -> None:
    """py-evm's estimator bisected up to the block's gas limit: one estimate of a loop held
    the chain's thread (which also mines the anchors) for 84 s. Now the first run tells what
    the code used, and an estimate costs at most ``ESTIMATE_GAS_RUNS`` calls with all the
    gas allowed; the answer is exact (one gas less fails)."""
    one_call = 0.0
    for _ in range(2):  # the slower of two, so that a noisy moment loosens the bound
        started = time.perf_counter()
        burnt = await call(client, "eth_call", {"data": LOOP_FOREVER})
        one_call = max(one_call, time.perf_counter() - started)
        assert burnt["error"]["code"] == rpc.EXECUTION_REVERTED
    code = counting_loop((rpc.MAX_CALL_GAS - 100_000) // 26)
    started = time.perf_counter()
    estimate = int(await result(client, "eth_estimateGas", {"data": code}), 16)
    took = time.perf_counter() - started
    assert rpc.MAX_CALL_GAS - 100_000 < estimate < rpc.MAX_CALL_GAS
    assert await result(client, "eth_call", {"data": code, "gas": hex(estimate)}) == "0x"
    short = await call(client, "eth_call", {"data": code, "gas": hex(estimate - 1)})
    assert short["error"]["code"] == rpc.EXECUTION_REVERTED
    assert took < (rpc.ESTIMATE_GAS_RUNS + 0.5) * one_call, (took, one_call)
    short = await call(client, "eth_estimateGas", {"data": code, "gas": hex(estimate - 1)})
    assert short["error"]["message"] == f"execution fails with {estimate - 1} gas: OutOfGas"


async def test_heavy_calls_take_turns_and_the_services_chain_work_waits_for_one(
    client: TestClient,
) -> None:
    """Six clients each send a batch of three calls that burn all the gas allowed. Their
    calls take turns on the chain's thread, one at a time, so the service's own chain work
    (here: reading the head, as the batcher does) waits for at most the call under way;
    without the gate it waited for one call of every request (about six)."""
    embedded = client.app[CHAIN].embedded
    assert embedded is not None
    gate = client.app[CHAIN_RPC]
    burn = {"jsonrpc": "2.0", "method": "eth_call", "params": [{"data": LOOP_FOREVER}, "latest"]}
    one_call = 0.0
    for _ in range(2):  # the slower of two, so that a noisy moment loosens the bound
        started = time.perf_counter()
        await call(client, "eth_call", {"data": LOOP_FOREVER})
        one_call = max(one_call, time.perf_counter() - started)

    posts = [
        asyncio.create_task(client.post(PATH, json=[burn | {"id": i} for i in range(3)]))
        for _ in range(6)
    ]
    deadline = time.monotonic() + 30
    while gate.in_flight < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert gate.in_flight == 6
    await asyncio.sleep(one_call)  # every request's first call is under way or waiting
    started = time.perf_counter()
    await embedded.control(lambda tester: tester.get_block_by_number("latest"))
    waited = time.perf_counter() - started
    for resp in await asyncio.gather(*posts):
        answers = await resp.json()
        assert [a["error"]["code"] for a in answers] == [rpc.EXECUTION_REVERTED] * 3
    assert gate.in_flight == 0
    assert waited < 2.5 * one_call, (waited, one_call)


async def test_more_requests_than_the_gate_admits_are_refused(client: TestClient) -> None:
    """With the chain's thread busy, :data:`MAX_RPC_REQUESTS` requests wait their turn and
    the next is refused at once (429, ``Retry-After``), not queued without bound; all are
    answered once the thread is free."""
    embedded = client.app[CHAIN].embedded
    assert embedded is not None
    gate = client.app[CHAIN_RPC]
    free = threading.Event()
    busy = asyncio.ensure_future(embedded.control(lambda _tester: free.wait(60)))
    one = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}
    try:
        posts = [
            asyncio.create_task(client.post(PATH, json=one)) for _ in range(rpc.MAX_RPC_REQUESTS)
        ]
        deadline = time.monotonic() + 30
        while gate.in_flight < rpc.MAX_RPC_REQUESTS and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert gate.in_flight == rpc.MAX_RPC_REQUESTS
        refused = await client.post(PATH, json=one)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == str(rpc.RPC_RETRY_AFTER_SECONDS)
        assert refused.content_type == "application/problem+json"
        problem = await refused.json()
        assert problem["detail"].endswith(f"answering {rpc.MAX_RPC_REQUESTS} requests already")
    finally:
        free.set()
        assert await busy
    for resp in await asyncio.gather(*posts):
        assert resp.status == 200
        assert "result" in await resp.json()
    assert (await client.post(PATH, json=one)).status == 200


async def test_topic_and_address_filters(client: TestClient) -> None:
    contract = client.app[CHAIN].contract_address
    everything = await result(client, "eth_getLogs", {"fromBlock": "earliest"})
    assert {entry["address"] for entry in everything} >= {contract}
    mine = await result(client, "eth_getLogs", {"fromBlock": "0x0", "address": contract})
    assert mine
    assert all(entry["address"] == contract for entry in mine)
    topic = mine[0]["topics"][0]
    by_topic = await result(client, "eth_getLogs", {"fromBlock": "0x0", "topics": [topic]})
    assert by_topic
    assert all(entry["topics"][0] == topic for entry in by_topic)
    either = await result(
        client, "eth_getLogs", {"fromBlock": "0x0", "topics": [[topic, "0x" + "00" * 32]]}
    )
    assert either == by_topic
    none = await result(client, "eth_getLogs", {"fromBlock": "0x0", "topics": ["0x" + "00" * 32]})
    assert none == []
    at_block = await result(client, "eth_getLogs", {"blockHash": mine[0]["blockHash"]})
    assert mine[0] in at_block


@pytest.mark.anvil
async def test_on_an_external_chain_the_endpoint_is_not_served(
    aiohttp_client: Any, tmp_path: Path, anvil: AnvilNode
) -> None:
    snapshot = anvil.snapshot()
    try:
        owner = anvil.accounts[0]
        deployment = await asyncio.to_thread(deploy, anvil.web3(), load_artifact(LOG_ANCHOR), owner)
        data = tmp_path / "data"
        keys.save_key(keys.ChainAccountKey.from_hex(bytes(owner.key).hex()), data / "chain-key.hex")
        config = service_config(tmp_path, rpc_url=anvil.rpc_url, contract=deployment.address)
        client: TestClient = await aiohttp_client(create_app(config))
        resp = await client.post(PATH, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert "own JSON-RPC endpoint" in (await resp.json())["hint"]
        assert (await (await client.get("/v1/log")).json())["rpc"] is None
    finally:
        anvil.revert(snapshot)
