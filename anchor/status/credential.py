"""W3C Bitstring Status List v1.0: the status-list credential and its entries. Pure.

https://www.w3.org/TR/2025/REC-vc-bitstring-status-list-20250515/

What lives here (no I/O: fetching a list and checking its proof belong to the caller; the
bitstring itself is :mod:`anchor.status.bitstring`):

* :class:`BitstringStatusListEntry` (§2.1) and :class:`BitstringStatusListCredential`
  (§2.2) with their parsers, and :func:`build_status_list_credential` (unsigned, VC Data
  Model 2.0; sign it with :mod:`anchor.vc.data_integrity`).
* :func:`validate_status`: the Validate Algorithm of §3.2 with the errors of §3.5 (the
  classes in :mod:`anchor.errors` whose ``problem()`` carries the spec's ``type`` URI).

Every violation of a MUST of §2 is a :class:`~anchor.errors.StatusMalformedValueError`
(``MALFORMED_VALUE_ERROR``, §3) whose ``property`` and ``reason`` members say which value
and what was wrong.

Cost: parsing a credential decodes its list once (linear in its size); validating one entry
against a parsed credential is O(1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from anchor.errors import (
    StatusListTooLargeError,
    StatusRetrievalError,
    StatusVerificationError,
)
from anchor.status.bitstring import (
    MIN_ENTRIES,
    Bitstring,
    check_min_entries,
    check_status_size,
    decode_bitstring,
    malformed,
    range_error,
    require_length,
)
from anchor.vc.data_integrity import is_datetime_stamp

MAX_INDEX_DIGITS: Final = 1_000
"""Longest ``statusListIndex`` string parsed (the spec's integers are of arbitrary size, but
any index past a few digits is out of range of every list this module accepts)."""

CREDENTIALS_V2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
"""First ``@context`` value of every VC Data Model 2.0 credential."""

STATUS_PURPOSES: Final = ("refresh", "revocation", "suspension", "message")
"""The purposes §2.1 defines; other strings are allowed and carried through unchanged."""

DEFAULT_STATUS_MESSAGES: Final = {0: "unset", 1: "set"}
"""§2.1: the messages of a 1-bit status when no ``statusMessage`` is given."""

_INDEX_RE = re.compile(r"0|[1-9][0-9]*")
_HEX_STATUS_RE = re.compile(r"0x([0-9a-fA-F]{1,16})")
# RFC 3986 §3.1 scheme, then no whitespace or control characters (https:, did:, urn: ...).
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]+")


# --- §2.1 BitstringStatusListEntry -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """One element of ``statusMessage``: a status value and its (debugging) message."""

    status: int
    message: str

    def to_json(self) -> dict[str, str]:
        return {"status": f"0x{self.status:x}", "message": self.message}


def _check_url(value: object, prop: str) -> str:
    if not isinstance(value, str) or not _URL_RE.fullmatch(value):
        raise malformed(prop, "not-a-url", f"{prop} must be a URL, got {value!r}")
    return value


def _check_url_or_urls(value: object, prop: str) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return _check_url(value, prop)
    if isinstance(value, list | tuple) and value:
        return tuple(_check_url(v, f"{prop}[{i}]") for i, v in enumerate(value))
    raise malformed(prop, "not-a-url", f"{prop} must be a URL or a non-empty array of URLs")


def _check_datetime(value: object, prop: str) -> str:
    if not isinstance(value, str) or not is_datetime_stamp(value):
        raise malformed(
            prop, "not-a-datetime", f"{prop} must be an XML Schema dateTimeStamp, got {value!r}"
        )
    return value


def _check_purpose(value: object, prop: str) -> str:
    if not isinstance(value, str) or not value:
        raise malformed(prop, "not-a-string", f"{prop} must be a non-empty string")
    return value


def _parse_status_messages(value: object, status_size: int, prop: str) -> tuple[StatusMessage, ...]:
    count = 1 << status_size
    if not isinstance(value, list | tuple):
        raise malformed(prop, "not-an-array", f"{prop} must be an array")
    if len(value) != count:
        raise malformed(
            prop,
            "wrong-count",
            f"{prop} must have {count} elements for a statusSize of {status_size}, "
            f"got {len(value)}",
        )
    messages: list[StatusMessage] = []
    seen: set[int] = set()
    for i, item in enumerate(value):
        where = f"{prop}[{i}]"
        message: object
        if isinstance(item, StatusMessage):
            status, message = item.status, item.message
        elif isinstance(item, Mapping):
            raw_status = item.get("status")
            match = _HEX_STATUS_RE.fullmatch(raw_status) if isinstance(raw_status, str) else None
            if match is None:
                raise malformed(
                    f"{where}.status",
                    "not-hex",
                    f"{where}.status must be a hexadecimal string prefixed with 0x, "
                    f"got {raw_status!r}",
                )
            status = int(match.group(1), 16)
            message = item.get("message")
        else:
            raise malformed(where, "not-an-object", f"{where} must be an object")
        if not isinstance(message, str):
            raise malformed(f"{where}.message", "not-a-string", f"{where}.message must be a string")
        if not 0 <= status < count:
            raise malformed(
                f"{where}.status",
                "out-of-range",
                f"{where}.status 0x{status:x} does not fit in {status_size} bit(s)",
            )
        if status in seen:
            raise malformed(
                f"{where}.status", "duplicate", f"{where}.status 0x{status:x} appears twice"
            )
        seen.add(status)
        messages.append(StatusMessage(status, message))
    return tuple(messages)


def _message_for(messages: Sequence[StatusMessage], status: int) -> str | None:
    return next((m.message for m in messages if m.status == status), None)


def _parse_index(value: object, prop: str = "statusListIndex") -> int:
    if not isinstance(value, str):
        raise malformed(
            prop, "not-a-string", f"{prop} must be a base-10 integer in a string, got {value!r}"
        )
    if len(value) > MAX_INDEX_DIGITS:
        raise StatusListTooLargeError(
            f"{prop} has more than {MAX_INDEX_DIGITS} digits", property=prop, reason="too-large"
        )
    if not _INDEX_RE.fullmatch(value):
        raise malformed(
            prop,
            "not-base10",
            f"{prop} must be a non-negative base-10 integer without sign or leading zeros, "
            f"got {value!r}",
        )
    return int(value)


@dataclass(frozen=True, slots=True)
class BitstringStatusListEntry:
    """A ``credentialStatus`` entry of type ``BitstringStatusListEntry`` (§2.1).

    Constructing one validates it (every MUST of §2.1); :func:`parse_status_entry` builds
    one from JSON and :meth:`to_json` gives the JSON back.
    """

    status_purpose: str
    status_list_index: int
    status_list_credential: str
    status_size: int = 1
    status_message: tuple[StatusMessage, ...] = ()
    status_reference: str | tuple[str, ...] | None = None
    id: str | None = None

    TYPE = "BitstringStatusListEntry"

    def __post_init__(self) -> None:
        _check_purpose(self.status_purpose, "statusPurpose")
        index = self.status_list_index
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise malformed(
                "statusListIndex", "not-base10", f"statusListIndex must be >= 0, got {index!r}"
            )
        _check_url(self.status_list_credential, "statusListCredential")
        check_status_size(self.status_size)
        if self.status_message:
            object.__setattr__(
                self,
                "status_message",
                _parse_status_messages(self.status_message, self.status_size, "statusMessage"),
            )
        elif self.status_size > 1:
            raise malformed(
                "statusMessage",
                "missing",
                f"statusMessage is required when statusSize is greater than 1 "
                f"(statusSize {self.status_size})",
            )
        if self.status_reference is not None:
            object.__setattr__(
                self,
                "status_reference",
                _check_url_or_urls(self.status_reference, "statusReference"),
            )
        if self.id is not None:
            _check_url(self.id, "id")
            if self.id == self.status_list_credential:
                raise malformed(
                    "id", "is-status-list-url", "the entry id must not be the status list URL"
                )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.id is not None:
            doc["id"] = self.id
        doc["type"] = self.TYPE
        doc["statusPurpose"] = self.status_purpose
        doc["statusListIndex"] = str(self.status_list_index)
        doc["statusListCredential"] = self.status_list_credential
        if self.status_size != 1:
            doc["statusSize"] = self.status_size
        if self.status_message:
            doc["statusMessage"] = [m.to_json() for m in self.status_message]
        if self.status_reference is not None:
            ref = self.status_reference
            doc["statusReference"] = ref if isinstance(ref, str) else list(ref)
        return doc


def parse_status_entry(doc: object) -> BitstringStatusListEntry:
    """Validate a ``credentialStatus`` object of type ``BitstringStatusListEntry`` (§2.1).

    ``statusListIndex`` must be a string of base-10 digits without sign or leading zeros;
    ``statusSize`` an integer (default 1); ``statusMessage`` present with exactly
    ``2**statusSize`` distinct statuses when ``statusSize`` > 1. Unknown members are
    ignored. Raises :class:`~anchor.errors.StatusMalformedValueError`.
    """
    if not isinstance(doc, Mapping):
        raise malformed("credentialStatus", "not-an-object", "credentialStatus must be an object")
    if doc.get("type") != BitstringStatusListEntry.TYPE:
        raise malformed(
            "type",
            "wrong-type",
            f"type must be {BitstringStatusListEntry.TYPE!r}, got {doc.get('type')!r}",
        )
    for required in ("statusPurpose", "statusListIndex", "statusListCredential"):
        if required not in doc:
            raise malformed(required, "missing", f"{required} is required")
    size = check_status_size(doc.get("statusSize", 1))
    messages: tuple[StatusMessage, ...] = ()
    if "statusMessage" in doc:
        messages = _parse_status_messages(doc["statusMessage"], size, "statusMessage")
    entry_id = doc.get("id")
    if "id" in doc and not isinstance(entry_id, str):
        raise malformed("id", "not-a-url", "id must be a URL")
    return BitstringStatusListEntry(
        status_purpose=_check_purpose(doc["statusPurpose"], "statusPurpose"),
        status_list_index=_parse_index(doc["statusListIndex"]),
        status_list_credential=_check_url(doc["statusListCredential"], "statusListCredential"),
        status_size=size,
        status_message=messages,
        status_reference=(
            _check_url_or_urls(doc["statusReference"], "statusReference")
            if "statusReference" in doc
            else None
        ),
        id=entry_id,
    )


def find_status_entries(credential: Mapping[str, Any]) -> tuple[BitstringStatusListEntry, ...]:
    """The ``BitstringStatusListEntry`` entries of a credential's ``credentialStatus``
    (an object or an array); entries of other types are skipped, ours are validated."""
    status = credential.get("credentialStatus")
    if status is None:
        return ()
    items = status if isinstance(status, list) else [status]
    return tuple(
        parse_status_entry(item)
        for item in items
        if isinstance(item, Mapping) and item.get("type") == BitstringStatusListEntry.TYPE
    )


# --- §2.2 BitstringStatusListCredential -----------------------------------------------------


@dataclass(frozen=True)
class BitstringStatusListCredential:
    """A parsed, decoded status list credential (§2.2). Keep one per fetched list and pass it
    to :func:`validate_status`: checking a status then costs no decoding at all.

    ``bitstring`` is read with the subject's ``statusSize`` (1 when absent);
    ``document`` is the JSON it was parsed from.
    """

    issuer: str
    status_purposes: tuple[str, ...]
    encoded_list: str
    bitstring: Bitstring
    id: str | None = None
    subject_id: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    ttl: int | None = None
    status_size: int | None = None
    status_message: tuple[StatusMessage, ...] = ()
    status_reference: str | tuple[str, ...] | None = None
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    TYPE = "BitstringStatusListCredential"
    SUBJECT_TYPE = "BitstringStatusList"

    def is_valid_at(self, when: datetime) -> bool:
        """Whether ``when`` (timezone-aware) lies within ``validFrom`` .. ``validUntil``."""
        if self.valid_from is not None and when < _parse_instant(self.valid_from):
            return False
        return self.valid_until is None or when <= _parse_instant(self.valid_until)


def _parse_instant(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # valid XML Schema, but beyond Python's datetime (24:00:00, year 10000)
        raise malformed(
            "validFrom/validUntil", "not-a-datetime", f"cannot compare the instant {value!r}"
        ) from None


def _context_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def parse_status_list_credential(
    doc: object, *, min_entries: int = MIN_ENTRIES
) -> BitstringStatusListCredential:
    """Validate a status list credential (§2.2, VC Data Model 2.0) and decode its list.

    Checks ``@context`` (first value the VC 2.0 context), ``type`` (both
    ``VerifiableCredential`` and ``BitstringStatusListCredential``), ``issuer``, the
    validity dates, and a ``credentialSubject`` object of type ``BitstringStatusList`` with
    ``statusPurpose`` (string or non-empty array), ``encodedList``, and the optional
    ``ttl``, ``statusSize`` (required when a purpose is ``message``), ``statusMessage`` and
    ``statusReference``. The list must hold ``min_entries`` entries of the subject's
    ``statusSize`` (1 when absent). The proof is not looked at: verify it first.
    """
    if not isinstance(doc, Mapping):
        raise malformed("", "not-an-object", "a status list credential must be a JSON object")
    contexts = _context_list(doc.get("@context"))
    if not contexts or contexts[0] != CREDENTIALS_V2_CONTEXT:
        raise malformed(
            "@context",
            "wrong-context",
            f"@context must be an array starting with {CREDENTIALS_V2_CONTEXT!r}",
        )
    types = _context_list(doc.get("type"))
    if "VerifiableCredential" not in types or BitstringStatusListCredential.TYPE not in types:
        raise malformed(
            "type",
            "wrong-type",
            "type must include 'VerifiableCredential' and 'BitstringStatusListCredential', "
            f"got {doc.get('type')!r}",
        )
    cred_id = doc.get("id")
    if cred_id is not None:
        _check_url(cred_id, "id")
    issuer = doc.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    issuer_id = _check_url(issuer_id, "issuer")
    valid_from = doc.get("validFrom")
    valid_until = doc.get("validUntil")
    if valid_from is not None:
        _check_datetime(valid_from, "validFrom")
    if valid_until is not None:
        _check_datetime(valid_until, "validUntil")

    subject = doc.get("credentialSubject")
    if not isinstance(subject, Mapping):
        raise malformed(
            "credentialSubject", "not-an-object", "credentialSubject must be a single object"
        )
    sp = "credentialSubject."
    if subject.get("type") != BitstringStatusListCredential.SUBJECT_TYPE:
        raise malformed(sp + "type", "wrong-type", f"{sp}type must be 'BitstringStatusList'")
    subject_id = subject.get("id")
    if subject_id is not None:
        _check_url(subject_id, sp + "id")
    raw_purpose = subject.get("statusPurpose")
    if isinstance(raw_purpose, list | tuple):
        if not raw_purpose:
            raise malformed(
                sp + "statusPurpose", "empty", f"{sp}statusPurpose must not be an empty array"
            )
        purposes = tuple(
            _check_purpose(p, f"{sp}statusPurpose[{i}]") for i, p in enumerate(raw_purpose)
        )
    else:
        purposes = (_check_purpose(raw_purpose, sp + "statusPurpose"),)
    if "encodedList" not in subject:
        raise malformed(sp + "encodedList", "missing", f"{sp}encodedList is required")
    ttl = subject.get("ttl")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
        raise malformed(
            sp + "ttl", "not-an-integer", f"{sp}ttl must be a non-negative integer of ms"
        )
    declared_size: int | None = None
    if "statusSize" in subject:
        declared_size = check_status_size(subject["statusSize"], sp + "statusSize")
    elif "message" in purposes:
        raise malformed(
            sp + "statusSize",
            "missing",
            f"{sp}statusSize is required when statusPurpose includes 'message'",
        )
    size = declared_size or 1
    messages: tuple[StatusMessage, ...] = ()
    if "statusMessage" in subject:
        messages = _parse_status_messages(subject["statusMessage"], size, sp + "statusMessage")
    reference = None
    if "statusReference" in subject:
        reference = _check_url_or_urls(subject["statusReference"], sp + "statusReference")
    encoded = subject["encodedList"]
    bits = decode_bitstring(encoded, size, min_entries=min_entries)
    return BitstringStatusListCredential(
        issuer=issuer_id,
        status_purposes=purposes,
        encoded_list=encoded,
        bitstring=bits,
        id=cred_id,
        subject_id=subject_id,
        valid_from=valid_from,
        valid_until=valid_until,
        ttl=ttl,
        status_size=declared_size,
        status_message=messages,
        status_reference=reference,
        document=doc,
    )


def build_status_list_credential(
    *,
    credential_id: str,
    issuer: str | Mapping[str, Any],
    status_purpose: str | Sequence[str],
    bitstring: Bitstring | str,
    valid_from: str,
    valid_until: str | None = None,
    subject_id: str | None = None,
    ttl: int | None = None,
    status_size: int | None = None,
    status_message: Sequence[StatusMessage] | None = None,
    status_reference: str | Sequence[str] | None = None,
    extra_contexts: Sequence[str] = (),
    min_entries: int = MIN_ENTRIES,
) -> dict[str, Any]:
    """An unsigned ``BitstringStatusListCredential`` (VC Data Model 2.0, §2.2, §3.1).

    ``bitstring`` is a :class:`Bitstring` (encoded here) or an ``encodedList`` string.
    ``subject_id`` defaults to ``credential_id + "#list"``; ``status_size`` defaults to
    the bitstring's when it is not 1. The result is checked with
    :func:`parse_status_list_credential` before it is returned, so it always parses.
    Add the proof with :func:`anchor.vc.data_integrity.create_proof`.
    """
    if isinstance(bitstring, Bitstring):
        encoded = bitstring.encode()
        if status_size is None and bitstring.status_size != 1:
            status_size = bitstring.status_size
    else:
        encoded = bitstring
    subject: dict[str, Any] = {
        "id": subject_id if subject_id is not None else credential_id + "#list",
        "type": BitstringStatusListCredential.SUBJECT_TYPE,
        "statusPurpose": status_purpose
        if isinstance(status_purpose, str)
        else list(status_purpose),
        "encodedList": encoded,
    }
    if ttl is not None:
        subject["ttl"] = ttl
    if status_size is not None:
        subject["statusSize"] = status_size
    if status_message is not None:
        subject["statusMessage"] = [m.to_json() for m in status_message]
    if status_reference is not None:
        subject["statusReference"] = (
            status_reference if isinstance(status_reference, str) else list(status_reference)
        )
    doc: dict[str, Any] = {
        "@context": [CREDENTIALS_V2_CONTEXT, *extra_contexts],
        "id": credential_id,
        "type": ["VerifiableCredential", BitstringStatusListCredential.TYPE],
        "issuer": issuer if isinstance(issuer, str) else dict(issuer),
        "validFrom": valid_from,
    }
    if valid_until is not None:
        doc["validUntil"] = valid_until
    doc["credentialSubject"] = subject
    parse_status_list_credential(doc, min_entries=min_entries)
    return doc


# --- §3.2 Validate Algorithm -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusResult:
    """The result map of §3.2 (steps 11-14): ``status``, ``purpose``, ``valid`` (``status``
    is 0) and, for the ``message`` purpose, ``message``."""

    status: int
    purpose: str
    valid: bool
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": self.status, "purpose": self.purpose, "valid": self.valid}
        if self.message is not None:
            doc["message"] = self.message
        return doc


def validate_status(
    entry: BitstringStatusListEntry | Mapping[str, Any],
    status_list_credential: BitstringStatusListCredential | Mapping[str, Any] | None,
    *,
    proofs_verified: bool,
    min_entries: int = MIN_ENTRIES,
) -> StatusResult:
    """§3.2 Validate Algorithm for one ``BitstringStatusListEntry``.

    The caller dereferences ``statusListCredential`` and verifies the list's proofs (step
    4); it passes the list it got (``None`` when the dereference failed, which raises
    ``STATUS_RETRIEVAL_ERROR``) and whether *all* proofs verified (``False`` raises
    ``STATUS_VERIFICATION_ERROR``). ``proofs_verified`` has no default on purpose.

    Then: the entry's ``statusPurpose`` must be one of the list's (step 5, else
    ``STATUS_VERIFICATION_ERROR``; so must a ``statusSize`` the list declares); the list is
    decoded with the size limit (steps 6-8); fewer than ``min_entries`` entries of
    ``statusSize`` bits raise ``STATUS_LIST_LENGTH_ERROR`` (step 9); an entry past the end
    raises ``RANGE_ERROR`` (step 10); malformed values raise ``MALFORMED_VALUE_ERROR``.
    Returns the result map of steps 11-14 as a :class:`StatusResult`. Pass a parsed
    :class:`BitstringStatusListCredential` to skip re-decoding a cached list.
    """
    minimum = check_min_entries(min_entries)  # step 2
    parsed_entry = (
        entry if isinstance(entry, BitstringStatusListEntry) else parse_status_entry(entry)
    )  # step 1
    purpose = parsed_entry.status_purpose  # step 3
    if status_list_credential is None:  # step 4
        raise StatusRetrievalError(
            f"the status list credential {parsed_entry.status_list_credential} could not be "
            "retrieved",
            hint="the status is unknown; retry later",
        )
    if proofs_verified is not True:
        raise StatusVerificationError(
            f"a proof on the status list credential {parsed_entry.status_list_credential} "
            "did not verify",
            what="proof",
            hint="the status is unknown; do not treat the credential as valid",
        )
    if isinstance(status_list_credential, BitstringStatusListCredential):
        listing = status_list_credential
    else:
        listing = parse_status_list_credential(status_list_credential, min_entries=0)
    if purpose not in listing.status_purposes:  # step 5
        raise StatusVerificationError(
            f"the entry's statusPurpose {purpose!r} is not a purpose of the status list",
            what="statusPurpose",
            expected=" | ".join(listing.status_purposes),
            actual=purpose,
        )
    size = parsed_entry.status_size
    if listing.status_size is not None and listing.status_size != size:
        raise StatusVerificationError(
            f"the entry's statusSize {size} differs from the list's {listing.status_size}",
            what="statusSize",
            expected=str(listing.status_size),
            actual=str(size),
        )
    bits = listing.bitstring.with_status_size(size)  # steps 6-8 (decoded at parse time)
    require_length(bits.entries, size, minimum, "encodedList")  # step 9
    index = parsed_entry.status_list_index  # step 7
    if (index + 1) * size > bits.bit_length:  # step 10
        raise range_error(index, bits.entries)
    status = bits.get(index)
    message: str | None = None
    if purpose == "message":  # step 13: the entry's statusMessage, else the list's
        message = _message_for(parsed_entry.status_message, status)
        if message is None:
            message = _message_for(listing.status_message, status)
        if message is None and size == 1:
            message = DEFAULT_STATUS_MESSAGES[status]
    return StatusResult(status=status, purpose=purpose, valid=status == 0, message=message)
