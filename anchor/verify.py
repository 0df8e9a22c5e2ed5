"""Verifying a credential as an employer would: every check ``valid``, ``invalid`` or
``unknown`` with a reason, and the credential accepted only when every check is ``valid``.

Checks, in order:

``format``     a well-formed VC 2.0 credential (VC 1.1 read-only)
``anchoring``  the receipt (given, or looked up by the credential's digest) verified against
               the chain, for exactly this credential, submitted by its issuer
``issuer``     the issuer DID resolves
``key``        the proof's key is the issuer's and listed under ``assertionMethod`` at the
               time of anchoring (did:ethr history), or now when there is no anchor
``proof``      the ``eddsa-jcs-2022`` proof verifies with that key
``validity``   now is inside ``validFrom``..``validUntil``
``status``     every ``credentialStatus`` entry (a list that cannot be fetched or verified
               gives ``unknown``, never ``valid``)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from anchor import data_integrity
from anchor.chain import ChainBackend
from anchor.client import ServiceClient
from anchor.credentials import issuer_id
from anchor.entry import EntryKind
from anchor.errors import AnchorError, VerificationError
from anchor.identity import ResolutionUnavailable, ed25519_key_for
from anchor.receipts import ReceiptCheck, verify_receipt
from anchor.status_check import Outcome, StatusChecker
from did_methods import Resolver

VC2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
VC1_CONTEXT = "https://www.w3.org/2018/credentials/v1"


class Verdict(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: Verdict
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "check": self.name,
            "result": self.verdict.value,
            "reason": self.reason,
        }
        if self.details:
            doc["details"] = dict(self.details)
        return doc


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]
    digest: str

    @property
    def valid(self) -> bool:
        return all(c.verdict is Verdict.VALID for c in self.checks)

    @property
    def verdict(self) -> Verdict:
        if self.valid:
            return Verdict.VALID
        if any(c.verdict is Verdict.INVALID for c in self.checks):
            return Verdict.INVALID
        return Verdict.UNKNOWN

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.verdict.value,
            "digest": self.digest,
            "checks": [c.to_json() for c in self.checks],
        }

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{c.name:<{width}}  {c.verdict.value:<7}  {c.reason}" for c in self.checks]
        lines.append(f"{'RESULT':<{width}}  {self.verdict.value.upper()}")
        return "\n".join(lines)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def check_format(credential: Any) -> tuple[Check, int]:
    """The data-model check; returns the check and the VC version (2, 1, or 0 if neither)."""
    if not isinstance(credential, Mapping):
        return Check("format", Verdict.INVALID, "the credential is not a JSON object"), 0
    contexts = credential.get("@context")
    first = contexts[0] if isinstance(contexts, list) and contexts else contexts
    version = 2 if first == VC2_CONTEXT else 1 if first == VC1_CONTEXT else 0
    problems = []
    if version == 0:
        problems.append("the first @context is neither VC 2.0 nor VC 1.1")
    types = credential.get("type")
    if not isinstance(types, list) or "VerifiableCredential" not in types:
        problems.append("type does not include VerifiableCredential")
    if issuer_id(credential) is None:
        problems.append("no issuer")
    if not isinstance(credential.get("credentialSubject"), Mapping | list):
        problems.append("no credentialSubject")
    if version == 2 and "validFrom" in credential and _parse_time(credential["validFrom"]) is None:
        problems.append("validFrom is not an XML Schema dateTimeStamp")
    if version == 1 and _parse_time(credential.get("issuanceDate")) is None:
        problems.append("VC 1.1 needs an issuanceDate")
    if not isinstance(credential.get("proof"), Mapping | list):
        problems.append("no proof")
    if problems:
        return Check("format", Verdict.INVALID, "; ".join(problems)), version
    label = "VC Data Model 2.0" if version == 2 else "VC Data Model 1.1 (read-only)"
    return Check("format", Verdict.VALID, label), version


def check_validity(credential: Mapping[str, Any], version: int, now: datetime) -> Check:
    start_key, end_key = (
        ("validFrom", "validUntil") if version == 2 else ("issuanceDate", "expirationDate")
    )
    start = _parse_time(credential.get(start_key))
    end = _parse_time(credential.get(end_key))
    if credential.get(end_key) is not None and end is None:
        return Check("validity", Verdict.INVALID, f"{end_key} is not a date-time")
    if start is not None and now < start:
        return Check(
            "validity", Verdict.INVALID, f"not yet valid: {start_key} is {credential[start_key]}"
        )
    if end is not None and now > end:
        return Check("validity", Verdict.INVALID, f"expired: {end_key} was {credential[end_key]}")
    span = f"{credential.get(start_key, '-')} .. {credential.get(end_key, 'no end')}"
    return Check("validity", Verdict.VALID, f"within {span}")


def status_check(results: Sequence[Any]) -> Check:
    if not results:
        return Check("status", Verdict.VALID, "the credential has no status entries")
    details = {"entries": [r.to_json() for r in results]}
    outcomes = [r.outcome for r in results]
    if Outcome.REVOKED in outcomes:
        return Check("status", Verdict.INVALID, "revoked", details)
    if Outcome.SUSPENDED in outcomes:
        return Check("status", Verdict.INVALID, "suspended", details)
    if Outcome.UNKNOWN in outcomes:
        errors = [r.error.get("detail", "") for r in results if r.error]
        return Check("status", Verdict.UNKNOWN, "status unknown: " + "; ".join(errors), details)
    messages = [r.message for r in results if r.message]
    reason = "not revoked or suspended" + (f"; message: {', '.join(messages)}" if messages else "")
    return Check("status", Verdict.VALID, reason, details)


class CredentialVerifier:
    """Verifies credentials with one resolver, one status checker and one chain endpoint.

    ``chain`` is a JSON-RPC URL or a backend (``None``: anchoring is ``unknown`` unless
    nothing can be checked); ``service`` (optional) is a LER Anchor service used only to
    look up a receipt by digest when none is given.
    """

    def __init__(
        self,
        resolver: Resolver,
        status: StatusChecker,
        chain: str | ChainBackend | None,
        *,
        service: ServiceClient | None = None,
        expected_log_key: str | None = None,
        min_confirmations: int = 1,
    ) -> None:
        self.resolver = resolver
        self.status = status
        self.chain = chain
        self.service = service
        self.expected_log_key = expected_log_key
        self.min_confirmations = min_confirmations

    async def verify(
        self,
        credential: Any,
        receipt: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
    ) -> Report:
        now = now or datetime.now(UTC)
        fmt, version = check_format(credential)
        digest = (
            data_integrity.canonical_digest(credential) if isinstance(credential, Mapping) else b""
        )
        if fmt.verdict is not Verdict.VALID:
            skipped = [
                Check(name, Verdict.UNKNOWN, "not checked: the credential is malformed")
                for name in ("anchoring", "issuer", "key", "proof", "validity", "status")
            ]
            return Report((fmt, *skipped), digest.hex())
        issuer = str(issuer_id(credential))
        anchoring, anchored_at = await self._anchoring(credential, digest, issuer, receipt)
        issuer_check = await self._issuer(issuer)
        key_check, key = await self._key(credential, issuer, anchored_at, issuer_check)
        proof_check = self._proof(credential, key)
        validity = check_validity(credential, version, now)
        statuses = await self.status.check_credential(credential, at=now)
        return Report(
            (
                fmt,
                anchoring,
                issuer_check,
                key_check,
                proof_check,
                validity,
                status_check(statuses),
            ),
            digest.hex(),
        )

    async def _anchoring(
        self,
        credential: Mapping[str, Any],
        digest: bytes,
        issuer: str,
        receipt: Mapping[str, Any] | None,
    ) -> tuple[Check, datetime | None]:
        if receipt is None and self.service is not None:
            try:
                found = await self.service.receipt(digest.hex(), submitter=issuer)
            except AnchorError as err:
                return Check("anchoring", Verdict.UNKNOWN, f"no receipt: {err.detail}"), None
            if found.get("status") == "pending":
                return Check("anchoring", Verdict.UNKNOWN, "submitted but not anchored yet"), None
            receipt = found
        if receipt is None:
            return Check(
                "anchoring", Verdict.UNKNOWN, "no receipt given and no service to ask"
            ), None
        if self.chain is None:
            return Check(
                "anchoring", Verdict.UNKNOWN, "no chain endpoint to check the receipt"
            ), None
        try:
            checked: ReceiptCheck = await verify_receipt(
                receipt,
                self.chain,
                expected_log_key=self.expected_log_key,
                min_confirmations=self.min_confirmations,
            )
        except VerificationError as err:
            return Check(
                "anchoring", Verdict.INVALID, f"receipt: {err.detail}", {"what": err.what}
            ), None
        except AnchorError as err:
            return Check("anchoring", Verdict.UNKNOWN, f"chain not reachable: {err.detail}"), None
        if checked.entry.digest != digest:
            return Check(
                "anchoring",
                Verdict.INVALID,
                "the receipt is for another document (digest differs)",
                {"receiptDigest": checked.entry.digest.hex(), "credentialDigest": digest.hex()},
            ), None
        if checked.entry.kind is not EntryKind.CREDENTIAL or checked.entry.submitter != issuer:
            return Check(
                "anchoring",
                Verdict.INVALID,
                f"anchored by {checked.entry.submitter} as {checked.entry.kind.label},"
                " not by the issuer as a credential",
            ), None
        when = _parse_time(checked.block_time)
        return Check(
            "anchoring",
            Verdict.VALID,
            f"anchored at {checked.block_time} in block {checked.block_number} on {checked.chain}",
            {
                "leafIndex": checked.leaf_index,
                "treeSize": checked.checkpoint.size,
                "transaction": checked.transaction_hash,
                "confirmations": checked.confirmations,
            },
        ), when

    async def _issuer(self, issuer: str) -> Check:
        result = await self.resolver.resolve(issuer)
        if result.error is not None:
            verdict = Verdict.UNKNOWN if result.error == "internalError" else Verdict.INVALID
            return Check("issuer", verdict, f"{issuer}: {result.error}: {result.error_message}")
        if result.deactivated:
            return Check("issuer", Verdict.INVALID, f"{issuer} is deactivated")
        return Check("issuer", Verdict.VALID, f"{issuer} resolves")

    async def _key(
        self,
        credential: Mapping[str, Any],
        issuer: str,
        at: datetime | None,
        issuer_check: Check,
    ) -> tuple[Check, bytes | None]:
        proof = credential.get("proof")
        proof = proof[0] if isinstance(proof, list) and proof else proof
        vm = proof.get("verificationMethod") if isinstance(proof, Mapping) else None
        if not isinstance(vm, str):
            return Check("key", Verdict.INVALID, "the proof names no verificationMethod"), None
        if vm.split("#", 1)[0] != issuer:
            return Check("key", Verdict.INVALID, f"{vm} is not a key of the issuer {issuer}"), None
        if issuer_check.verdict is not Verdict.VALID:
            return Check("key", issuer_check.verdict, "the issuer DID did not resolve"), None
        when = "at the time of anchoring" if at is not None else "now (no anchor time known)"
        try:
            key = await ed25519_key_for(self.resolver, vm, "assertionMethod", at)
        except ResolutionUnavailable as err:
            return Check("key", Verdict.UNKNOWN, err.detail), None
        if key is None:
            return Check(
                "key", Verdict.INVALID, f"{vm} is not an Ed25519 assertionMethod key {when}"
            ), None
        return Check("key", Verdict.VALID, f"{vm} is an assertionMethod key {when}"), key

    def _proof(self, credential: Mapping[str, Any], key: bytes | None) -> Check:
        if key is None:
            return Check("proof", Verdict.UNKNOWN, "no usable key to check the proof with")
        try:
            proof = data_integrity.verify_proof(
                credential, key, expected_proof_purpose="assertionMethod"
            )
        except VerificationError as err:
            return Check("proof", Verdict.INVALID, f"{err.what}: {err.detail}")
        return Check(
            "proof", Verdict.VALID, f"eddsa-jcs-2022 proof by {proof.verification_method} verifies"
        )
