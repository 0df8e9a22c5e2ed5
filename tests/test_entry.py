"""The canonical entry encoding: round trips and one error per malformed input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anchor.core.entry import MAX_DID_LENGTH, Entry, EntryKind, decode, parse_digest
from anchor.errors import EncodingError

DID = "did:web:college.example:registrar"
DIGEST = hashlib.sha256(b"credential").digest()


def good() -> bytes:
    return Entry(EntryKind.CREDENTIAL, DIGEST, DID).encode()


def test_layout_is_the_documented_one() -> None:
    data = good()
    assert data[:4] == bytes([1, 1, 0x12, 0x20])
    assert data[4:36] == DIGEST
    assert data[36:38] == len(DID).to_bytes(2, "big")
    assert data[38:] == DID.encode()
    assert decode(data) == Entry(EntryKind.CREDENTIAL, DIGEST, DID)


@given(
    kind=st.sampled_from(list(EntryKind)),
    digest=st.binary(min_size=32, max_size=32),
    ident=st.from_regex(r"[A-Za-z0-9._-]{1,40}(:[A-Za-z0-9._-]{1,20}){0,3}", fullmatch=True),
)
def test_round_trip(kind: EntryKind, digest: bytes, ident: str) -> None:
    e = Entry(kind, digest, f"did:example:{ident}")
    assert decode(e.encode()) == e


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:20], "shorter than the smallest entry"),
        (lambda b: bytes([2]) + b[1:], "unsupported entry version 2"),
        (lambda b: b[:1] + bytes([0]) + b[2:], "unknown entry kind byte 0x00"),
        (lambda b: b[:1] + bytes([9]) + b[2:], "unknown entry kind byte 0x09"),
        (lambda b: b[:2] + bytes([0x13]) + b[3:], "unsupported digest algorithm 0x13"),
        (lambda b: b[:3] + bytes([31]) + b[4:], "digest length byte is 31"),
        (lambda b: b + b"\x00", "1 trailing bytes"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:36] + b"\x00\x00" + b[38:], "DID is empty"),
        (lambda b: b[:38] + b"\xff" + b[39:], "not ASCII"),
        (lambda b: b[:38] + b"DID" + b[41:], "is not a DID"),
        (lambda b: b + b"x" * 3000, "more than"),
    ],
)
def test_decode_rejects(mutate: object, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        decode(mutate(good()))  # type: ignore[operator]


def test_entry_rejects_bad_values() -> None:
    with pytest.raises(EncodingError, match="digest is 31 bytes"):
        Entry(EntryKind.CREDENTIAL, DIGEST[:31], DID)
    with pytest.raises(EncodingError, match="is not a DID"):
        Entry(EntryKind.CREDENTIAL, DIGEST, "did:web:has space")
    with pytest.raises(EncodingError, match="is not a DID"):
        Entry(EntryKind.CREDENTIAL, DIGEST, "did:web:college.example#key-1")
    with pytest.raises(EncodingError, match="longer than"):
        Entry(EntryKind.CREDENTIAL, DIGEST, "did:web:" + "a" * MAX_DID_LENGTH)


def test_kind_labels() -> None:
    assert EntryKind.from_label("status-list") is EntryKind.STATUS_LIST
    assert EntryKind.CREDENTIAL.label == "credential"
    with pytest.raises(EncodingError, match="unknown entry kind 'receipt'"):
        EntryKind.from_label("receipt")


def test_parse_digest() -> None:
    assert parse_digest(DIGEST.hex().upper()) == DIGEST
    with pytest.raises(EncodingError, match="not 64 hex digits"):
        parse_digest("abc")
    with pytest.raises(EncodingError, match="not hexadecimal"):
        parse_digest("g" * 64)
    with pytest.raises(EncodingError, match="not hexadecimal"):
        parse_digest("aa " * 21 + "a")
