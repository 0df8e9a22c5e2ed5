"""Bitstring Status List v1.0: bit layout, encoding limits, documents, validate algorithm."""

from __future__ import annotations

import base64
import contextlib
import copy
import gzip
import random
import struct
import time
import tracemalloc
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchor.errors import (
    AnchorError,
    EncodingError,
    LimitExceeded,
    StatusListError,
    StatusListLengthError,
    StatusListTooLargeError,
    StatusMalformedValueError,
    StatusRangeError,
    StatusRetrievalError,
    StatusVerificationError,
    VerificationError,
)
from anchor.status.bitstring import (
    MAX_BITSTRING_BYTES,
    MAX_ENCODED_LIST_CHARS,
    MAX_ENTRIES,
    MIN_ENTRIES,
    Bitstring,
    BitstringBuilder,
    decode_bitstring,
    encode_bitstring,
    expand_bitstring,
)
from anchor.status.credential import (
    BitstringStatusListCredential,
    BitstringStatusListEntry,
    StatusMessage,
    StatusResult,
    build_status_list_credential,
    find_status_entries,
    parse_status_entry,
    parse_status_list_credential,
    validate_status,
)

EXAMPLE_3_LIST = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
LIST_URL = "https://example.com/credentials/status/3"

# --- helpers ------------------------------------------------------------------------------


def reference_bytes(entries: int, size: int, values: dict[int, int]) -> bytes:
    """The spec's layout written out literally as a string of '0'/'1' characters: entry i is
    the ``size``-bit binary of its value at characters [i*size, (i+1)*size); character 0 is
    the most significant bit of byte 0."""
    bits = ["0"] * (((entries * size + 7) // 8) * 8)
    for index, value in values.items():
        bits[index * size : (index + 1) * size] = format(value, f"0{size}b")
    text = "".join(bits)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def gzip_b64(raw: bytes) -> str:
    return "u" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def gzip_member(payload: bytes) -> bytes:
    return gzip.compress(payload, mtime=0)


def member_of_length_mod3(remainder: int) -> bytes:
    """A valid 16 KB GZIP member whose length is ``remainder`` modulo 3 (so its unpadded
    base64url has unused bits in the last character when ``remainder`` is not 0)."""
    for k in range(1, 64):
        member = gzip_member(bytes(16_384 - k) + bytes(range(1, k + 1)))
        if len(member) % 3 == remainder:
            return member
    raise AssertionError("no member of that length")  # pragma: no cover


def entry_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": LIST_URL + "#94567",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": LIST_URL,
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def messages(size: int) -> list[dict[str, str]]:
    return [{"status": hex(v), "message": f"m{v}"} for v in range(1 << size)]


def list_credential(
    bits: Bitstring | str = EXAMPLE_3_LIST, purpose: str | list[str] = "revocation", **kw: Any
) -> dict[str, Any]:
    return build_status_list_credential(
        credential_id=LIST_URL,
        issuer="did:example:12345",
        status_purpose=purpose,
        bitstring=bits,
        valid_from="2021-04-05T14:27:40Z",
        **kw,
    )


# --- bit layout ---------------------------------------------------------------------------


def test_index_zero_is_the_most_significant_bit_of_byte_zero() -> None:
    b = BitstringBuilder(16, min_entries=0)
    b.set(0, 1)
    assert b.build().data == b"\x80\x00"
    b.set(7, 1)
    b.set(8, 1)
    assert b.build().data == b"\x81\x80"
    assert [b.get(i) for i in range(16)] == [1, 0, 0, 0, 0, 0, 0, 1, 1] + [0] * 7


def test_multi_bit_entries_are_msb_first_and_may_straddle_bytes() -> None:
    two = BitstringBuilder(8, 2, min_entries=0)
    two.set(0, 3)
    two.set(1, 1)
    assert two.build().data == bytes([0b11010000, 0])
    three = BitstringBuilder(8, 3, min_entries=0)
    three.set(2, 0b101)  # bits 6, 7, 8: the last two of byte 0 and the first of byte 1
    assert three.build().data == bytes([0b00000010, 0b10000000, 0])
    assert three.get(2) == 0b101
    assert three.get(1) == 0
    assert three.get(3) == 0
    eight = BitstringBuilder(3, 8, min_entries=0)
    eight.set(1, 0xA5)
    assert eight.build().data == b"\x00\xa5\x00"


def test_entries_count_whole_entries_only() -> None:
    bits = Bitstring(bytes(3), 3)  # 24 bits
    assert bits.entries == len(bits) == 8
    assert Bitstring(bytes(3), 5).entries == 4  # 4 bits of padding belong to no entry
    with pytest.raises(StatusRangeError, match="outside the list of 4 entries"):
        Bitstring(bytes(3), 5).get(4)


@pytest.mark.parametrize("size", range(1, 9))
def test_every_status_size_round_trips(size: int) -> None:
    entries = MIN_ENTRIES
    values = {i: (i * 7 + 3) % (1 << size) for i in range(0, entries, 997)}
    values[entries - 1] = (1 << size) - 1
    b = BitstringBuilder(entries, size)
    b.update(values)
    encoded = b.encode()
    decoded = decode_bitstring(encoded, size)
    assert decoded.data == reference_bytes(entries, size, values)
    assert decoded.entries == entries
    assert all(decoded.get(i) == v for i, v in values.items())
    assert decoded.nonzero_indexes() == sorted(i for i, v in values.items() if v)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 8),
    entries=st.integers(1, 3000),
    data=st.data(),
)
def test_random_lists_round_trip(size: int, entries: int, data: st.DataObject) -> None:
    changes = data.draw(
        st.dictionaries(st.integers(0, entries - 1), st.integers(0, (1 << size) - 1), max_size=200)
    )
    b = BitstringBuilder(entries, size, min_entries=0)
    b.update(changes)
    bits = b.build()
    assert bits.data == reference_bytes(entries, size, changes)
    decoded = decode_bitstring(encode_bitstring(bits), size, min_entries=0)
    assert decoded == bits
    for index in range(entries):
        assert decoded.get(index) == changes.get(index, 0)
    assert decoded.nonzero_indexes() == sorted(i for i, v in changes.items() if v)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 8), data=st.data())
def test_set_then_clear_and_set_many(size: int, data: st.DataObject) -> None:
    entries = 512
    indexes = data.draw(st.lists(st.integers(0, entries - 1), max_size=100))
    value = data.draw(st.integers(1, (1 << size) - 1))
    b = BitstringBuilder(entries, size, min_entries=0)
    b.set_many(indexes, value)
    assert b.build().data == reference_bytes(entries, size, dict.fromkeys(indexes, value))
    b.set_many(indexes, 0)
    assert b.build().data == bytes(len(b.build().data))


def test_builder_checks_batches_before_applying_any() -> None:
    b = BitstringBuilder(64, 2, min_entries=0)
    with pytest.raises(StatusRangeError, match="index 64 is outside"):
        b.update({1: 1, 64: 1})
    with pytest.raises(StatusMalformedValueError, match=r"must be in 0\.\.3, got 4"):
        b.update([(1, 1), (2, 4)])
    with pytest.raises(StatusRangeError, match="index -1 is outside"):
        b.set_many([3, -1], 1)
    with pytest.raises(TypeError, match="is an int"):
        b.set_many([True], 1)
    assert b.build().data == bytes(16)
    with pytest.raises(StatusMalformedValueError, match=r"must be in 0\.\.3"):
        b.set(0, -1)


def test_bitstring_is_immutable_and_builders_copy() -> None:
    bits = Bitstring.zeros(MIN_ENTRIES)
    builder = bits.builder()
    builder.set(5, 1)
    assert bits.get(5) == 0
    assert builder.get(5) == 1
    with pytest.raises(AttributeError):
        bits.data = b""  # type: ignore[misc]
    with pytest.raises(TypeError, match="must be bytes"):
        Bitstring(bytearray(4))  # type: ignore[arg-type]


def test_legacy_lsb_first_lists_read_wrong_indexes() -> None:
    """Interoperability trap: least-significant-bit-first lists.

    Some StatusList2021-era libraries mapped index i to bit ``i % 8`` counted from the
    *least* significant bit of byte ``i // 8``. Bitstring Status List v1.0 (§2.2, §7.1) puts
    index 0 at the left-most (most significant) bit. Read with the correct algorithm, an
    LSB-first list shows its revocations at mirrored positions inside each byte: index 3
    revoked by a legacy issuer appears as index 4, and the revoked credential 3 reads as
    valid. The two conventions only agree on lists whose bytes are palindromes.
    """
    legacy = bytearray(MIN_ENTRIES // 8)
    for index in (3, 17, 94567):
        legacy[index >> 3] |= 1 << (index & 7)  # the wrong (LSB-first) convention
    read = decode_bitstring(encode_bitstring(bytes(legacy)))
    assert read.nonzero_indexes() == [4, 22, 94560]
    assert read.get(3) == 0
    assert read.get(17) == 0
    assert read.get(94567) == 0
    correct = BitstringBuilder(MIN_ENTRIES)
    correct.set_many([3, 17, 94567], 1)
    assert correct.build().data != bytes(legacy)
    assert decode_bitstring(correct.encode()).nonzero_indexes() == [3, 17, 94567]


# --- encoding -----------------------------------------------------------------------------


def test_spec_example_3_decodes_to_131072_zero_bits() -> None:
    bits = decode_bitstring(EXAMPLE_3_LIST)
    assert bits.bit_length == 131_072
    assert bits.entries == 131_072
    assert bits.data == bytes(16_384)
    assert bits.nonzero_indexes() == []


def test_encoding_is_deterministic_gzip_and_reproduces_example_3() -> None:
    encoded = Bitstring.zeros(MIN_ENTRIES).encode()
    assert encoded == EXAMPLE_3_LIST
    raw = base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4))
    assert gzip.decompress(raw) == bytes(16_384)
    assert raw[4:8] == b"\x00\x00\x00\x00"  # MTIME 0


def test_compression_level_changes_size_not_bits() -> None:
    b = BitstringBuilder(MIN_ENTRIES)
    b.set_many(random.Random(3).sample(range(MIN_ENTRIES), 500), 1)
    fast, small = b.encode(level=1), b.encode()
    assert len(small) < len(fast)
    assert decode_bitstring(fast) == decode_bitstring(small) == b.build()


def test_other_gzip_producers_decode() -> None:
    payload = bytes(16_383) + b"\x01"
    for member in (gzip.compress(payload, 1), gzip.compress(payload, 9, mtime=12345)):
        assert decode_bitstring(gzip_b64(member)).nonzero_indexes() == [131_071]


@pytest.mark.parametrize("entries", [131_072, 1_048_576, MAX_ENTRIES])
def test_large_lists_round_trip(entries: int) -> None:
    started = time.perf_counter()
    picks = [0, 1, 7, 8, 12_345, entries // 2, entries - 2, entries - 1]
    b = BitstringBuilder(entries)
    b.set_many(picks, 1)
    decoded = decode_bitstring(b.encode())
    assert decoded.entries == entries
    assert decoded.nonzero_indexes() == picks
    assert time.perf_counter() - started < 2.0


def test_the_largest_list_of_8_bit_entries_is_exactly_the_limit() -> None:
    started = time.perf_counter()
    b = BitstringBuilder(MAX_ENTRIES, 8)
    b.update({0: 0xFF, MAX_ENTRIES - 1: 0x7E})
    decoded = decode_bitstring(b.encode(), 8)
    assert len(decoded.data) == MAX_BITSTRING_BYTES
    assert decoded.get(MAX_ENTRIES - 1) == 0x7E
    assert decoded.get(0) == 0xFF
    with pytest.raises(StatusListTooLargeError, match="inflates to more than"):
        decode_bitstring(gzip_b64(gzip_member(bytes(MAX_BITSTRING_BYTES + 1))))
    with pytest.raises(StatusListTooLargeError, match="exceed the limit of 16777216"):
        BitstringBuilder(MAX_ENTRIES + 1)
    assert time.perf_counter() - started < 4.0


def make_gzip_bomb(size: int) -> bytes:
    """A valid GZIP member of ``size`` zero bytes (size a multiple of 1 MiB), built fast by
    repeating one fully flushed deflate block."""
    chunk = bytes(1 << 20)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size >> 20):
        crc = zlib.crc32(chunk, crc)
    body = block * (size >> 20) + b"\x03\x00"  # then an empty final block
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + body + struct.pack("<II", crc, 0)


def test_gzip_bomb_is_refused_quickly_with_bounded_memory() -> None:
    bomb = gzip_b64(make_gzip_bomb(1 << 30))  # 1 GiB of zeros in about 1 MB
    assert len(bomb) < MAX_ENCODED_LIST_CHARS  # so the inflater, not the length cap, acts
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(StatusListTooLargeError, match="inflates to more than") as info:
            decode_bitstring(bomb)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 3 * MAX_BITSTRING_BYTES  # the limit plus the decoded base64, not 1 GiB
    assert info.value.extra["reason"] == "too-large"
    assert isinstance(info.value, LimitExceeded)
    assert info.value.status == 413


def test_a_smaller_size_limit_can_be_asked_for() -> None:
    with pytest.raises(StatusListTooLargeError, match="more than the limit of 1000 bytes"):
        expand_bitstring(EXAMPLE_3_LIST, max_bytes=1000)
    assert len(expand_bitstring(EXAMPLE_3_LIST, max_bytes=16_384)) == 16_384


VALID_BODY = EXAMPLE_3_LIST[1:]


def _reason(info: pytest.ExceptionInfo[StatusMalformedValueError]) -> str:
    assert info.value.extra["property"] == "credentialSubject.encodedList"
    return str(info.value.extra["reason"])


def test_decode_rejects_a_non_string() -> None:
    with pytest.raises(StatusMalformedValueError, match="must be a string") as info:
        decode_bitstring(b"uH4sI")  # type: ignore[arg-type]
    assert _reason(info) == "not-a-string"


@pytest.mark.parametrize("value", ["z" + VALID_BODY, "U" + VALID_BODY, VALID_BODY, ""])
def test_decode_rejects_other_multibase_prefixes(value: str) -> None:
    with pytest.raises(StatusMalformedValueError, match="multibase prefix 'u'") as info:
        decode_bitstring(value)
    assert _reason(info) == "multibase-prefix"


def test_decode_rejects_padding() -> None:
    padded = "u" + base64.urlsafe_b64encode(member_of_length_mod3(1)).decode()
    assert padded.endswith("=")
    with pytest.raises(StatusMalformedValueError, match="without '=' padding") as info:
        decode_bitstring(padded)
    assert _reason(info) == "padding"


@pytest.mark.parametrize(
    "value",
    [
        "u" + VALID_BODY.replace("-", "+"),  # standard base64, not base64url
        "u" + VALID_BODY[:10] + "/" + VALID_BODY[11:],
        "u" + VALID_BODY[:10] + " " + VALID_BODY[10:],
        "u" + VALID_BODY + "\n",
        "u" + VALID_BODY[:10] + "é" + VALID_BODY[11:],
        "u" + VALID_BODY + "A" * (5 - len(VALID_BODY) % 4),  # length 1 mod 4
    ],
)
def test_decode_rejects_bad_base64url(value: str) -> None:
    with pytest.raises(StatusMalformedValueError, match="not valid base64url") as info:
        decode_bitstring(value)
    assert _reason(info) == "base64url"


@pytest.mark.parametrize(("remainder", "unused_bits"), [(1, 4), (2, 2)])
def test_decode_rejects_non_canonical_base64url(remainder: int, unused_bits: int) -> None:
    body = gzip_b64(member_of_length_mod3(remainder))[1:]
    assert decode_bitstring("u" + body).entries == MIN_ENTRIES
    # Setting an unused low bit of the last character changes the text, not the bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    position = alphabet.index(body[-1])
    assert position % (1 << unused_bits) == 0
    twisted = body[:-1] + alphabet[position | 1]
    with pytest.raises(StatusMalformedValueError, match="non-zero unused bits") as info:
        decode_bitstring("u" + twisted)
    assert _reason(info) == "non-canonical"


@pytest.mark.parametrize(
    "raw",
    [
        zlib.compress(bytes(16_384)),  # zlib (RFC 1950), not GZIP
        bytes(16_384),  # not compressed at all
        b"\x1f\x8b\x07" + gzip_member(bytes(16))[3:],  # a GZIP header with CM other than 8
        b"",
    ],
)
def test_decode_rejects_data_that_is_not_gzip(raw: bytes) -> None:
    with pytest.raises(StatusMalformedValueError, match="does not hold a GZIP") as info:
        decode_bitstring(gzip_b64(raw))
    assert _reason(info) == "not-gzip"


def test_decode_rejects_corrupt_gzip() -> None:
    member = bytearray(gzip_member(bytes(16_383) + b"\x01"))
    member[-8] ^= 0xFF  # CRC-32 of the trailer
    with pytest.raises(StatusMalformedValueError, match="GZIP data is corrupt") as info:
        decode_bitstring(gzip_b64(bytes(member)))
    assert _reason(info) == "gzip-corrupt"
    member = bytearray(gzip_member(bytes(16_384)))
    member[-1] ^= 0x01  # ISIZE
    with pytest.raises(StatusMalformedValueError, match="GZIP data is corrupt"):
        decode_bitstring(gzip_b64(bytes(member)))


def test_decode_rejects_truncated_gzip() -> None:
    member = gzip_member(bytes(16_384))
    with pytest.raises(StatusMalformedValueError, match="member is truncated") as info:
        decode_bitstring(gzip_b64(member[:-4]))
    assert _reason(info) == "gzip-truncated"


@pytest.mark.parametrize(
    "extra",
    [b"\x00", b"garbage", gzip_member(b"")],  # including a second GZIP member
)
def test_decode_rejects_trailing_data(extra: bytes) -> None:
    member = gzip_member(bytes(16_384)) + extra
    with pytest.raises(StatusMalformedValueError, match=r"byte\(s\) follow the GZIP") as info:
        decode_bitstring(gzip_b64(member))
    assert _reason(info) == "trailing-data"


def test_decode_refuses_overlong_text_before_decoding() -> None:
    with pytest.raises(StatusListTooLargeError, match="characters exceeds the limit") as info:
        decode_bitstring("u" + "A" * MAX_ENCODED_LIST_CHARS)
    assert info.value.extra["reason"] == "too-large"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.binary(max_size=80).map(gzip_b64))
def test_decode_of_arbitrary_text_fails_only_with_status_list_errors(text: str) -> None:
    with contextlib.suppress(StatusMalformedValueError, StatusListTooLargeError):
        expand_bitstring(text)


def test_decode_enforces_the_minimum_in_entries() -> None:
    # One byte short of 16 KB: 131,064 one-bit entries.
    with pytest.raises(StatusListLengthError, match="131064 entries of 1 bit") as info:
        decode_bitstring(encode_bitstring(bytes(16_383)))
    assert info.value.what == "encodedList"
    # 16 KB is enough for 1-bit entries but holds only 65,536 2-bit entries (§3.2 step 9).
    assert decode_bitstring(EXAMPLE_3_LIST, 1).entries == MIN_ENTRIES
    with pytest.raises(StatusListLengthError, match="65536 entries of 2 bit"):
        decode_bitstring(EXAMPLE_3_LIST, 2)
    assert decode_bitstring(Bitstring.zeros(MIN_ENTRIES, 2).encode(), 2).bit_length == 262_144
    # An ecosystem may set another bound.
    assert decode_bitstring(EXAMPLE_3_LIST, 2, min_entries=65_536).entries == 65_536
    assert decode_bitstring(encode_bitstring(bytes(4)), min_entries=0).entries == 32


def test_builder_enforces_the_minimum_and_the_status_size() -> None:
    with pytest.raises(StatusListLengthError, match="131071 entries"):
        BitstringBuilder(MIN_ENTRIES - 1)
    assert BitstringBuilder(10, min_entries=10).entries == 16  # padding bits of the last byte
    for bad in (0, -1):
        with pytest.raises(StatusMalformedValueError, match="greater than zero"):
            Bitstring(b"", bad)
    with pytest.raises(StatusListTooLargeError, match="larger than the 8 bits supported"):
        BitstringBuilder(8, 9, min_entries=0)
    with pytest.raises(StatusMalformedValueError, match="must be an integer"):
        Bitstring(b"", True)


# --- §2.1 entries ---------------------------------------------------------------------------


def test_parse_entry_of_example_1() -> None:
    entry = parse_status_entry(entry_doc())
    assert entry == BitstringStatusListEntry(
        status_purpose="revocation",
        status_list_index=94567,
        status_list_credential=LIST_URL,
        id=LIST_URL + "#94567",
    )
    assert entry.status_size == 1
    assert entry.status_message == ()
    assert entry.to_json() == entry_doc()


def test_parse_entry_with_status_size_and_messages() -> None:
    doc = entry_doc(
        statusPurpose="message",
        statusSize=2,
        statusMessage=[
            {"status": "0x0", "message": "pending_review"},
            {"status": "0x1", "message": "accepted"},
            {"status": "0x2", "message": "rejected", "extra": True},
            {"status": "0x3", "message": "undefined"},
        ],
        statusReference="https://example.org/status-dictionary/",
    )
    entry = parse_status_entry(doc)
    assert entry.status_size == 2
    assert entry.status_message[2] == StatusMessage(2, "rejected")
    assert entry.status_reference == "https://example.org/status-dictionary/"
    assert parse_status_entry(entry.to_json()) == entry


@pytest.mark.parametrize(
    "index",
    ["01", "00", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "", "\u0663", "1_000", "١"],
)
def test_parse_entry_rejects_index_strings_that_are_not_plain_base10(index: str) -> None:
    with pytest.raises(StatusMalformedValueError, match="without sign or leading zeros") as info:
        parse_status_entry(entry_doc(statusListIndex=index))
    assert info.value.extra == {"property": "statusListIndex", "reason": "not-base10"}


@pytest.mark.parametrize("index", [94567, 0, 1.0, None, ["1"], True])
def test_parse_entry_rejects_index_that_is_not_a_string(index: object) -> None:
    doc = entry_doc()
    doc["statusListIndex"] = index
    with pytest.raises(StatusMalformedValueError, match="base-10 integer in a string"):
        parse_status_entry(doc)


def test_parse_entry_accepts_big_indexes_and_caps_absurd_ones() -> None:
    assert parse_status_entry(entry_doc(statusListIndex="9" * 40)).status_list_index == int(
        "9" * 40
    )
    with pytest.raises(StatusListTooLargeError, match="more than 1000 digits"):
        parse_status_entry(entry_doc(statusListIndex="9" * 1001))


@pytest.mark.parametrize("missing", ["statusPurpose", "statusListIndex", "statusListCredential"])
def test_parse_entry_requires_members(missing: str) -> None:
    doc = entry_doc()
    del doc[missing]
    with pytest.raises(StatusMalformedValueError, match=f"{missing} is required"):
        parse_status_entry(doc)


@pytest.mark.parametrize("type_", ["BitstringStatusList", "StatusList2021Entry", None, []])
def test_parse_entry_requires_its_type(type_: object) -> None:
    doc = entry_doc()
    doc["type"] = type_
    with pytest.raises(StatusMalformedValueError, match="type must be 'BitstringStatusListEntry'"):
        parse_status_entry(doc)


def test_parse_entry_rejects_non_objects() -> None:
    with pytest.raises(StatusMalformedValueError, match="credentialStatus must be an object"):
        parse_status_entry([entry_doc()])


@pytest.mark.parametrize(
    ("size", "error", "message"),
    [
        (0, StatusMalformedValueError, "greater than zero"),
        (-2, StatusMalformedValueError, "greater than zero"),
        ("2", StatusMalformedValueError, "must be an integer"),
        (2.0, StatusMalformedValueError, "must be an integer"),
        (True, StatusMalformedValueError, "must be an integer"),
        (9, StatusListTooLargeError, "larger than the 8 bits supported"),
    ],
)
def test_parse_entry_rejects_bad_status_sizes(
    size: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        parse_status_entry(entry_doc(statusSize=size))


def test_parse_entry_requires_messages_when_status_size_is_above_1() -> None:
    with pytest.raises(StatusMalformedValueError, match="statusMessage is required") as info:
        parse_status_entry(entry_doc(statusSize=2))
    assert info.value.extra["reason"] == "missing"
    assert parse_status_entry(entry_doc(statusMessage=messages(1))).status_message[1] == (
        StatusMessage(1, "m1")
    )


@pytest.mark.parametrize(
    ("size", "items", "message"),
    [
        (2, messages(2)[:3], "must have 4 elements for a statusSize of 2, got 3"),
        (1, messages(1)[:1], "must have 2 elements for a statusSize of 1, got 1"),
        (2, [*messages(3)[:4], {"status": "0x4", "message": "x"}], "must have 4 elements"),
        (2, "0x0", "must be an array"),
    ],
)
def test_parse_entry_requires_exactly_two_to_the_size_messages(
    size: int, items: object, message: str
) -> None:
    with pytest.raises(StatusMalformedValueError, match=message):
        parse_status_entry(entry_doc(statusSize=size, statusMessage=items))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"status": "0", "message": "x"}, "hexadecimal string prefixed with 0x"),
        ({"status": "0xg", "message": "x"}, "hexadecimal string prefixed with 0x"),
        ({"status": 0, "message": "x"}, "hexadecimal string prefixed with 0x"),
        ({"status": "0x4", "message": "x"}, r"0x4 does not fit in 2 bit\(s\)"),
        ({"status": "0x1", "message": "x"}, "0x1 appears twice"),
        ({"status": "0x3", "message": 3}, r"statusMessage\[3\]\.message must be a string"),
        ("0x3", r"statusMessage\[3\] must be an object"),
    ],
)
def test_parse_entry_rejects_bad_status_messages(bad: object, message: str) -> None:
    items: list[object] = list(messages(2))
    items[3] = bad
    with pytest.raises(StatusMalformedValueError, match=message):
        parse_status_entry(entry_doc(statusSize=2, statusMessage=items))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"statusListCredential": "not a url"}, "statusListCredential must be a URL"),
        ({"statusListCredential": 3}, "statusListCredential must be a URL"),
        ({"statusReference": []}, "statusReference must be a URL or a non-empty array"),
        ({"statusReference": ["https://a.example/", "b c"]}, r"statusReference\[1\] must be"),
        ({"id": LIST_URL}, "must not be the status list URL"),
        ({"id": 7}, "id must be a URL"),
        ({"statusPurpose": ""}, "statusPurpose must be a non-empty string"),
        ({"statusPurpose": ["revocation"]}, "statusPurpose must be a non-empty string"),
    ],
)
def test_parse_entry_rejects_bad_members(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(StatusMalformedValueError, match=message):
        parse_status_entry(entry_doc(**changes))


def test_other_purposes_are_carried_through() -> None:
    assert parse_status_entry(entry_doc(statusPurpose="custom")).status_purpose == "custom"


def test_find_status_entries_picks_bitstring_entries() -> None:
    credential = {
        "credentialStatus": [
            entry_doc(),
            {"type": "SomethingElse", "id": "urn:x"},
            entry_doc(statusPurpose="suspension", statusListIndex="23452", id=None),
        ]
    }
    found = find_status_entries(credential)
    assert [(e.status_purpose, e.status_list_index) for e in found] == [
        ("revocation", 94567),
        ("suspension", 23452),
    ]
    assert find_status_entries({"credentialStatus": entry_doc()})[0].status_list_index == 94567
    assert find_status_entries({}) == ()


# --- §2.2 credentials -----------------------------------------------------------------------


def test_build_credential_has_the_vc_2_shape() -> None:
    bits = BitstringBuilder(MIN_ENTRIES)
    bits.set(94567, 1)
    doc = list_credential(bits.build(), ttl=300_000, valid_until="2031-04-05T14:27:40Z")
    assert doc == {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": LIST_URL,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": "did:example:12345",
        "validFrom": "2021-04-05T14:27:40Z",
        "validUntil": "2031-04-05T14:27:40Z",
        "credentialSubject": {
            "id": LIST_URL + "#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": bits.encode(),
            "ttl": 300_000,
        },
    }
    parsed = parse_status_list_credential(doc)
    assert parsed.bitstring.nonzero_indexes() == [94567]
    assert parsed.ttl == 300_000
    assert parsed.status_purposes == ("revocation",)
    assert parsed.issuer == "did:example:12345"
    assert parsed.document is doc


def test_build_credential_with_status_size_messages_and_purposes() -> None:
    bits = BitstringBuilder(MIN_ENTRIES, 2)
    bits.set(7, 2)
    doc = list_credential(
        bits.build(),
        purpose=["message", "suspension"],
        status_message=[StatusMessage(v, f"m{v}") for v in range(4)],
        status_reference=["https://example.org/status-dictionary/"],
        subject_id="https://example.com/status/3#list",
    )
    subject = doc["credentialSubject"]
    assert subject["statusSize"] == 2
    assert subject["statusMessage"][2] == {"status": "0x2", "message": "m2"}
    assert subject["statusPurpose"] == ["message", "suspension"]
    parsed = parse_status_list_credential(doc)
    assert parsed.status_size == 2
    assert parsed.bitstring.get(7) == 2


def test_parse_credential_of_example_3() -> None:
    doc = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": LIST_URL,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": {"id": "did:example:12345", "name": "Example"},
        "validFrom": "2021-04-05T14:27:40Z",
        "credentialSubject": {
            "id": "https://example.com/status/3#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": EXAMPLE_3_LIST,
        },
    }
    parsed = parse_status_list_credential(doc)
    assert parsed.bitstring.data == bytes(16_384)
    assert parsed.issuer == "did:example:12345"
    assert parsed.id == LIST_URL
    assert parsed.is_valid_at(datetime(2022, 1, 1, tzinfo=UTC))
    assert not parsed.is_valid_at(datetime(2020, 1, 1, tzinfo=UTC))


def _mutated(path: str, value: object) -> dict[str, Any]:
    doc = list_credential()
    target = doc
    *parents, last = path.split(".")
    for p in parents:
        target = target[p]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("@context", ["https://www.w3.org/2018/credentials/v1"], "@context must be an array"),
        ("@context", _DELETE, "@context must be an array"),
        ("type", ["VerifiableCredential"], "type must include"),
        ("type", "BitstringStatusListCredential", "type must include"),
        ("issuer", "nobody", "issuer must be a URL"),
        ("issuer", {"name": "x"}, "issuer must be a URL"),
        ("validFrom", "2021-04-05", "validFrom must be an XML Schema dateTimeStamp"),
        ("validFrom", "2021-04-05T14:27:40", "validFrom must be an XML Schema dateTimeStamp"),
        ("validFrom", "2021-02-30T14:27:40Z", "validFrom must be an XML Schema dateTimeStamp"),
        ("validUntil", 1_700_000_000, "validUntil must be an XML Schema dateTimeStamp"),
        ("credentialSubject", [], "credentialSubject must be a single object"),
        ("credentialSubject.type", "StatusList2021", "type must be 'BitstringStatusList'"),
        ("credentialSubject.statusPurpose", [], "must not be an empty array"),
        ("credentialSubject.statusPurpose", 3, "statusPurpose must be a non-empty string"),
        ("credentialSubject.statusPurpose", _DELETE, "statusPurpose must be a non-empty"),
        ("credentialSubject.encodedList", _DELETE, "encodedList is required"),
        ("credentialSubject.encodedList", "zabc", "multibase prefix 'u'"),
        ("credentialSubject.ttl", -1, "ttl must be a non-negative integer"),
        ("credentialSubject.ttl", 1.5, "ttl must be a non-negative integer"),
        ("credentialSubject.statusPurpose", "message", "statusSize is required"),
        ("credentialSubject.statusSize", 0, "statusSize must be greater than zero"),
        ("credentialSubject.statusMessage", messages(2), "must have 2 elements"),
        ("credentialSubject.statusReference", "x", "statusReference must be a URL"),
        ("credentialSubject.id", "no", r"credentialSubject\.id must be a URL"),
        ("id", "no", "id must be a URL"),
    ],
)
def test_parse_credential_rejects(path: str, value: object, message: str) -> None:
    with pytest.raises(StatusMalformedValueError, match=message):
        parse_status_list_credential(_mutated(path, value))


def test_parse_credential_rejects_short_lists_and_non_objects() -> None:
    short = _mutated("credentialSubject.encodedList", encode_bitstring(bytes(1024)))
    with pytest.raises(StatusListLengthError, match="8192 entries"):
        parse_status_list_credential(short)
    assert parse_status_list_credential(short, min_entries=8192).bitstring.entries == 8192
    with pytest.raises(StatusMalformedValueError, match="must be a JSON object"):
        parse_status_list_credential("{}")


def test_builder_refuses_to_build_nonconforming_credentials() -> None:
    with pytest.raises(StatusMalformedValueError, match="statusSize is required"):
        list_credential(purpose="message")
    with pytest.raises(StatusMalformedValueError, match="validFrom must be"):
        build_status_list_credential(
            credential_id=LIST_URL,
            issuer="did:example:1",
            status_purpose="revocation",
            bitstring=EXAMPLE_3_LIST,
            valid_from="yesterday",
        )


# --- §3.2 validate algorithm ------------------------------------------------------------------


@pytest.fixture(scope="module")
def revoked_list() -> dict[str, Any]:
    bits = BitstringBuilder(MIN_ENTRIES)
    bits.set_many([94567, 0, 131_071], 1)
    return list_credential(bits.build(), purpose=["revocation", "suspension"])


def test_validate_reports_status_per_spec(revoked_list: dict[str, Any]) -> None:
    revoked = validate_status(entry_doc(), revoked_list, proofs_verified=True)
    assert revoked == StatusResult(status=1, purpose="revocation", valid=False)
    assert revoked.to_json() == {"status": 1, "purpose": "revocation", "valid": False}
    fine = validate_status(
        entry_doc(statusListIndex="94566", statusPurpose="suspension"),
        revoked_list,
        proofs_verified=True,
    )
    assert fine == StatusResult(status=0, purpose="suspension", valid=True, message=None)
    last = validate_status(entry_doc(statusListIndex="131071"), revoked_list, proofs_verified=True)
    assert last.status == 1


def test_validate_accepts_the_spec_example_list() -> None:
    result = validate_status(entry_doc(), list_credential(), proofs_verified=True)
    assert result == StatusResult(0, "revocation", True)


def test_validate_step_4_retrieval_and_proof_failures() -> None:
    with pytest.raises(StatusRetrievalError, match="could not be retrieved") as info:
        validate_status(entry_doc(), None, proofs_verified=False)
    assert info.value.problem()["type"] == (
        "https://www.w3.org/ns/credentials/status-list#STATUS_RETRIEVAL_ERROR"
    )
    with pytest.raises(StatusVerificationError, match="did not verify") as vinfo:
        validate_status(entry_doc(), list_credential(), proofs_verified=False)
    assert vinfo.value.what == "proof"
    assert vinfo.value.problem()["type"] == (
        "https://www.w3.org/ns/credentials/status-list#STATUS_VERIFICATION_ERROR"
    )


def test_validate_step_5_purpose_must_be_one_of_the_lists(revoked_list: dict[str, Any]) -> None:
    with pytest.raises(StatusVerificationError, match="'refresh' is not a purpose") as info:
        validate_status(entry_doc(statusPurpose="refresh"), revoked_list, proofs_verified=True)
    assert info.value.what == "statusPurpose"
    assert info.value.expected == "revocation | suspension"


def test_validate_status_size_must_match_a_declared_one() -> None:
    doc = list_credential(Bitstring.zeros(MIN_ENTRIES, 2), purpose="message")
    entry = entry_doc(statusPurpose="message", statusSize=4, statusMessage=messages(4))
    with pytest.raises(StatusVerificationError, match="statusSize 4 differs") as info:
        validate_status(entry, doc, proofs_verified=True)
    assert info.value.what == "statusSize"


def test_validate_step_9_length_is_counted_in_entries_of_status_size() -> None:
    entry = entry_doc(statusSize=2, statusMessage=messages(2), statusListIndex="5")
    with pytest.raises(StatusListLengthError, match="65536 entries of 2 bit") as info:
        validate_status(entry, list_credential(), proofs_verified=True)
    problem = info.value.problem()
    assert problem["type"] == (
        "https://www.w3.org/ns/credentials/status-list#STATUS_LIST_LENGTH_ERROR"
    )
    assert problem["status"] == 422
    assert problem["expected"] == ">= 131072 entries"
    lowered = validate_status(entry, list_credential(), proofs_verified=True, min_entries=65_536)
    assert lowered.status == 0
    short = _mutated("credentialSubject.encodedList", encode_bitstring(bytes(1024)))
    with pytest.raises(StatusListLengthError, match="8192 entries of 1 bit"):
        validate_status(entry_doc(statusListIndex="1"), short, proofs_verified=True)


def test_validate_step_10_range(revoked_list: dict[str, Any]) -> None:
    with pytest.raises(StatusRangeError, match="index 131072 is outside") as info:
        validate_status(entry_doc(statusListIndex="131072"), revoked_list, proofs_verified=True)
    problem = info.value.problem()
    assert problem["type"] == "https://www.w3.org/TR/vc-data-model#RANGE_ERROR"
    assert problem["actual"] == "131072"
    with pytest.raises(StatusRangeError):
        validate_status(entry_doc(statusListIndex="9" * 30), revoked_list, proofs_verified=True)
    # 3-bit entries over 131,072 * 3 bits: the last whole entry is 131,071.
    three = list_credential(Bitstring.zeros(MIN_ENTRIES, 3), purpose="message")
    entry = entry_doc(statusPurpose="message", statusSize=3, statusMessage=messages(3))
    assert validate_status({**entry, "statusListIndex": "131071"}, three, proofs_verified=True)
    with pytest.raises(StatusRangeError, match="outside the list of 131072 entries"):
        validate_status({**entry, "statusListIndex": "131072"}, three, proofs_verified=True)


def test_validate_malformed_values(revoked_list: dict[str, Any]) -> None:
    with pytest.raises(StatusMalformedValueError, match="without sign or leading zeros") as info:
        validate_status(entry_doc(statusListIndex="094567"), revoked_list, proofs_verified=True)
    problem = info.value.problem()
    assert problem["type"] == "https://www.w3.org/TR/vc-data-model#MALFORMED_VALUE_ERROR"
    assert problem["status"] == 400
    assert problem["property"] == "statusListIndex"
    broken = copy.deepcopy(revoked_list)
    broken["credentialSubject"]["encodedList"] += "="
    with pytest.raises(StatusMalformedValueError, match="padding"):
        validate_status(entry_doc(), broken, proofs_verified=True)


def test_validate_message_purpose_returns_the_message() -> None:
    bits = BitstringBuilder(MIN_ENTRIES, 2)
    bits.update({10: 2, 11: 3})
    doc = list_credential(bits.build(), purpose="message")
    items = [{"status": hex(v), "message": name} for v, name in enumerate("abcd")]
    entry = entry_doc(statusPurpose="message", statusSize=2, statusMessage=items)
    result = validate_status({**entry, "statusListIndex": "10"}, doc, proofs_verified=True)
    assert result == StatusResult(status=2, purpose="message", valid=False, message="c")
    assert result.to_json()["message"] == "c"
    zero = validate_status({**entry, "statusListIndex": "12"}, doc, proofs_verified=True)
    assert zero == StatusResult(0, "message", True, "a")


def test_validate_message_purpose_falls_back_to_list_then_defaults() -> None:
    one_bit = BitstringBuilder(MIN_ENTRIES)
    one_bit.set(3, 1)
    doc = list_credential(one_bit.build(), purpose="message", status_size=1)
    entry = entry_doc(statusPurpose="message", statusListIndex="3")
    assert validate_status(entry, doc, proofs_verified=True).message == "set"
    unset = validate_status({**entry, "statusListIndex": "4"}, doc, proofs_verified=True)
    assert unset.message == "unset"
    with_list_messages = list_credential(
        one_bit.build(),
        purpose="message",
        status_size=1,
        status_message=[StatusMessage(0, "ok"), StatusMessage(1, "flagged")],
    )
    assert validate_status(entry, with_list_messages, proofs_verified=True).message == "flagged"


def test_validate_with_a_cached_parsed_list_is_fast(revoked_list: dict[str, Any]) -> None:
    cached = parse_status_list_credential(revoked_list)
    assert isinstance(cached, BitstringStatusListCredential)
    entry = parse_status_entry(entry_doc())
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        result = validate_status(entry, cached, proofs_verified=True)
    per_check = (time.perf_counter() - started) / rounds
    assert result.status == 1
    assert per_check < 1e-3  # measured around 1-2 microseconds


def test_100k_status_changes_and_reencoding_are_fast() -> None:
    rng = random.Random(7)
    indexes = rng.sample(range(1_048_576), 100_000)
    started = time.perf_counter()
    b = BitstringBuilder(1_048_576)
    b.set_many(indexes, 1)
    encoded = b.encode()
    elapsed = time.perf_counter() - started
    assert decode_bitstring(encoded).nonzero_indexes() == sorted(indexes)
    assert elapsed < 2.0


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "uri", "status", "bases"),
    [
        (
            StatusRetrievalError("x"),
            "https://www.w3.org/ns/credentials/status-list#STATUS_RETRIEVAL_ERROR",
            502,
            (),
        ),
        (
            StatusVerificationError("x", what="proof"),
            "https://www.w3.org/ns/credentials/status-list#STATUS_VERIFICATION_ERROR",
            422,
            (VerificationError,),
        ),
        (
            StatusListLengthError("x", what="encodedList"),
            "https://www.w3.org/ns/credentials/status-list#STATUS_LIST_LENGTH_ERROR",
            422,
            (VerificationError,),
        ),
        (
            StatusRangeError("x", what="statusListIndex"),
            "https://www.w3.org/TR/vc-data-model#RANGE_ERROR",
            422,
            (VerificationError,),
        ),
        (
            StatusMalformedValueError("x"),
            "https://www.w3.org/TR/vc-data-model#MALFORMED_VALUE_ERROR",
            400,
            (EncodingError,),
        ),
        (
            StatusListTooLargeError("x"),
            "https://www.w3.org/TR/vc-data-model#MALFORMED_VALUE_ERROR",
            413,
            (EncodingError, LimitExceeded),
        ),
    ],
)
def test_errors_are_problem_details_with_the_spec_type_uris(
    error: StatusListError, uri: str, status: int, bases: tuple[type[AnchorError], ...]
) -> None:
    problem = error.problem(instance="/v1/status/3")
    assert problem["type"] == uri
    assert error.type_uri == uri
    assert problem["status"] == status
    assert problem["instance"] == "/v1/status/3"
    assert problem["detail"] == "x"
    assert problem["title"]
    assert isinstance(error, StatusListError)
    for base in bases:
        assert isinstance(error, base)
