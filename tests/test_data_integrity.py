"""eddsa-jcs-2022 Data Integrity proofs: every intermediate of the W3C test vectors, and
tampering with any part of a secured document."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import base58
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from anchor.errors import EncodingError, InvalidInput, VerificationError
from anchor.vc.data_integrity import (
    canonical_digest,
    canonicalize,
    create_proof,
    ed25519_public_key_to_multibase,
    hash_data,
    is_datetime_stamp,
    proof_configuration,
    transform,
    verify_proof,
)

VECTORS = Path(__file__).parent / "vectors" / "eddsa-jcs-2022"


def text(name: str) -> bytes:
    return (VECTORS / name).read_bytes().rstrip(b"\r\n")


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


KEYS = load("keyPair.json")


def _key_bytes(multibase: str, multicodec: bytes) -> bytes:
    """The raw 32 key bytes of a vector's ``z``-multibase key with that multicodec prefix."""
    raw = base58.b58decode(multibase.removeprefix("z"))
    assert raw.startswith(multicodec)
    assert len(raw) == len(multicodec) + 32
    return raw[len(multicodec) :]


def _public_key_from_seed(seed: bytes) -> bytes:
    return bytes(SigningKey(seed).verify_key)


SEED = _key_bytes(KEYS["privateKeyMultibase"], b"\x80\x26")
PUBLIC = _key_bytes(KEYS["publicKeyMultibase"], b"\xed\x01")
UNSIGNED = load("unsigned.json")
SIGNED = load("signedJCS.json")
PROOF_CONFIG = load("proofConfigJCS.json")
VM = PROOF_CONFIG["verificationMethod"]
CREATED = PROOF_CONFIG["created"]


def sign_vector() -> dict[str, Any]:
    return create_proof(UNSIGNED, SEED, VM, created=CREATED)


# --- keys -------------------------------------------------------------------------------


def test_key_pair_vector_decodes_to_a_matching_ed25519_pair() -> None:
    assert len(SEED) == 32
    assert len(PUBLIC) == 32
    assert bytes(SigningKey(SEED).verify_key) == PUBLIC
    assert ed25519_public_key_to_multibase(PUBLIC) == KEYS["publicKeyMultibase"]
    assert "did:key:{0}#{0}".format(KEYS["publicKeyMultibase"]) == VM


# --- every intermediate of the vectors, byte for byte ------------------------------------


def test_transformation_is_jcs_of_the_document() -> None:
    canonical = transform(UNSIGNED, PROOF_CONFIG)
    assert canonical == text("canonDocJCS.txt")
    without_proof = {k: v for k, v in SIGNED.items() if k != "proof"}
    assert transform(without_proof, PROOF_CONFIG) == canonical


def test_proof_configuration_is_jcs_of_the_options_with_context() -> None:
    assert proof_configuration(PROOF_CONFIG) == text("proofCanonJCS.txt")
    signed_options = {k: v for k, v in SIGNED["proof"].items() if k != "proofValue"}
    assert proof_configuration(signed_options) == text("proofCanonJCS.txt")
    assert PROOF_CONFIG["@context"] == UNSIGNED["@context"]


def test_hashes_and_their_order() -> None:
    doc_hash = hashlib.sha256(text("canonDocJCS.txt")).hexdigest()
    proof_hash = hashlib.sha256(text("proofCanonJCS.txt")).hexdigest()
    assert doc_hash == text("docHashJCS.txt").decode()
    assert proof_hash == text("proofHashJCS.txt").decode()
    combined = hash_data(text("proofCanonJCS.txt"), text("canonDocJCS.txt"))
    assert len(combined) == 64
    assert combined.hex() == text("combinedHashJCS.txt").decode()
    assert combined.hex() == proof_hash + doc_hash  # proof configuration hash first
    assert canonical_digest(UNSIGNED).hex() == doc_hash


def test_signature_and_proof_value() -> None:
    combined = bytes.fromhex(text("combinedHashJCS.txt").decode())
    signature = SigningKey(SEED).sign(combined).signature
    assert signature.hex() == text("sigHexJCS.txt").decode()
    assert "z" + base58.b58encode(signature).decode() == text("sigBTC58JCS.txt").decode()


def test_create_proof_reproduces_the_signed_vector() -> None:
    signed = sign_vector()
    assert signed == SIGNED
    assert signed["proof"]["proofValue"] == text("sigBTC58JCS.txt").decode()
    assert canonicalize(signed) == canonicalize(SIGNED)
    assert list(signed["proof"]) == list(SIGNED["proof"])  # same member order as the vector


def test_create_proof_does_not_mutate_its_input() -> None:
    document = copy.deepcopy(UNSIGNED)
    signed = create_proof(document, SEED, VM, created=CREATED)
    assert document == UNSIGNED
    signed["@context"].append("https://example.org/more")
    signed["credentialSubject"]["alumniOf"] = "changed"
    assert document == UNSIGNED


def test_verify_the_signed_vector() -> None:
    proof = verify_proof(SIGNED, PUBLIC)
    assert proof.verification_method == VM
    assert proof.proof_purpose == "assertionMethod"
    assert proof.created == CREATED
    assert proof.proof_value == text("sigBTC58JCS.txt").decode()
    assert proof.to_json() == SIGNED["proof"]
    assert verify_proof(SIGNED, PUBLIC, expected_proof_purpose="assertionMethod") == proof


def test_key_order_and_whitespace_do_not_matter() -> None:
    reordered = json.loads(json.dumps(SIGNED, sort_keys=True, indent=7))
    reordered = dict(reversed(list(reordered.items())))
    assert verify_proof(reordered, PUBLIC).created == CREATED


# --- tampering ----------------------------------------------------------------------------


def test_flipping_any_signature_byte_fails() -> None:
    signature = bytes.fromhex(text("sigHexJCS.txt").decode())
    for position in range(len(signature)):
        for bit in (0x01, 0x80):
            forged = bytearray(signature)
            forged[position] ^= bit
            doc = copy.deepcopy(SIGNED)
            doc["proof"]["proofValue"] = "z" + base58.b58encode(bytes(forged)).decode()
            with pytest.raises(VerificationError, match="does not verify") as info:
                verify_proof(doc, PUBLIC)
            assert info.value.what == "signature"


def test_changing_any_character_of_the_proof_value_fails() -> None:
    value = SIGNED["proof"]["proofValue"]
    alphabet = base58.alphabet.decode()
    for position in range(1, len(value)):
        replacement = alphabet[(alphabet.index(value[position]) + 1) % len(alphabet)]
        doc = copy.deepcopy(SIGNED)
        doc["proof"]["proofValue"] = value[:position] + replacement + value[position + 1 :]
        with pytest.raises(VerificationError) as info:
            verify_proof(doc, PUBLIC)
        assert info.value.what in {"signature", "signature-length"}


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


DOCUMENT_LEAVES = [p for p in _leaves(SIGNED) if p[0] != "proof"]
PROOF_LEAVES = [p for p in _leaves(SIGNED) if p[0] == "proof" and p[1] != "proofValue"]


@pytest.mark.parametrize("path", DOCUMENT_LEAVES, ids=lambda p: ".".join(map(str, p)))
def test_changing_any_value_of_the_document_fails(path: tuple[Any, ...]) -> None:
    doc = copy.deepcopy(SIGNED)
    _set(doc, path, _get(doc, path) + "x")
    if path[0] == "@context":
        # The proof's @context is a copy of the document's: the prefix check fires first.
        with pytest.raises(VerificationError, match="does not start with") as info:
            verify_proof(doc, PUBLIC)
        assert info.value.what == "@context"
        _set(doc["proof"], path, _get(doc, path))  # change both: the signature must catch it
    with pytest.raises(VerificationError, match="does not verify") as sig:
        verify_proof(doc, PUBLIC)
    assert sig.value.what == "signature"


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("description"),
        lambda d: d.update(extra="member"),
        lambda d: d["credentialSubject"].update(id="did:example:other"),
        lambda d: d["type"].reverse(),
        lambda d: d.update(validFrom=d["validFrom"].replace("Z", "+00:00")),
    ],
)
def test_structural_changes_to_the_document_fail(change: Any) -> None:
    doc = copy.deepcopy(SIGNED)
    change(doc)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_proof(doc, PUBLIC)


@pytest.mark.parametrize("path", PROOF_LEAVES, ids=lambda p: ".".join(map(str, p)))
def test_changing_any_proof_option_fails(path: tuple[Any, ...]) -> None:
    doc = copy.deepcopy(SIGNED)
    _set(doc, path, _get(doc, path) + "x")
    expected = {
        "type": "type",
        "cryptosuite": "cryptosuite",
        "created": "created",
        "@context": "@context",
    }.get(path[1], "signature")
    with pytest.raises(VerificationError) as info:
        verify_proof(doc, PUBLIC)
    assert info.value.what == expected


def test_adding_or_removing_proof_options_fails() -> None:
    doc = copy.deepcopy(SIGNED)
    doc["proof"]["expires"] = "2030-01-01T00:00:00Z"
    with pytest.raises(VerificationError, match="does not verify"):
        verify_proof(doc, PUBLIC)
    doc = copy.deepcopy(SIGNED)
    del doc["proof"]["created"]
    with pytest.raises(VerificationError, match="does not verify"):
        verify_proof(doc, PUBLIC)
    doc = copy.deepcopy(SIGNED)
    del doc["proof"]["@context"]  # then the document is hashed with its own @context ...
    with pytest.raises(VerificationError, match="does not verify"):  # ... but the config differs
        verify_proof(doc, PUBLIC)


@pytest.mark.parametrize(
    ("field", "value", "what", "message"),
    [
        ("type", "Ed25519Signature2020", "type", "proof type must be DataIntegrityProof"),
        ("cryptosuite", "eddsa-rdfc-2022", "cryptosuite", "must be eddsa-jcs-2022"),
        ("cryptosuite", None, "cryptosuite", "must be eddsa-jcs-2022"),
        ("created", "2023-02-24 23:36:38", "created", "not an XML Schema dateTimeStamp"),
        ("verificationMethod", None, "verificationMethod", "has no verificationMethod"),
        ("proofPurpose", "", "proofPurpose", "has no proofPurpose"),
    ],
)
def test_wrong_proof_options_are_named(field: str, value: Any, what: str, message: str) -> None:
    doc = copy.deepcopy(SIGNED)
    if value is None:
        del doc["proof"][field]
    else:
        doc["proof"][field] = value
    with pytest.raises(VerificationError, match=message) as info:
        verify_proof(doc, PUBLIC)
    assert info.value.what == what


# --- @context rules (§3.3.2 step 4) ------------------------------------------------------------


def test_document_context_must_start_with_the_proof_context() -> None:
    doc = copy.deepcopy(SIGNED)
    doc["@context"].reverse()
    with pytest.raises(VerificationError, match="does not start with") as info:
        verify_proof(doc, PUBLIC)
    assert info.value.what == "@context"
    doc = copy.deepcopy(SIGNED)
    doc["@context"] = doc["@context"][:1]
    with pytest.raises(VerificationError, match="does not start with"):
        verify_proof(doc, PUBLIC)
    doc = copy.deepcopy(SIGNED)
    del doc["@context"]
    with pytest.raises(VerificationError, match="does not start with"):
        verify_proof(doc, PUBLIC)


def test_contexts_appended_after_signing_are_ignored_as_the_spec_says() -> None:
    """§3.3.2 step 4: the document is hashed with the *proof's* @context, so a document
    whose @context merely starts with it still verifies."""
    doc = copy.deepcopy(SIGNED)
    doc["@context"].append("https://example.org/appended/v1")
    assert verify_proof(doc, PUBLIC).verification_method == VM


def test_documents_without_context_sign_and_verify_without_one() -> None:
    plain = {"id": "urn:example:1", "digest": "00" * 32}
    signed = create_proof(plain, SEED, VM, created=CREATED)
    assert "@context" not in signed["proof"]
    assert verify_proof(signed, PUBLIC).options == {
        k: v for k, v in signed["proof"].items() if k != "proofValue"
    }
    signed["proof"]["@context"] = ["https://www.w3.org/ns/credentials/v2"]
    with pytest.raises(VerificationError, match="does not start with"):
        verify_proof(signed, PUBLIC)


def test_string_context_is_compared_as_a_one_element_list() -> None:
    doc = {"@context": "https://www.w3.org/ns/credentials/v2", "id": "urn:example:2"}
    signed = create_proof(doc, SEED, VM, created=CREATED)
    assert signed["proof"]["@context"] == "https://www.w3.org/ns/credentials/v2"
    assert verify_proof(signed, PUBLIC)
    signed["@context"] = ["https://www.w3.org/ns/credentials/v2", "https://example.org/x"]
    assert verify_proof(signed, PUBLIC)


# --- proofValue encoding ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "what", "message"),
    [
        ("u" + SIGNED["proof"]["proofValue"][1:], "proofValue", "prefix 'z'"),
        (SIGNED["proof"]["proofValue"][1:], "proofValue", "prefix 'z'"),
        (12345, "proofValue", "prefix 'z'"),
        ("z" + "0" + SIGNED["proof"]["proofValue"][2:], "proofValue", "not valid base58btc"),
        ("z" + "l" + SIGNED["proof"]["proofValue"][2:], "proofValue", "not valid base58btc"),
        ("z" + "2" * 200, "proofValue", "longer than 128"),
        ("z", "signature-length", "64 bytes"),
        ("z" + base58.b58encode(bytes(range(1, 64))).decode(), "signature-length", "64 bytes"),
        ("z" + base58.b58encode(bytes(range(1, 66))).decode(), "signature-length", "64 bytes"),
    ],
)
def test_bad_proof_values_are_named(value: Any, what: str, message: str) -> None:
    doc = copy.deepcopy(SIGNED)
    doc["proof"]["proofValue"] = value
    with pytest.raises(VerificationError, match=message) as info:
        verify_proof(doc, PUBLIC)
    assert info.value.what == what


def test_missing_proof_value_fails() -> None:
    doc = copy.deepcopy(SIGNED)
    del doc["proof"]["proofValue"]
    with pytest.raises(VerificationError, match="prefix 'z'") as info:
        verify_proof(doc, PUBLIC)
    assert info.value.what == "proofValue"


# --- keys and proof selection -----------------------------------------------------------------


def test_another_key_does_not_verify() -> None:
    other = bytes(SigningKey(bytes(range(32))).verify_key)
    with pytest.raises(VerificationError, match="does not verify") as info:
        verify_proof(SIGNED, other)
    assert info.value.what == "signature"


@pytest.mark.parametrize("key", [b"", PUBLIC[:31], PUBLIC + b"\x00", PUBLIC.hex()])
def test_malformed_public_keys_are_caller_errors(key: Any) -> None:
    with pytest.raises(InvalidInput, match="must be 32 raw bytes"):
        verify_proof(SIGNED, key)


def test_missing_or_malformed_proof() -> None:
    with pytest.raises(VerificationError, match="has no proof") as info:
        verify_proof(UNSIGNED, PUBLIC)
    assert info.value.what == "proof"
    for bad in ("z123", [], ["z123"]):
        with pytest.raises(VerificationError, match="an object or an array of objects"):
            verify_proof({**UNSIGNED, "proof": bad}, PUBLIC)


def test_expected_proof_purpose() -> None:
    with pytest.raises(VerificationError, match="another purpose") as info:
        verify_proof(SIGNED, PUBLIC, expected_proof_purpose="authentication")
    assert info.value.what == "proofPurpose"


def test_proof_sets() -> None:
    second_seed = bytes(range(32))
    second_public = _public_key_from_seed(second_seed)
    second_vm = "did:key:{0}#{0}".format(ed25519_public_key_to_multibase(second_public))
    both = create_proof(SIGNED, second_seed, second_vm, created="2024-01-01T00:00:00Z")
    assert isinstance(both["proof"], list)
    assert both["proof"][0] == SIGNED["proof"]
    assert (
        verify_proof(both, PUBLIC, verification_method=VM).proof_value
        == (SIGNED["proof"]["proofValue"])
    )
    assert verify_proof(both, second_public, verification_method=second_vm).created == (
        "2024-01-01T00:00:00Z"
    )
    with pytest.raises(VerificationError, match="2 proofs match") as info:
        verify_proof(both, PUBLIC)
    assert info.value.what == "proof"
    with pytest.raises(VerificationError, match="no proof by did:example:x") as vm_info:
        verify_proof(both, PUBLIC, verification_method="did:example:x")
    assert vm_info.value.what == "verificationMethod"
    with pytest.raises(VerificationError, match="does not verify"):
        verify_proof(both, PUBLIC, verification_method=second_vm)
    assert load("signedJCS.json") == SIGNED  # the input was not touched


def test_proof_chains_are_refused() -> None:
    doc = copy.deepcopy(SIGNED)
    doc["proof"]["previousProof"] = "urn:uuid:1"
    with pytest.raises(VerificationError, match="previousProof") as info:
        verify_proof(doc, PUBLIC)
    assert info.value.what == "proof"


# --- create_proof inputs and other documents -----------------------------------------------------


def test_employment_authorization_document_signs_and_verifies() -> None:
    document = load("employmentAuth.json")
    signed = create_proof(document, SEED, VM, created="2024-05-01T10:20:30Z")
    assert verify_proof(signed, PUBLIC).proof_purpose == "assertionMethod"
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["employmentAuthorizationDocument"]["lprCategory"] = "C10"
    with pytest.raises(VerificationError, match="does not verify"):
        verify_proof(tampered, PUBLIC)


def test_created_defaults_to_now_and_is_checked() -> None:
    signed = create_proof(UNSIGNED, SEED, VM)
    assert is_datetime_stamp(signed["proof"]["created"])
    assert signed["proof"]["created"].endswith("Z")
    assert verify_proof(signed, PUBLIC)
    for bad in ("2023-02-24", "2023-02-24T23:36:38", "2023-02-30T00:00:00Z", "now"):
        with pytest.raises(InvalidInput, match="created must be an XML Schema dateTimeStamp"):
            create_proof(UNSIGNED, SEED, VM, created=bad)


def test_create_proof_argument_errors() -> None:
    with pytest.raises(InvalidInput, match="32 raw bytes"):
        create_proof(UNSIGNED, SEED[:31], VM)
    with pytest.raises(InvalidInput, match="verification_method must be"):
        create_proof(UNSIGNED, SEED, "")
    with pytest.raises(InvalidInput, match="proof_purpose must be"):
        create_proof(UNSIGNED, SEED, VM, proof_purpose="")
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        create_proof([UNSIGNED], SEED, VM)  # type: ignore[arg-type]


def test_other_proof_purposes() -> None:
    signed = create_proof(UNSIGNED, SEED, VM, proof_purpose="authentication", created=CREATED)
    assert verify_proof(signed, PUBLIC, expected_proof_purpose="authentication")
    assert signed["proof"]["proofValue"] != SIGNED["proof"]["proofValue"]


# --- canonical JSON ------------------------------------------------------------------------------


def test_canonical_digest_covers_the_document_as_given() -> None:
    assert canonical_digest(SIGNED) == hashlib.sha256(canonicalize(SIGNED)).digest()
    assert canonical_digest(SIGNED) != canonical_digest(UNSIGNED)
    assert (
        canonical_digest({"b": 1, "a": [1.0, "é"]})
        == hashlib.sha256('{"a":[1,"é"],"b":1}'.encode()).digest()
    )


@pytest.mark.parametrize(
    "value",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": 2**53}, {1: "non-string key"}, {"x": b""}],
)
def test_values_jcs_cannot_represent_are_encoding_errors(value: Any) -> None:
    with pytest.raises(EncodingError):
        canonical_digest(value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_any_json_document_signs_and_verifies(document: dict[str, Any]) -> None:
    document.pop("proof", None)
    signed = create_proof(document, SEED, VM, created=CREATED)
    assert verify_proof(json.loads(json.dumps(signed)), PUBLIC).verification_method == VM
