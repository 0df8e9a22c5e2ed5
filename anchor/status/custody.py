"""Custody of the issuers' status list signing keys. I/O: key files under the data
directory; cost: one small file read (or a key generation and write) per call.

The service holds one Ed25519 key per issuer in ``<key dir>/<sha256(did) hex>.jwk`` (mode
0600; the key dir is ``DATA_DIR/status-keys`` unless ``--status-key-dir`` names another, which
replicas on one database share). For did:web and did:ethr issuers it is generated on first use and
the issuer adds its public half to its DID document
(:meth:`StatusKeyInfo.did_document_addition`); a did:key issuer, whose document cannot
change, uploads its own did:key private key once. Whether the DID document authorises the
key is :mod:`anchor.status.authorisation`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from anchor.errors import ConfigError, Conflict, Forbidden
from anchor.keys import (
    DID_KEY_PREFIX,
    Ed25519Key,
    generate_if_missing,
    load_ed25519_key,
    save_key,
)
from anchor.vc.data_integrity import create_proof, ed25519_public_key_to_multibase

STATUS_KEY_DIR: Final = "status-keys"
"""Directory under the data directory holding the issuers' status keys."""

PROOF_PURPOSE: Final = "assertionMethod"
"""Verification relationship the status key must have in the issuer's DID document."""

CUSTODIAL_VM_TYPE: Final = "Multikey"
"""Type of the verification method an issuer adds for the service-held key."""


@dataclass(frozen=True, slots=True)
class StatusKeyInfo:
    """The public side of an issuer's status key and how the issuer authorises it."""

    did: str
    public_key: bytes
    uploaded: bool
    """True for a did:key issuer's own key, False for a key the service generated."""

    @property
    def public_key_multibase(self) -> str:
        return ed25519_public_key_to_multibase(self.public_key)

    @property
    def suggested_verification_method(self) -> str:
        """The id to give the key in the DID document: the DID and, as the fragment, the
        key's ``publicKeyMultibase`` (for did:key this *is* its verification method)."""
        return f"{self.did}#{self.public_key_multibase}"

    def did_document_addition(self) -> dict[str, Any]:
        """What a did:web issuer adds to its DID document (merged into the arrays)."""
        vm = self.suggested_verification_method
        return {
            "verificationMethod": [
                {
                    "id": vm,
                    "type": CUSTODIAL_VM_TYPE,
                    "controller": self.did,
                    "publicKeyMultibase": self.public_key_multibase,
                }
            ],
            PROOF_PURPOSE: [vm],
        }

    def instructions(self) -> str:
        """One paragraph telling the issuer how to authorise this key."""
        if self.did.startswith(DID_KEY_PREFIX):
            return (
                f"{self.did} signs its status lists with its own did:key key, uploaded once "
                "with a signed POST /v1/status-keys whose body is the private JWK"
            )
        if self.did.startswith("did:ethr:"):
            return (
                "add the key to the DID's ERC-1056 registry: setAttribute(identity, "
                '"did/pub/Ed25519/veriKey/base58", 0x' + self.public_key.hex() + ", validity)"
            )
        return (
            "add didDocumentAddition to the DID document: its verificationMethod entry to "
            f"verificationMethod and its id to {PROOF_PURPOSE}"
        )

    def to_json(self, *, authorized: bool | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "did": self.did,
            "custody": "uploaded" if self.uploaded else "generated",
            "publicKeyMultibase": self.public_key_multibase,
            "suggestedVerificationMethod": self.suggested_verification_method,
            "instructions": self.instructions(),
        }
        if not self.did.startswith(DID_KEY_PREFIX):
            doc["didDocumentAddition"] = self.did_document_addition()
            doc["ethrAttribute"] = {
                "name": "did/pub/Ed25519/veriKey/base58",
                "value": "0x" + self.public_key.hex(),
            }
        if authorized is not None:
            doc["authorized"] = authorized
        return doc


@dataclass(frozen=True, slots=True, repr=False)
class StatusSigner:
    """An issuer's status key, found authorised under ``assertionMethod`` as
    ``verification_method``. ``repr()`` shows no secret."""

    issuer: str
    verification_method: str
    key: Ed25519Key

    def sign(self, document: Mapping[str, Any], created: str) -> dict[str, Any]:
        """``document`` with an ``eddsa-jcs-2022`` proof made at ``created``."""
        seed = self.key.private_key.private_bytes_raw()
        return create_proof(document, seed, self.verification_method, PROOF_PURPOSE, created)

    def __repr__(self) -> str:
        return f"StatusSigner(issuer={self.issuer!r}, vm={self.verification_method!r})"


class StatusKeyCustody:
    """The issuers' status keys in ``key_dir`` (thread-safe: files are written once,
    atomically, and a key generated by two processes at once is the first one written, so
    replicas sharing the directory agree on it)."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir

    def key_path(self, did: str) -> Path:
        """Where the status key of ``did`` lives (the file name does not reveal the DID)."""
        name = hashlib.sha256(did.encode("utf-8")).hexdigest() + ".jwk"
        return self.key_dir / name

    def signing_key(self, did: str, *, generate: bool = False) -> Ed25519Key | None:
        """The status key of ``did``; with ``generate``, a non-did:key issuer's key is
        created on first use (a did:key issuer must upload its own)."""
        path = self.key_path(did)
        if did.startswith(DID_KEY_PREFIX) or not generate:
            return load_ed25519_key(path) if path.exists() else None
        key, _created = generate_if_missing(path, "ed25519")
        return key

    def upload_key(self, did: str, key: Ed25519Key) -> StatusKeyInfo:
        """Store a did:key issuer's own key (its public half must be the did:key)."""
        if not did.startswith(DID_KEY_PREFIX):  # the issuer's DID method decides: 409
            raise Conflict(
                f"only a did:key issuer uploads its key; {did} uses a key the service generates",
                hint="send an empty JSON object {} to get the key to add to your DID document",
            )
        if key.did != did:
            raise Forbidden(
                f"the uploaded key is {key.did}, not the key of {did}",
                hint="upload the private JWK of the did:key that signs your requests",
            )
        path = self.key_path(did)
        if not path.exists():
            try:
                save_key(key, path)
            except ConfigError:
                if not path.exists():  # not a concurrent upload of the same key
                    raise
        return StatusKeyInfo(did, key.public_bytes, uploaded=True)

    def key_info(self, did: str, *, generate: bool = False) -> StatusKeyInfo | None:
        """The public side of ``did``'s status key, if it has one."""
        key = self.signing_key(did, generate=generate)
        if key is None:
            return None
        return StatusKeyInfo(did, key.public_bytes, uploaded=did.startswith(DID_KEY_PREFIX))
