"""ecdsa-sd-2023 interop with Digital Bazaar's implementation (real Node.js, pinned npm packages).

Signed here, derived there, verified here; signed there, derived here, verified there. The Node
side (tests/interop/ecdsa_sd.mjs) serves the same packaged context files offline.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers.service import run_db_ecdsa_sd

from anchor.errors import VerificationError
from anchor.vc import ecdsa_sd as sd

VECTORS = Path(__file__).parent / "vectors" / "ecdsa-sd-2023"
CREDENTIAL: dict[str, Any] = json.loads((VECTORS / "employmentAuth.json").read_text())
MANDATORY = ["/issuer", "/validFrom", "/validUntil"]
SELECTIVE = [
    "/credentialSubject/birthCountry",
    "/credentialSubject/employmentAuthorizationDocument",
]


def _keys() -> tuple[ec.EllipticCurvePrivateKey, str, str, str]:
    from did_methods.multikey import b58encode

    key = ec.generate_private_key(ec.SECP256R1())
    public = "z" + b58encode(sd.p256_multikey(key.public_key()))
    secret = "z" + b58encode(b"\x86\x26" + key.private_numbers().private_value.to_bytes(32, "big"))
    return key, public, secret, f"did:key:{public}#{public}"


def test_signed_here_derived_there_verified_here() -> None:
    key, _, _, method = _keys()
    signed = sd.create_base_proof(
        CREDENTIAL,
        issuer_key=key,
        verification_method=method,
        mandatory_pointers=MANDATORY,
        created="2026-12-07T00:00:00Z",
    )
    derived = run_db_ecdsa_sd({"op": "derive", "document": signed, "selectivePointers": SELECTIVE})
    assert "givenName" not in derived["credentialSubject"]
    assert derived["credentialSubject"]["birthCountry"] == "Bahamas"
    result = sd.verify_derived_proof(derived, key.public_key())
    assert result.base_signature_sha256 == sd.base_signature_digest(signed)
    # and our own derivation of the same selection is byte-identical to theirs
    assert sd.derive_proof(signed, SELECTIVE) == derived
    forged = copy.deepcopy(derived)
    forged["credentialSubject"]["birthCountry"] = "Utopia"
    with pytest.raises(VerificationError):
        sd.verify_derived_proof(forged, key.public_key())


def test_signed_there_derived_here_verified_there() -> None:
    key, public, secret, _ = _keys()
    signed = run_db_ecdsa_sd(
        {
            "op": "sign",
            "document": CREDENTIAL,
            "publicKeyMultibase": public,
            "secretKeyMultibase": secret,
            "mandatoryPointers": MANDATORY,
            "created": "2026-12-07T00:00:00Z",
        }
    )
    assert sd.proof_kind(signed) == "base"
    derived = sd.derive_proof(signed, SELECTIVE)
    assert run_db_ecdsa_sd({"op": "verify", "document": derived}) == {
        "verified": True,
        "error": None,
    }
    sd.verify_derived_proof(derived, key.public_key())
    forged = copy.deepcopy(derived)
    forged["credentialSubject"]["birthCountry"] = "Utopia"
    assert run_db_ecdsa_sd({"op": "verify", "document": forged})["verified"] is False


TRICKY = 'a\u2028b\x85c\x0cd\x0be\x1cf\x08g\x01h\x7fi C:\\new "q" \\n'
"""A name holding what broke RDFC-1.0 here: characters Python splits lines at (PyLD's reader
cut the statement there: issuing and deriving failed), controls that the canonical form
escapes and PyLD wrote raw (Digital Bazaar refused our signature), and a backslash before
``n`` (PyLD's reader unescaped it into a newline)."""


def test_literals_with_line_separators_and_controls_agree_both_ways() -> None:
    credential = copy.deepcopy(CREDENTIAL)
    credential["credentialSubject"]["givenName"] = TRICKY
    key, public, secret, method = _keys()
    pointers = ["/credentialSubject/givenName", "/credentialSubject/birthCountry"]

    ours = sd.create_base_proof(
        credential,
        issuer_key=key,
        verification_method=method,
        mandatory_pointers=MANDATORY,
        created="2026-12-07T00:00:00Z",
    )
    derived_there = run_db_ecdsa_sd(
        {"op": "derive", "document": ours, "selectivePointers": pointers}
    )
    assert derived_there["credentialSubject"]["givenName"] == TRICKY
    assert run_db_ecdsa_sd({"op": "verify", "document": derived_there})["verified"] is True
    sd.verify_derived_proof(derived_there, key.public_key())
    assert sd.derive_proof(ours, pointers) == derived_there

    theirs = run_db_ecdsa_sd(
        {
            "op": "sign",
            "document": credential,
            "publicKeyMultibase": public,
            "secretKeyMultibase": secret,
            "mandatoryPointers": MANDATORY,
            "created": "2026-12-07T00:00:00Z",
        }
    )
    derived_here = sd.derive_proof(theirs, pointers)
    assert run_db_ecdsa_sd({"op": "verify", "document": derived_here}) == {
        "verified": True,
        "error": None,
    }
