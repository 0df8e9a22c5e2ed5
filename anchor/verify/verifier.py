"""Verifying a credential as an employer would: every check ``valid``, ``invalid`` or
``unknown`` with a reason, and the credential accepted only when every check is ``valid``.

Checks, in order:

``format``     a well-formed VC 2.0 credential (VC 1.1 read-only) that canonicalizes
               (RFC 8785) to the digest it would be anchored under
``anchoring``  the receipt (given, or looked up by the credential's digest) verified against
               the chain, for exactly this credential, submitted by its issuer as a
               ``credential`` entry
``issuer``     the issuer DID resolves (as of the anchoring time when there is one)
``key``        the proof's key is the issuer's and listed under ``assertionMethod`` at the
               time of anchoring (did:ethr history, ``versionTime``), or now when there is
               no anchor
``proof``      the ``eddsa-jcs-2022`` proof verifies with that key (for a CLR 2.0
               ``ClrCredential``, so do the proofs of its embedded credentials by that key)
``validity``   now is inside ``validFrom``..``validUntil``
``status``     every ``credentialStatus`` entry (a list that cannot be fetched or verified,
               or an entry of a type this verifier does not know, gives ``unknown``, never
               ``valid``)

What is ``invalid`` and what is ``unknown``: ``invalid`` means the credential, its receipt
or its issuer's DID says something false (a signature that does not verify, a revoked
entry, a receipt whose anchor is not where it says); ``unknown`` means this verifier could
not find out (no receipt, no chain endpoint, a DID method or did:ethr network it is not
configured for, a host or node that did not answer, an anchor with fewer confirmations
than required).

Decisions:

* A receipt whose transaction or block is no longer on the canonical chain (reorganised
  away) is ``invalid``: the receipt claims an anchor that the chain does not hold. The
  reason says so and how to recover (the service re-anchors after a reorg and hands out a
  refreshed receipt). The service itself never hands out receipts from anchors that are
  not final, so this concerns receipts kept from before a deep reorg, or made up.
* A receipt for another chain than the endpoint's is ``invalid`` (as
  :func:`~anchor.verify.receipt.verify_receipt` says), and so is one whose log key, chain or
  contract is not those of a log the verifier trusts (``trust``, see :mod:`anchor.verify.trust`).
* With no trust root at all, anchoring is ``unknown``, never ``valid``: a receipt does not
  vouch for its own log.
* An anchor with fewer than ``min_confirmations`` confirmations is ``unknown`` (retry
  later), not ``invalid``.
* When anchoring is not ``valid`` the anchor time is not trusted: the issuer and its key
  are checked as of now.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import aiohttp

from anchor.chain import ChainBackend
from anchor.client.api import ServiceError, error_from_problem
from anchor.core import jsonlimits
from anchor.core.entry import EntryKind
from anchor.core.receipt import Receipt
from anchor.core.trust import TrustSet
from anchor.errors import (
    AnchorError,
    EncodingError,
    InvalidInput,
    UntrustedLog,
    VerificationError,
    What,
)
from anchor.log.log import Log
from anchor.log.receipts import receipt_for_digest
from anchor.status.check import EntryStatus, Outcome, StatusChecker
from anchor.status.credential import BitstringStatusListEntry
from anchor.vc import data_integrity
from anchor.vc.credentials import digest as credential_digest
from anchor.vc.credentials import issuer_id
from anchor.vc.sd_kind import sd_proof_kind
from anchor.verify.embedded import embedded_credentials, embedded_proofs
from anchor.verify.identity import ResolutionUnavailable, ed25519_key_for, p256_key_for
from anchor.verify.receipt import verify_receipt
from anchor.verify.trust import NO_TRUST, Trust
from did_methods import (
    ErrorCode,
    Resolver,
    format_version_time,
)

VC2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
VC1_CONTEXT: Final = "https://www.w3.org/2018/credentials/v1"

CHECKS: Final = ("format", "anchoring", "issuer", "key", "proof", "validity", "status")
"""The checks of a report, in order."""

VERIFIER_SIDE_ERRORS: Final = frozenset(
    {
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.METHOD_NOT_SUPPORTED,
        ErrorCode.REPRESENTATION_NOT_SUPPORTED,
        ErrorCode.INVALID_OPTIONS,
        ErrorCode.FEATURE_NOT_SUPPORTED,
    }
)
"""DID resolution errors that say nothing about the DID (an outage, or a method or feature
this verifier is not set up for): the issuer is ``unknown``, not ``invalid``."""


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
    """The checks of one credential. ``digest`` is its anchoring digest (hex), None when
    it cannot be computed; ``checked_at`` the instant validity and status were checked at."""

    checks: tuple[Check, ...]
    digest: str | None
    checked_at: datetime

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
            "checkedAt": _iso(self.checked_at),
            "checks": [c.to_json() for c in self.checks],
        }

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{c.name:<{width}}  {c.verdict.value:<7}  {c.reason}" for c in self.checks]
        lines.append(f"{'RESULT':<{width}}  {self.verdict.value.upper()}")
        return "\n".join(lines)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# ---- checks that need no I/O -------------------------------------------------------------------


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
    if version == 2:
        for name in ("validFrom", "validUntil"):
            if name in credential and not data_integrity.is_datetime_stamp(credential[name]):
                problems.append(f"{name} is not an XML Schema dateTimeStamp")
    if version == 1 and _parse_time(credential.get("issuanceDate")) is None:
        problems.append("VC 1.1 needs an issuanceDate")
    if not isinstance(credential.get("proof"), Mapping | list):
        problems.append("no proof")
    try:
        data_integrity.canonicalize(credential)
    except EncodingError as err:
        problems.append(err.detail)
    if not problems and sd_proof_kind(credential) is not None:
        try:
            credential_digest(credential)
        except VerificationError as err:
            problems.append(f"ecdsa-sd-2023 proof: {err.detail}")
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


def _foreign_status_types(credential: Mapping[str, Any]) -> list[str]:
    """Types of ``credentialStatus`` objects this verifier cannot check."""
    raw = credential.get("credentialStatus")
    items = raw if isinstance(raw, list) else [] if raw is None else [raw]
    return [
        str(item.get("type"))
        for item in items
        if isinstance(item, Mapping) and item.get("type") != BitstringStatusListEntry.TYPE
    ]


def status_check(results: Sequence[EntryStatus], foreign_types: Sequence[str] = ()) -> Check:
    """One check from the results of the ``BitstringStatusListEntry`` entries; entries of
    ``foreign_types`` (other status mechanisms) make it ``unknown`` unless one of ours
    already says revoked or suspended."""
    details: dict[str, Any] = {"entries": [r.to_json() for r in results]}
    if foreign_types:
        details["uncheckedTypes"] = list(foreign_types)
    outcomes = [r.outcome for r in results]
    if Outcome.REVOKED in outcomes:
        return Check("status", Verdict.INVALID, "revoked", details)
    if Outcome.SUSPENDED in outcomes:
        return Check("status", Verdict.INVALID, "suspended", details)
    problems = [str(r.error.get("detail", "")) for r in results if r.error]
    if foreign_types:
        problems.append(f"status entries of type {', '.join(foreign_types)} cannot be checked")
    if Outcome.UNKNOWN in outcomes or foreign_types:
        return Check("status", Verdict.UNKNOWN, "status unknown: " + "; ".join(problems), details)
    if not results:
        return Check("status", Verdict.VALID, "the credential has no status entries")
    messages = [r.message for r in results if r.message]
    reason = "not revoked or suspended" + (f"; message: {', '.join(messages)}" if messages else "")
    return Check("status", Verdict.VALID, reason, details)


# ---- where receipts come from ------------------------------------------------------------------


class ReceiptSource(Protocol):
    """Where a verifier looks up the receipt of a credential given without one."""

    @property
    def description(self) -> str:
        """Where the receipts come from, for reasons."""
        ...

    async def receipt_for(self, digest: bytes, submitter: str) -> Mapping[str, Any] | None:
        """The receipt of the entry ``digest`` submitted by ``submitter``; None while it is
        logged but not anchored (final) yet. Raises :class:`~anchor.errors.AnchorError`
        (:class:`~anchor.errors.NotFound` when there is no such entry)."""
        ...


@dataclass(frozen=True, slots=True)
class ServiceReceipts:
    """Receipts from a LER Anchor service over HTTP (``GET /v1/receipts/{digest}``),
    through the caller's session."""

    session: aiohttp.ClientSession
    base_url: str

    @property
    def description(self) -> str:
        return self.base_url

    async def receipt_for(self, digest: bytes, submitter: str) -> Mapping[str, Any] | None:
        url = f"{self.base_url.rstrip('/')}/v1/receipts/{digest.hex()}"
        try:
            async with self.session.get(url, params={"submitter": submitter}) as response:
                text = await response.text()
                body = (
                    jsonlimits.loads(text, max_bytes=jsonlimits.MAX_FILE_BYTES, what=url)
                    if text
                    else None
                )
                if response.status >= 400:
                    raise error_from_problem(response.status, body, url)
                if response.status == 202:
                    return None
        except InvalidInput as err:  # not JSON, or over the JSON limits
            raise ServiceError(err.detail, hint="is it a LER Anchor service?") from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise ServiceError(
                f"{type(err).__name__}: {err}", hint="is the service running? or give the receipt"
            ) from None
        if not isinstance(body, dict):
            raise ServiceError(f"{url} did not answer with a JSON object")
        return body


@dataclass(frozen=True, slots=True)
class LogReceipts:
    """Receipts from a log on this machine (the service verifying with its own log): only
    from anchors that are final."""

    log: Log

    @property
    def description(self) -> str:
        return f"the log {self.log.origin}"

    async def receipt_for(self, digest: bytes, submitter: str) -> Mapping[str, Any] | None:
        return await asyncio.to_thread(
            receipt_for_digest, self.log, digest, submitter, final_only=True
        )


# ---- the verifier ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialVerifier:
    """Verifies credentials with one resolver, one status checker and one chain endpoint.

    ``chain`` is a JSON-RPC URL or a backend (``None``: a receipt is checked offline and
    anchoring is at best ``unknown``). ``receipts`` (optional) is where a receipt is looked
    up when none is given. ``trust`` (one trusted log or several, :mod:`anchor.verify.trust`) says
    which logs, chains and anchor contracts a receipt may come from (``None``: anchoring is
    at best ``unknown``); ``min_confirmations`` is how deep its block must be.
    """

    resolver: Resolver
    status: StatusChecker
    chain: str | ChainBackend | None
    receipts: ReceiptSource | None = None
    trust: Trust | None = None
    min_confirmations: int = 1
    proofs: Executor | None = None
    """Where proofs are checked (a large selectively disclosable credential's JSON-LD takes
    seconds of CPU): the service passes one thread of its own, so that its event loop keeps
    answering and PyLD (its caches are not thread-safe) runs in one thread; ``None``: in the
    caller's thread."""

    async def verify(
        self,
        credential: Any,
        receipt: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
    ) -> Report:
        """The report on ``credential`` (and its ``receipt``, else the one ``receipts``
        gives); validity and status are judged at ``now`` (aware; default: now). Checks
        never raise: whatever goes wrong is in the report."""
        now = now or datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        fmt, version = check_format(credential)
        if fmt.verdict is not Verdict.VALID:
            skipped = [
                Check(name, Verdict.UNKNOWN, "not checked: the credential is malformed")
                for name in CHECKS[1:]
            ]
            try:
                digest = credential_digest(credential).hex()
            except (EncodingError, VerificationError):
                digest = None
            return Report((fmt, *skipped), digest, now)
        digest_bytes = credential_digest(credential)
        issuer = str(issuer_id(credential))
        async with asyncio.TaskGroup() as group:  # the status lists are fetched meanwhile
            statuses = group.create_task(self.status.check_credential(credential, at=now))
            anchoring, anchored_at = await self._anchoring(digest_bytes, issuer, receipt)
            issuer_check = await self._issuer(issuer, anchored_at)
            key_check, key, vm = await self._key(credential, issuer, anchored_at, issuer_check)
        if self.proofs is None:
            proof_check = self._proof(credential, key, vm)
        else:
            loop = asyncio.get_running_loop()
            proof_check = await loop.run_in_executor(self.proofs, self._proof, credential, key, vm)
        validity = check_validity(credential, version, now)
        status = status_check(statuses.result(), _foreign_status_types(credential))
        checks = (fmt, anchoring, issuer_check, key_check, proof_check, validity, status)
        return Report(checks, digest_bytes.hex(), now)

    # -- anchoring ---------------------------------------------------------------------------

    async def _anchoring(
        self, digest: bytes, issuer: str, receipt: Mapping[str, Any] | None
    ) -> tuple[Check, datetime | None]:
        if receipt is None:
            if self.receipts is None:
                return _anchoring(
                    Verdict.UNKNOWN, "no receipt given and no service to look it up"
                ), None
            try:
                receipt = await self.receipts.receipt_for(digest, issuer)
            except AnchorError as err:
                return _anchoring(
                    Verdict.UNKNOWN, f"no receipt from {self.receipts.description}: {err.detail}"
                ), None
            if receipt is None:
                return _anchoring(
                    Verdict.UNKNOWN,
                    f"logged by {self.receipts.description} but not anchored yet; retry later",
                ), None
        try:
            offline = Receipt.parse(receipt)  # parsed once; every check below is on this value
            offline.check_proofs()
        except VerificationError as err:
            return _receipt_failure(err), None
        refused = self._refuse(offline, digest, issuer)
        if refused is not None:
            return refused, None
        anchor = offline.anchor
        if self.trust is None:
            return _anchoring(
                Verdict.UNKNOWN,
                f"{NO_TRUST} (the receipt's own log {offline.checkpoint.origin!r} proves "
                "nothing: anyone can run one)",
                _details(offline),
            ), None
        try:
            TrustSet.of(self.trust).check(offline)  # its proofs hold (checked above)
        except VerificationError as err:
            return _receipt_failure(err), None
        if self.chain is None:
            return _anchoring(
                Verdict.UNKNOWN,
                f"the receipt's proofs hold, but its anchor (block {anchor.block_number} on "
                f"{anchor.chain}) was not checked: no JSON-RPC endpoint of {anchor.chain} "
                "was given (--rpc-url)",
                _details(offline),
            ), None
        try:
            checked = await verify_receipt(
                offline, self.chain, trust=self.trust, min_confirmations=1
            )
        except VerificationError as err:
            return _receipt_failure(err), None
        except AnchorError as err:  # the endpoint did not answer: not the receipt's fault
            return _anchoring(
                Verdict.UNKNOWN, f"the chain could not be asked: {err.detail}", _details(offline)
            ), None
        depth = checked.confirmations
        if depth < self.min_confirmations:
            return _anchoring(
                Verdict.UNKNOWN,
                f"block {anchor.block_number} has {depth} confirmation(s), fewer than the "
                f"{self.min_confirmations} required; retry later",
                _details(offline, depth),
            ), None
        return _anchoring(
            Verdict.VALID,
            f"anchored at {anchor.block_time} in block {anchor.block_number} on "
            f"{anchor.chain} ({depth} confirmation(s))",
            _details(offline, depth),
        ), _parse_time(anchor.block_time)

    def _refuse(self, checked: Receipt, digest: bytes, issuer: str) -> Check | None:
        """Why a receipt whose proofs hold is still not one for this credential, if so."""
        if checked.entry.digest != digest:
            return _anchoring(
                Verdict.INVALID,
                "the receipt is for another document (digest differs)",
                {"receiptDigest": checked.entry.digest.hex(), "credentialDigest": digest.hex()},
            )
        if checked.entry.kind is not EntryKind.CREDENTIAL or checked.entry.submitter != issuer:
            return _anchoring(
                Verdict.INVALID,
                f"anchored by {checked.entry.submitter} as {checked.entry.kind.label},"
                f" not by the issuer {issuer} as a credential",
            )
        return None

    # -- issuer and key ----------------------------------------------------------------------

    async def _issuer(self, issuer: str, at: datetime | None) -> Check:
        options = {} if at is None else {"versionTime": format_version_time(at)}
        when = "" if at is None else f" as of {_iso(at)}"
        result = await self.resolver.resolve(issuer, **options)
        if result.error is not None:
            verdict = Verdict.UNKNOWN if result.error in VERIFIER_SIDE_ERRORS else Verdict.INVALID
            reason = f"{issuer}{when}: {result.error}: {result.error_message}"
            if result.error in (ErrorCode.METHOD_NOT_SUPPORTED, ErrorCode.UNKNOWN_NETWORK):
                verdict = Verdict.UNKNOWN
                reason += " (this verifier is not configured for it)"
            return Check("issuer", verdict, reason)
        if result.deactivated:
            return Check("issuer", Verdict.INVALID, f"{issuer} is deactivated{when}")
        return Check("issuer", Verdict.VALID, f"{issuer} resolves{when}")

    async def _key(
        self,
        credential: Mapping[str, Any],
        issuer: str,
        at: datetime | None,
        issuer_check: Check,
    ) -> tuple[Check, bytes | None, str | None]:
        """The key check, the proof's key when it is the issuer's, and the proof's
        verification method."""
        proof = credential.get("proof")
        proof = proof[0] if isinstance(proof, list) and proof else proof
        vm = proof.get("verificationMethod") if isinstance(proof, Mapping) else None
        if not isinstance(vm, str):
            return Check("key", Verdict.INVALID, "the proof names no verificationMethod"), None, vm
        named = {"verificationMethod": vm}
        if vm.split("#", 1)[0] != issuer:
            reason = f"the proof's key {vm} is not a key of the issuer {issuer}"
            return Check("key", Verdict.INVALID, reason, named), None, vm
        if issuer_check.verdict is not Verdict.VALID:
            reason = f"not checked: the issuer DID is {issuer_check.verdict.value}"
            return Check("key", Verdict.UNKNOWN, reason, named), None, vm
        when = f"at the time of anchoring ({_iso(at)})" if at else "now (no anchor time known)"
        sd = sd_proof_kind(credential) is not None
        try:
            lookup = p256_key_for if sd else ed25519_key_for
            key = await lookup(self.resolver, vm, "assertionMethod", at)
        except ResolutionUnavailable as err:
            return Check("key", Verdict.UNKNOWN, err.detail, named), None, vm
        if key is None:
            kind = "a P-256" if sd else "an Ed25519"
            reason = f"the proof's key {vm} is not {kind} key listed under assertionMethod {when}"
            return Check("key", Verdict.INVALID, reason, named), None, vm
        reason = f"the proof's key is listed under the issuer's assertionMethod {when}"
        return Check("key", Verdict.VALID, reason, named), key, vm

    def _proof(self, credential: Mapping[str, Any], key: bytes | None, vm: str | None) -> Check:
        if key is None:
            return Check("proof", Verdict.UNKNOWN, "not checked: no usable key")
        if sd_proof_kind(credential) is not None:
            return _sd_proof(credential, key)
        try:
            proof = data_integrity.verify_proof(
                credential, key, verification_method=vm, expected_proof_purpose="assertionMethod"
            )
        except VerificationError as err:
            return Check("proof", Verdict.INVALID, f"{err.what}: {err.detail}")
        details: dict[str, Any] = {
            "verificationMethod": proof.verification_method,
            "created": proof.created,
        }
        reason = "the eddsa-jcs-2022 proof verifies"
        embedded = embedded_credentials(credential)
        if embedded:
            problem, checked = embedded_proofs(embedded, key, proof.verification_method)
            if problem is not None:
                return Check("proof", Verdict.INVALID, problem, details)
            details["embeddedChecked"] = checked
            reason += (
                f"; so do {checked} of the {len(embedded)} embedded credentials' "
                "(signed by the same key; the others are covered by this proof only)"
            )
        return Check("proof", Verdict.VALID, reason, details)


def _sd_proof(credential: Mapping[str, Any], key: bytes) -> Check:
    """The ``ecdsa-sd-2023`` proof check: a derived proof verifies as is; a base proof (the
    learner's own copy) is checked by deriving a full disclosure and verifying that."""
    from anchor.vc import ecdsa_sd  # JSON-LD stack: only for selective disclosure credentials
    from anchor.vc.credentials import PERSON_FIELDS

    try:
        public_key = ecdsa_sd.p256_from_multikey(ecdsa_sd.P256_MULTIKEY_PREFIX + key)
        derived: Mapping[str, Any] = credential
        if sd_proof_kind(credential) == "base":
            everything = [f"/{k}" for k in credential if k not in ("@context", "proof")]
            derived = ecdsa_sd.derive_proof(credential, everything)
        result = ecdsa_sd.verify_derived_proof(derived, public_key)
    except VerificationError as err:
        return Check("proof", Verdict.INVALID, f"{err.what}: {err.detail}")
    except InvalidInput as err:  # unknown JSON-LD context, bad JSON-LD: not provable
        return Check("proof", Verdict.INVALID, f"{err.slug}: {err.detail}")
    subject = credential.get("credentialSubject")
    present = set(subject) if isinstance(subject, Mapping) else set()
    withheld = [name for name in PERSON_FIELDS if name not in present]
    details = {
        "cryptosuite": "ecdsa-sd-2023",
        "mandatoryStatements": result.mandatory_statements,
        "disclosedStatements": result.disclosed_statements,
        "withheld": withheld,
    }
    what = "derived (selective disclosure)" if derived is credential else "base (full)"
    reason = f"the ecdsa-sd-2023 {what} proof verifies"
    if withheld and derived is credential:
        reason += "; not disclosed: " + ", ".join(withheld)
    return Check("proof", Verdict.VALID, reason, details)


def _anchoring(verdict: Verdict, reason: str, details: Mapping[str, Any] | None = None) -> Check:
    return Check("anchoring", verdict, reason, details or {})


def _details(receipt: Receipt, confirmations: int | None = None) -> dict[str, Any]:
    """What the report says of a receipt (``confirmations``: None until checked on chain)."""
    anchor = receipt.anchor
    return {
        "chain": anchor.chain,
        "contract": anchor.contract,
        "transaction": anchor.transaction_hex,
        "blockNumber": anchor.block_number,
        "blockTime": anchor.block_time,
        "leafIndex": receipt.leaf_index,
        "treeSize": receipt.checkpoint.size,
        "logOrigin": receipt.checkpoint.origin,
        "logKey": receipt.log_key,
        "confirmations": confirmations,
    }


_REORGANISED: Final = frozenset({What.TRANSACTION, What.BLOCK})


def _receipt_failure(err: VerificationError) -> Check:
    reason = f"the receipt does not verify ({err.what}): {err.detail}"
    if err.what in _REORGANISED:
        reason += (
            "; the anchor is not on the canonical chain (reorganised away, or never there): "
            "ask the service for a refreshed receipt"
        )
    details: dict[str, Any] = {"what": err.what}
    if isinstance(err, UntrustedLog):
        details["differs"] = list(err.differs)
    if err.expected is not None:
        details["expected"] = err.expected
    if err.actual is not None:
        details["actual"] = err.actual
    return _anchoring(Verdict.INVALID, reason, details)
