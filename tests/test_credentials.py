"""Open Badges 3.0 credentials: building, hashed subjects, signing and digests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization

from anchor.errors import InvalidInput, VerificationError
from anchor.keys import Ed25519Key
from anchor.vc import credentials, data_integrity

ACHIEVEMENT = {
    "id": "https://college.example/achievements/welding-1",
    "name": "Structural Welding I",
    "description": "Shielded metal arc welding of structural steel.",
    "criteria": {"narrative": "Passed the AWS D1.1 practical test."},
    "achievementType": "Certificate",
    "alignments": [
        {
            "targetName": "Welders, Cutters, Solderers, and Brazers",
            "targetUrl": "https://www.onetonline.org/link/summary/51-4121.00",
            "targetFramework": "O*NET-SOC",
            "targetCode": "51-4121.00",
        }
    ],
}


def seed(key: Ed25519Key) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _identity_matches(identity: dict[str, object], identifier: str) -> bool:
    """Does the hashed ``identity`` object name ``identifier``? (What a verifier who was told
    the learner's e-mail address checks.)"""
    salt, expected = identity["salt"], identity["identityHash"]
    assert isinstance(salt, str)
    return "sha256$" + hashlib.sha256((identifier + salt).encode()).hexdigest() == expected


def test_open_badge_shape_and_signature() -> None:
    key = Ed25519Key.generate()
    achievement = credentials.parse_achievement(ACHIEVEMENT)
    status = {
        "id": "https://anchor.example/v1/status-lists/1#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": "https://anchor.example/v1/status-lists/1",
    }
    doc = credentials.open_badge(
        issuer=key.did,
        issuer_name="County College",
        achievement=achievement,
        subject="did:example:learner",
        status=[status],
        valid_from=datetime(2026, 6, 1, tzinfo=UTC),
        valid_until=datetime(2030, 6, 1, tzinfo=UTC),
    )
    assert doc["@context"] == [credentials.VC_V2_CONTEXT, credentials.OB_V3_CONTEXT]
    assert doc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert doc["credentialSubject"]["type"] == ["AchievementSubject"]
    ach = doc["credentialSubject"]["achievement"]
    assert ach["criteria"] == {"narrative": "Passed the AWS D1.1 practical test."}
    assert ach["alignment"][0]["targetCode"] == "51-4121.00"
    assert doc["credentialStatus"] == status
    assert doc["validFrom"] == "2026-06-01T00:00:00Z"
    signed = credentials.sign(doc, seed(key), key.verification_method)
    data_integrity.verify_proof(signed, key.public_bytes)
    assert credentials.digest(signed) == hashlib.sha256(rfc8785.dumps(signed)).digest()
    assert credentials.issuer_id(signed) == key.did
    tampered = json.loads(json.dumps(signed))
    tampered["credentialSubject"]["achievement"]["name"] = "Master Welder"
    with pytest.raises(VerificationError):
        data_integrity.verify_proof(tampered, key.public_bytes)


def test_hashed_subject_keeps_the_identifier_out() -> None:
    identity = credentials.hashed_identity("learner@example.org")
    doc = credentials.open_badge(
        issuer="did:web:college.example",
        issuer_name="County College",
        achievement=credentials.parse_achievement(ACHIEVEMENT),
        subject=identity,
    )
    text = json.dumps(doc)
    assert "learner@example.org" not in text
    assert "id" not in doc["credentialSubject"]
    (ident,) = doc["credentialSubject"]["identifier"]
    assert ident["hashed"] is True
    assert ident["identityHash"].startswith("sha256$")
    assert _identity_matches(ident, "learner@example.org")
    assert not _identity_matches(ident, "someone@example.org")
    again = credentials.hashed_identity("learner@example.org")
    assert again["identityHash"] != ident["identityHash"]  # fresh salt each time


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"criteria": None}, "'criteria' must be"),
        ({"alignments": "x"}, "must be a list"),
        ({"alignments": [{"targetName": "x"}]}, "'targetUrl'"),
        ({"description": "x" * 10_001}, "longer than"),
    ],
)
def test_achievement_rejects(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        credentials.parse_achievement({**ACHIEVEMENT, **change})


def test_open_badge_rejects() -> None:
    ach = credentials.parse_achievement(ACHIEVEMENT)
    with pytest.raises(InvalidInput, match="is not a DID"):
        credentials.open_badge(issuer="college", issuer_name="", achievement=ach, subject="did:x:y")
    with pytest.raises(InvalidInput, match="subject"):
        credentials.open_badge(issuer="did:x:y", issuer_name="", achievement=ach, subject="bob")
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput, match="validUntil"):
        credentials.open_badge(
            issuer="did:x:y",
            issuer_name="",
            achievement=ach,
            subject="did:x:z",
            valid_from=now,
            valid_until=now - timedelta(days=1),
        )
    with pytest.raises(InvalidInput, match="identity type"):
        credentials.hashed_identity("x", "shoeSize")
