"""The credentials a CLR 2.0 ``ClrCredential`` bundles, and their proofs.

Role: part of the verifier's proof check (:mod:`anchor.verify.verifier`): a CLR's own
``eddsa-jcs-2022`` proof covers the credentials it bundles; those its issuer signed with the
same key are checked as well. Pure (no I/O). Cost: one ``eddsa-jcs-2022`` verification per
embedded credential signed by that key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anchor.errors import VerificationError
from anchor.vc import data_integrity


def embedded_credentials(credential: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The credentials a CLR 2.0 ``ClrCredential`` bundles (``credentialSubject``'s
    ``verifiableCredential``); none for other credentials."""
    types = credential.get("type")
    subject = credential.get("credentialSubject")
    if not isinstance(types, list) or "ClrCredential" not in types:
        return []
    if not isinstance(subject, Mapping):
        return []
    bundled = subject.get("verifiableCredential")
    if not isinstance(bundled, list):
        return []
    return [vc for vc in bundled if isinstance(vc, Mapping)]


def embedded_proofs(
    embedded: Sequence[Mapping[str, Any]], key: bytes, verification_method: str
) -> tuple[str | None, int]:
    """Verify the proofs of the embedded credentials made by ``verification_method``: the
    first problem (or None) and how many were checked."""
    checked = 0
    for n, vc in enumerate(embedded):
        proofs = vc.get("proof")
        items = proofs if isinstance(proofs, list) else [proofs]
        if not any(
            isinstance(p, Mapping) and p.get("verificationMethod") == verification_method
            for p in items
        ):
            continue
        try:
            data_integrity.verify_proof(
                vc,
                key,
                verification_method=verification_method,
                expected_proof_purpose="assertionMethod",
            )
        except VerificationError as err:
            return f"embedded credential {n}: {err.what}: {err.detail}", checked
        checked += 1
    return None, checked
