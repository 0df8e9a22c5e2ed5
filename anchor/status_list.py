"""W3C Bitstring Status List v1.0 (Recommendation, 15 May 2025), pure.

https://www.w3.org/TR/2025/REC-vc-bitstring-status-list-20250515/

What lives here (no I/O: fetching a list and checking its proof belong to the caller):

* :class:`Bitstring` / :class:`BitstringBuilder`: the uncompressed list. Entry ``i`` of a
  list with ``statusSize`` ``s`` occupies bits ``[i*s, (i+1)*s)``; bit 0 is the most
  significant bit of byte 0 (§2.2 ``encodedList``, §7.1 "Bitstring Encoding"). A status
  value is read most significant bit first. Bits left over at the end (when ``8 * bytes`` is
  not a multiple of ``s``) are padding and belong to no entry.
* :func:`encode_bitstring` / :func:`decode_bitstring`: §3.3 step 3 and §3.4, GZIP
  (RFC 1952) then Multibase base64url without padding (prefix ``u``). Decoding refuses
  anything that is not exactly one canonical encoding and enforces
  :data:`MAX_BITSTRING_BYTES` *while* inflating, so a GZIP bomb costs no more memory than
  the limit.
* :class:`BitstringStatusListEntry` (§2.1) and :class:`BitstringStatusListCredential`
  (§2.2) with their parsers, and :func:`build_status_list_credential` (unsigned, VC Data
  Model 2.0; sign it with :mod:`anchor.data_integrity`).
* :func:`validate_status`: the Validate Algorithm of §3.2 with the errors of §3.5 (the
  classes in :mod:`anchor.errors` whose ``problem()`` carries the spec's ``type`` URI).

Minimum length (§3.2 step 2 and step 9): a list must hold at least ``min_entries`` entries
(:data:`MIN_ENTRIES` = 131,072 unless an ecosystem sets another bound), counted as
``bits // statusSize``: a list with ``statusSize`` 2 needs 262,144 bits (32 KB). With the
default bound every list is also at least the 16 KB that §2.2 requires of ``encodedList``.

Every violation of a MUST of §2 is a :class:`~anchor.errors.StatusMalformedValueError`
(``MALFORMED_VALUE_ERROR``, §3) whose ``property`` and ``reason`` members say which value
and what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from anchor.data_integrity import is_datetime_stamp
from anchor.errors import (
    StatusListLengthError,
    StatusListTooLargeError,
    StatusMalformedValueError,
    StatusRangeError,
    StatusRetrievalError,
    StatusVerificationError,
)

# --- limits and constants ----------------------------------------------------------------

MIN_ENTRIES: Final = 131_072
"""§3.2 step 2 ``minimumNumberOfEntries``: the default smallest list, in entries (16 KB of
1-bit entries). Every function that checks it takes ``min_entries`` to change it."""

MAX_STATUS_SIZE: Final = 8
"""Largest ``statusSize`` supported, in bits (the spec allows any positive integer and lets
processors support only 1; status values here are therefore 0..255)."""

MAX_ENTRIES: Final = 16_777_216
"""Most entries a list built here may hold (2**24, whatever its ``statusSize``)."""

MAX_BITSTRING_BYTES: Final = MAX_ENTRIES * MAX_STATUS_SIZE // 8
"""Decompressed-size limit (16 MiB): room for :data:`MAX_ENTRIES` entries of
:data:`MAX_STATUS_SIZE` bits. :func:`decode_bitstring` stops inflating one byte past it and
refuses the list, so a GZIP bomb never allocates more than this."""

MAX_COMPRESSED_BYTES: Final = MAX_BITSTRING_BYTES + 65_536
"""Largest GZIP member accepted: incompressible data of :data:`MAX_BITSTRING_BYTES` plus
deflate's stored-block overhead (5 bytes per 64 KiB) and the GZIP header and trailer."""

MAX_ENCODED_LIST_CHARS: Final = 1 + (4 * MAX_COMPRESSED_BYTES + 2) // 3
"""Longest ``encodedList`` accepted (multibase prefix + unpadded base64url of
:data:`MAX_COMPRESSED_BYTES`); longer strings are refused before decoding anything."""

MAX_INDEX_DIGITS: Final = 1_000
"""Longest ``statusListIndex`` string parsed (the spec's integers are of arbitrary size, but
any index past a few digits is out of range of every list this module accepts)."""

GZIP_LEVEL: Final = 9
"""Default deflate level of :func:`encode_bitstring`: lists are encoded once per change and
fetched many times, so the smallest output wins (levels 4-9 all reproduce the spec's
all-zero Example 3 byte for byte)."""

MULTIBASE_BASE64URL: Final = "u"
"""Multibase prefix of base64url without padding, the only one §2.2 allows."""

CREDENTIALS_V2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
"""First ``@context`` value of every VC Data Model 2.0 credential."""

STATUS_PURPOSES: Final = ("refresh", "revocation", "suspension", "message")
"""The purposes §2.1 defines; other strings are allowed and carried through unchanged."""

DEFAULT_STATUS_MESSAGES: Final = {0: "unset", 1: "set"}
"""§2.1: the messages of a 1-bit status when no ``statusMessage`` is given."""

# GZIP member header written by encode_bitstring: magic, CM=8 (deflate), no flags,
# MTIME=0 (deterministic), XFL=0, OS=3 (Unix), as in the spec's Example 3.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
_GZIP_MAGIC: Final = b"\x1f\x8b\x08"

_NONZERO_BYTE_RE = re.compile(rb"[^\x00]")
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_INDEX_RE = re.compile(r"0|[1-9][0-9]*")
_HEX_STATUS_RE = re.compile(r"0x([0-9a-fA-F]{1,16})")
# RFC 3986 §3.1 scheme, then no whitespace or control characters (https:, did:, urn: ...).
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]+")


def _malformed(prop: str, reason: str, detail: str) -> StatusMalformedValueError:
    return StatusMalformedValueError(detail, property=prop, reason=reason)


def _check_status_size(size: object, prop: str = "statusSize") -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise _malformed(prop, "not-an-integer", f"{prop} must be an integer, got {size!r}")
    if size < 1:
        raise _malformed(prop, "not-positive", f"{prop} must be greater than zero, got {size}")
    if size > MAX_STATUS_SIZE:
        raise StatusListTooLargeError(
            f"{prop} {size} is larger than the {MAX_STATUS_SIZE} bits supported",
            property=prop,
            reason="status-size-unsupported",
        )
    return size


def _check_min_entries(min_entries: object) -> int:
    if not isinstance(min_entries, int) or isinstance(min_entries, bool) or min_entries < 0:
        raise ValueError(f"min_entries must be a non-negative integer, got {min_entries!r}")
    return min_entries


def _require_length(entries: int, status_size: int, min_entries: int, what: str) -> None:
    if entries < min_entries:
        raise StatusListLengthError(
            f"the status list holds {entries} entries of {status_size} bit(s), fewer than "
            f"the {min_entries} required for herd privacy",
            what=what,
            expected=f">= {min_entries} entries",
            actual=str(entries),
            hint="issue lists of at least the minimum length (131,072 entries by default)",
        )


# --- the bitstring -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bitstring:
    """An uncompressed status list: ``data`` read as entries of ``status_size`` bits.

    Immutable; get a :class:`BitstringBuilder` (:meth:`builder`) to change entries. Equal
    bitstrings have equal ``data`` and ``status_size``.
    """

    data: bytes
    status_size: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            raise TypeError(f"Bitstring data must be bytes, got {type(self.data).__name__}")
        _check_status_size(self.status_size)
        if len(self.data) > MAX_BITSTRING_BYTES:
            raise StatusListTooLargeError(
                f"a bitstring of {len(self.data)} bytes exceeds the limit of "
                f"{MAX_BITSTRING_BYTES} bytes",
                property="encodedList",
                reason="too-large",
            )

    @classmethod
    def zeros(
        cls, entries: int, status_size: int = 1, *, min_entries: int = MIN_ENTRIES
    ) -> Bitstring:
        """A list of ``entries`` entries, all 0 (§3.3 step 1)."""
        return BitstringBuilder(entries, status_size, min_entries=min_entries).build()

    @property
    def entries(self) -> int:
        """Number of whole entries (``bits // status_size``)."""
        return (len(self.data) << 3) // self.status_size

    @property
    def bit_length(self) -> int:
        """Number of bits in the bitstring."""
        return len(self.data) << 3

    def __len__(self) -> int:
        return (len(self.data) << 3) // self.status_size

    def get(self, index: int) -> int:
        """The status value of entry ``index``; :class:`StatusRangeError` if there is none."""
        if type(index) is not int:
            raise TypeError(f"a status list index is an int, got {type(index).__name__}")
        if index < 0 or (index + 1) * self.status_size > len(self.data) << 3:
            raise _range_error(index, self.entries)
        return _get(self.data, self.status_size, index)

    __getitem__ = get

    def with_status_size(self, status_size: int) -> Bitstring:
        """The same bits read as entries of ``status_size`` bits (no copy)."""
        if status_size == self.status_size:
            return self
        return Bitstring(self.data, status_size)

    def builder(self) -> BitstringBuilder:
        """A mutable copy of this bitstring."""
        return BitstringBuilder.from_bitstring(self)

    def nonzero_indexes(self) -> list[int]:
        """Indexes of the entries whose status is not 0, in increasing order.

        Finds the non-zero bytes at C speed, so it costs little on a sparse list.
        """
        out: list[int] = []
        size = self.status_size
        entries = self.entries
        data = self.data
        for match in _NONZERO_BYTE_RE.finditer(data):
            start = match.start() << 3
            first = start // size
            last = min(entries - 1, (start + 7) // size)
            for index in range(max(first, out[-1] + 1 if out else 0), last + 1):
                if _get(data, size, index):
                    out.append(index)
        return out

    def encode(self, *, level: int = GZIP_LEVEL) -> str:
        """This bitstring as an ``encodedList`` value (:func:`encode_bitstring`)."""
        return encode_bitstring(self.data, level=level)

    @classmethod
    def decode(
        cls,
        encoded: str,
        status_size: int = 1,
        *,
        min_entries: int = MIN_ENTRIES,
        max_bytes: int = MAX_BITSTRING_BYTES,
    ) -> Bitstring:
        """Same as :func:`decode_bitstring`."""
        return decode_bitstring(encoded, status_size, min_entries=min_entries, max_bytes=max_bytes)


def _get(data: bytes | bytearray, size: int, index: int) -> int:
    """Entry ``index`` of ``size`` bits, most significant bit first (index already checked).

    An entry of at most 8 bits spans at most two bytes: read them as a 16-bit window.
    """
    if size == 1:
        return (data[index >> 3] >> (7 - (index & 7))) & 1
    offset = index * size
    byte = offset >> 3
    window = data[byte] << 8
    if byte + 1 < len(data):
        window |= data[byte + 1]
    return (window >> (16 - (offset & 7) - size)) & ((1 << size) - 1)


def _range_error(index: int, entries: int) -> StatusRangeError:
    return StatusRangeError(
        f"status list index {index} is outside the list of {entries} entries",
        what="statusListIndex",
        expected=f"0 <= index < {entries}",
        actual=str(index),
    )


class BitstringBuilder:
    """A mutable bitstring for building a list and applying batches of status changes.

    Every get and set is O(1). :meth:`update` and :meth:`set_many` apply a batch with one
    tight loop over the changes (never over the list); :meth:`build` copies the bytes once.
    """

    __slots__ = ("_buf", "_entries", "_size")

    def __init__(
        self, entries: int, status_size: int = 1, *, min_entries: int = MIN_ENTRIES
    ) -> None:
        size = _check_status_size(status_size)
        if not isinstance(entries, int) or isinstance(entries, bool) or entries < 0:
            raise ValueError(f"entries must be a non-negative integer, got {entries!r}")
        if entries > MAX_ENTRIES:
            raise StatusListTooLargeError(
                f"{entries} entries exceed the limit of {MAX_ENTRIES} per list",
                property="encodedList",
                reason="too-many-entries",
            )
        _require_length(entries, size, _check_min_entries(min_entries), "entries")
        self._size = size
        self._buf = bytearray((entries * size + 7) >> 3)
        self._entries = (len(self._buf) << 3) // size

    @classmethod
    def from_bitstring(cls, bitstring: Bitstring) -> BitstringBuilder:
        """A builder holding a copy of ``bitstring``."""
        builder = cls.__new__(cls)
        builder._size = bitstring.status_size
        builder._buf = bytearray(bitstring.data)
        builder._entries = bitstring.entries
        return builder

    @property
    def status_size(self) -> int:
        return self._size

    @property
    def entries(self) -> int:
        """Number of whole entries (at least the number asked for; padding bits of the last
        byte form extra entries when they are wide enough)."""
        return self._entries

    def __len__(self) -> int:
        return self._entries

    def get(self, index: int) -> int:
        """The status value of entry ``index``."""
        if type(index) is not int:
            raise TypeError(f"a status list index is an int, got {type(index).__name__}")
        if not 0 <= index < self._entries:
            raise _range_error(index, self._entries)
        return _get(self._buf, self._size, index)

    def set(self, index: int, value: int) -> None:
        """Set entry ``index`` to ``value`` (0 .. 2**status_size - 1)."""
        self._check(index, value)
        self._put(index, value)

    def _check(self, index: int, value: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"a status list index is an int, got {type(index).__name__}")
        if not 0 <= index < self._entries:
            raise _range_error(index, self._entries)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value < (1 << self._size)
        ):
            raise _malformed(
                "status",
                "out-of-range",
                f"a {self._size}-bit status must be in 0..{(1 << self._size) - 1}, got {value!r}",
            )

    def _put(self, index: int, value: int) -> None:
        buf = self._buf
        size = self._size
        if size == 1:
            byte = index >> 3
            bit = 0x80 >> (index & 7)
            if value:
                buf[byte] |= bit
            else:
                buf[byte] &= ~bit & 0xFF
            return
        if size == 8:
            buf[index] = value
            return
        offset = index * size
        byte = offset >> 3
        shift = 16 - (offset & 7) - size
        mask = ((1 << size) - 1) << shift
        two = byte + 1 < len(buf)
        window = (buf[byte] << 8) | (buf[byte + 1] if two else 0)
        window = (window & ~mask) | (value << shift)
        buf[byte] = window >> 8
        if two:
            buf[byte + 1] = window & 0xFF

    def set_many(self, indexes: Iterable[int], value: int) -> None:
        """Set every entry in ``indexes`` to the same ``value`` (all checked first: on an
        error nothing is changed)."""
        idx = list(indexes)
        self._check_batch(idx, (value,))
        buf = self._buf
        if self._size == 1:
            if value:
                for i in idx:
                    buf[i >> 3] |= 0x80 >> (i & 7)
            else:
                for i in idx:
                    buf[i >> 3] &= ~(0x80 >> (i & 7)) & 0xFF
            return
        put = self._put
        for i in idx:
            put(i, value)

    def update(self, changes: Mapping[int, int] | Iterable[tuple[int, int]]) -> None:
        """Apply ``{index: value}`` changes (or ``(index, value)`` pairs, the last one wins).
        All are checked before any is applied."""
        pairs = list(changes.items()) if isinstance(changes, Mapping) else list(changes)
        self._check_batch([p[0] for p in pairs], [p[1] for p in pairs])
        put = self._put
        for i, v in pairs:
            put(i, v)

    def _check_batch(self, indexes: list[int], values: Sequence[int]) -> None:
        entries = self._entries
        limit = 1 << self._size
        for i in indexes:
            if type(i) is not int:
                raise TypeError(f"a status list index is an int, got {type(i).__name__}")
        if indexes and (min(indexes) < 0 or max(indexes) >= entries):
            bad = next(i for i in indexes if not 0 <= i < entries)
            raise _range_error(bad, entries)
        for v in values:
            if type(v) is not int or not 0 <= v < limit:
                raise _malformed(
                    "status",
                    "out-of-range",
                    f"a {self._size}-bit status must be in 0..{limit - 1}, got {v!r}",
                )

    def build(self) -> Bitstring:
        """An immutable snapshot of the current bits."""
        return Bitstring(bytes(self._buf), self._size)

    def encode(self, *, level: int = GZIP_LEVEL) -> str:
        """The current bits as an ``encodedList`` value (:func:`encode_bitstring`)."""
        return encode_bitstring(self._buf, level=level)


# --- encoding (§3.3 step 3, §3.4) ------------------------------------------------------------


def encode_bitstring(data: bytes | bytearray | Bitstring, *, level: int = GZIP_LEVEL) -> str:
    """GZIP-compress the bitstring and Multibase-encode it as base64url without padding.

    The output is deterministic (MTIME 0, fixed header) so equal lists give equal strings
    (and ETags); an all-zero 131,072-bit list gives exactly the spec's Example 3. ``level``
    (1-9) trades size for time: 9 makes sparse lists about a quarter smaller than 6 and
    costs at most about a second, for a full 16 MiB list.
    """
    raw = data.data if isinstance(data, Bitstring) else bytes(data)
    if len(raw) > MAX_BITSTRING_BYTES:
        raise StatusListTooLargeError(
            f"a bitstring of {len(raw)} bytes exceeds the limit of {MAX_BITSTRING_BYTES}",
            property="encodedList",
            reason="too-large",
        )
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(raw) + deflater.flush()
    trailer = struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)
    member = _GZIP_HEADER + body + trailer
    return MULTIBASE_BASE64URL + base64.urlsafe_b64encode(member).rstrip(b"=").decode("ascii")


def expand_bitstring(encoded: str, *, max_bytes: int = MAX_BITSTRING_BYTES) -> bytes:
    """§3.4 Bitstring Expansion Algorithm: Multibase-decode, then GUNZIP, to raw bytes.

    Refuses, each with its own ``reason``: a non-string, a prefix other than ``u``
    (``multibase-prefix``), ``=`` padding (``padding``), characters outside base64url or an
    impossible length (``base64url``), non-zero unused bits in the last character
    (``non-canonical``), data that is not a GZIP member (``not-gzip``), a corrupt or
    truncated member (``gzip-corrupt``, ``gzip-truncated``), anything after the member,
    including a second member (``trailing-data``), and more than ``max_bytes`` once
    inflated (``too-large``, found without inflating more than ``max_bytes + 1`` bytes).
    """
    prop = "credentialSubject.encodedList"
    if not isinstance(encoded, str):
        raise _malformed(prop, "not-a-string", f"encodedList must be a string, got {encoded!r}")
    if len(encoded) > MAX_ENCODED_LIST_CHARS:
        raise StatusListTooLargeError(
            f"encodedList of {len(encoded)} characters exceeds the limit of "
            f"{MAX_ENCODED_LIST_CHARS}",
            property=prop,
            reason="too-large",
        )
    if not encoded.startswith(MULTIBASE_BASE64URL):
        raise _malformed(
            prop,
            "multibase-prefix",
            f"encodedList must start with the multibase prefix 'u' (base64url, no padding), "
            f"got {encoded[:1]!r}",
        )
    text = encoded[1:]
    if "=" in text:
        raise _malformed(prop, "padding", "encodedList must be base64url without '=' padding")
    if not _BASE64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise _malformed(
            prop, "base64url", "encodedList is not valid base64url (alphabet A-Z a-z 0-9 - _)"
        )
    try:
        member = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - prevented by the regex
        raise _malformed(prop, "base64url", f"encodedList is not valid base64url: {exc}") from None
    if base64.urlsafe_b64encode(member).rstrip(b"=").decode("ascii") != text:
        raise _malformed(
            prop, "non-canonical", "encodedList has non-zero unused bits in its last character"
        )
    if not member.startswith(_GZIP_MAGIC):
        raise _malformed(prop, "not-gzip", "encodedList does not hold a GZIP (RFC 1952) member")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # GZIP wrapper only; checks CRC, ISIZE
    try:
        out = inflater.decompress(member, max_bytes + 1)
    except zlib.error as exc:
        raise _malformed(prop, "gzip-corrupt", f"encodedList GZIP data is corrupt: {exc}") from None
    if len(out) > max_bytes:
        raise StatusListTooLargeError(
            f"encodedList inflates to more than the limit of {max_bytes} bytes",
            property=prop,
            reason="too-large",
        )
    if not inflater.eof:
        raise _malformed(prop, "gzip-truncated", "encodedList GZIP member is truncated")
    if inflater.unused_data:
        raise _malformed(
            prop,
            "trailing-data",
            f"{len(inflater.unused_data)} byte(s) follow the GZIP member in encodedList",
        )
    return out


def decode_bitstring(
    encoded: str,
    status_size: int = 1,
    *,
    min_entries: int = MIN_ENTRIES,
    max_bytes: int = MAX_BITSTRING_BYTES,
) -> Bitstring:
    """Decode an ``encodedList`` (:func:`expand_bitstring`) into a :class:`Bitstring` of
    ``status_size``-bit entries, refusing lists shorter than ``min_entries`` entries with
    ``STATUS_LIST_LENGTH_ERROR`` (pass ``min_entries=0`` to skip that check). ``max_bytes``
    can only lower :data:`MAX_BITSTRING_BYTES`."""
    size = _check_status_size(status_size)
    minimum = _check_min_entries(min_entries)
    bits = Bitstring(expand_bitstring(encoded, max_bytes=min(max_bytes, MAX_BITSTRING_BYTES)), size)
    _require_length(bits.entries, size, minimum, "encodedList")
    return bits


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
        raise _malformed(prop, "not-a-url", f"{prop} must be a URL, got {value!r}")
    return value


def _check_url_or_urls(value: object, prop: str) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return _check_url(value, prop)
    if isinstance(value, list | tuple) and value:
        return tuple(_check_url(v, f"{prop}[{i}]") for i, v in enumerate(value))
    raise _malformed(prop, "not-a-url", f"{prop} must be a URL or a non-empty array of URLs")


def _check_datetime(value: object, prop: str) -> str:
    if not isinstance(value, str) or not is_datetime_stamp(value):
        raise _malformed(
            prop, "not-a-datetime", f"{prop} must be an XML Schema dateTimeStamp, got {value!r}"
        )
    return value


def _check_purpose(value: object, prop: str) -> str:
    if not isinstance(value, str) or not value:
        raise _malformed(prop, "not-a-string", f"{prop} must be a non-empty string")
    return value


def _parse_status_messages(value: object, status_size: int, prop: str) -> tuple[StatusMessage, ...]:
    count = 1 << status_size
    if not isinstance(value, list | tuple):
        raise _malformed(prop, "not-an-array", f"{prop} must be an array")
    if len(value) != count:
        raise _malformed(
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
                raise _malformed(
                    f"{where}.status",
                    "not-hex",
                    f"{where}.status must be a hexadecimal string prefixed with 0x, "
                    f"got {raw_status!r}",
                )
            status = int(match.group(1), 16)
            message = item.get("message")
        else:
            raise _malformed(where, "not-an-object", f"{where} must be an object")
        if not isinstance(message, str):
            raise _malformed(
                f"{where}.message", "not-a-string", f"{where}.message must be a string"
            )
        if not 0 <= status < count:
            raise _malformed(
                f"{where}.status",
                "out-of-range",
                f"{where}.status 0x{status:x} does not fit in {status_size} bit(s)",
            )
        if status in seen:
            raise _malformed(
                f"{where}.status", "duplicate", f"{where}.status 0x{status:x} appears twice"
            )
        seen.add(status)
        messages.append(StatusMessage(status, message))
    return tuple(messages)


def _message_for(messages: Sequence[StatusMessage], status: int) -> str | None:
    return next((m.message for m in messages if m.status == status), None)


def _parse_index(value: object, prop: str = "statusListIndex") -> int:
    if not isinstance(value, str):
        raise _malformed(
            prop, "not-a-string", f"{prop} must be a base-10 integer in a string, got {value!r}"
        )
    if len(value) > MAX_INDEX_DIGITS:
        raise StatusListTooLargeError(
            f"{prop} has more than {MAX_INDEX_DIGITS} digits", property=prop, reason="too-large"
        )
    if not _INDEX_RE.fullmatch(value):
        raise _malformed(
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
            raise _malformed(
                "statusListIndex", "not-base10", f"statusListIndex must be >= 0, got {index!r}"
            )
        _check_url(self.status_list_credential, "statusListCredential")
        _check_status_size(self.status_size)
        if self.status_message:
            object.__setattr__(
                self,
                "status_message",
                _parse_status_messages(self.status_message, self.status_size, "statusMessage"),
            )
        elif self.status_size > 1:
            raise _malformed(
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
                raise _malformed(
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
        raise _malformed("credentialStatus", "not-an-object", "credentialStatus must be an object")
    if doc.get("type") != BitstringStatusListEntry.TYPE:
        raise _malformed(
            "type",
            "wrong-type",
            f"type must be {BitstringStatusListEntry.TYPE!r}, got {doc.get('type')!r}",
        )
    for required in ("statusPurpose", "statusListIndex", "statusListCredential"):
        if required not in doc:
            raise _malformed(required, "missing", f"{required} is required")
    size = _check_status_size(doc.get("statusSize", 1))
    messages: tuple[StatusMessage, ...] = ()
    if "statusMessage" in doc:
        messages = _parse_status_messages(doc["statusMessage"], size, "statusMessage")
    entry_id = doc.get("id")
    if "id" in doc and not isinstance(entry_id, str):
        raise _malformed("id", "not-a-url", "id must be a URL")
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
        raise _malformed(
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
        raise _malformed("", "not-an-object", "a status list credential must be a JSON object")
    contexts = _context_list(doc.get("@context"))
    if not contexts or contexts[0] != CREDENTIALS_V2_CONTEXT:
        raise _malformed(
            "@context",
            "wrong-context",
            f"@context must be an array starting with {CREDENTIALS_V2_CONTEXT!r}",
        )
    types = _context_list(doc.get("type"))
    if "VerifiableCredential" not in types or BitstringStatusListCredential.TYPE not in types:
        raise _malformed(
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
        raise _malformed(
            "credentialSubject", "not-an-object", "credentialSubject must be a single object"
        )
    sp = "credentialSubject."
    if subject.get("type") != BitstringStatusListCredential.SUBJECT_TYPE:
        raise _malformed(sp + "type", "wrong-type", f"{sp}type must be 'BitstringStatusList'")
    subject_id = subject.get("id")
    if subject_id is not None:
        _check_url(subject_id, sp + "id")
    raw_purpose = subject.get("statusPurpose")
    if isinstance(raw_purpose, list | tuple):
        if not raw_purpose:
            raise _malformed(
                sp + "statusPurpose", "empty", f"{sp}statusPurpose must not be an empty array"
            )
        purposes = tuple(
            _check_purpose(p, f"{sp}statusPurpose[{i}]") for i, p in enumerate(raw_purpose)
        )
    else:
        purposes = (_check_purpose(raw_purpose, sp + "statusPurpose"),)
    if "encodedList" not in subject:
        raise _malformed(sp + "encodedList", "missing", f"{sp}encodedList is required")
    ttl = subject.get("ttl")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
        raise _malformed(
            sp + "ttl", "not-an-integer", f"{sp}ttl must be a non-negative integer of ms"
        )
    declared_size: int | None = None
    if "statusSize" in subject:
        declared_size = _check_status_size(subject["statusSize"], sp + "statusSize")
    elif "message" in purposes:
        raise _malformed(
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
    Add the proof with :func:`anchor.data_integrity.create_proof`.
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
    minimum = _check_min_entries(min_entries)  # step 2
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
    _require_length(bits.entries, size, minimum, "encodedList")  # step 9
    index = parsed_entry.status_list_index  # step 7
    if (index + 1) * size > bits.bit_length:  # step 10
        raise _range_error(index, bits.entries)
    status = bits.get(index)
    message: str | None = None
    if purpose == "message":  # step 13: the entry's statusMessage, else the list's
        message = _message_for(parsed_entry.status_message, status)
        if message is None:
            message = _message_for(listing.status_message, status)
        if message is None and size == 1:
            message = DEFAULT_STATUS_MESSAGES[status]
    return StatusResult(status=status, purpose=purpose, valid=status == 0, message=message)
