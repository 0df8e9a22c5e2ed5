"""EthereumDIDRegistry (ERC-1056) on the embedded chain and on anvil.

Signed variants are signed here with eth-account over digests built independently from the
ERC-1056 / ethr-did message layout: keccak256(0x19 0x00 registry nonce identity name args).
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import Hash32
from eth_utils.conversions import to_bytes
from eth_utils.crypto import keccak
from helpers.anvil import EvmChain
from helpers.contracts import (
    custom_error_data,
    deploy_contract,
    revert_data,
    reverts_with,
    send,
)
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from anchor.chain.contracts import DID_REGISTRY, load_artifact

EIP191_VERSION_0 = b"\x19\x00"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_ADDRESS = "0x" + "00" * 20
ONE_DAY = 86_400

VERI_KEY = b"veriKey".ljust(32, b"\x00")
SIG_AUTH = b"sigAuth".ljust(32, b"\x00")
SERVICE_ATTRIBUTE = b"did/svc/LinkedDomains".ljust(32, b"\x00")
SERVICE_ENDPOINT = b"https://issuer.example/ler"

NOT_OWNER = ("NotIdentityOwner(address,address)", ["address", "address"])
BAD_SIGNATURE = ("BadSignature(address,address)", ["address", "address"])


@pytest.fixture
def registry(evm_chain: EvmChain) -> Contract:
    return deploy_contract(evm_chain, DID_REGISTRY, evm_chain.accounts[0])


@pytest.fixture
def relayer(evm_chain: EvmChain) -> LocalAccount:
    """Pays for the signed variants: the identity's key needs no ether."""
    return evm_chain.accounts[1]


@pytest.fixture
def identity() -> LocalAccount:
    """A fresh, unfunded key: an identity owned by itself."""
    account: LocalAccount = Account.create()
    return account


def packed_address(address: str) -> bytes:
    return to_bytes(hexstr=address)


def uint256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def signed_digest(registry: Contract, identity: str, function: str, *args: bytes) -> bytes:
    """ERC-1056 message digest, with the nonce of the identity's current owner."""
    owner = registry.functions.identityOwner(identity).call()
    nonce = registry.functions.nonce(owner).call()
    message = (
        EIP191_VERSION_0
        + packed_address(registry.address)
        + uint256(nonce)
        + packed_address(identity)
        + function.encode("ascii")
        + b"".join(args)
    )
    return keccak(message)


def sign(signer: LocalAccount, digest: bytes) -> tuple[int, bytes, bytes]:
    signature = signer.unsafe_sign_hash(Hash32(digest))
    return signature.v, uint256(signature.r), uint256(signature.s)


def block_timestamp(chain: EvmChain, receipt: Any) -> int:
    timestamp: int = chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    return timestamp


def one_event(registry: Contract, name: str, receipt: Any) -> dict[str, Any]:
    (event,) = registry.events[name]().process_receipt(receipt)
    return dict(event["args"])


def expect_bad_signature(call: Any, relayer: LocalAccount) -> None:
    """The call reverts with BadSignature (whatever address the signature recovers to)."""
    selector = custom_error_data(*BAD_SIGNATURE, [ZERO_ADDRESS, ZERO_ADDRESS])[:10]
    with pytest.raises((ContractCustomError, TransactionFailed)) as caught:
        call.call({"from": relayer.address})
    assert revert_data(caught.value)[:10] == selector


# ---- ownership ------------------------------------------------------------------------------


def test_identity_owns_itself_until_changed(registry: Contract, identity: LocalAccount) -> None:
    assert registry.functions.identityOwner(identity.address).call() == identity.address
    assert registry.functions.owners(identity.address).call() == ZERO_ADDRESS
    assert registry.functions.changed(identity.address).call() == 0
    assert registry.functions.nonce(identity.address).call() == 0


def test_change_owner(evm_chain: EvmChain, registry: Contract) -> None:
    identity, first, second = evm_chain.accounts[2], evm_chain.accounts[3], evm_chain.accounts[4]
    receipt = send(
        evm_chain, identity, registry.functions.changeOwner(identity.address, first.address)
    )
    block1 = receipt["blockNumber"]
    assert one_event(registry, "DIDOwnerChanged", receipt) == {
        "identity": identity.address,
        "owner": first.address,
        "previousChange": 0,
    }
    assert registry.functions.identityOwner(identity.address).call() == first.address
    assert registry.functions.owners(identity.address).call() == first.address
    assert registry.functions.changed(identity.address).call() == block1

    with reverts_with(*NOT_OWNER, [identity.address, identity.address]):
        registry.functions.changeOwner(identity.address, identity.address).call(
            {"from": identity.address}
        )
    receipt = send(
        evm_chain, first, registry.functions.changeOwner(identity.address, second.address)
    )
    assert one_event(registry, "DIDOwnerChanged", receipt)["previousChange"] == block1
    assert registry.functions.identityOwner(identity.address).call() == second.address
    assert registry.functions.changed(identity.address).call() == receipt["blockNumber"]


def test_change_owner_signed(
    evm_chain: EvmChain, registry: Contract, relayer: LocalAccount, identity: LocalAccount
) -> None:
    new_owner, stranger = Account.create(), Account.create()
    digest = signed_digest(
        registry, identity.address, "changeOwner", packed_address(new_owner.address)
    )
    # A signature by anyone but the owner is refused, naming the recovered signer.
    v, r, s = sign(stranger, digest)
    with reverts_with(*BAD_SIGNATURE, [identity.address, stranger.address]):
        registry.functions.changeOwnerSigned(identity.address, v, r, s, new_owner.address).call(
            {"from": relayer.address}
        )

    v, r, s = sign(identity, digest)
    call = registry.functions.changeOwnerSigned(identity.address, v, r, s, new_owner.address)
    receipt = send(evm_chain, relayer, call)
    assert one_event(registry, "DIDOwnerChanged", receipt) == {
        "identity": identity.address,
        "owner": new_owner.address,
        "previousChange": 0,
    }
    assert registry.functions.identityOwner(identity.address).call() == new_owner.address
    assert registry.functions.nonce(identity.address).call() == 1
    assert registry.functions.changed(identity.address).call() == receipt["blockNumber"]

    # Replaying it fails: the nonce moved on (and the identity key no longer owns it).
    expect_bad_signature(call, relayer)

    # The new owner signs with its own nonce (0), per nonce[identityOwner(identity)].
    digest = signed_digest(
        registry, identity.address, "changeOwner", packed_address(identity.address)
    )
    v, r, s = sign(new_owner, digest)
    send(
        evm_chain,
        relayer,
        registry.functions.changeOwnerSigned(identity.address, v, r, s, identity.address),
    )
    assert registry.functions.nonce(new_owner.address).call() == 1
    assert registry.functions.identityOwner(identity.address).call() == identity.address


def test_malleable_and_malformed_signatures_are_refused(
    registry: Contract, relayer: LocalAccount, identity: LocalAccount
) -> None:
    new_owner = Account.create().address
    digest = signed_digest(registry, identity.address, "changeOwner", packed_address(new_owner))
    v, r, s = sign(identity, digest)
    twin_s = uint256(SECP256K1_N - int.from_bytes(s, "big"))
    twin_v = 55 - v  # 27 <-> 28: the same signer, with the high-s twin
    for bad_v, bad_s in [(twin_v, twin_s), (v + 2, s), (0, s)]:
        with reverts_with(*BAD_SIGNATURE, [identity.address, ZERO_ADDRESS]):
            registry.functions.changeOwnerSigned(identity.address, bad_v, r, bad_s, new_owner).call(
                {"from": relayer.address}
            )
    # The canonical signature itself is fine.
    registry.functions.changeOwnerSigned(identity.address, v, r, s, new_owner).call(
        {"from": relayer.address}
    )


# ---- delegates ------------------------------------------------------------------------------


def test_add_and_revoke_delegate(evm_chain: EvmChain, registry: Contract) -> None:
    identity, delegate = evm_chain.accounts[2], Account.create().address
    type_hash = keccak(VERI_KEY)
    receipt = send(
        evm_chain,
        identity,
        registry.functions.addDelegate(identity.address, VERI_KEY, delegate, ONE_DAY),
    )
    valid_to = block_timestamp(evm_chain, receipt) + ONE_DAY
    assert one_event(registry, "DIDDelegateChanged", receipt) == {
        "identity": identity.address,
        "delegateType": VERI_KEY,
        "delegate": delegate,
        "validTo": valid_to,
        "previousChange": 0,
    }
    assert registry.functions.delegates(identity.address, type_hash, delegate).call() == valid_to
    assert registry.functions.validDelegate(identity.address, VERI_KEY, delegate).call() is True
    assert registry.functions.validDelegate(identity.address, SIG_AUTH, delegate).call() is False
    added_block = receipt["blockNumber"]

    receipt = send(
        evm_chain, identity, registry.functions.revokeDelegate(identity.address, VERI_KEY, delegate)
    )
    revoked_at = block_timestamp(evm_chain, receipt)
    event = one_event(registry, "DIDDelegateChanged", receipt)
    assert (event["validTo"], event["previousChange"]) == (revoked_at, added_block)
    assert registry.functions.delegates(identity.address, type_hash, delegate).call() == revoked_at
    assert registry.functions.validDelegate(identity.address, VERI_KEY, delegate).call() is False


def test_zero_validity_delegate_is_never_valid(evm_chain: EvmChain, registry: Contract) -> None:
    identity, delegate = evm_chain.accounts[2], Account.create().address
    send(
        evm_chain, identity, registry.functions.addDelegate(identity.address, SIG_AUTH, delegate, 0)
    )
    assert registry.functions.validDelegate(identity.address, SIG_AUTH, delegate).call() is False


def test_add_and_revoke_delegate_signed(
    evm_chain: EvmChain, registry: Contract, relayer: LocalAccount, identity: LocalAccount
) -> None:
    delegate, stranger = Account.create().address, Account.create()
    args = (VERI_KEY, packed_address(delegate), uint256(ONE_DAY))
    digest = signed_digest(registry, identity.address, "addDelegate", *args)

    v, r, s = sign(stranger, digest)
    with reverts_with(*BAD_SIGNATURE, [identity.address, stranger.address]):
        registry.functions.addDelegateSigned(
            identity.address, v, r, s, VERI_KEY, delegate, ONE_DAY
        ).call({"from": relayer.address})

    v, r, s = sign(identity, digest)
    receipt = send(
        evm_chain,
        relayer,
        registry.functions.addDelegateSigned(
            identity.address, v, r, s, VERI_KEY, delegate, ONE_DAY
        ),
    )
    event = one_event(registry, "DIDDelegateChanged", receipt)
    assert (event["delegate"], event["validTo"]) == (
        delegate,
        block_timestamp(evm_chain, receipt) + ONE_DAY,
    )
    assert registry.functions.validDelegate(identity.address, VERI_KEY, delegate).call() is True
    assert registry.functions.nonce(identity.address).call() == 1

    digest = signed_digest(
        registry, identity.address, "revokeDelegate", VERI_KEY, packed_address(delegate)
    )
    v, r, s = sign(stranger, digest)
    with reverts_with(*BAD_SIGNATURE, [identity.address, stranger.address]):
        registry.functions.revokeDelegateSigned(identity.address, v, r, s, VERI_KEY, delegate).call(
            {"from": relayer.address}
        )
    v, r, s = sign(identity, digest)
    receipt = send(
        evm_chain,
        relayer,
        registry.functions.revokeDelegateSigned(identity.address, v, r, s, VERI_KEY, delegate),
    )
    assert one_event(registry, "DIDDelegateChanged", receipt)["validTo"] == block_timestamp(
        evm_chain, receipt
    )
    assert registry.functions.validDelegate(identity.address, VERI_KEY, delegate).call() is False
    assert registry.functions.nonce(identity.address).call() == 2


# ---- attributes -----------------------------------------------------------------------------


def test_set_and_revoke_attribute(evm_chain: EvmChain, registry: Contract) -> None:
    identity = evm_chain.accounts[2]
    receipt = send(
        evm_chain,
        identity,
        registry.functions.setAttribute(
            identity.address, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT, ONE_DAY
        ),
    )
    assert one_event(registry, "DIDAttributeChanged", receipt) == {
        "identity": identity.address,
        "name": SERVICE_ATTRIBUTE,
        "value": SERVICE_ENDPOINT,
        "validTo": block_timestamp(evm_chain, receipt) + ONE_DAY,
        "previousChange": 0,
    }
    set_block = receipt["blockNumber"]
    assert registry.functions.changed(identity.address).call() == set_block

    receipt = send(
        evm_chain,
        identity,
        registry.functions.revokeAttribute(identity.address, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT),
    )
    assert one_event(registry, "DIDAttributeChanged", receipt) == {
        "identity": identity.address,
        "name": SERVICE_ATTRIBUTE,
        "value": SERVICE_ENDPOINT,
        "validTo": 0,
        "previousChange": set_block,
    }


def test_set_and_revoke_attribute_signed(
    evm_chain: EvmChain, registry: Contract, relayer: LocalAccount, identity: LocalAccount
) -> None:
    stranger = Account.create()
    digest = signed_digest(
        registry,
        identity.address,
        "setAttribute",
        SERVICE_ATTRIBUTE,
        SERVICE_ENDPOINT,
        uint256(ONE_DAY),
    )
    v, r, s = sign(stranger, digest)
    with reverts_with(*BAD_SIGNATURE, [identity.address, stranger.address]):
        registry.functions.setAttributeSigned(
            identity.address, v, r, s, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT, ONE_DAY
        ).call({"from": relayer.address})
    v, r, s = sign(identity, digest)
    receipt = send(
        evm_chain,
        relayer,
        registry.functions.setAttributeSigned(
            identity.address, v, r, s, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT, ONE_DAY
        ),
    )
    event = one_event(registry, "DIDAttributeChanged", receipt)
    assert (event["value"], event["validTo"]) == (
        SERVICE_ENDPOINT,
        block_timestamp(evm_chain, receipt) + ONE_DAY,
    )
    assert registry.functions.nonce(identity.address).call() == 1

    digest = signed_digest(
        registry, identity.address, "revokeAttribute", SERVICE_ATTRIBUTE, SERVICE_ENDPOINT
    )
    v, r, s = sign(stranger, digest)
    with reverts_with(*BAD_SIGNATURE, [identity.address, stranger.address]):
        registry.functions.revokeAttributeSigned(
            identity.address, v, r, s, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT
        ).call({"from": relayer.address})
    v, r, s = sign(identity, digest)
    receipt = send(
        evm_chain,
        relayer,
        registry.functions.revokeAttributeSigned(
            identity.address, v, r, s, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT
        ),
    )
    event = one_event(registry, "DIDAttributeChanged", receipt)
    assert (event["validTo"], event["previousChange"]) == (0, event["previousChange"])
    assert event["previousChange"] > 0
    assert registry.functions.nonce(identity.address).call() == 2


# ---- authorisation and history --------------------------------------------------------------


def test_only_the_owner_can_change_anything(evm_chain: EvmChain, registry: Contract) -> None:
    identity, stranger = evm_chain.accounts[2], evm_chain.accounts[3]
    delegate = Account.create().address
    functions = registry.functions
    calls = [
        functions.changeOwner(identity.address, stranger.address),
        functions.addDelegate(identity.address, VERI_KEY, delegate, ONE_DAY),
        functions.revokeDelegate(identity.address, VERI_KEY, delegate),
        functions.setAttribute(identity.address, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT, ONE_DAY),
        functions.revokeAttribute(identity.address, SERVICE_ATTRIBUTE, SERVICE_ENDPOINT),
    ]
    for call in calls:
        with reverts_with(*NOT_OWNER, [identity.address, stranger.address]):
            call.call({"from": stranger.address})
        call.call({"from": identity.address})  # the owner may


def walk_history(chain: EvmChain, registry: Contract, identity: str) -> list[tuple[str, int]]:
    """ERC-1056 linked-event lookup: from changed(identity) back along previousChange."""
    history: list[tuple[str, int]] = []
    block = registry.functions.changed(identity).call()
    while block:
        events = []
        for name in ("DIDOwnerChanged", "DIDDelegateChanged", "DIDAttributeChanged"):
            events += registry.events[name]().get_logs(
                from_block=block, to_block=block, argument_filters={"identity": identity}
            )
        assert len(events) == 1, events
        (event,) = events
        history.insert(0, (event["event"], block))
        block = event["args"]["previousChange"]
    return history


def test_changed_and_previous_change_link_the_history(
    evm_chain: EvmChain, registry: Contract
) -> None:
    identity, other_identity, new_owner = evm_chain.accounts[2:5]
    delegate = Account.create().address
    functions = registry.functions
    steps = [
        (identity, functions.addDelegate(identity.address, VERI_KEY, delegate, ONE_DAY)),
        (other_identity, functions.addDelegate(other_identity.address, VERI_KEY, delegate, 1)),
        (identity, functions.setAttribute(identity.address, SERVICE_ATTRIBUTE, b"x", ONE_DAY)),
        (identity, functions.changeOwner(identity.address, new_owner.address)),
        (new_owner, functions.revokeDelegate(identity.address, VERI_KEY, delegate)),
        (new_owner, functions.revokeAttribute(identity.address, SERVICE_ATTRIBUTE, b"x")),
    ]
    expected = []
    for actor, call in steps:
        receipt = send(evm_chain, actor, call)
        if actor is not other_identity:
            (log,) = receipt["logs"]
            name = registry.events[
                {
                    "addDelegate": "DIDDelegateChanged",
                    "revokeDelegate": "DIDDelegateChanged",
                    "setAttribute": "DIDAttributeChanged",
                    "revokeAttribute": "DIDAttributeChanged",
                    "changeOwner": "DIDOwnerChanged",
                }[call.fn_name]
            ]().process_log(log)["event"]
            expected.append((name, receipt["blockNumber"]))

    assert walk_history(evm_chain, registry, identity.address) == expected
    assert len(walk_history(evm_chain, registry, other_identity.address)) == 1
    assert registry.functions.changed(identity.address).call() == expected[-1][1]


# ---- interface ------------------------------------------------------------------------------

ERC1056_FUNCTIONS = {
    "identityOwner(address)",
    "changeOwner(address,address)",
    "changeOwnerSigned(address,uint8,bytes32,bytes32,address)",
    "validDelegate(address,bytes32,address)",
    "addDelegate(address,bytes32,address,uint256)",
    "addDelegateSigned(address,uint8,bytes32,bytes32,bytes32,address,uint256)",
    "revokeDelegate(address,bytes32,address)",
    "revokeDelegateSigned(address,uint8,bytes32,bytes32,bytes32,address)",
    "setAttribute(address,bytes32,bytes,uint256)",
    "setAttributeSigned(address,uint8,bytes32,bytes32,bytes32,bytes,uint256)",
    "revokeAttribute(address,bytes32,bytes)",
    "revokeAttributeSigned(address,uint8,bytes32,bytes32,bytes32,bytes)",
    "owners(address)",
    "delegates(address,bytes32,address)",
    "changed(address)",
    "nonce(address)",
}
ERC1056_EVENTS = {
    # (signature, indexed inputs)
    ("DIDOwnerChanged(address,address,uint256)", ("identity",)),
    ("DIDDelegateChanged(address,bytes32,address,uint256,uint256)", ("identity",)),
    ("DIDAttributeChanged(address,bytes32,bytes,uint256,uint256)", ("identity",)),
}


def test_abi_is_the_erc1056_interface() -> None:
    """Same function selectors and event topics as ERC-1056, so ethr-did tooling interoperates."""
    abi = load_artifact(DID_REGISTRY).abi

    def signature(entry: Any) -> str:
        return f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"

    functions = {signature(e) for e in abi if e["type"] == "function"}
    events = {
        (signature(e), tuple(i["name"] for i in e["inputs"] if i["indexed"]))
        for e in abi
        if e["type"] == "event"
    }
    assert functions == ERC1056_FUNCTIONS
    assert events == ERC1056_EVENTS
