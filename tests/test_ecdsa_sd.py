"""ecdsa-sd-2023 against the W3C vc-di-ecdsa test vectors, bit for bit, and its refusals."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import base58
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec

from anchor.errors import VerificationError
from anchor.vc import ecdsa_sd as sd
from anchor.vc import jsonld_contexts

VECTORS = Path(__file__).parent / "vectors" / "ecdsa-sd-2023"
CASES = ("employ", "prc")


def _load(path: str) -> Any:
    return json.loads((VECTORS / path).read_text())


def _private(multibase: str) -> ec.EllipticCurvePrivateKey:
    raw = base58.b58decode(multibase[1:])
    assert raw[:2] == b"\x86\x26"  # p256-priv multicodec
    return ec.derive_private_key(int.from_bytes(raw[2:], "big"), ec.SECP256R1())


KEYS = _load("SDKeyMaterial.json")
ISSUER = _private(KEYS["baseKeyPair"]["secretKeyMultibase"])
PROOF_KEY = _private(KEYS["proofKeyPair"]["secretKeyMultibase"])
HMAC_KEY = bytes.fromhex(KEYS["hmacKeyString"])
POINTERS = {
    "employ": ("employMandatory", "employSelective"),
    "prc": ("prCredMandatory", "prCredSelective"),
}


def _base(case: str) -> dict[str, Any]:
    return dict(_load(f"{case}/addSignedSDBase.json"))


@pytest.mark.parametrize("case", CASES)
def test_base_proof_is_bit_for_bit(case: str) -> None:
    signed = _base(case)
    unsigned = {k: v for k, v in signed.items() if k != "proof"}
    config = _load(f"{case}/addProofConfig.json")
    mandatory = _load(f"{POINTERS[case][0]}.json")
    ours = sd.create_base_proof(
        unsigned,
        issuer_key=ISSUER,
        verification_method=config["verificationMethod"],
        mandatory_pointers=mandatory,
        created=config["created"],
        hmac_key=HMAC_KEY,
        proof_key=PROOF_KEY,
        deterministic=True,
    )
    assert ours["proof"]["proofValue"] == signed["proof"]["proofValue"]
    assert ours == signed


def test_employ_vector_input_is_the_signed_document() -> None:
    signed = _base("employ")
    assert {k: v for k, v in signed.items() if k != "proof"} == _load("employmentAuth.json")


@pytest.mark.parametrize("case", CASES)
def test_intermediate_values(case: str) -> None:
    unsigned = {k: v for k, v in _base(case).items() if k != "proof"}
    mandatory = _load(f"{POINTERS[case][0]}.json")
    grouped = sd.canonicalize_and_group(
        unsigned, sd.hmac_label_map_factory(HMAC_KEY), {"mandatory": mandatory}
    )
    assert grouped.nquads == _load(f"{case}/addBaseDocHMACCanon.json")
    assert jsonld_contexts.canonicalize(unsigned) == _load(f"{case}/addBaseDocCanon.json")
    hashes = _load(f"{case}/addHashData.json")
    joined = "".join(grouped.groups["mandatory"].matching.values()).encode()
    assert hashlib.sha256(joined).hexdigest() == hashes["mandatoryHash"]
    parsed = sd.parse_base_proof_value(_base(case)["proof"]["proofValue"])
    raw = _load(f"{case}/addRawBaseSignatureInfo.json")
    assert parsed.base_signature.hex() == raw["baseSignature"]
    assert [s.hex() for s in parsed.signatures] == raw["signatures"]
    assert list(parsed.mandatory_pointers) == raw["mandatoryPointers"]


@pytest.mark.parametrize("case", CASES)
def test_derived_proof_is_bit_for_bit_and_verifies(case: str) -> None:
    selective = _load(f"{POINTERS[case][1]}.json")
    derived = sd.derive_proof(_base(case), selective)
    expected = _load(f"{case}/derivedRevealDocument.json")
    assert derived["proof"]["proofValue"] == expected["proof"]["proofValue"]
    assert derived == expected
    disclosure = _load(f"{case}/derivedDisclosureData.json")
    parsed = sd.parse_derived_proof_value(derived["proof"]["proofValue"])
    assert list(parsed.mandatory_indexes) == disclosure["mandatoryIndexes"]
    assert [s.hex() for s in parsed.signatures] == disclosure["signatures"]
    assert sorted(parsed.labels().items()) == sorted(map(tuple, disclosure["labelMap"]["value"]))
    result = sd.verify_derived_proof(expected, ISSUER.public_key())
    assert result.mandatory_statements == len(disclosure["mandatoryIndexes"])
    assert result.disclosed_statements == len(disclosure["signatures"])
    assert result.base_signature_sha256 == sd.base_signature_digest(_base(case))


def test_round_trip_with_random_keys_and_tampering() -> None:
    issuer = ec.generate_private_key(ec.SECP256R1())
    unsigned = _load("employmentAuth.json")
    signed = sd.create_base_proof(
        unsigned,
        issuer_key=issuer,
        verification_method="did:key:zX#zX",
        mandatory_pointers=["/issuer", "/validFrom"],
        created="2026-01-01T00:00:00Z",
    )
    derived = sd.derive_proof(signed, ["/credentialSubject/birthCountry"])
    assert "givenName" not in derived["credentialSubject"]
    sd.verify_derived_proof(derived, issuer.public_key())
    # another issuer key
    with pytest.raises(VerificationError) as info:
        sd.verify_derived_proof(derived, ec.generate_private_key(ec.SECP256R1()).public_key())
    assert info.value.what == "baseSignature"
    # a changed disclosed value
    forged = copy.deepcopy(derived)
    forged["credentialSubject"]["birthCountry"] = "Utopia"
    with pytest.raises(VerificationError) as info:
        sd.verify_derived_proof(forged, issuer.public_key())
    assert info.value.what == "signature"
    # a changed mandatory value
    forged = copy.deepcopy(derived)
    forged["validFrom"] = "2020-01-01T00:00:00Z"
    with pytest.raises(VerificationError) as info:
        sd.verify_derived_proof(forged, issuer.public_key())
    assert info.value.what == "baseSignature"
    # an added statement
    forged = copy.deepcopy(derived)
    forged["credentialSubject"]["givenName"] = "EVE"
    with pytest.raises(VerificationError) as info:
        sd.verify_derived_proof(forged, issuer.public_key())
    assert info.value.what in {"signatures", "labelMap"}
    # a base proof is not a derived proof
    with pytest.raises(VerificationError) as info:
        sd.verify_derived_proof(signed, issuer.public_key())
    assert info.value.what == "proofValue"


def test_bad_inputs_are_refused_with_typed_errors() -> None:
    signed = _base("employ")
    with pytest.raises(sd.PointerError):
        sd.derive_proof(signed, ["/credentialSubject/nope"])
    with pytest.raises(sd.PointerError):
        sd.derive_proof(signed, ["credentialSubject"])
    unknown = {**signed, "@context": [*signed["@context"], "https://example.org/ctx"]}
    with pytest.raises(jsonld_contexts.UnknownContext) as info:
        sd.derive_proof(unknown, ["/validFrom"])
    assert info.value.url == "https://example.org/ctx"
    for bad in ("zabc", "u!!", "u" + "A" * 10, 7):
        broken = {**signed, "proof": {**signed["proof"], "proofValue": bad}}
        with pytest.raises(VerificationError):
            sd.derive_proof(broken, ["/validFrom"])


def test_invalid_json_ld_says_what_is_wrong() -> None:
    with pytest.raises(jsonld_contexts.JsonLdError) as info:
        jsonld_contexts.canonicalize(
            {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": 7}
        )
    assert '"@type" value must be a string' in info.value.detail


def test_p256_key_files(tmp_path: Path) -> None:
    from anchor.errors import ConfigError
    from anchor.keys import P256Key, load_p256_key, save_p256_key

    key = P256Key.generate()
    path = save_p256_key(key, tmp_path / "k.jwk")
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_p256_key(path)
    assert loaded.did == key.did
    assert loaded.did.startswith("did:key:zDn")
    assert loaded.verification_method == f"{key.did}#{key.did.removeprefix('did:key:')}"
    jwk = key.private_jwk()
    other = P256Key.generate().private_jwk()
    with pytest.raises(ConfigError):
        P256Key.from_jwk({**jwk, "x": other["x"]})
    with pytest.raises(ConfigError):
        P256Key.from_jwk({**jwk, "crv": "P-384"})
    # the did:key resolves to the same key through did_methods
    from did_methods.multikey import decode_multikey

    assert decode_multikey(key.did.removeprefix("did:key:")).raw == key.public_bytes


def poisoned(nodes: int) -> dict[str, Any]:
    """The W3C derived credential, its subject replaced by ``nodes`` blank nodes each linked
    to every other (RDFC-1.0's poison clique), issued by its proof's own key so that the
    verifier gets as far as canonicalizing it."""
    document: dict[str, Any] = _load("employ/derivedRevealDocument.json")
    document["issuer"] = document["proof"]["verificationMethod"].split("#")[0]
    knows = "https://example.org/knows"
    clique = [
        {"id": f"_:n{i}", knows: [{"id": f"_:n{j}"} for j in range(nodes) if j != i]}
        for i in range(nodes)
    ]
    document["credentialSubject"] = {knows: clique}
    return document


async def test_a_poison_credential_is_refused_at_once_over_http(client: TestClient) -> None:
    """2.5 kB of JSON-LD: unbounded, a clique of 8 took 51 s of the service's time and one
    of 10 hours; now the proof check says why it stopped, at once."""
    started = time.perf_counter()
    response = await client.post("/v1/verify", json={"credential": poisoned(10)})
    took = time.perf_counter() - started
    assert response.status == 200, await response.text()
    checks = {c["check"]: c for c in (await response.json())["checks"]}
    assert checks["key"]["result"] == "valid"
    assert checks["proof"]["result"] == "invalid"
    assert "dataset poisoning" in checks["proof"]["reason"]
    assert took < 5, took


async def test_a_large_credential_is_checked_off_the_event_loop(client: TestClient) -> None:
    """Nearly 10,000 statements within the limits take about a second of JSON-LD processing;
    the verifier runs its proof checks on a thread of its own, so the service keeps answering
    meanwhile (before, ``/healthz`` waited for such a check to end)."""
    document: dict[str, Any] = _load("employ/derivedRevealDocument.json")
    document["issuer"] = document["proof"]["verificationMethod"].split("#")[0]
    item = "https://example.org/item"
    values = jsonld_contexts.MAX_VALUES_PER_PROPERTY - 6
    document["credentialSubject"] = {item: [{f"{item}#v": list(range(values))} for _ in range(38)]}
    started = time.perf_counter()
    verifying = asyncio.create_task(client.post("/v1/verify", json={"credential": document}))
    waits = []
    while not verifying.done():
        asked = time.perf_counter()
        assert (await client.get("/healthz")).status == 200
        waits.append(time.perf_counter() - asked)
        await asyncio.sleep(0.02)
    took = time.perf_counter() - started
    checks = {c["check"]: c for c in (await (await verifying).json())["checks"]}
    assert checks["key"]["result"] == "valid"
    assert checks["proof"]["result"] == "invalid"  # the W3C proof does not cover these items
    assert len(waits) > 3, (waits, took)
    assert max(waits) < took / 3, (waits, took)


N = "https://example.org/n"


@pytest.mark.parametrize(
    ("shape", "refusal"),
    [
        ({N: list(range(30_000))}, f"30000 values of {N}, more than 256"),
        (
            {
                "https://example.org/m": [
                    {"id": "urn:same", N: list(range(k, k + 100))} for k in (0, 100, 200)
                ]
            },
            f"300 values of {N}, more than 256",
        ),
        ({"type": [f"urn:t{n}" for n in range(300)]}, "300 values of @type, more than 256"),
        ({f"https://example.org/p{n}": n for n in range(10_001)}, "more than 10000 statements"),
    ],
    ids=["one-property", "one-id-split", "types", "statements"],
)
def test_json_ld_is_sized_before_pyld_builds_its_node_map(
    shape: dict[str, Any], refusal: str
) -> None:
    """PyLD compares each value of a property with all the node's earlier ones: 30,000
    numbers of one property (200 kB) took 288 s. The expanded document is sized first, so a
    refusal costs a fraction of a second, however the values are spread (nodes with one id
    merge)."""
    document = {"@context": ["https://www.w3.org/ns/credentials/v2"], "id": "urn:x", **shape}
    started = time.perf_counter()
    with pytest.raises(jsonld_contexts.JsonLdError, match=refusal):
        jsonld_contexts.to_nquads(document)
    assert time.perf_counter() - started < 2
