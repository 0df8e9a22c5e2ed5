"""did:ethr: the DID document, built by replaying a registry's events (pure).

:func:`ethr_did_document` replays an identity's events, oldest first:

* default document: ``#controller``, an ``EcdsaSecp256k1RecoveryMethod2020`` with
  ``blockchainAccountId`` ``eip155:<chainId>:<owner>``, plus, for a public-key DID whose
  owner is still its own address, ``#controllerKey`` (``EcdsaSecp256k1VerificationKey2019``,
  ``publicKeyHex``); both under ``authentication`` and ``assertionMethod``;
* ``DIDOwnerChanged`` replaces the controller; an owner of :data:`NULL_ADDRESS` deactivates
  the DID: the document loses its methods and relationships and later events are ignored;
* ``DIDDelegateChanged`` of type ``veriKey`` / ``sigAuth`` -> ``#delegate-N``;
  ``DIDAttributeChanged`` ``did/pub/...`` -> ``#delegate-N`` (a public key) and
  ``did/svc/<Type>`` -> ``#service-N``; each counts while ``validTo`` is after ``now``.

The package docstring (:mod:`did_methods.ethr`) states the whole mapping and where it
deviates from the reference resolver. :func:`final_owner` is the owner a history ends with,
which the driver checks against the registry's ``identityOwner``.

Pure (no I/O). Cost: linear in the number of events; a ``Multikey`` output validates each
public key (one point decompression for secp256k1).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_utils.address import to_checksum_address

from did_methods import jsonlimits
from did_methods.ethr.events import AttributeChanged, DelegateChanged, OwnerChanged, RegistryEvent
from did_methods.ethr.identifier import EthrIdentifier, compressed_secp256k1
from did_methods.keys import PublicKeyError, validate_public_key
from did_methods.multikey import KeyType, MultikeyError, b58encode, encode_multikey

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

DELEGATE_VERI_KEY: Final = "veriKey"
DELEGATE_SIG_AUTH: Final = "sigAuth"
PURPOSE_ENC: Final = "enc"
ATTRIBUTE_PUB_PREFIX: Final = "did/pub/"
ATTRIBUTE_SVC_PREFIX: Final = "did/svc/"

# JavaScript's \w (ASCII), as in the reference resolver's attribute pattern.
_ATTRIBUTE_RE = re.compile(
    r"did/(?P<section>pub|svc)/(?P<algorithm>[A-Za-z0-9_]+)"
    r"(?:/(?P<purpose>[A-Za-z0-9_]+))?(?:/(?P<encoding>[A-Za-z0-9_]+))?"
)

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
            raw = compressed_secp256k1(raw)
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


def final_owner(identifier: EthrIdentifier, events: Sequence[RegistryEvent]) -> str:
    owner: str = identifier.address
    for event in events:
        if isinstance(event, OwnerChanged):
            owner = event.owner
    return owner
