"""did:ethr: DIDs of Ethereum accounts, read from an ERC-1056 registry, with history.

Specification: the did:ethr method specification (decentralized-identity/ethr-did-resolver,
``doc/did-method-spec.md``) and ERC-1056 (lightweight identity); the document layout, ids and
metadata follow the reference resolver (``ethr-did-resolver``) so that documents compare
equal across implementations, except where a choice below says otherwise.

DID syntax (:func:`parse_ethr_did`)::

    did:ethr:[<network>:]<identifier>
    <identifier> = 0x<40 hex>          an Ethereum address (EIP-55 checksum checked when the
                                       hex has mixed case)
                 | 0x<66 hex>          a compressed secp256k1 public key (02 or 03 prefix);
                                       the identity is the address of that key
    <network>    = a configured name (``mainnet``, ``sepolia``, ``dev:local`` ...; may contain
                                       ``:``) or a hex chain id (``0x1``, ``0x7a69``)

Without ``<network>`` the driver's ``default_network`` (``mainnet``) is used. Networks come
from configuration only (:class:`EthrNetwork`: name, chain id, registry address and how to
reach the chain), never from the environment.

Resolution (:class:`EthrDriver`):

1. the chain head ``H`` and the node's chain id (must be the configured one), then
   ``changed(identity)`` and ``identityOwner(identity)``, both read at block ``H``;
2. the event log walked backwards: the registry's events for the identity (filtered by
   block and by the indexed ``identity`` topic) at block ``changed``, then at the smallest
   ``previousChange`` below that block, and so on down to 0;
3. the events replayed forwards (:func:`ethr_did_document`):

   * default document: ``#controller``, an ``EcdsaSecp256k1RecoveryMethod2020`` with
     ``blockchainAccountId`` ``eip155:<chainId>:<owner>``, plus, for a public-key DID whose
     owner is still its own address, ``#controllerKey`` (``EcdsaSecp256k1VerificationKey2019``,
     ``publicKeyHex``); both under ``authentication`` and ``assertionMethod``;
   * ``DIDOwnerChanged`` replaces the controller; an owner of ``0x000...0`` deactivates the
     DID: the document loses its methods and relationships, ``didDocumentMetadata`` gets
     ``deactivated: true``, and later events are ignored (deactivation is final);
   * ``DIDDelegateChanged`` of type ``veriKey`` -> ``#delegate-N``
     (``EcdsaSecp256k1RecoveryMethod2020`` with the delegate's ``blockchainAccountId``) under
     ``assertionMethod``; ``sigAuth`` also under ``authentication``;
   * ``DIDAttributeChanged`` ``did/pub/<Ed25519|Secp256k1|X25519>/<veriKey|sigAuth|enc>/
     <hex|base64|base58>`` -> ``#delegate-N`` (``Ed25519VerificationKey2018``,
     ``EcdsaSecp256k1VerificationKey2019``, ``X25519KeyAgreementKey2019``) with
     ``publicKeyHex`` / ``publicKeyBase64`` / ``publicKeyBase58`` (no encoding: hex);
     ``veriKey`` -> ``assertionMethod``, ``sigAuth`` -> also ``authentication``, ``enc`` ->
     ``keyAgreement``; ``did/svc/<Type>`` -> ``#service-N`` of that type whose
     ``serviceEndpoint`` is the value (UTF-8; parsed when it is a JSON object, array or
     string);
   * a delegate or attribute counts while ``validTo`` is *after* the resolution instant;
     a revocation (``validTo`` 0 or the revocation block's time) or an expiry removes it.
   * ``N`` counts, as the reference resolver does, every delegate event and every
     ``did/pub/`` attribute event in history order (valid or not; ``#delegate-N``), and
     every ``did/svc/`` event (``#service-N``), so ids are stable across versions.

History: ``versionId`` (a block number, decimal) gives the document as of that block: later
events are ignored and validity is judged at that block's timestamp. ``versionTime`` gives
it as of that instant: events of blocks stamped at or before it count, validity is judged at
that instant. Without either, the latest document, with validity judged at the head block's
timestamp. ``didDocumentMetadata``: ``versionId`` (block of the last change taken into
account) and ``updated`` (its time), ``nextVersionId`` / ``nextUpdate`` when a later change
exists, ``deactivated``. Times are ISO 8601 UTC to the second (``2024-05-10T17:00:00Z``).

Errors, as data (:meth:`EthrDriver.resolve` never raises): malformed DID -> ``invalidDid``;
a network that is not configured -> ``unknownNetwork`` (the reference resolver's code; not
a DID Resolution code, so the HTTP binding maps it to 404 like ``notFound``; the message
names the network and the configured ones); bad ``versionId`` /
``versionTime`` / ``publicKeyFormat`` -> ``invalidOptions``; a ``versionId`` above the chain
head -> ``notFound``; an unreachable node, a timeout, a wrong chain id, a registry that does
not answer like ERC-1056, or an event history that contradicts the registry state ->
``internalError`` with a message naming the network and what to check. Messages never show
the parts of an RPC URL where providers put API keys (user info, path, query): they read
``***``.

Choices and deviations (the reference resolver's behaviour in parentheses):

* Validity is strict, ``validTo > now``, as the registry's own ``validDelegate``; a delegate
  revoked in block ``B`` is gone in the document at ``B`` (the reference uses ``>=``, so a
  delegate reappears for the very block of its revocation).
* "Now" for the latest document is the head block's timestamp, the registry's clock (the
  reference uses the wall clock).
* A revoked ``enc`` key leaves ``keyAgreement`` too (the reference keeps a dangling id).
* Public keys of other algorithms/purposes (RSA, ``pem``, ``X25519/veriKey`` ...) and
  unreadable service values are left out, though they still take their ``N``.
* The history is checked: ``changed`` must lead to at least one event, and the owner found by
  replay must be ``identityOwner`` at the head (a node missing logs or a wrong registry
  address would otherwise give a wrong document silently).
* Option ``publicKeyFormat: "Multikey"`` publishes every public key (``#controllerKey`` and
  ``did/pub`` attributes, any encoding) as a ``Multikey`` with ``publicKeyMultibase``, the
  form :func:`did_methods.keys.public_key_bytes` reads for every key type; keys that are not
  valid points are then left out. In the default form, Ed25519 keys published with the
  ``base58`` encoding (``Ed25519VerificationKey2018`` + ``publicKeyBase58``) are readable by
  :func:`~did_methods.keys.public_key_bytes`; ``publicKeyHex`` / ``publicKeyBase64`` are not.

Chain access goes through a :class:`ChainReader`: ``chain_id()``, ``block_number()``,
``block_timestamp(n)``, ``changed(identity, block)``, ``identity_owner(identity, block)`` and
``get_logs(identity, block)`` (decoded events). Two are provided: :class:`AsyncWeb3ChainReader`
(``AsyncWeb3`` over ``AsyncHTTPProvider`` for an RPC URL, or any ``AsyncWeb3``) and
:class:`ThreadedWeb3ChainReader` (a synchronous ``Web3``, e.g. the embedded
``EthereumTesterProvider`` chain, whose calls run through a runner, by default
``asyncio.to_thread``). The registry ABI fragments used are :data:`REGISTRY_ABI` (the
calls are ABI-encoded here, so any reader shares the same decoding).
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Protocol, TypeVar, cast, runtime_checkable

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_typing import BlockNumber, ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import AsyncHTTPProvider, AsyncWeb3, Web3
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import FilterParams, LogReceipt, TxParams

from did_methods import jsonlimits
from did_methods.keys import PublicKeyError, validate_public_key
from did_methods.multikey import KeyType, MultikeyError, b58encode, encode_multikey
from did_methods.result import DEFAULT_CONTENT_TYPE, ErrorCode, ResolutionResult
from did_methods.syntax import DidSyntaxError, ParsedDid, parse_did

METHOD: Final = "ethr"
DEFAULT_NETWORK: Final = "mainnet"
"""Network of a DID without a network part (the specification's default)."""
DEFAULT_TIMEOUT_SECONDS: Final = 20.0
"""Limit on one whole resolution (every RPC call of it)."""
RPC_ATTEMPTS: Final = 2
"""Attempts per JSON-RPC request on a connection error or timeout (RPC URLs)."""
RPC_RETRY_BACKOFF_SECONDS: Final = 0.1
"""Pause before the second attempt (doubling for each further one)."""
NULL_ADDRESS: Final = "0x" + "00" * 20
"""Owner that deactivates a DID."""

DID_CONTEXT: Final = "https://www.w3.org/ns/did/v1"
SECP256K1_RECOVERY_CONTEXT: Final = "https://w3id.org/security/suites/secp256k1recovery-2020/v2"
SECURITY_V3_CONTEXT: Final = "https://w3id.org/security/v3-unstable"
MULTIKEY_CONTEXT: Final = "https://w3id.org/security/multikey/v1"
DOCUMENT_CONTEXTS: Final = (DID_CONTEXT, SECP256K1_RECOVERY_CONTEXT, SECURITY_V3_CONTEXT)
"""``@context`` of a did:ethr document (as the reference resolver's)."""

RECOVERY_METHOD_TYPE: Final = "EcdsaSecp256k1RecoveryMethod2020"
SECP256K1_KEY_TYPE: Final = "EcdsaSecp256k1VerificationKey2019"
ED25519_KEY_TYPE: Final = "Ed25519VerificationKey2018"
X25519_KEY_TYPE: Final = "X25519KeyAgreementKey2019"
MULTIKEY_TYPE: Final = "Multikey"

PUBLIC_KEY_FORMAT_OPTION: Final = "publicKeyFormat"
PUBLIC_KEY_FORMATS: Final = (MULTIKEY_TYPE,)
"""Values of the ``publicKeyFormat`` option (absent: the specification's key types)."""

DELEGATE_VERI_KEY: Final = "veriKey"
DELEGATE_SIG_AUTH: Final = "sigAuth"
PURPOSE_ENC: Final = "enc"
ATTRIBUTE_PUB_PREFIX: Final = "did/pub/"
ATTRIBUTE_SVC_PREFIX: Final = "did/svc/"

_ADDRESS_HEX_DIGITS = 40
_PUBLIC_KEY_HEX_DIGITS = 66
_IDENTIFIER_RE = re.compile(r"0x(?P<hex>[0-9a-fA-F]{40}|[0-9a-fA-F]{66})")
_HEX_CHAIN_ID_RE = re.compile(r"0x[0-9a-fA-F]+")
_NETWORK_NAME_RE = re.compile(r"[A-Za-z0-9._-]+(?::[A-Za-z0-9._-]+)*")
_VERSION_ID_RE = re.compile(r"[0-9]+")
# JavaScript's \w (ASCII), as in the reference resolver's attribute pattern.
_ATTRIBUTE_RE = re.compile(
    r"did/(?P<section>pub|svc)/(?P<algorithm>[A-Za-z0-9_]+)"
    r"(?:/(?P<purpose>[A-Za-z0-9_]+))?(?:/(?P<encoding>[A-Za-z0-9_]+))?"
)
_COMPRESSED_KEY_PREFIXES = (b"\x02", b"\x03")
_EVENT_TOPIC_COUNT = 2
"""Topics of every registry event: the event signature and the indexed identity."""

_PUBLIC_KEY_KINDS: Mapping[tuple[str, str], tuple[KeyType, str]] = {
    ("Ed25519", DELEGATE_VERI_KEY): (KeyType.ED25519, ED25519_KEY_TYPE),
    ("Ed25519", DELEGATE_SIG_AUTH): (KeyType.ED25519, ED25519_KEY_TYPE),
    ("Secp256k1", DELEGATE_VERI_KEY): (KeyType.SECP256K1, SECP256K1_KEY_TYPE),
    ("Secp256k1", DELEGATE_SIG_AUTH): (KeyType.SECP256K1, SECP256K1_KEY_TYPE),
    ("X25519", PURPOSE_ENC): (KeyType.X25519, X25519_KEY_TYPE),
}
"""``did/pub`` (algorithm, purpose) pairs published, with key type and method type."""
_ENCODING_PROPERTIES: Mapping[str | None, str] = {
    None: "publicKeyHex",
    "hex": "publicKeyHex",
    "base64": "publicKeyBase64",
    "base58": "publicKeyBase58",
}
"""``did/pub`` encodings and the verification method property each one gives."""

# ---- the registry's ABI --------------------------------------------------------------------


def _address_input(name: str, *, indexed: bool | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"internalType": "address", "name": name, "type": "address"}
    if indexed is not None:
        entry = {"indexed": indexed, **entry}
    return entry


def _event_input(solidity_type: str, name: str) -> dict[str, Any]:
    return {"indexed": False, "internalType": solidity_type, "name": name, "type": solidity_type}


REGISTRY_ABI: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "inputs": [_address_input("identity")],
        "name": "changed",
        "outputs": [{"internalType": "uint256", "name": "blockNumber", "type": "uint256"}],
        "stateMutability": "view",
        "type": "function",
    },
    {
        "inputs": [_address_input("identity")],
        "name": "identityOwner",
        "outputs": [{"internalType": "address", "name": "", "type": "address"}],
        "stateMutability": "view",
        "type": "function",
    },
    {
        "anonymous": False,
        "inputs": [
            _address_input("identity", indexed=True),
            _event_input("address", "owner"),
            _event_input("uint256", "previousChange"),
        ],
        "name": "DIDOwnerChanged",
        "type": "event",
    },
    {
        "anonymous": False,
        "inputs": [
            _address_input("identity", indexed=True),
            _event_input("bytes32", "delegateType"),
            _event_input("address", "delegate"),
            _event_input("uint256", "validTo"),
            _event_input("uint256", "previousChange"),
        ],
        "name": "DIDDelegateChanged",
        "type": "event",
    },
    {
        "anonymous": False,
        "inputs": [
            _address_input("identity", indexed=True),
            _event_input("bytes32", "name"),
            _event_input("bytes", "value"),
            _event_input("uint256", "validTo"),
            _event_input("uint256", "previousChange"),
        ],
        "name": "DIDAttributeChanged",
        "type": "event",
    },
)
"""The ERC-1056 registry ABI entries this driver uses (two views, three events)."""


def _abi_entry(name: str) -> Mapping[str, Any]:
    (entry,) = (item for item in REGISTRY_ABI if item["name"] == name)
    return entry


def _abi_signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(item['type'] for item in entry['inputs'])})"


def _data_types(entry: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(item["type"] for item in entry["inputs"] if not item.get("indexed"))


_CHANGED_SELECTOR = keccak(text=_abi_signature(_abi_entry("changed")))[:4]
_OWNER_SELECTOR = keccak(text=_abi_signature(_abi_entry("identityOwner")))[:4]
_EVENT_NAMES = ("DIDOwnerChanged", "DIDDelegateChanged", "DIDAttributeChanged")
_EVENT_TOPICS: Mapping[bytes, str] = {
    keccak(text=_abi_signature(_abi_entry(name))): name for name in _EVENT_NAMES
}
_EVENT_DATA_TYPES: Mapping[str, tuple[str, ...]] = {
    name: _data_types(_abi_entry(name)) for name in _EVENT_NAMES
}

# ---- errors, identifiers, events -----------------------------------------------------------


class InvalidEthrDidError(ValueError):
    """The text is not a did:ethr; the message says why."""


class RegistryReadError(RuntimeError):
    """The chain answered, but not as an ERC-1056 registry would; the message says how."""


@dataclass(frozen=True, slots=True)
class EthrIdentifier:
    """A parsed did:ethr: the DID, its network label, identity address and public key.

    ``network`` is the label as written (``None`` when the DID has none); ``address`` is
    EIP-55 checksummed; ``public_key`` is the compressed secp256k1 key of a public-key DID.
    """

    did: str
    network: str | None
    address: ChecksumAddress
    public_key: bytes | None = None


def _uncompressed_secp256k1(raw: bytes) -> bytes:
    """The 65-byte uncompressed form of a secp256k1 point (``ValueError`` when not one)."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _compressed_secp256k1(raw: bytes) -> bytes:
    """The 33-byte compressed form of a secp256k1 point (``ValueError`` when not one)."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def address_of_public_key(public_key: bytes) -> ChecksumAddress:
    """The Ethereum address of a secp256k1 public key (compressed or uncompressed).

    Raises ``ValueError`` when the bytes are not a point on the curve.
    """
    uncompressed = _uncompressed_secp256k1(public_key)
    return to_checksum_address(keccak(uncompressed[1:])[-20:])


def parse_ethr_did(did: str | ParsedDid) -> EthrIdentifier:
    """Split a did:ethr into network label and identity. Raises :class:`InvalidEthrDidError`."""
    if isinstance(did, str):
        try:
            did = parse_did(did)
        except DidSyntaxError as exc:
            raise InvalidEthrDidError(str(exc)) from None
    if did.method != METHOD:
        raise InvalidEthrDidError(f"{did.did!r} is not a did:ethr (method {did.method})")
    network, _, identifier = did.method_specific_id.rpartition(":")
    match = _IDENTIFIER_RE.fullmatch(identifier)
    if match is None:
        raise InvalidEthrDidError(
            f"{did.did!r} is not a did:ethr: the identifier {identifier!r} must be 0x and "
            f"{_ADDRESS_HEX_DIGITS} hex digits (an address) or {_PUBLIC_KEY_HEX_DIGITS} hex "
            "digits (a compressed secp256k1 public key)"
        )
    if network and not _NETWORK_NAME_RE.fullmatch(network):
        raise InvalidEthrDidError(
            f"{did.did!r} is not a did:ethr: the network {network!r} is empty or has an "
            "empty segment"
        )
    digits = match["hex"]
    if len(digits) == _ADDRESS_HEX_DIGITS:
        address = to_checksum_address("0x" + digits)
        if digits not in (digits.lower(), digits.upper()) and address[2:] != digits:
            raise InvalidEthrDidError(
                f"{did.did!r}: the address has mixed case but a wrong EIP-55 checksum "
                f"(expected {address}); write it all lowercase or with the right checksum"
            )
        return EthrIdentifier(did.did, network or None, address)
    public_key = bytes.fromhex(digits)
    if public_key[:1] not in _COMPRESSED_KEY_PREFIXES:
        raise InvalidEthrDidError(
            f"{did.did!r}: a public-key did:ethr holds a compressed secp256k1 key, which "
            f"starts with 02 or 03, not {digits[:2]}"
        )
    try:
        address = address_of_public_key(public_key)
    except ValueError:
        raise InvalidEthrDidError(
            f"{did.did!r}: {identifier} is not a point on the secp256k1 curve"
        ) from None
    return EthrIdentifier(did.did, network or None, address, public_key)


@dataclass(frozen=True, slots=True)
class OwnerChanged:
    """``DIDOwnerChanged``: ``owner`` now owns the identity."""

    block: int
    log_index: int
    owner: ChecksumAddress
    previous_change: int


@dataclass(frozen=True, slots=True)
class DelegateChanged:
    """``DIDDelegateChanged``: a delegate added (until ``valid_to``) or revoked."""

    block: int
    log_index: int
    delegate_type: bytes
    delegate: ChecksumAddress
    valid_to: int
    previous_change: int


@dataclass(frozen=True, slots=True)
class AttributeChanged:
    """``DIDAttributeChanged``: an attribute set (until ``valid_to``) or revoked (0)."""

    block: int
    log_index: int
    name: bytes
    value: bytes
    valid_to: int
    previous_change: int


RegistryEvent = OwnerChanged | DelegateChanged | AttributeChanged


def identity_topic(identity: str) -> HexStr:
    """The indexed ``identity`` topic of the registry's events (the address, 32 bytes)."""
    return HexStr("0x" + abi_encode(["address"], [to_checksum_address(identity)]).hex())


def registry_log_filter(registry: str, identity: str, block: int) -> FilterParams:
    """``eth_getLogs`` filter: the registry's three events about ``identity`` in ``block``."""
    return {
        "address": to_checksum_address(registry),
        "fromBlock": BlockNumber(block),
        "toBlock": BlockNumber(block),
        "topics": [
            [HexStr("0x" + topic.hex()) for topic in _EVENT_TOPICS],
            identity_topic(identity),
        ],
    }


def decode_registry_log(log: Mapping[str, Any]) -> tuple[ChecksumAddress, RegistryEvent]:
    """The identity and event of one registry log. Raises :class:`RegistryReadError`."""
    topics = [bytes(topic) for topic in log.get("topics", ())]
    name = _EVENT_TOPICS.get(topics[0]) if topics else None
    if name is None or len(topics) != _EVENT_TOPIC_COUNT:
        raise RegistryReadError(f"log {log.get('logIndex')} is not an ERC-1056 registry event")
    try:
        values = abi_decode(_EVENT_DATA_TYPES[name], bytes(log["data"]))
        identity = to_checksum_address(abi_decode(["address"], topics[1])[0])
        block, index = int(log["blockNumber"]), int(log["logIndex"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryReadError(f"undecodable {name} log: {exc}") from None
    event: RegistryEvent
    if name == "DIDOwnerChanged":
        owner, previous = values
        event = OwnerChanged(block, index, to_checksum_address(owner), previous)
    elif name == "DIDDelegateChanged":
        delegate_type, delegate, valid_to, previous = values
        event = DelegateChanged(
            block, index, delegate_type, to_checksum_address(delegate), valid_to, previous
        )
    else:
        attribute, value, valid_to, previous = values
        event = AttributeChanged(block, index, attribute, value, valid_to, previous)
    return identity, event


def _call_params(registry: str, selector: bytes, identity: str) -> TxParams:
    data = selector + abi_encode(["address"], [to_checksum_address(identity)])
    return {"to": to_checksum_address(registry), "data": HexStr("0x" + data.hex())}


def _decode_result(solidity_type: str, raw: bytes, what: str) -> Any:
    try:
        (value,) = abi_decode([solidity_type], bytes(raw))
    except Exception as exc:  # noqa: BLE001 - eth_abi raises several unrelated types
        raise RegistryReadError(
            f"{what} returned {bytes(raw).hex() or 'nothing'}, not an ABI {solidity_type}: "
            f"is there an ERC-1056 registry at that address? ({exc})"
        ) from None
    return value


def _decode_logs(logs: Iterable[Mapping[str, Any]], identity: str) -> list[RegistryEvent]:
    wanted = to_checksum_address(identity)
    events: list[RegistryEvent] = []
    for log in logs:
        owner, event = decode_registry_log(log)
        if owner == wanted:
            events.append(event)
    return events


# ---- chain readers -------------------------------------------------------------------------

REDACTED: Final = "***"
"""Stands for the parts of an RPC URL that may hold credentials, in messages."""


def _url_secrets(url: str) -> tuple[str, ...]:
    """The parts of an RPC URL that may carry credentials (user info, path, query,
    fragment: providers put API keys there), longest first."""
    parts = urllib.parse.urlsplit(url)
    user_info = parts.netloc.rpartition("@")[0]
    path = parts.path if parts.path not in ("", "/") else ""
    found = {part for part in (user_info, path, parts.query, parts.fragment) if part}
    return tuple(sorted(found, key=len, reverse=True))


def _redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by :data:`REDACTED`."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _endpoint_uri(provider: object) -> str | None:
    uri = getattr(provider, "endpoint_uri", None)
    return str(uri) if uri else None


def _source_secrets(source: object) -> tuple[str, ...]:
    """The credential-like parts of the RPC URL behind a network's chain source."""
    uri = source if isinstance(source, str) else _endpoint_uri(getattr(source, "provider", None))
    return _url_secrets(uri) if uri else ()


def _provider_label(provider: object) -> str:
    """A provider for messages: its kind and, for HTTP, the URL without credentials."""
    uri = _endpoint_uri(provider)
    if uri is None:
        return type(provider).__name__
    return f"{type(provider).__name__} {_redact(uri, _url_secrets(uri))}"


@runtime_checkable
class ChainReader(Protocol):
    """The chain reads did:ethr needs, for one registry on one chain.

    Any failure may raise; the driver turns it into an ``internalError`` result.
    """

    async def chain_id(self) -> int:
        """The chain id the node serves (checked against the configuration)."""
        ...

    async def block_number(self) -> int:
        """The head block number."""
        ...

    async def block_timestamp(self, number: int) -> int:
        """The timestamp (unix seconds) of block ``number``."""
        ...

    async def changed(self, identity: str, block: int) -> int:
        """``changed(identity)`` at ``block``: the block of its latest change (0: none)."""
        ...

    async def identity_owner(self, identity: str, block: int) -> ChecksumAddress:
        """``identityOwner(identity)`` at ``block``."""
        ...

    async def get_logs(self, identity: str, block: int) -> list[RegistryEvent]:
        """The registry's events about ``identity`` in ``block``, decoded, in log order."""
        ...


_T = TypeVar("_T")


class ThreadRunner(Protocol):
    """Runs a blocking call off the event loop and awaits it (``asyncio.to_thread``)."""

    def __call__(self, func: Callable[[], _T], /) -> Awaitable[_T]:
        """Run ``func`` and give back its result."""
        ...


class AsyncWeb3ChainReader:
    """:class:`ChainReader` over an ``AsyncWeb3`` (an RPC URL through :meth:`from_url`)."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        registry_address: str,
        *,
        session: aiohttp.ClientSession | None = None,
        owns_provider: bool = False,
    ) -> None:
        """``session``, when given, is the ``aiohttp`` session the provider sends its requests
        with (borrowed: never closed here); ``owns_provider`` makes :meth:`aclose`
        disconnect the provider (its own sessions)."""
        self._w3 = w3
        self._registry = to_checksum_address(registry_address)
        self._session = session
        self._session_loops: set[int] = set()
        self._owns_provider = owns_provider and session is None

    @classmethod
    def from_url(
        cls,
        rpc_url: str,
        registry_address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        session: aiohttp.ClientSession | None = None,
    ) -> AsyncWeb3ChainReader:
        """A reader over JSON-RPC at ``rpc_url`` (``AsyncHTTPProvider``), each request
        limited to ``timeout`` seconds and tried :data:`RPC_ATTEMPTS` times."""
        provider = AsyncHTTPProvider(
            rpc_url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=ExceptionRetryConfiguration(
                errors=(aiohttp.ClientError, TimeoutError),
                retries=RPC_ATTEMPTS,
                backoff_factor=RPC_RETRY_BACKOFF_SECONDS,
            ),
        )
        return cls(AsyncWeb3(provider), registry_address, session=session, owns_provider=True)

    def __str__(self) -> str:
        return f"{_provider_label(self._w3.provider)} (registry {self._registry})"

    async def _ready(self) -> None:
        """Hand the borrowed session to the provider, once per event loop."""
        if self._session is None:
            return
        loop = id(asyncio.get_running_loop())
        if loop in self._session_loops:
            return
        provider = self._w3.provider
        if isinstance(provider, AsyncHTTPProvider):
            await provider.cache_async_session(self._session)
        self._session_loops.add(loop)

    async def chain_id(self) -> int:
        await self._ready()
        return int(await self._w3.eth.chain_id)

    async def block_number(self) -> int:
        await self._ready()
        return int(await self._w3.eth.block_number)

    async def block_timestamp(self, number: int) -> int:
        await self._ready()
        block = await self._w3.eth.get_block(BlockNumber(number))
        return int(block["timestamp"])

    async def changed(self, identity: str, block: int) -> int:
        await self._ready()
        raw = await self._w3.eth.call(
            _call_params(self._registry, _CHANGED_SELECTOR, identity), BlockNumber(block)
        )
        return int(_decode_result("uint256", raw, f"changed({identity})"))

    async def identity_owner(self, identity: str, block: int) -> ChecksumAddress:
        await self._ready()
        raw = await self._w3.eth.call(
            _call_params(self._registry, _OWNER_SELECTOR, identity), BlockNumber(block)
        )
        return to_checksum_address(_decode_result("address", raw, f"identityOwner({identity})"))

    async def get_logs(self, identity: str, block: int) -> list[RegistryEvent]:
        await self._ready()
        logs: list[LogReceipt] = await self._w3.eth.get_logs(
            registry_log_filter(self._registry, identity, block)
        )
        return _decode_logs(cast(list[Mapping[str, Any]], logs), identity)

    async def aclose(self) -> None:
        """Disconnect the provider when this reader made it (never a borrowed session)."""
        if self._owns_provider:
            provider = self._w3.provider
            if isinstance(provider, AsyncHTTPProvider):
                await provider.disconnect()


class ThreadedWeb3ChainReader:
    """:class:`ChainReader` over a synchronous ``Web3`` whose calls go through ``run``.

    For the embedded ``EthereumTesterProvider`` chain (no HTTP endpoint) or any synchronous
    provider. ``run`` defaults to ``asyncio.to_thread``; pass the runner that owns the chain
    (e.g. a single-thread executor) when the chain object must not be used concurrently.
    """

    def __init__(
        self, w3: Web3, registry_address: str, *, run: ThreadRunner = asyncio.to_thread
    ) -> None:
        self._w3 = w3
        self._registry = to_checksum_address(registry_address)
        self._run = run

    def __str__(self) -> str:
        return f"{_provider_label(self._w3.provider)} (registry {self._registry})"

    async def chain_id(self) -> int:
        return int(await self._run(lambda: self._w3.eth.chain_id))

    async def block_number(self) -> int:
        return int(await self._run(lambda: self._w3.eth.block_number))

    async def block_timestamp(self, number: int) -> int:
        block = await self._run(lambda: self._w3.eth.get_block(BlockNumber(number)))
        return int(block["timestamp"])

    async def changed(self, identity: str, block: int) -> int:
        params = _call_params(self._registry, _CHANGED_SELECTOR, identity)
        raw = await self._run(lambda: self._w3.eth.call(params, BlockNumber(block)))
        return int(_decode_result("uint256", raw, f"changed({identity})"))

    async def identity_owner(self, identity: str, block: int) -> ChecksumAddress:
        params = _call_params(self._registry, _OWNER_SELECTOR, identity)
        raw = await self._run(lambda: self._w3.eth.call(params, BlockNumber(block)))
        return to_checksum_address(_decode_result("address", raw, f"identityOwner({identity})"))

    async def get_logs(self, identity: str, block: int) -> list[RegistryEvent]:
        params = registry_log_filter(self._registry, identity, block)
        logs = await self._run(lambda: self._w3.eth.get_logs(params))
        return _decode_logs(cast(list[Mapping[str, Any]], logs), identity)


ChainSource = str | AsyncWeb3[Any] | Web3 | ChainReader
"""How a network is reached: an RPC URL, an ``AsyncWeb3``, a synchronous ``Web3`` (run in a
thread) or a ready :class:`ChainReader` (bound to its own registry address)."""


@dataclass(frozen=True, slots=True)
class EthrNetwork:
    """One network did:ethr DIDs may name: ``did:ethr:<name>:...`` or ``did:ethr:<0xchainId>:...``.

    ``registry_address`` is the ERC-1056 registry (stored EIP-55 checksummed);
    ``web3_or_rpc`` says how to reach the chain (:data:`ChainSource`). Raises ``ValueError``
    for a malformed name, chain id or address.
    """

    name: str
    chain_id: int
    registry_address: str
    web3_or_rpc: ChainSource

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NETWORK_NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"network name {self.name!r} must be letters, digits, '.', '-', '_' "
                "(segments joined by ':')"
            )
        if _HEX_CHAIN_ID_RE.fullmatch(self.name):
            raise ValueError(
                f"network name {self.name!r} looks like a hex chain id; hex chain ids are "
                "matched against chain_id already, choose a name"
            )
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int):
            raise ValueError(f"chain_id must be an integer, not {self.chain_id!r}")
        if self.chain_id <= 0:
            raise ValueError(f"chain_id must be positive, not {self.chain_id}")
        try:
            checksummed = to_checksum_address(self.registry_address)
        except (TypeError, ValueError):
            raise ValueError(
                f"registry_address {self.registry_address!r} is not an Ethereum address"
            ) from None
        object.__setattr__(self, "registry_address", checksummed)

    @property
    def hex_chain_id(self) -> str:
        """The chain id as DIDs write it (``0x7a69``)."""
        return hex(self.chain_id)


def _reader_for(
    network: EthrNetwork, *, timeout: float, session: aiohttp.ClientSession | None
) -> ChainReader:
    source = network.web3_or_rpc
    if isinstance(source, str):
        return AsyncWeb3ChainReader.from_url(
            source, network.registry_address, timeout=timeout, session=session
        )
    if isinstance(source, AsyncWeb3):
        return AsyncWeb3ChainReader(source, network.registry_address)
    if isinstance(source, Web3):
        return ThreadedWeb3ChainReader(source, network.registry_address)
    if isinstance(source, ChainReader):
        return source
    raise TypeError(
        f"network {network.name!r}: web3_or_rpc must be an RPC URL, an AsyncWeb3, a Web3 or "
        f"a ChainReader, not {type(source).__name__}"
    )


# ---- the document (pure) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EthrDocument:
    """The outcome of replaying a history: the document, whether it is deactivated, and the
    block of the last event taken into account (``None``: none, the default document)."""

    document: dict[str, Any]
    deactivated: bool
    version_block: int | None


def _bytes32_text(raw: bytes) -> str | None:
    try:
        return raw.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        return None


def _recovery_method(did: str, fragment: str, chain_id: int, address: str) -> dict[str, Any]:
    return {
        "id": f"{did}#{fragment}",
        "type": RECOVERY_METHOD_TYPE,
        "controller": did,
        "blockchainAccountId": f"eip155:{chain_id}:{to_checksum_address(address)}",
    }


def _multikey_method(
    did: str, fragment: str, key_type: KeyType, raw: bytes
) -> dict[str, Any] | None:
    """A ``Multikey`` method, or ``None`` when ``raw`` is no valid key of ``key_type``."""
    try:
        if key_type is KeyType.SECP256K1:
            raw = _compressed_secp256k1(raw)
        validate_public_key(key_type, raw)
        multibase = encode_multikey(key_type, raw)
    except (ValueError, PublicKeyError, MultikeyError):
        return None
    return {
        "id": f"{did}#{fragment}",
        "type": MULTIKEY_TYPE,
        "controller": did,
        "publicKeyMultibase": multibase,
    }


def _attribute_key_method(
    did: str,
    fragment: str,
    algorithm: str,
    purpose: str | None,
    encoding: str | None,
    value: bytes,
    key_format: str | None,
) -> dict[str, Any] | None:
    """The verification method of a ``did/pub`` attribute, or ``None`` when unsupported."""
    kind = _PUBLIC_KEY_KINDS.get((algorithm, purpose or ""))
    prop = _ENCODING_PROPERTIES.get(encoding)
    if kind is None or prop is None:
        return None
    key_type, method_type = kind
    if key_format == MULTIKEY_TYPE:
        return _multikey_method(did, fragment, key_type, value)
    if prop == "publicKeyBase58":
        encoded = b58encode(value)
    elif prop == "publicKeyBase64":
        encoded = base64.b64encode(value).decode("ascii")
    else:
        encoded = value.hex()
    return {"id": f"{did}#{fragment}", "type": method_type, "controller": did, prop: encoded}


def _service_endpoint(value: bytes) -> Any:
    """The endpoint of a ``did/svc`` value: JSON object/array/string if it parses as one,
    else the text; ``None`` when it is not UTF-8."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        parsed = jsonlimits.loads(text, max_bytes=len(text))  # depth-checked: chain data
    except ValueError:  # not JSON, or nested too deeply: kept as text
        return text
    return parsed if isinstance(parsed, dict | list | str) else text


def _controller_key_method(
    did: str, public_key: bytes, key_format: str | None
) -> dict[str, Any] | None:
    if key_format == MULTIKEY_TYPE:
        return _multikey_method(did, "controllerKey", KeyType.SECP256K1, public_key)
    return {
        "id": f"{did}#controllerKey",
        "type": SECP256K1_KEY_TYPE,
        "controller": did,
        "publicKeyHex": public_key.hex(),
    }


_EventKey = tuple[str, bytes, bytes]


def ethr_did_document(
    identifier: EthrIdentifier,
    chain_id: int,
    events: Iterable[RegistryEvent],
    *,
    now: int,
    public_key_format: str | None = None,
) -> EthrDocument:
    """Replay ``events`` (oldest first, all of them taken into account) into the DID
    document, judging delegate and attribute validity at ``now`` (unix seconds). Pure.

    ``public_key_format`` is ``None`` (the specification's key types) or ``"Multikey"``.
    """
    did = identifier.did
    controller: str = identifier.address
    delegate_count = service_count = 0
    methods: dict[_EventKey, dict[str, Any]] = {}
    authentication: dict[_EventKey, str] = {}
    assertion: dict[_EventKey, str] = {}
    agreement: dict[_EventKey, str] = {}
    services: dict[_EventKey, dict[str, Any]] = {}
    version_block: int | None = None
    deactivated = False
    for event in events:
        version_block = event.block
        if isinstance(event, OwnerChanged):
            controller = event.owner
            if controller == NULL_ADDRESS:
                deactivated = True
                break
            continue
        key: _EventKey
        if isinstance(event, DelegateChanged):
            key = ("delegate", event.delegate_type, bytes.fromhex(event.delegate[2:]))
        else:
            key = ("attribute", event.name, event.value)
        if event.valid_to <= now:
            # Revoked or expired: it still takes its number, and whatever it added goes.
            name = _bytes32_text(event.name) if isinstance(event, AttributeChanged) else None
            if isinstance(event, DelegateChanged) or (
                name is not None and name.startswith(ATTRIBUTE_PUB_PREFIX)
            ):
                delegate_count += 1
            elif name is not None and name.startswith(ATTRIBUTE_SVC_PREFIX):
                service_count += 1
            for table in (methods, authentication, assertion, agreement, services):
                table.pop(key, None)
            continue
        if isinstance(event, DelegateChanged):
            delegate_count += 1
            delegate_type = _bytes32_text(event.delegate_type)
            if delegate_type in (DELEGATE_VERI_KEY, DELEGATE_SIG_AUTH):
                method = _recovery_method(
                    did, f"delegate-{delegate_count}", chain_id, event.delegate
                )
                methods[key] = method
                assertion[key] = method["id"]
                if delegate_type == DELEGATE_SIG_AUTH:
                    authentication[key] = method["id"]
            continue
        match = _ATTRIBUTE_RE.fullmatch(_bytes32_text(event.name) or "")
        if match is None:
            continue
        if match["section"] == "svc":
            service_count += 1
            endpoint = _service_endpoint(event.value)
            if endpoint is not None:
                services[key] = {
                    "id": f"{did}#service-{service_count}",
                    "type": match["algorithm"],
                    "serviceEndpoint": endpoint,
                }
            continue
        delegate_count += 1
        purpose = match["purpose"]
        key_method = _attribute_key_method(
            did,
            f"delegate-{delegate_count}",
            match["algorithm"],
            purpose,
            match["encoding"],
            event.value,
            public_key_format,
        )
        if key_method is None:
            continue
        methods[key] = key_method
        if purpose == PURPOSE_ENC:
            agreement[key] = key_method["id"]
        else:
            assertion[key] = key_method["id"]
            if purpose == DELEGATE_SIG_AUTH:
                authentication[key] = key_method["id"]

    if deactivated:
        empty: dict[str, Any] = {
            "@context": [DID_CONTEXT],
            "id": did,
            "verificationMethod": [],
            "authentication": [],
            "assertionMethod": [],
        }
        return EthrDocument(empty, True, version_block)

    own_methods = [_recovery_method(did, "controller", chain_id, controller)]
    if identifier.public_key is not None and controller == identifier.address:
        controller_key = _controller_key_method(did, identifier.public_key, public_key_format)
        if controller_key is not None:
            own_methods.append(controller_key)
    own_ids = [method["id"] for method in own_methods]
    contexts = list(DOCUMENT_CONTEXTS)
    if public_key_format == MULTIKEY_TYPE:
        contexts.append(MULTIKEY_CONTEXT)
    document: dict[str, Any] = {
        "@context": contexts,
        "id": did,
        "verificationMethod": own_methods + list(methods.values()),
        "authentication": own_ids + list(authentication.values()),
        "assertionMethod": own_ids + list(assertion.values()),
    }
    if agreement:
        document["keyAgreement"] = list(agreement.values())
    if services:
        document["service"] = list(services.values())
    return EthrDocument(document, False, version_block)


# ---- the driver ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Version:
    """What the options ask for: a block (``versionId``), an instant (``versionTime``,
    unix seconds), or neither (the latest document)."""

    block: int | None = None
    time: int | None = None


def _version_request(options: Mapping[str, Any]) -> _Version | str:
    """The requested version, or why the options are invalid."""
    version_id = options.get("versionId")
    version_time = options.get("versionTime")
    if version_id is not None and version_time is not None:
        return "options 'versionId' and 'versionTime' are mutually exclusive"
    if version_id is not None:
        if isinstance(version_id, int) and not isinstance(version_id, bool) and version_id >= 0:
            return _Version(block=version_id)
        if isinstance(version_id, str) and _VERSION_ID_RE.fullmatch(version_id):
            return _Version(block=int(version_id))
        return (
            f"option 'versionId' of a did:ethr is a block number (decimal digits), "
            f"not {version_id!r}"
        )
    if version_time is not None:
        moment: datetime | None = None
        if isinstance(version_time, datetime):
            moment = version_time
        elif isinstance(version_time, str):
            try:
                moment = datetime.fromisoformat(version_time)
            except ValueError:
                moment = None
        if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
            return (
                "option 'versionTime' must be a date-time with a time zone such as "
                f"'2024-05-10T17:00:00Z', not {version_time!r}"
            )
        return _Version(time=math.floor(moment.timestamp()))
    return _Version()


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _history(reader: ChainReader, identity: str, latest: int) -> list[RegistryEvent]:
    """Every registry event about ``identity``, oldest first, from the block ``latest`` of
    its latest change back through ``previousChange``."""
    blocks: list[list[RegistryEvent]] = []
    block = latest
    while block > 0:
        events = sorted(
            (event for event in await reader.get_logs(identity, block) if event.block == block),
            key=lambda event: event.log_index,
        )
        if not events:
            raise RegistryReadError(
                f"the registry says {identity} changed in block {block}, but the node returned "
                "no registry event of it there: the node may have pruned its logs or the "
                "registry address may be wrong"
            )
        blocks.append(events)
        earlier = [event.previous_change for event in events if event.previous_change < block]
        block = min(earlier) if earlier else 0
    return [event for group in reversed(blocks) for event in group]


def _final_owner(identifier: EthrIdentifier, events: Sequence[RegistryEvent]) -> str:
    owner: str = identifier.address
    for event in events:
        if isinstance(event, OwnerChanged):
            owner = event.owner
    return owner


class EthrDriver:
    """The did:ethr method driver (:class:`did_methods.resolver.MethodDriver`).

    ``networks`` are the networks served (unique names and chain ids); DIDs without a network
    part use ``default_network``. ``timeout`` bounds each resolution. ``session`` is an
    ``aiohttp`` session (borrowed, never closed here) for the networks given by RPC URL;
    without one the driver opens its own, closed by :meth:`aclose` (or ``async with``).
    """

    method = METHOD

    def __init__(
        self,
        networks: Iterable[EthrNetwork],
        *,
        default_network: str = DEFAULT_NETWORK,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._timeout = timeout
        self._default_network = default_network
        self._by_name: dict[str, EthrNetwork] = {}
        self._by_chain_id: dict[int, EthrNetwork] = {}
        self._readers: dict[str, ChainReader] = {}
        self._secrets: dict[str, tuple[str, ...]] = {}
        for network in networks:
            if network.name in self._by_name:
                raise ValueError(f"network {network.name!r} is configured twice")
            if network.chain_id in self._by_chain_id:
                other = self._by_chain_id[network.chain_id].name
                raise ValueError(
                    f"networks {other!r} and {network.name!r} have the same chain id "
                    f"{network.chain_id}"
                )
            self._by_name[network.name] = network
            self._by_chain_id[network.chain_id] = network
            self._readers[network.name] = _reader_for(network, timeout=timeout, session=session)
            self._secrets[network.name] = _source_secrets(network.web3_or_rpc)

    @property
    def networks(self) -> tuple[EthrNetwork, ...]:
        """The configured networks."""
        return tuple(self._by_name.values())

    def network(self, label: str | None) -> EthrNetwork | None:
        """The network a DID's network label names (``None``: the default network)."""
        if label is None:
            label = self._default_network
        if _HEX_CHAIN_ID_RE.fullmatch(label):
            return self._by_chain_id.get(int(label, 16))
        return self._by_name.get(label)

    async def aclose(self) -> None:
        """Close the HTTP sessions this driver opened (borrowed ones stay open)."""
        for reader in self._readers.values():
            if isinstance(reader, AsyncWeb3ChainReader):
                await reader.aclose()

    async def __aenter__(self) -> EthrDriver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def resolve(self, did: ParsedDid, options: Mapping[str, Any]) -> ResolutionResult:
        """Resolve ``did`` from its network's registry; every failure is a result."""
        try:
            identifier = parse_ethr_did(did)
        except InvalidEthrDidError as exc:
            return ResolutionResult.failure(ErrorCode.INVALID_DID, str(exc))
        network = self.network(identifier.network)
        if network is None:
            label = identifier.network or f"{self._default_network} (the default network)"
            known = ", ".join(f"{n.name} ({n.hex_chain_id})" for n in self._by_name.values())
            return ResolutionResult.failure(
                ErrorCode.UNKNOWN_NETWORK,
                f"no did:ethr network {label} is configured here (configured: {known or 'none'})",
            )
        version = _version_request(options)
        if isinstance(version, str):
            return ResolutionResult.failure(ErrorCode.INVALID_OPTIONS, version)
        key_format = options.get(PUBLIC_KEY_FORMAT_OPTION)
        if key_format is not None and key_format not in PUBLIC_KEY_FORMATS:
            return ResolutionResult.failure(
                ErrorCode.INVALID_OPTIONS,
                f"option {PUBLIC_KEY_FORMAT_OPTION!r} of a did:ethr may be "
                f"{', '.join(PUBLIC_KEY_FORMATS)} (or absent), not {key_format!r}",
            )
        accept = options.get("accept", DEFAULT_CONTENT_TYPE)
        reader = self._readers[network.name]
        where = f"network {network.name!r} (chain {network.chain_id}) via {reader}"
        try:
            async with asyncio.timeout(self._timeout):
                return await self._resolve_on_chain(
                    identifier, network, reader, version, key_format, accept
                )
        except TimeoutError:
            message = (
                f"reading {identifier.did} from {where} took more than {self._timeout:g}s; "
                "check that the node is up and responsive"
            )
        except RegistryReadError as exc:
            message = f"reading {identifier.did} from {where}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any transport failure must become data
            message = (
                f"reading {identifier.did} from {where} failed: {type(exc).__name__}: {exc}; "
                "check that the node is up and the network's RPC URL is right"
            )
        # Results travel to API clients: never let an RPC URL's API key through.
        return ResolutionResult.failure(
            ErrorCode.INTERNAL_ERROR, _redact(message, self._secrets[network.name])
        )

    async def _resolve_on_chain(
        self,
        identifier: EthrIdentifier,
        network: EthrNetwork,
        reader: ChainReader,
        version: _Version,
        key_format: str | None,
        accept: str,
    ) -> ResolutionResult:
        served = await reader.chain_id()
        if served != network.chain_id:
            raise RegistryReadError(
                f"the node serves chain {served}, not the configured {network.chain_id}; fix "
                "the network's RPC URL or chain id"
            )
        head = await reader.block_number()
        if version.block is not None and version.block > head:
            return ResolutionResult.failure(
                ErrorCode.NOT_FOUND,
                f"versionId {version.block} of {identifier.did} does not exist: the chain is "
                f"at block {head}",
            )
        identity = identifier.address
        latest_change = await reader.changed(identity, head)
        owner = await reader.identity_owner(identity, head)
        history = await _history(reader, identity, latest_change)
        replayed_owner = _final_owner(identifier, history)
        if replayed_owner != NULL_ADDRESS and replayed_owner != owner:
            raise RegistryReadError(
                f"identityOwner({identity}) is {owner} but the registry's events say "
                f"{replayed_owner}: the node may be missing logs or the registry address "
                "may be wrong"
            )

        timestamps: dict[int, int] = {}

        async def timestamp(block: int) -> int:
            if block not in timestamps:
                timestamps[block] = await reader.block_timestamp(block)
            return timestamps[block]

        included: list[RegistryEvent] = []
        later: list[RegistryEvent] = []
        if version.time is not None:
            now = version.time
            for event in history:
                (included if await timestamp(event.block) <= now else later).append(event)
        else:
            cut = head if version.block is None else version.block
            now = await timestamp(cut)
            for event in history:
                (included if event.block <= cut else later).append(event)

        replay = ethr_did_document(
            identifier, network.chain_id, included, now=now, public_key_format=key_format
        )
        metadata: dict[str, Any] = {}
        if replay.deactivated:
            metadata["deactivated"] = True
        if replay.version_block is not None:
            metadata["versionId"] = str(replay.version_block)
            metadata["updated"] = _iso(await timestamp(replay.version_block))
        if later and not replay.deactivated:
            metadata["nextVersionId"] = str(later[0].block)
            metadata["nextUpdate"] = _iso(await timestamp(later[0].block))
        return ResolutionResult.success(
            replay.document, content_type=accept, document_metadata=metadata
        )
