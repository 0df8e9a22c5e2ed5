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

The package, by job (pure modules do no I/O):

* :mod:`~did_methods.ethr.abi` (pure): the ERC-1056 ABI (:data:`REGISTRY_ABI`), call
  encodings, result decoding, :class:`~did_methods.ethr.abi.RegistryReadError`;
* :mod:`~did_methods.ethr.identifier` (pure): :func:`parse_ethr_did`, :class:`EthrIdentifier`;
* :mod:`~did_methods.ethr.events` (pure): the registry's events and the decoding of their logs;
* :mod:`~did_methods.ethr.document` (pure): :func:`ethr_did_document`, the replay above;
* :mod:`~did_methods.ethr.readers` (I/O): :class:`ChainReader`, :class:`AsyncWeb3ChainReader`,
  :class:`ThreadedWeb3ChainReader`, the history walk, request limits, URL redaction;
* :mod:`~did_methods.ethr.driver` (I/O): :class:`EthrDriver` and :class:`EthrNetwork`.

This module only re-exports what the rest of the project imports. Importing it costs the
imports of ``web3`` and ``eth_abi`` and five Keccak-256 hashes.
"""

from did_methods.ethr.abi import REGISTRY_ABI
from did_methods.ethr.document import DOCUMENT_CONTEXTS, MULTIKEY_CONTEXT, ethr_did_document
from did_methods.ethr.driver import DEFAULT_NETWORK, EthrDriver, EthrNetwork
from did_methods.ethr.events import AttributeChanged, DelegateChanged, OwnerChanged, RegistryEvent
from did_methods.ethr.identifier import EthrIdentifier, InvalidEthrDidError, parse_ethr_did
from did_methods.ethr.readers import AsyncWeb3ChainReader, ChainReader, ThreadedWeb3ChainReader

__all__ = [
    "DEFAULT_NETWORK",
    "DOCUMENT_CONTEXTS",
    "MULTIKEY_CONTEXT",
    "REGISTRY_ABI",
    "AsyncWeb3ChainReader",
    "AttributeChanged",
    "ChainReader",
    "DelegateChanged",
    "EthrDriver",
    "EthrIdentifier",
    "EthrNetwork",
    "InvalidEthrDidError",
    "OwnerChanged",
    "RegistryEvent",
    "ThreadedWeb3ChainReader",
    "ethr_did_document",
    "parse_ethr_did",
]
