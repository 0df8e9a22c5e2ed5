"""did:ethr: the driver against the ERC-1056 registry, on the embedded chain and on anvil.

Every chain test deploys the registry, makes changes with real transactions (some through
the registry's signed variants, signed here with eth-account), spaces them in time and
resolves the DID at the head and as of each version (``versionId`` / ``versionTime``).
On anvil the driver reads over JSON-RPC (``AsyncWeb3``); on the embedded chain it runs the
synchronous web3 calls in a thread. The replay rules are also checked on synthetic events.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_abi.packed import encode_packed
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey as Secp256k1PrivateKey
from eth_typing import ChecksumAddress, Hash32, HexAddress, HexStr
from eth_utils.crypto import keccak
from helpers.anvil import HOST, EvmChain, free_port
from nacl.public import PrivateKey as X25519PrivateKey
from nacl.signing import SigningKey
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxParams

from anchor.chain.contracts import DID_REGISTRY, deploy, load_artifact
from did_methods import (
    ErrorCode,
    EthrDriver,
    EthrNetwork,
    InvalidEthrDidError,
    KeyType,
    ResolutionResult,
    ThreadedWeb3ChainReader,
    build_resolver,
    check_authorization,
    format_version_time,
    parse_did,
    parse_ethr_did,
    public_key_bytes,
)
from did_methods.ethr import (
    DOCUMENT_CONTEXTS,
    MULTIKEY_CONTEXT,
    REGISTRY_ABI,
    AttributeChanged,
    DelegateChanged,
    EthrIdentifier,
    OwnerChanged,
    RegistryEvent,
    ethr_did_document,
)

NETWORK = "dev"
SPACING_SECONDS = 100
"""Time between two changes of a test history."""
LONG_VALIDITY = 100_000
SHORT_VALIDITY = 150
GAS_LIMIT = 500_000
RECEIPT_TIMEOUT_SECONDS = 30
DOWN_ENDPOINT_LIMIT_SECONDS = 5.0
"""A resolution against a closed port must fail well within this."""
UNRESPONSIVE_TIMEOUT_SECONDS = 0.5
ZERO_ADDRESS = "0x" + "00" * 20
EIP191_HEADER = (b"\x19", b"\x00")

VERI_KEY = b"veriKey".ljust(32, b"\0")
SIG_AUTH = b"sigAuth".ljust(32, b"\0")


def attribute_name(name: str) -> bytes:
    return name.encode("ascii").ljust(32, b"\0")


# ---- chain helpers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A mined registry change: its block and that block's timestamp."""

    block: int
    time: int


@dataclass(frozen=True)
class Ethr:
    """A chain with a fresh registry and a driver reading it."""

    chain: EvmChain
    registry: Contract
    network: EthrNetwork
    driver: EthrDriver

    @property
    def chain_id(self) -> int:
        return self.network.chain_id

    def did(self, identifier: str, network: str | None = NETWORK) -> str:
        return f"did:ethr:{network}:{identifier}" if network else f"did:ethr:{identifier}"

    async def resolve(self, did: str, **options: Any) -> ResolutionResult:
        return await self.driver.resolve(parse_did(did), options)

    async def document(self, did: str, **options: Any) -> dict[str, Any]:
        result = await self.resolve(did, **options)
        assert result.error is None, result.did_resolution_metadata
        assert result.did_document is not None
        return result.did_document

    def transact(self, sender: LocalAccount, call: ContractFunction) -> Change:
        w3 = self.chain.w3
        params: TxParams = {
            "from": sender.address,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "gas": GAS_LIMIT,
            "chainId": w3.eth.chain_id,
        }
        signed = sender.sign_transaction(call.build_transaction(params))  # type: ignore[arg-type]
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signed.raw_transaction), timeout=RECEIPT_TIMEOUT_SECONDS
        )
        assert receipt["status"] == 1, receipt
        block = receipt["blockNumber"]
        return Change(block, int(w3.eth.get_block(block)["timestamp"]))

    def signature(
        self,
        signer: LocalAccount,
        identity: str,
        function: str,
        types: list[str],
        values: list[Any],
    ) -> tuple[int, bytes, bytes]:
        """(v, r, s) of ``signer`` over the ERC-1056 message of a ``*Signed`` call."""
        owner = self.registry.functions.identityOwner(identity).call()
        nonce = self.registry.functions.nonce(owner).call()
        message = encode_packed(
            ["bytes1", "bytes1", "address", "uint256", "address", "string", *types],
            [*EIP191_HEADER, self.registry.address, nonce, identity, function, *values],
        )
        signed = signer.unsafe_sign_hash(Hash32(keccak(message)))
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    def advance(self, seconds: int = SPACING_SECONDS) -> None:
        """Mine an empty block ``seconds`` after the latest one."""
        w3 = self.chain.w3
        latest = w3.eth.get_block("latest")
        target = int(latest["timestamp"]) + seconds
        if self.chain.anvil is None:
            testing: Any = cast(Any, w3).testing  # attached by EthereumTesterProvider
            testing.timeTravel(target)  # mines a block just before target
            testing.mine()
        else:
            self.chain.anvil.rpc("anvil_setNextBlockTimestamp", [target])
            self.chain.anvil.mine()
        head = w3.eth.get_block("latest")
        assert head["number"] > latest["number"]
        assert head["timestamp"] >= target

    def head(self) -> int:
        return int(self.chain.w3.eth.block_number)


def chain_source(chain: EvmChain) -> str | Web3:
    """anvil over its RPC URL (the AsyncWeb3 reader); the embedded chain's own Web3."""
    return chain.w3 if chain.anvil is None else chain.anvil.rpc_url


@asynccontextmanager
async def ethr_on(chain: EvmChain) -> AsyncIterator[Ethr]:
    artifact = load_artifact(DID_REGISTRY)
    deployment = deploy(chain.w3, artifact, chain.accounts[0])
    registry = chain.w3.eth.contract(address=deployment.address, abi=artifact.abi)
    network = EthrNetwork(NETWORK, chain.w3.eth.chain_id, deployment.address, chain_source(chain))
    async with EthrDriver([network], default_network=NETWORK) as driver:
        yield Ethr(chain, registry, network, driver)


@pytest.fixture
async def ethr(evm_chain: EvmChain) -> AsyncIterator[Ethr]:
    async with ethr_on(evm_chain) as harness:
        yield harness


EMBEDDED_ONLY = pytest.mark.parametrize("evm_chain", ["embedded"], indirect=True)
"""For tests of failures that do not depend on the kind of chain."""


# ---- expected document parts ----------------------------------------------------------------


def recovery_method(did: str, fragment: str, chain_id: int, address: str) -> dict[str, str]:
    return {
        "id": f"{did}#{fragment}",
        "type": "EcdsaSecp256k1RecoveryMethod2020",
        "controller": did,
        "blockchainAccountId": f"eip155:{chain_id}:{address}",
    }


def default_document(did: str, chain_id: int, owner: str) -> dict[str, Any]:
    return {
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/secp256k1recovery-2020/v2",
            "https://w3id.org/security/v3-unstable",
        ],
        "id": did,
        "verificationMethod": [recovery_method(did, "controller", chain_id, owner)],
        "authentication": [f"{did}#controller"],
        "assertionMethod": [f"{did}#controller"],
    }


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def at_time(timestamp: int) -> str:
    return format_version_time(datetime.fromtimestamp(timestamp, UTC))


def ids(document: Mapping[str, Any], part: str) -> list[str]:
    return [item if isinstance(item, str) else item["id"] for item in document.get(part, [])]


def fragments(document: Mapping[str, Any], part: str) -> list[str]:
    return [item.rsplit("#", 1)[1] for item in ids(document, part)]


def method(document: Mapping[str, Any], fragment: str) -> dict[str, Any]:
    (found,) = (
        vm for vm in document["verificationMethod"] if vm["id"] == f"{document['id']}#{fragment}"
    )
    return dict(found)


def version_metadata(current: Change | None, following: Change | None) -> dict[str, str]:
    metadata: dict[str, str] = {}
    if current is not None:
        metadata |= {"versionId": str(current.block), "updated": iso(current.time)}
    if following is not None:
        metadata |= {"nextVersionId": str(following.block), "nextUpdate": iso(following.time)}
    return metadata


# ---- pure: ABI, syntax, configuration, replay -----------------------------------------------


def test_abi_fragments_match_the_artifact() -> None:
    artifact_abi = [dict(entry) for entry in load_artifact(DID_REGISTRY).abi]
    for fragment in REGISTRY_ABI:
        assert dict(fragment) in artifact_abi, fragment["name"]
    assert {fragment["name"] for fragment in REGISTRY_ABI} == {
        "changed",
        "identityOwner",
        "DIDOwnerChanged",
        "DIDDelegateChanged",
        "DIDAttributeChanged",
    }


ADDRESS = "0xb9c5714089478a327f09197987f16f9e5d936e8a"
CHECKSUMMED = ChecksumAddress(HexAddress(HexStr("0xB9C5714089478a327F09197987f16f9E5d936E8a")))


@pytest.mark.parametrize(
    ("did", "network"),
    [
        (f"did:ethr:{ADDRESS}", None),
        (f"did:ethr:{CHECKSUMMED}", None),
        (f"did:ethr:{ADDRESS.upper().replace('0X', '0x')}", None),
        (f"did:ethr:mainnet:{ADDRESS}", "mainnet"),
        (f"did:ethr:0x7a69:{ADDRESS}", "0x7a69"),
        (f"did:ethr:rsk:testnet:{CHECKSUMMED}", "rsk:testnet"),
    ],
)
def test_parse_address_dids(did: str, network: str | None) -> None:
    assert parse_ethr_did(did) == EthrIdentifier(did, network, CHECKSUMMED, None)


def test_parse_public_key_did() -> None:
    private = Secp256k1PrivateKey(bytes(range(1, 33)))
    compressed = private.public_key.to_compressed_bytes()
    parsed = parse_ethr_did(f"did:ethr:sepolia:0x{compressed.hex()}")
    assert parsed.address == private.public_key.to_checksum_address()
    assert (parsed.network, parsed.public_key) == ("sepolia", compressed)


@pytest.mark.parametrize(
    ("did", "reason"),
    [
        ("did:ethr:0x1234", "must be 0x and 40 hex digits"),
        (f"did:ethr:{ADDRESS}00", "must be 0x and 40 hex digits"),
        (f"did:ethr:{ADDRESS[2:]}", "must be 0x and 40 hex digits"),
        (f"did:ethr:{CHECKSUMMED.replace('B9C', 'b9C')}", "wrong EIP-55 checksum"),
        ("did:ethr:0x04" + "11" * 32, "starts with 02 or 03"),
        ("did:ethr:0x02" + "ff" * 32, "not a point on the secp256k1 curve"),
        (f"did:ethr:main::net:{ADDRESS}", "empty segment"),
        (f"did:key:{ADDRESS}", "is not a did:ethr"),
        (f"did:ethr:{ADDRESS}#controller", "DID URL, not a DID"),
    ],
)
def test_parse_rejects_malformed_dids(did: str, reason: str) -> None:
    with pytest.raises(InvalidEthrDidError, match=reason):
        parse_ethr_did(did)


def test_network_configuration_is_checked() -> None:
    registry = "0x" + "ab" * 20
    with pytest.raises(ValueError, match="looks like a hex chain id"):
        EthrNetwork("0x1", 1, registry, "http://127.0.0.1:8545")
    with pytest.raises(ValueError, match="chain_id must be positive"):
        EthrNetwork("dev", 0, registry, "http://127.0.0.1:8545")
    with pytest.raises(ValueError, match="not an Ethereum address"):
        EthrNetwork("dev", 1, "0x1234", "http://127.0.0.1:8545")
    network = EthrNetwork("dev", 1, registry, "http://127.0.0.1:8545")
    assert network.registry_address == Web3.to_checksum_address(registry)
    with pytest.raises(ValueError, match="configured twice"):
        EthrDriver([network, EthrNetwork("dev", 2, registry, "http://127.0.0.1:8545")])
    with pytest.raises(ValueError, match="same chain id"):
        EthrDriver([network, EthrNetwork("other", 1, registry, "http://127.0.0.1:8545")])
    with pytest.raises(TypeError, match="web3_or_rpc must be"):
        EthrDriver([EthrNetwork("dev", 1, registry, 42)])  # type: ignore[arg-type]


SYNTHETIC_DID = f"did:ethr:{CHECKSUMMED}"
SYNTHETIC = EthrIdentifier(SYNTHETIC_DID, None, CHECKSUMMED)
DELEGATE_A = Web3.to_checksum_address("0x" + "a1" * 20)
DELEGATE_B = Web3.to_checksum_address("0x" + "b2" * 20)
NOW = 1_700_000_000


def delegate_event(block: int, kind: bytes, delegate: str, valid_to: int) -> DelegateChanged:
    return DelegateChanged(block, 0, kind, Web3.to_checksum_address(delegate), valid_to, 0)


def attribute_event(block: int, name: str, value: bytes, valid_to: int) -> AttributeChanged:
    return AttributeChanged(block, 0, attribute_name(name), value, valid_to, 0)


def test_replay_numbers_ids_like_the_reference_resolver() -> None:
    ed25519 = SigningKey(bytes(32)).verify_key.encode()
    events: list[RegistryEvent] = [
        delegate_event(1, VERI_KEY, DELEGATE_A, NOW + 10),  # delegate-1
        attribute_event(2, "did/pub/Ed25519/veriKey/hex", ed25519, NOW + 10),  # delegate-2
        delegate_event(3, VERI_KEY, DELEGATE_A, NOW),  # revoked: takes 3, removes delegate-1
        attribute_event(4, "did/pub/RSA/veriKey/pem", b"rsa", NOW + 10),  # 4, not published
        delegate_event(5, SIG_AUTH, DELEGATE_B, NOW + 10),  # delegate-5
        attribute_event(6, "did/svc/Hub", b"https://hub.example", NOW + 10),  # service-1
        attribute_event(7, "other/name", b"ignored", NOW + 10),  # no number
        delegate_event(8, SIG_AUTH, DELEGATE_B, NOW + 20),  # same key again: delegate-6
    ]
    replay = ethr_did_document(SYNTHETIC, 1, events, now=NOW)
    document = replay.document
    assert (replay.deactivated, replay.version_block) == (False, 8)
    assert fragments(document, "verificationMethod") == ["controller", "delegate-2", "delegate-6"]
    assert fragments(document, "authentication") == ["controller", "delegate-6"]
    assert fragments(document, "assertionMethod") == ["controller", "delegate-2", "delegate-6"]
    assert method(document, "delegate-2") == {
        "id": f"{SYNTHETIC_DID}#delegate-2",
        "type": "Ed25519VerificationKey2018",
        "controller": SYNTHETIC_DID,
        "publicKeyHex": ed25519.hex(),
    }
    assert method(document, "delegate-6") == recovery_method(
        SYNTHETIC_DID, "delegate-6", 1, DELEGATE_B
    )
    assert document["service"] == [
        {
            "id": f"{SYNTHETIC_DID}#service-1",
            "type": "Hub",
            "serviceEndpoint": "https://hub.example",
        }
    ]


def test_replay_validity_is_strict_and_revoked_keys_leave_every_relationship() -> None:
    x25519 = X25519PrivateKey(bytes(range(32))).public_key.encode()
    events: list[RegistryEvent] = [
        delegate_event(1, VERI_KEY, DELEGATE_A, NOW),  # expires exactly now: gone
        delegate_event(2, VERI_KEY, DELEGATE_B, NOW + 1),  # one second left: there
        attribute_event(3, "did/pub/X25519/enc/base58", x25519, NOW + 1),
    ]
    document = ethr_did_document(SYNTHETIC, 1, events, now=NOW).document
    assert fragments(document, "verificationMethod") == ["controller", "delegate-2", "delegate-3"]
    assert fragments(document, "keyAgreement") == ["delegate-3"]
    assert public_key_bytes(method(document, "delegate-3")) == (KeyType.X25519, x25519)

    revoked = [*events, attribute_event(4, "did/pub/X25519/enc/base58", x25519, 0)]
    document = ethr_did_document(SYNTHETIC, 1, revoked, now=NOW).document
    assert fragments(document, "verificationMethod") == ["controller", "delegate-2"]
    assert "keyAgreement" not in document


def test_replay_deactivation_is_final() -> None:
    events: list[RegistryEvent] = [
        delegate_event(1, VERI_KEY, DELEGATE_A, NOW + 10),
        OwnerChanged(2, 0, Web3.to_checksum_address(ZERO_ADDRESS), 1),
        delegate_event(3, VERI_KEY, DELEGATE_B, NOW + 10),
    ]
    replay = ethr_did_document(SYNTHETIC, 1, events, now=NOW)
    assert (replay.deactivated, replay.version_block) == (True, 2)
    assert replay.document == {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": SYNTHETIC_DID,
        "verificationMethod": [],
        "authentication": [],
        "assertionMethod": [],
    }


# ---- on a chain ----------------------------------------------------------------------------


async def test_fresh_address_has_the_default_document(ethr: Ethr) -> None:
    address = Account.create().address
    for did in (
        ethr.did(address),
        ethr.did(address, ethr.network.hex_chain_id),
        ethr.did(address, None),  # the default network
        ethr.did(address.lower()),
    ):
        result = await ethr.resolve(did)
        assert result.did_document == default_document(did, ethr.chain_id, address)
        assert result.did_document_metadata == {}
        assert result.content_type == "application/did+json"
    result = await ethr.resolve(ethr.did(address), accept="application/did+ld+json")
    assert result.content_type == "application/did+ld+json"


async def test_public_key_did_and_a_signed_owner_change(ethr: Ethr) -> None:
    key = Account.create()
    relayer, new_owner = ethr.chain.accounts[1], Account.create().address
    compressed = Secp256k1PrivateKey(key.key).public_key.to_compressed_bytes()
    did = ethr.did("0x" + compressed.hex())
    controller_key = {
        "id": f"{did}#controllerKey",
        "type": "EcdsaSecp256k1VerificationKey2019",
        "controller": did,
        "publicKeyHex": compressed.hex(),
    }
    document = await ethr.document(did)
    assert document["verificationMethod"] == [
        recovery_method(did, "controller", ethr.chain_id, key.address),
        controller_key,
    ]
    both = [f"{did}#controller", f"{did}#controllerKey"]
    assert (document["authentication"], document["assertionMethod"]) == (both, both)

    multikey = await ethr.document(did, publicKeyFormat="Multikey")
    assert multikey["@context"] == [*DOCUMENT_CONTEXTS, MULTIKEY_CONTEXT]
    assert method(multikey, "controllerKey")["type"] == "Multikey"
    assert public_key_bytes(method(multikey, "controllerKey")) == (KeyType.SECP256K1, compressed)

    v, r, s = ethr.signature(key, key.address, "changeOwner", ["address"], [new_owner])
    functions = ethr.registry.functions
    change = ethr.transact(relayer, functions.changeOwnerSigned(key.address, v, r, s, new_owner))
    result = await ethr.resolve(did)
    assert result.did_document == default_document(did, ethr.chain_id, new_owner)
    assert result.did_document_metadata == version_metadata(change, None)
    # The address form names the same identity.
    address_did = ethr.did(key.address)
    assert await ethr.document(address_did) == default_document(
        address_did, ethr.chain_id, new_owner
    )
    before = await ethr.resolve(did, versionId=str(change.block - 1))
    assert before.did_document == document
    assert before.did_document_metadata == version_metadata(None, change)


async def test_delegates_added_and_revoked_with_history(ethr: Ethr) -> None:
    identity, relayer = Account.create(), ethr.chain.accounts[1]
    delegate_a, delegate_b = Account.create().address, Account.create().address
    functions, did = ethr.registry.functions, ethr.did(identity.address)

    def add_signed(kind: bytes, delegate: str) -> Change:
        v, r, s = ethr.signature(
            identity,
            identity.address,
            "addDelegate",
            ["bytes32", "address", "uint256"],
            [kind, delegate, LONG_VALIDITY],
        )
        call = functions.addDelegateSigned(identity.address, v, r, s, kind, delegate, LONG_VALIDITY)
        return ethr.transact(relayer, call)

    ethr.advance()
    added_a = add_signed(VERI_KEY, delegate_a)
    ethr.advance()
    added_b = add_signed(SIG_AUTH, delegate_b)
    ethr.advance()
    v, r, s = ethr.signature(
        identity, identity.address, "revokeDelegate", ["bytes32", "address"], [VERI_KEY, delegate_a]
    )
    revoked_a = ethr.transact(
        relayer, functions.revokeDelegateSigned(identity.address, v, r, s, VERI_KEY, delegate_a)
    )

    fresh = default_document(did, ethr.chain_id, identity.address)
    with_a = {
        **fresh,
        "verificationMethod": [
            *fresh["verificationMethod"],
            recovery_method(did, "delegate-1", ethr.chain_id, delegate_a),
        ],
        "assertionMethod": [f"{did}#controller", f"{did}#delegate-1"],
    }
    b_method = recovery_method(did, "delegate-2", ethr.chain_id, delegate_b)
    with_a_and_b = {
        **with_a,
        "verificationMethod": [*with_a["verificationMethod"], b_method],
        "authentication": [f"{did}#controller", f"{did}#delegate-2"],
        "assertionMethod": [f"{did}#controller", f"{did}#delegate-1", f"{did}#delegate-2"],
    }
    with_b = {
        **fresh,
        "verificationMethod": [*fresh["verificationMethod"], b_method],
        "authentication": [f"{did}#controller", f"{did}#delegate-2"],
        "assertionMethod": [f"{did}#controller", f"{did}#delegate-2"],
    }
    expectations: list[tuple[dict[str, Any], dict[str, Any], dict[str, str]]] = [
        (
            {"versionId": str(added_a.block - 1)},
            fresh,
            version_metadata(None, added_a),
        ),
        ({"versionTime": at_time(added_a.time - 1)}, fresh, version_metadata(None, added_a)),
        ({"versionId": str(added_a.block)}, with_a, version_metadata(added_a, added_b)),
        ({"versionTime": at_time(added_a.time)}, with_a, version_metadata(added_a, added_b)),
        # The empty block mined between the two changes: still the first version.
        ({"versionId": str(added_a.block + 1)}, with_a, version_metadata(added_a, added_b)),
        ({"versionTime": at_time(added_b.time - 1)}, with_a, version_metadata(added_a, added_b)),
        ({"versionId": str(added_b.block)}, with_a_and_b, version_metadata(added_b, revoked_a)),
        (
            {"versionTime": at_time(added_b.time)},
            with_a_and_b,
            version_metadata(added_b, revoked_a),
        ),
        ({"versionId": str(revoked_a.block)}, with_b, version_metadata(revoked_a, None)),
        ({"versionTime": at_time(revoked_a.time)}, with_b, version_metadata(revoked_a, None)),
        ({}, with_b, version_metadata(revoked_a, None)),
    ]
    for options, document, metadata in expectations:
        result = await ethr.resolve(did, **options)
        assert result.did_document == document, options
        assert result.did_document_metadata == metadata, options
    # A sigAuth delegate may authenticate; a veriKey one only assert.
    assert check_authorization(with_a_and_b, f"{did}#delegate-2", "authentication").authorized
    assert not check_authorization(with_a_and_b, f"{did}#delegate-1", "authentication").authorized

    # What a verifier asks: was delegate A a key of the DID when it signed?
    resolver = build_resolver(ethr_networks=[ethr.network], ethr_default_network=NETWORK)
    try:
        for moment, authorized in [
            (added_a.time - 1, False),
            (added_a.time, True),
            (revoked_a.time - 1, True),
            (revoked_a.time, False),
        ]:
            at = datetime.fromtimestamp(moment, UTC)
            answer = await resolver.authorize(f"{did}#delegate-1", "assertionMethod", at=at)
            assert answer.authorized is authorized, (moment, answer.reason)
    finally:
        driver = resolver.driver("ethr")
        assert isinstance(driver, EthrDriver)
        await driver.aclose()


async def test_a_delegate_expires_without_a_change(ethr: Ethr) -> None:
    identity, delegate = ethr.chain.accounts[2], Account.create().address
    did = ethr.did(identity.address)
    added = ethr.transact(
        identity,
        ethr.registry.functions.addDelegate(identity.address, VERI_KEY, delegate, SHORT_VALIDITY),
    )
    assert fragments(await ethr.document(did), "assertionMethod") == ["controller", "delegate-1"]
    ethr.advance(SHORT_VALIDITY + SPACING_SECONDS)
    result = await ethr.resolve(did)
    assert fragments(result.did_document or {}, "verificationMethod") == ["controller"]
    assert result.did_document_metadata == version_metadata(added, None)
    for options, expected in [
        ({"versionId": str(added.block)}, ["controller", "delegate-1"]),
        ({"versionTime": at_time(added.time + SHORT_VALIDITY - 1)}, ["controller", "delegate-1"]),
        ({"versionTime": at_time(added.time + SHORT_VALIDITY)}, ["controller"]),
    ]:
        assert fragments(await ethr.document(did, **options), "verificationMethod") == expected


async def test_ed25519_and_x25519_attribute_keys(ethr: Ethr) -> None:
    identity = ethr.chain.accounts[2]
    functions, did = ethr.registry.functions, ethr.did(identity.address)
    signing, authenticating = SigningKey.generate(), SigningKey.generate()
    ed_assert, ed_auth = signing.verify_key.encode(), authenticating.verify_key.encode()
    x25519 = X25519PrivateKey.generate().public_key.encode()
    assert_name = attribute_name("did/pub/Ed25519/veriKey/base58")

    def publish(name: str, value: bytes) -> Change:
        call = functions.setAttribute(identity.address, attribute_name(name), value, LONG_VALIDITY)
        return ethr.transact(identity, call)

    publish("did/pub/Ed25519/veriKey/base58", ed_assert)
    publish("did/pub/Ed25519/sigAuth/hex", ed_auth)
    published = publish("did/pub/X25519/enc/base64", x25519)

    document = await ethr.document(did)
    assert fragments(document, "verificationMethod") == [
        "controller",
        "delegate-1",
        "delegate-2",
        "delegate-3",
    ]
    assert fragments(document, "assertionMethod") == ["controller", "delegate-1", "delegate-2"]
    assert fragments(document, "authentication") == ["controller", "delegate-2"]
    assert fragments(document, "keyAgreement") == ["delegate-3"]
    assert method(document, "delegate-1")["type"] == "Ed25519VerificationKey2018"
    # The base58 form is the one the rest of the system reads (publicKeyBase58).
    assert public_key_bytes(method(document, "delegate-1")) == (KeyType.ED25519, ed_assert)
    assert method(document, "delegate-2")["publicKeyHex"] == ed_auth.hex()
    assert method(document, "delegate-3")["type"] == "X25519KeyAgreementKey2019"
    assert check_authorization(document, f"{did}#delegate-1", "assertionMethod").authorized

    # Multikey: every key, whatever its encoding on chain, as publicKeyMultibase.
    multikey = await ethr.document(did, publicKeyFormat="Multikey")
    assert [public_key_bytes(method(multikey, f"delegate-{n}")) for n in (1, 2, 3)] == [
        (KeyType.ED25519, ed_assert),
        (KeyType.ED25519, ed_auth),
        (KeyType.X25519, x25519),
    ]
    assert {method(multikey, f"delegate-{n}")["type"] for n in (1, 2, 3)} == {"Multikey"}

    revoked = ethr.transact(
        identity, functions.revokeAttribute(identity.address, assert_name, ed_assert)
    )
    document = await ethr.document(did)
    assert fragments(document, "verificationMethod") == ["controller", "delegate-2", "delegate-3"]
    assert fragments(document, "assertionMethod") == ["controller", "delegate-2"]
    before = await ethr.resolve(did, versionId=str(published.block))
    assert public_key_bytes(method(before.did_document or {}, "delegate-1"))[1] == ed_assert
    assert before.did_document_metadata == version_metadata(published, revoked)


async def test_service_attributes(ethr: Ethr) -> None:
    identity, relayer = Account.create(), ethr.chain.accounts[1]
    functions, did = ethr.registry.functions, ethr.did(identity.address)
    linked, messaging = attribute_name("did/svc/LinkedDomains"), attribute_name("did/svc/Msg")
    endpoint = {"uri": "https://issuer.example/didcomm", "accept": ["didcomm/v2"]}

    def set_signed(name: bytes, value: bytes) -> Change:
        v, r, s = ethr.signature(
            identity,
            identity.address,
            "setAttribute",
            ["bytes32", "bytes", "uint256"],
            [name, value, LONG_VALIDITY],
        )
        call = functions.setAttributeSigned(identity.address, v, r, s, name, value, LONG_VALIDITY)
        return ethr.transact(relayer, call)

    set_signed(linked, b"https://issuer.example")
    both = set_signed(messaging, json.dumps(endpoint).encode())
    v, r, s = ethr.signature(
        identity,
        identity.address,
        "revokeAttribute",
        ["bytes32", "bytes"],
        [linked, b"https://issuer.example"],
    )
    ethr.transact(
        relayer,
        functions.revokeAttributeSigned(
            identity.address, v, r, s, linked, b"https://issuer.example"
        ),
    )
    set_signed(linked, b"https://new.example")

    assert (await ethr.document(did))["service"] == [
        {"id": f"{did}#service-2", "type": "Msg", "serviceEndpoint": endpoint},
        {
            "id": f"{did}#service-4",
            "type": "LinkedDomains",
            "serviceEndpoint": "https://new.example",
        },
    ]
    assert (await ethr.document(did, versionId=str(both.block)))["service"] == [
        {
            "id": f"{did}#service-1",
            "type": "LinkedDomains",
            "serviceEndpoint": "https://issuer.example",
        },
        {"id": f"{did}#service-2", "type": "Msg", "serviceEndpoint": endpoint},
    ]
    # Services are not verification methods.
    assert fragments(await ethr.document(did), "verificationMethod") == ["controller"]


async def test_owner_change_then_deactivation(ethr: Ethr) -> None:
    identity, new_owner = ethr.chain.accounts[2], ethr.chain.accounts[3]
    delegate = Account.create().address
    functions, did = ethr.registry.functions, ethr.did(identity.address)

    ethr.advance()
    moved = ethr.transact(identity, functions.changeOwner(identity.address, new_owner.address))
    ethr.advance()
    delegated = ethr.transact(
        new_owner, functions.addDelegate(identity.address, VERI_KEY, delegate, LONG_VALIDITY)
    )
    ethr.advance()
    deactivated = ethr.transact(new_owner, functions.changeOwner(identity.address, ZERO_ADDRESS))
    ethr.advance()
    # ERC-1056 gives an identity whose owner is 0x0 back to itself; the DID stays deactivated.
    ethr.transact(
        identity, functions.addDelegate(identity.address, SIG_AUTH, delegate, LONG_VALIDITY)
    )

    result = await ethr.resolve(did)
    assert result.did_document == {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [],
        "authentication": [],
        "assertionMethod": [],
    }
    assert result.did_document_metadata == {
        "deactivated": True,
        **version_metadata(deactivated, None),
    }

    moved_document = default_document(did, ethr.chain_id, new_owner.address)
    for options, document, metadata in [
        (
            {"versionTime": at_time(moved.time - 1)},
            default_document(did, ethr.chain_id, identity.address),
            version_metadata(None, moved),
        ),
        ({"versionId": str(moved.block)}, moved_document, version_metadata(moved, delegated)),
        (
            {"versionTime": at_time(delegated.time)},
            {
                **moved_document,
                "verificationMethod": [
                    *moved_document["verificationMethod"],
                    recovery_method(did, "delegate-1", ethr.chain_id, delegate),
                ],
                "assertionMethod": [f"{did}#controller", f"{did}#delegate-1"],
            },
            version_metadata(delegated, deactivated),
        ),
    ]:
        past = await ethr.resolve(did, **options)
        assert (past.did_document, past.did_document_metadata) == (document, metadata), options

    resolver = build_resolver(ethr_networks=[ethr.network], ethr_default_network=NETWORK)
    try:
        authorization = await resolver.authorize(f"{did}#controller", "authentication")
        assert not authorization.authorized
        assert authorization.reason == f"{did} is deactivated"
    finally:
        driver = resolver.driver("ethr")
        assert isinstance(driver, EthrDriver)
        await driver.aclose()


async def test_resolver_caches_ethr_results(ethr: Ethr) -> None:
    identity, delegate = ethr.chain.accounts[2], Account.create().address
    did = ethr.did(identity.address)
    requests: list[str] = []

    async def count(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        requests.append(str(params.url))

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(count)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        # RPC requests go through the caller's session (borrowed, not closed by the driver).
        resolver = build_resolver(
            session, ethr_networks=[ethr.network], ethr_default_network=NETWORK
        )
        assert resolver.methods == ("ethr", "key", "web")
        first = await resolver.resolve(did)
        assert first.did_document == default_document(did, ethr.chain_id, identity.address)
        added = ethr.transact(
            identity,
            ethr.registry.functions.addDelegate(
                identity.address, VERI_KEY, delegate, LONG_VALIDITY
            ),
        )
        cached = await resolver.resolve(did)
        assert cached.to_json() == first.to_json()
        assert (resolver.cache_stats.hits, resolver.cache_stats.misses) == (1, 1)

        fresh = await resolver.resolve(did, noCache=True)
        assert fragments(fresh.did_document or {}, "assertionMethod") == [
            "controller",
            "delegate-1",
        ]
        assert (await resolver.resolve(did)).to_json() == fresh.to_json()
        old = await resolver.resolve(did, versionId=str(added.block - 1))
        assert old.did_document == first.did_document
        assert old.did_document_metadata == version_metadata(None, added)
        assert resolver.cache_stats.entries == 2
        assert not session.closed
    # On anvil every JSON-RPC request went through the caller's session.
    assert bool(requests) == (ethr.chain.anvil is not None)
    assert all(url.startswith(str(ethr.network.web3_or_rpc)) for url in requests)


async def test_readers_agree(ethr: Ethr) -> None:
    """The same history read through another reader gives the same results: on anvil a
    synchronous HTTP web3 in a thread, on the embedded chain a caller-supplied runner."""
    identity, delegate = ethr.chain.accounts[2], Account.create().address
    functions, did = ethr.registry.functions, ethr.did(identity.address)
    added = ethr.transact(
        identity, functions.addDelegate(identity.address, SIG_AUTH, delegate, LONG_VALIDITY)
    )
    ethr.transact(
        identity,
        functions.setAttribute(
            identity.address, attribute_name("did/svc/Hub"), b"https://hub.example", LONG_VALIDITY
        ),
    )
    calls: list[str] = []
    _T = TypeVar("_T")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain") as pool:
        loop = asyncio.get_running_loop()

        def run(func: Callable[[], _T]) -> asyncio.Future[_T]:
            calls.append("call")
            return loop.run_in_executor(pool, func)

        if ethr.chain.anvil is None:
            source: Any = ThreadedWeb3ChainReader(ethr.chain.w3, ethr.registry.address, run=run)
        else:
            source = ethr.chain.anvil.web3()
        other = EthrNetwork(NETWORK, ethr.chain_id, ethr.registry.address, source)
        async with EthrDriver([other], default_network=NETWORK) as driver:
            for options in (
                {},
                {"versionId": str(added.block)},
                {"versionTime": at_time(added.time)},
            ):
                mine = await ethr.resolve(did, **options)
                theirs = await driver.resolve(parse_did(did), options)
                assert theirs.to_json() == mine.to_json(), options
    assert (len(calls) > 0) == (ethr.chain.anvil is None)


# ---- failures as data ----------------------------------------------------------------------


@EMBEDDED_ONLY
async def test_invalid_options_and_unknown_versions(ethr: Ethr) -> None:
    did = ethr.did(ethr.chain.accounts[2].address)
    resolver = build_resolver(ethr_networks=[ethr.network], ethr_default_network=NETWORK)
    for options in (
        {"versionId": "abc"},
        {"versionId": "-1"},
        {"versionId": "1.5"},
        {"versionTime": "yesterday"},
        {"versionTime": "2024-01-01T00:00:00"},  # no time zone
        {"versionId": "1", "versionTime": "2024-01-01T00:00:00Z"},
        {"publicKeyFormat": "JsonWebKey2020"},
    ):
        direct = await ethr.resolve(did, **options)
        assert direct.error == ErrorCode.INVALID_OPTIONS, options
        assert direct.did_document is None
        assert direct.error_message
        assert (await resolver.resolve(did, **options)).error == ErrorCode.INVALID_OPTIONS
    beyond = await ethr.resolve(did, versionId=str(ethr.head() + 1))
    assert beyond.error == ErrorCode.NOT_FOUND
    assert f"the chain is at block {ethr.head()}" in (beyond.error_message or "")


@EMBEDDED_ONLY
async def test_unknown_networks_and_malformed_dids(ethr: Ethr) -> None:
    address = ethr.chain.accounts[2].address
    for did in (ethr.did(address, "sepolia"), ethr.did(address, "0x1")):
        result = await ethr.resolve(did)
        assert result.error == ErrorCode.UNKNOWN_NETWORK
        assert f"configured: {NETWORK} ({ethr.network.hex_chain_id})" in (
            result.error_message or ""
        )
    async with EthrDriver([ethr.network]) as mainnet_default:
        result = await mainnet_default.resolve(parse_did(f"did:ethr:{address}"), {})
        assert result.error == ErrorCode.UNKNOWN_NETWORK
        assert "mainnet (the default network)" in (result.error_message or "")
    malformed = await ethr.resolve("did:ethr:dev:0x1234")
    assert malformed.error == ErrorCode.INVALID_DID
    resolver = build_resolver(ethr_networks=[ethr.network])
    assert (await resolver.resolve("did:ethr:dev:0x1234")).error == ErrorCode.INVALID_DID


async def test_rpc_endpoint_down_is_an_internal_error() -> None:
    registry = "0x" + "12" * 20
    down = EthrNetwork("down", 31337, registry, f"http://{HOST}:{free_port()}")
    did = f"did:ethr:down:{Account.create().address}"
    started = time.monotonic()
    async with EthrDriver([down]) as driver:
        result = await driver.resolve(parse_did(did), {})
        resolver = build_resolver(ethr_networks=[down])
        through_resolver = await resolver.resolve(did)
        other = resolver.driver("ethr")
        assert isinstance(other, EthrDriver)
        await other.aclose()
    assert time.monotonic() - started < DOWN_ENDPOINT_LIMIT_SECONDS
    for failed in (result, through_resolver):
        assert failed.error == ErrorCode.INTERNAL_ERROR
        message = failed.error_message or ""
        assert "network 'down' (chain 31337)" in message
        assert "ClientConnectorError" in message
        assert "check that the node is up" in message
    assert resolver.cache_stats.entries == 0


async def test_rpc_credentials_never_reach_the_result() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401, text="invalid project id")

    app = web.Application()
    app.router.add_post("/{tail:.*}", refuse)
    async with TestServer(app, host=HOST) as server:
        url = str(server.make_url("/v3/secret-api-key-42")) + "?token=t0ps3cret"
        endpoint = f"AsyncHTTPProvider http://{HOST}:{server.port}***?***"
        network = EthrNetwork("keyed", 31337, "0x" + "12" * 20, url)
        async with EthrDriver([network]) as driver:
            result = await driver.resolve(parse_did(f"did:ethr:keyed:{ZERO_ADDRESS}"), {})
    message = result.error_message or ""
    assert result.error == ErrorCode.INTERNAL_ERROR
    assert "401" in message
    assert endpoint in message
    assert "secret-api-key-42" not in message
    assert "t0ps3cret" not in message


async def test_unresponsive_endpoint_times_out() -> None:
    with socket.create_server((HOST, 0)) as silent:  # accepts connections, never answers
        port = silent.getsockname()[1]
        network = EthrNetwork("silent", 31337, "0x" + "12" * 20, f"http://{HOST}:{port}")
        async with EthrDriver([network], timeout=UNRESPONSIVE_TIMEOUT_SECONDS) as driver:
            result = await driver.resolve(parse_did(f"did:ethr:silent:{ZERO_ADDRESS}"), {})
    assert result.error == ErrorCode.INTERNAL_ERROR
    assert "took more than 0.5s" in (result.error_message or "")


class PrunedNodeReader(ThreadedWeb3ChainReader):
    """A node that answers state calls but has no logs (pruned history)."""

    async def get_logs(self, identity: str, block: int) -> list[RegistryEvent]:
        return []


class ForeignStateReader(ThreadedWeb3ChainReader):
    """A node whose registry state disagrees with its logs (e.g. load-balanced RPC nodes
    serving different forks): it reports another owner than the events say."""

    async def identity_owner(self, identity: str, block: int) -> ChecksumAddress:
        return Web3.to_checksum_address(DELEGATE_A)


@EMBEDDED_ONLY
async def test_wrong_chain_registry_or_history_is_an_internal_error(ethr: Ethr) -> None:
    identity = ethr.chain.accounts[2]
    ethr.transact(
        identity,
        ethr.registry.functions.addDelegate(
            identity.address, VERI_KEY, Account.create().address, LONG_VALIDITY
        ),
    )
    w3, registry = ethr.chain.w3, ethr.registry.address
    cases = [
        (EthrNetwork("dev", 1, registry, w3), "the node serves chain"),
        (
            EthrNetwork("dev", ethr.chain_id, ethr.chain.accounts[5].address, w3),
            "is there an ERC-1056 registry at that address?",
        ),
        (
            EthrNetwork("dev", ethr.chain_id, registry, PrunedNodeReader(w3, registry)),
            "returned no registry event",
        ),
        (
            EthrNetwork("dev", ethr.chain_id, registry, ForeignStateReader(w3, registry)),
            f"identityOwner({identity.address}) is {DELEGATE_A} but the registry's events say "
            f"{identity.address}",
        ),
    ]
    for network, reason in cases:
        async with EthrDriver([network]) as driver:
            result = await driver.resolve(parse_did(f"did:ethr:dev:{identity.address}"), {})
        assert result.error == ErrorCode.INTERNAL_ERROR
        assert reason in (result.error_message or ""), result.error_message
