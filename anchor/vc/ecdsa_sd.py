"""W3C Data Integrity ``ecdsa-sd-2023``: selective disclosure proofs with P-256, pure.

Data Integrity ECDSA Cryptosuites v1.0 (https://www.w3.org/TR/vc-di-ecdsa/), §3.4 (the
``ecdsa-sd-2023`` algorithms) and §3.5 (the selective disclosure functions it builds on):

* **Base proof** (issuer, :func:`create_base_proof`): the document is canonicalized with
  RDFC-1.0 and every blank node label is replaced by ``u`` + base64url(HMAC-SHA-256(hmacKey,
  canonical label)); statements selected by the issuer's *mandatory pointers* are hashed
  together (``mandatoryHash``); the issuer's long-term P-256 key signs ``proofHash ||
  proofPublicKey || mandatoryHash``; a fresh per-proof P-256 key signs every other statement
  separately. ``proofValue`` = ``u`` + base64url(``0xd9 0x5d 0x00`` + CBOR([baseSignature,
  proofPublicKey, hmacKey, signatures, mandatoryPointers])).
* **Derived proof** (holder, :func:`derive_proof`): the holder picks *selective pointers*; the
  reveal document holds the mandatory and selected values only; the proof carries the
  signatures of the revealed non-mandatory statements, the map from the reveal document's
  canonical labels to the HMAC labels, and the positions of the mandatory statements.
  ``proofValue`` = ``u`` + base64url(``0xd9 0x5d 0x01`` + CBOR([baseSignature,
  proofPublicKey, signatures, compressedLabelMap, mandatoryIndexes])).
* **Verification** (:func:`verify_derived_proof`): recompute the statements, the two hashes,
  and check the base signature with the issuer key and each statement signature with the
  per-proof key. Every failure raises :class:`~anchor.errors.VerificationError`.

Signatures are IEEE P1363 (``r || s``, 64 bytes) ECDSA over SHA-256. JSON-LD processing goes
through :mod:`anchor.vc.jsonld_contexts` (packaged contexts only). Cost: dominated by JSON-LD
expansion and canonicalization (a few ms for a 2 kB credential) plus one ECDSA signature or
verification per non-mandatory statement (~30-60 µs each).

This module holds the algorithms (skolemization, label maps, canonicalizeAndGroup, the base
proof, derivation and verification); the bytes (CBOR proof values, P-256 multikeys, ``r ||
s`` signatures) are in :mod:`anchor.vc.ecdsa_sd_encoding` and JSON pointer selection in
:mod:`anchor.vc.ecdsa_sd_pointers`, both re-exported here (:data:`__all__`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from anchor.errors import InvalidInput, VerificationError
from anchor.vc import jsonld_contexts
from anchor.vc.ecdsa_sd_encoding import (
    BASE_HEADER,
    DERIVED_HEADER,
    MAX_PROOF_VALUE,
    P256_MULTIKEY_PREFIX,
    BaseProofValue,
    DerivedProofValue,
    b64url,
    b64url_decode,
    p256_from_multikey,
    p256_multikey,
    parse_base_proof_value,
    parse_derived_proof_value,
    sign_p256,
    verify_p256,
)
from anchor.vc.ecdsa_sd_pointers import (
    MAX_POINTER_LENGTH,
    MAX_POINTERS,
    PointerError,
    check_pointers,
    is_blank_node_id,
    parse_pointer,
    select_json_ld,
)
from anchor.vc.sd_kind import sd_proof_kind

__all__ = [
    "BASE_HEADER",
    "CRYPTOSUITE",
    "DERIVED_HEADER",
    "MAX_POINTERS",
    "MAX_POINTER_LENGTH",
    "MAX_PROOF_VALUE",
    "P256_MULTIKEY_PREFIX",
    "SKOLEM_PREFIX",
    "BaseProofValue",
    "DerivedProofValue",
    "Group",
    "Grouped",
    "LabelMapFactory",
    "PointerError",
    "VerifiedDisclosure",
    "b64url",
    "b64url_decode",
    "base_signature_digest",
    "canonicalize_and_group",
    "create_base_proof",
    "derive_proof",
    "hmac_label_map_factory",
    "label_map_factory",
    "p256_from_multikey",
    "p256_multikey",
    "parse_base_proof_value",
    "parse_derived_proof_value",
    "parse_pointer",
    "proof_kind",
    "select_json_ld",
    "sign_p256",
    "verify_derived_proof",
    "verify_p256",
]

CRYPTOSUITE: Final = "ecdsa-sd-2023"
SKOLEM_PREFIX: Final = "urn:custom-scheme:"
_SKOLEM_RE: Final = re.compile(r"<urn:custom-scheme:([^>]+)>")
_BLANK_RE: Final = re.compile(r"(_:([^\s]+))")


# ---------------------------------------------------------------------------------------------
# skolemization, relabelling, grouping (§3.5.1-§3.5.5, §3.5.8)


def _skolemize(expanded: list[Any], random: str, counter: list[int]) -> list[Any]:
    out: list[Any] = []
    for element in expanded:
        if not isinstance(element, dict) or "@value" in element:
            out.append(copy.deepcopy(element))
            continue
        node: dict[str, Any] = {}
        for prop, value in element.items():
            if isinstance(value, list):
                node[prop] = _skolemize(value, random, counter)
            else:
                node[prop] = _skolemize([value], random, counter)[0]
        if "@list" not in node:
            if "@id" not in node:
                node["@id"] = f"{SKOLEM_PREFIX}_{random}_{counter[0]}"
                counter[0] += 1
            elif is_blank_node_id(node["@id"]):
                node["@id"] = SKOLEM_PREFIX + node["@id"][2:]
        out.append(node)
    return out


def _deskolemize(nquads: Iterable[str]) -> list[str]:
    return [_SKOLEM_RE.sub(r"_:\1", q) for q in nquads]


def _relabel(nquads: Iterable[str], label_map: Mapping[str, str]) -> list[str]:
    def replace(match: re.Match[str]) -> str:
        label = match.group(2)
        if label not in label_map:
            raise VerificationError(f"blank node {label} has no label", what="labelMap")
        return "_:" + label_map[label]

    return [_BLANK_RE.sub(replace, q) for q in nquads]


LabelMapFactory = Callable[[Mapping[str, str]], dict[str, str]]
"""canonical id map (input label -> c14n label) -> (input label -> new label)."""


def hmac_label_map_factory(hmac_key: bytes) -> LabelMapFactory:
    """§3.5.3 createHmacIdLabelMapFunction."""

    def factory(canonical_id_map: Mapping[str, str]) -> dict[str, str]:
        return {
            inp: "u" + b64url(hmac.new(hmac_key, c14n.encode(), hashlib.sha256).digest())
            for inp, c14n in canonical_id_map.items()
        }

    return factory


def label_map_factory(label_map: Mapping[str, str]) -> LabelMapFactory:
    """§3.5.2 createLabelMapFunction: c14n label -> label, from a derived proof."""

    def factory(canonical_id_map: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for inp, c14n in canonical_id_map.items():
            if c14n not in label_map:
                raise VerificationError(
                    f"the proof's label map has no entry for {c14n}", what="labelMap"
                )
            out[inp] = label_map[c14n]
        return out

    return factory


def _label_replacement_canonicalize(
    nquads: list[str], factory: LabelMapFactory
) -> tuple[list[str], dict[str, str]]:
    """§3.5.4 labelReplacementCanonicalizeNQuads: (sorted relabelled quads, label map)."""
    canonical, c14n_map = jsonld_contexts.canonicalize_nquads(nquads)
    label_map = factory(c14n_map)
    c14n_to_new = {c14n_map[inp]: new for inp, new in label_map.items()}
    return sorted(_relabel(canonical, c14n_to_new)), label_map


@dataclass(frozen=True)
class Group:
    """Statements of the canonical document that a group's pointers select, by index."""

    matching: dict[int, str]
    non_matching: dict[int, str]
    deskolemized: list[str]


@dataclass(frozen=True)
class Grouped:
    groups: dict[str, Group]
    label_map: dict[str, str]
    nquads: list[str]


def canonicalize_and_group(
    document: dict[str, Any], factory: LabelMapFactory, definitions: Mapping[str, Sequence[str]]
) -> Grouped:
    """§3.5.8 canonicalizeAndGroup."""
    for pointers in definitions.values():
        check_pointers(pointers)
    expanded = jsonld_contexts.expand(document)
    jsonld_contexts.check_size(expanded)  # before compaction and the node map
    skolemized = _skolemize(expanded, secrets.token_hex(8), [0])
    compact = jsonld_contexts.compact(skolemized, document.get("@context", {}))
    nquads_in = _deskolemize(jsonld_contexts.to_nquads(skolemized))
    nquads, label_map = _label_replacement_canonicalize(nquads_in, factory)
    groups: dict[str, Group] = {}
    for name, pointers in definitions.items():
        selection = select_json_ld(pointers, compact)
        deskolemized = (
            _deskolemize(jsonld_contexts.to_nquads(selection)) if selection is not None else []
        )
        selected = {jsonld_contexts.canonical_escapes(q) for q in _relabel(deskolemized, label_map)}
        matching: dict[int, str] = {}
        non_matching: dict[int, str] = {}
        for index, quad in enumerate(nquads):
            (matching if quad in selected else non_matching)[index] = quad
        groups[name] = Group(matching, non_matching, deskolemized)
    return Grouped(groups, label_map, nquads)


def proof_kind(document: Mapping[str, Any]) -> str | None:
    """``"base"`` / ``"derived"`` for a document with an ``ecdsa-sd-2023`` proof, else None."""
    return sd_proof_kind(document)


# ---------------------------------------------------------------------------------------------
# the algorithms


def _proof_hash(proof_options: Mapping[str, Any], document: Mapping[str, Any]) -> bytes:
    config = {k: v for k, v in proof_options.items() if k != "proofValue"}
    if "@context" in document:
        config["@context"] = document["@context"]
    canonical = jsonld_contexts.canonicalize(config)
    return hashlib.sha256("".join(canonical).encode()).digest()


def _unsecured(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in document.items() if k != "proof"}


def base_signature_digest(document: Mapping[str, Any]) -> bytes:
    """SHA-256 of the base signature an ``ecdsa-sd-2023`` base *or* derived proof carries.

    Every derived copy carries the issuer's base signature unchanged, so this digest is the
    same for the signed credential and all its disclosures: it is what LER Anchor anchors
    for selective disclosure credentials. Raises ``VerificationError``.
    """
    kind = proof_kind(document)
    if kind is None:
        raise VerificationError("not an ecdsa-sd-2023 credential", what="proof")
    value = document["proof"]["proofValue"]
    parsed: BaseProofValue | DerivedProofValue = (
        parse_base_proof_value(value) if kind == "base" else parse_derived_proof_value(value)
    )
    return hashlib.sha256(parsed.base_signature).digest()


def create_base_proof(
    document: Mapping[str, Any],
    *,
    issuer_key: ec.EllipticCurvePrivateKey,
    verification_method: str,
    mandatory_pointers: Sequence[str],
    created: str,
    proof_purpose: str = "assertionMethod",
    hmac_key: bytes | None = None,
    proof_key: ec.EllipticCurvePrivateKey | None = None,
    deterministic: bool = False,
) -> dict[str, Any]:
    """The document with an ``ecdsa-sd-2023`` base proof (§3.4.1-§3.4.5).

    ``hmac_key`` and ``proof_key`` are fresh random values unless given (tests). Raises
    :class:`PointerError`, :class:`~anchor.vc.jsonld_contexts.UnknownContext` or
    :class:`~anchor.vc.jsonld_contexts.JsonLdError` on bad input.
    """
    if not isinstance(issuer_key.curve, ec.SECP256R1):
        raise InvalidInput("ecdsa-sd-2023 issuer keys must be P-256")
    hmac_key = secrets.token_bytes(32) if hmac_key is None else hmac_key
    proof_key = ec.generate_private_key(ec.SECP256R1()) if proof_key is None else proof_key
    unsecured = _unsecured(document)
    options: dict[str, Any] = {
        "type": "DataIntegrityProof",
        "cryptosuite": CRYPTOSUITE,
        "created": created,
        "verificationMethod": verification_method,
        "proofPurpose": proof_purpose,
    }
    grouped = canonicalize_and_group(
        unsecured, hmac_label_map_factory(hmac_key), {"mandatory": list(mandatory_pointers)}
    )
    mandatory = grouped.groups["mandatory"]
    proof_hash = _proof_hash(options, unsecured)
    mandatory_hash = hashlib.sha256("".join(mandatory.matching.values()).encode()).digest()
    public_key = p256_multikey(proof_key.public_key())
    base_signature = sign_p256(
        issuer_key, proof_hash + public_key + mandatory_hash, deterministic=deterministic
    )
    signatures = tuple(
        sign_p256(proof_key, quad.encode(), deterministic=deterministic)
        for quad in mandatory.non_matching.values()
    )
    value = BaseProofValue(
        base_signature, public_key, hmac_key, signatures, tuple(mandatory_pointers)
    )
    signed = dict(unsecured)
    signed["proof"] = {**options, "proofValue": value.encode()}
    return signed


def derive_proof(document: Mapping[str, Any], selective_pointers: Sequence[str]) -> dict[str, Any]:
    """A reveal document with a derived proof (§3.4.6-§3.4.7, createDisclosureData).

    Needs no key: the holder's copy of the base proof is enough. Raises
    :class:`PointerError` when a pointer names nothing, ``VerificationError`` on a bad proof.
    """
    proof = document.get("proof")
    if not isinstance(proof, dict) or proof.get("cryptosuite") != CRYPTOSUITE:
        raise VerificationError("the document has no ecdsa-sd-2023 proof", what="proof")
    base = parse_base_proof_value(proof.get("proofValue"))
    check_pointers(selective_pointers)
    unsecured = _unsecured(document)
    mandatory_pointers = list(base.mandatory_pointers)
    combined_pointers = mandatory_pointers + list(selective_pointers)
    grouped = canonicalize_and_group(
        unsecured,
        hmac_label_map_factory(base.hmac_key),
        {
            "mandatory": mandatory_pointers,
            "selective": list(selective_pointers),
            "combined": combined_pointers,
        },
    )
    mandatory = grouped.groups["mandatory"].matching
    selective = grouped.groups["selective"].matching
    combined = grouped.groups["combined"]
    mandatory_indexes = tuple(
        relative for relative, absolute in enumerate(combined.matching) if absolute in mandatory
    )
    non_mandatory = list(grouped.groups["mandatory"].non_matching)
    if len(non_mandatory) != len(base.signatures):
        raise VerificationError(
            "the base proof's signatures do not match the document's statements",
            what="signatures",
            expected=str(len(non_mandatory)),
            actual=str(len(base.signatures)),
        )
    filtered = tuple(
        base.signatures[i] for i, absolute in enumerate(non_mandatory) if absolute in selective
    )
    reveal = select_json_ld(combined_pointers, unsecured) or {}
    _, c14n_map = jsonld_contexts.canonicalize_nquads(combined.deskolemized)
    label_map: list[tuple[int, bytes]] = []
    for inp, c14n in c14n_map.items():
        hmac_label = grouped.label_map[inp]
        label_map.append((int(c14n.removeprefix("c14n")), b64url_decode(hmac_label[1:])))
    value = DerivedProofValue(
        base.base_signature, base.public_key, filtered, tuple(sorted(label_map)), mandatory_indexes
    )
    reveal["proof"] = {**proof, "proofValue": value.encode()}
    return reveal


@dataclass(frozen=True)
class VerifiedDisclosure:
    """What a verified derived proof established."""

    mandatory_statements: int
    disclosed_statements: int
    base_signature_sha256: bytes


def verify_derived_proof(
    document: Mapping[str, Any], issuer_public_key: ec.EllipticCurvePublicKey
) -> VerifiedDisclosure:
    """Verify an ``ecdsa-sd-2023`` derived proof (§3.4.8-§3.4.9, createVerifyData).

    Raises ``VerificationError`` (``what`` names the failed check) on any mismatch.
    """
    proof = document.get("proof")
    if not isinstance(proof, dict):
        raise VerificationError("the document has no proof", what="proof")
    for field, expected in (("type", "DataIntegrityProof"), ("cryptosuite", CRYPTOSUITE)):
        if proof.get(field) != expected:
            raise VerificationError(
                f"proof {field} must be {expected}",
                what=field,
                expected=expected,
                actual=str(proof.get(field)),
            )
    derived = parse_derived_proof_value(proof.get("proofValue"))
    unsecured = _unsecured(document)
    proof_hash = _proof_hash(proof, unsecured)
    nquads, _ = _label_replacement_canonicalize(
        jsonld_contexts.to_nquads(unsecured), label_map_factory(derived.labels())
    )
    indexes = set(derived.mandatory_indexes)
    if any(i >= len(nquads) for i in indexes):
        raise VerificationError("a mandatory index is out of range", what="mandatoryIndexes")
    mandatory = [q for i, q in enumerate(nquads) if i in indexes]
    non_mandatory = [q for i, q in enumerate(nquads) if i not in indexes]
    if len(non_mandatory) != len(derived.signatures):
        raise VerificationError(
            "signature count does not match the non-mandatory statements",
            what="signatures",
            expected=str(len(non_mandatory)),
            actual=str(len(derived.signatures)),
        )
    mandatory_hash = hashlib.sha256("".join(mandatory).encode()).digest()
    verify_p256(
        issuer_public_key,
        derived.base_signature,
        proof_hash + derived.public_key + mandatory_hash,
        "baseSignature",
    )
    proof_public_key = p256_from_multikey(derived.public_key)
    for signature, quad in zip(derived.signatures, non_mandatory, strict=True):
        verify_p256(proof_public_key, signature, quad.encode(), "signature")
    return VerifiedDisclosure(
        len(mandatory), len(non_mandatory), hashlib.sha256(derived.base_signature).digest()
    )
