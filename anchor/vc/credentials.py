"""Issuing Learning and Employment Records as 1EdTech Open Badges 3.0 credentials (pure).

An :func:`open_badge` is a VC Data Model 2.0 ``OpenBadgeCredential`` whose subject is an
``AchievementSubject`` holding the ``Achievement`` (with ``criteria`` and skill
``alignment``s). The subject is a DID, or a salted hashed identifier (the OB 3.0
``IdentityObject`` with ``hashed: true``) so no name or e-mail is in the credential. It is
secured with an ``eddsa-jcs-2022`` Data Integrity proof (:func:`sign`); its digest for
anchoring is SHA-256 of its RFC 8785 canonical JSON (:func:`digest`), proof included.

Shapes follow 1EdTech's OB 3.0 JSON Schema (``ob_v3p0_achievementcredential``): ``proof`` is
an array, and ``credentialStatus`` is one object (OB 3.0 allows at most one). A credential
given both a revocation and a suspension entry carries them as an array: valid VC 2.0, but a
departure from OB 3.0 that its schema rejects. A :func:`clr` is a 1EdTech CLR 2.0
``ClrCredential`` bundling one learner's signed achievement credentials.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from anchor.errors import InvalidInput
from anchor.vc import data_integrity
from anchor.vc.sd_kind import sd_proof_kind

VC_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_V3_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CLR_V2_CONTEXT = "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json"

MAX_CLR_ACHIEVEMENTS = 1_000
"""Most achievement credentials one CLR bundles."""

SALT_BYTES = 16
"""Random salt of a hashed identifier (hex encoded in the credential)."""

IDENTITY_TYPES = frozenset(
    {
        "name", "sourcedId", "systemId", "productId", "userName", "accountId", "emailAddress",
        "nationalIdentityNumber", "isbn", "issn", "lisSourcedId", "oneRosterSourcedId",
        "sisSourcedId", "ltiContextId", "ltiDeploymentId", "ltiToolId", "ltiPlatformId",
        "ltiUserId", "identifier",
    }
)  # fmt: skip
"""OB 3.0 IdentifierTypeEnum values accepted for hashed identifiers (other types are given
as extensions: ``ext:`` and a name, e.g. ``ext:studentId``)."""

_EXTENSION_TERM = re.compile(r"ext:[A-Za-z0-9._-]{1,100}")
"""An extension of an OB 3.0 extensible vocabulary (``ext:`` and a name)."""

ACHIEVEMENT_TYPES = frozenset(
    {
        "Achievement", "ApprenticeshipCertificate", "Assessment", "Assignment",
        "AssociateDegree", "Award", "Badge", "BachelorDegree", "Certificate",
        "CertificateOfCompletion", "Certification", "CommunityService", "Competency", "Course",
        "CoCurricular", "Degree", "Diploma", "DoctoralDegree", "Fieldwork",
        "GeneralEducationDevelopment", "JourneymanCertificate", "LearningProgram", "License",
        "Membership", "ProfessionalDoctorate", "QualityAssuranceCredential",
        "MasterCertificate", "MasterDegree", "MicroCredential", "ResearchDoctorate",
        "SecondarySchoolDiploma",
    }
)  # fmt: skip
"""OB 3.0 AchievementType values (others as ``ext:NAME``)."""

ALIGNMENT_TARGET_TYPES = frozenset(
    {
        "ceasn:Competency", "ceterms:Credential", "CFItem", "CFRubric", "CFRubricCriterion",
        "CFRubricCriterionLevel", "CTDL",
    }
)  # fmt: skip
"""OB 3.0 AlignmentTargetType values (others as ``ext:NAME``)."""


def _vocabulary(value: str | None, allowed: frozenset[str], what: str) -> str | None:
    """``value`` when it is in the OB 3.0 vocabulary ``allowed`` or an ``ext:`` extension."""
    if value is None or value in allowed or _EXTENSION_TERM.fullmatch(value):
        return value
    raise InvalidInput(
        f"{what} {value!r} is not an Open Badges 3.0 {what}",
        hint=f"use one of {', '.join(sorted(allowed))}, or an extension such as ext:{value}",
    )


MAX_TEXT = 10_000
"""Longest free text (names, descriptions, narratives) accepted from an achievement file."""

_DID_RE = re.compile(r"did:[a-z0-9]+:[A-Za-z0-9._:%-]+")


@dataclass(frozen=True, slots=True)
class Alignment:
    """A skill alignment: a competency or occupation in a framework (CASE, O*NET, ESCO...)."""

    target_name: str
    target_url: str
    target_framework: str | None = None
    target_code: str | None = None
    target_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": ["Alignment"],
            "targetName": self.target_name,
            "targetUrl": self.target_url,
        }
        if self.target_framework:
            doc["targetFramework"] = self.target_framework
        if self.target_code:
            doc["targetCode"] = self.target_code
        if self.target_type:
            doc["targetType"] = self.target_type
        return doc


@dataclass(frozen=True, slots=True)
class Achievement:
    """What was achieved. ``id`` is a URI naming the achievement definition."""

    id: str
    name: str
    description: str
    criteria: str
    achievement_type: str | None = None
    alignments: tuple[Alignment, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "type": ["Achievement"],
            "name": self.name,
            "description": self.description,
            "criteria": {"narrative": self.criteria},
        }
        if self.achievement_type:
            doc["achievementType"] = self.achievement_type
        if self.alignments:
            doc["alignment"] = [a.to_json() for a in self.alignments]
        return doc


def _text(doc: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: {key!r} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{where}: {key!r} is longer than {MAX_TEXT} characters")
    return value


def parse_achievement(doc: Any) -> Achievement:
    """An :class:`Achievement` from its JSON description (the ``--achievement`` file)::

    {"id": "https://college.example/achievements/welding-1", "name": "...",
     "description": "...", "criteria": "narrative text", "achievementType": "Certificate",
     "alignments": [{"targetName": "...", "targetUrl": "...", "targetFramework": "...",
                     "targetCode": "..."}]}
    """
    if not isinstance(doc, Mapping):
        raise InvalidInput("the achievement must be a JSON object")
    criteria = doc.get("criteria")
    if isinstance(criteria, Mapping):
        criteria = criteria.get("narrative")
    alignments = []
    raw_alignments = doc.get("alignments", doc.get("alignment", []))
    if not isinstance(raw_alignments, list):
        raise InvalidInput("achievement: 'alignments' must be a list")
    for i, a in enumerate(raw_alignments):
        if not isinstance(a, Mapping):
            raise InvalidInput(f"achievement: alignment {i} must be an object")
        where = f"achievement alignment {i}"
        alignments.append(
            Alignment(
                target_name=str(_text(a, "targetName", where)),
                target_url=str(_text(a, "targetUrl", where)),
                target_framework=_text(a, "targetFramework", where, required=False),
                target_code=_text(a, "targetCode", where, required=False),
                target_type=_vocabulary(
                    _text(a, "targetType", where, required=False),
                    ALIGNMENT_TARGET_TYPES,
                    "targetType",
                ),
            )
        )
    return Achievement(
        id=str(_text(doc, "id", "achievement")),
        name=str(_text(doc, "name", "achievement")),
        description=str(_text(doc, "description", "achievement")),
        criteria=str(_text({"criteria": criteria}, "criteria", "achievement")),
        achievement_type=_vocabulary(
            _text(doc, "achievementType", "achievement", required=False),
            ACHIEVEMENT_TYPES,
            "achievementType",
        ),
        alignments=tuple(alignments),
    )


def hashed_identity(
    identifier: str, identity_type: str = "emailAddress", salt: str | None = None
) -> dict[str, Any]:
    """The OB 3.0 ``IdentityObject`` for ``identifier``: ``sha256$`` + hex SHA-256 of the
    identifier followed by the salt (a fresh random salt unless one is given)."""
    if identity_type not in IDENTITY_TYPES and not _EXTENSION_TERM.fullmatch(identity_type):
        raise InvalidInput(
            f"identity type {identity_type!r} is not one of {', '.join(sorted(IDENTITY_TYPES))}",
            hint="name another type as an extension, e.g. ext:studentId",
        )
    if not identifier:
        raise InvalidInput("the identifier to hash is empty")
    salt = secrets.token_hex(SALT_BYTES) if salt is None else salt
    digest = hashlib.sha256((identifier + salt).encode("utf-8")).hexdigest()
    return {
        "type": "IdentityObject",
        "identityHash": f"sha256${digest}",
        "identityType": identity_type,
        "hashed": True,
        "salt": salt,
    }


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidInput("credential times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def open_badge(
    *,
    issuer: str,
    issuer_name: str,
    achievement: Achievement,
    subject: str | Mapping[str, Any],
    status: Sequence[Mapping[str, Any]] = (),
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    credential_id: str | None = None,
) -> dict[str, Any]:
    """An unsigned ``OpenBadgeCredential``. ``subject`` is a DID or an ``IdentityObject``
    (see :func:`hashed_identity`); ``status`` the ``BitstringStatusListEntry`` objects."""
    if not _DID_RE.fullmatch(issuer):
        raise InvalidInput(f"issuer {issuer!r} is not a DID")
    credential_subject: dict[str, Any] = {
        "type": ["AchievementSubject"],
        "achievement": achievement.to_json(),
    }
    if isinstance(subject, str):
        if not _DID_RE.fullmatch(subject):
            raise InvalidInput(f"subject {subject!r} is not a DID (or give a hashed identifier)")
        credential_subject["id"] = subject
    else:
        if subject.get("type") != "IdentityObject" or subject.get("hashed") is not True:
            raise InvalidInput("a subject identifier must be a hashed IdentityObject")
        credential_subject["identifier"] = [dict(subject)]
    valid_from = valid_from or datetime.now(UTC)
    doc: dict[str, Any] = {
        "@context": [VC_V2_CONTEXT, OB_V3_CONTEXT],
        "id": credential_id or f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": issuer_name or issuer},
        "validFrom": _timestamp(valid_from),
        "name": achievement.name,
        "credentialSubject": credential_subject,
    }
    if valid_until is not None:
        if valid_until <= valid_from:
            raise InvalidInput("validUntil must be after validFrom")
        doc["validUntil"] = _timestamp(valid_until)
    if status:
        entries = [dict(s) for s in status]
        doc["credentialStatus"] = entries[0] if len(entries) == 1 else entries
    return doc


def sign(document: Mapping[str, Any], seed: bytes, verification_method: str) -> dict[str, Any]:
    """The credential with an ``eddsa-jcs-2022`` proof (``assertionMethod``) by the key with
    32-byte private ``seed`` named ``verification_method``. ``proof`` is always an array, as
    OB 3.0 and CLR 2.0 require (a one-proof set verifies as the proof alone)."""
    signed = data_integrity.create_proof(dict(document), seed, verification_method)
    if isinstance(signed["proof"], Mapping):
        signed["proof"] = [signed["proof"]]
    return signed


def digest(document: Mapping[str, Any]) -> bytes:
    """The anchoring digest: SHA-256 of the RFC 8785 canonical JSON, proof included; for an
    ``ecdsa-sd-2023`` credential (base or derived proof) SHA-256 of its base signature, which
    every derived copy carries (raises ``VerificationError`` if that proof is malformed)."""
    if sd_proof_kind(document) is not None:
        from anchor.vc import ecdsa_sd  # JSON-LD stack: imported only for such credentials

        return ecdsa_sd.base_signature_digest(document)
    return data_integrity.canonical_digest(document)


def issuer_id(document: Mapping[str, Any]) -> str | None:
    """The credential's issuer DID (``issuer`` may be a string or an object with ``id``)."""
    issuer = document.get("issuer")
    if isinstance(issuer, str):
        return issuer
    if isinstance(issuer, Mapping) and isinstance(issuer.get("id"), str):
        return str(issuer["id"])
    return None


def clr(
    *,
    issuer: str,
    issuer_name: str,
    subject: str | Mapping[str, Any],
    credentials: Sequence[Mapping[str, Any]],
    name: str,
    status: Sequence[Mapping[str, Any]] = (),
    valid_from: datetime | None = None,
    credential_id: str | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """An unsigned CLR 2.0 ``ClrCredential`` bundling ``credentials`` (signed
    ``OpenBadgeCredential`` documents about the same learner) in its ``ClrSubject``'s
    ``verifiableCredential``; ``subject`` as in :func:`open_badge`."""
    if not _DID_RE.fullmatch(issuer):
        raise InvalidInput(f"issuer {issuer!r} is not a DID")
    if not credentials:
        raise InvalidInput("a CLR needs at least one achievement credential")
    if len(credentials) > MAX_CLR_ACHIEVEMENTS:
        raise InvalidInput(f"a CLR bundles at most {MAX_CLR_ACHIEVEMENTS} achievements")
    for n, vc in enumerate(credentials):
        if not isinstance(vc.get("proof"), list | Mapping):
            raise InvalidInput(f"achievement credential {n} of the CLR is not signed")
    if not name.strip() or len(name) > MAX_TEXT:
        raise InvalidInput(f"the CLR's name must be 1 to {MAX_TEXT} characters")
    clr_subject: dict[str, Any] = {
        "type": ["ClrSubject"],
        "verifiableCredential": [dict(vc) for vc in credentials],
    }
    if isinstance(subject, str):
        if not _DID_RE.fullmatch(subject):
            raise InvalidInput(f"subject {subject!r} is not a DID (or give a hashed identifier)")
        clr_subject["id"] = subject
    else:
        if subject.get("type") != "IdentityObject" or subject.get("hashed") is not True:
            raise InvalidInput("a subject identifier must be a hashed IdentityObject")
        clr_subject["identifier"] = [dict(subject)]
    doc: dict[str, Any] = {
        "@context": [VC_V2_CONTEXT, CLR_V2_CONTEXT, OB_V3_CONTEXT],
        "id": credential_id or f"urn:uuid:{uuid.uuid4()}",
        "type": ["VerifiableCredential", "ClrCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": issuer_name or issuer},
        "validFrom": _timestamp(valid_from or datetime.now(UTC)),
        "name": name,
        "credentialSubject": clr_subject,
    }
    if partial:
        doc["partial"] = True
    if status:
        entries = [dict(s) for s in status]
        doc["credentialStatus"] = entries[0] if len(entries) == 1 else entries
    return doc


PERSON_FIELDS = (
    "name",
    "givenName",
    "familyName",
    "birthDate",
    "gender",
    "address",
    "email",
    "phone",
)
"""CSV columns that ``issue --selective-disclosure`` puts in the credential subject, each a
field the learner may withhold (ecdsa-sd-2023)."""


def with_person_fields(document: Mapping[str, Any], row: Mapping[str, str]) -> dict[str, Any]:
    """The credential with the non-empty :data:`PERSON_FIELDS` of ``row`` in its subject."""
    doc = dict(document)
    subject = dict(doc["credentialSubject"])
    for name in PERSON_FIELDS:
        value = row.get(name, "")
        if value:
            if len(value) > MAX_TEXT:
                raise InvalidInput(f"{name!r} is longer than {MAX_TEXT} characters")
            subject[name] = value
    doc["credentialSubject"] = subject
    return doc


def sd_mandatory_pointers(document: Mapping[str, Any]) -> list[str]:
    """What the issuer of a selective disclosure credential always discloses: the issuer, the
    credential's id, name and validity, the achievement (with its alignments) and status.
    Everything else about the person is the learner's to reveal or withhold."""
    pointers = ["/issuer", "/validFrom", "/credentialSubject/achievement"]
    for name in ("id", "name", "validUntil", "credentialStatus"):
        if name in document:
            pointers.append(f"/{name}")
    return pointers
