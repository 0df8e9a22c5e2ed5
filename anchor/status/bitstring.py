"""W3C Bitstring Status List v1.0 (Recommendation, 15 May 2025): the bitstring. Pure.

https://www.w3.org/TR/2025/REC-vc-bitstring-status-list-20250515/

What lives here (no I/O; the status-list credential that carries a bitstring is
:mod:`anchor.status.credential`):

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
* The shared checks of sizes and lengths (:func:`check_status_size`,
  :func:`require_length`) and the errors they raise.

Minimum length (§3.2 step 2 and step 9): a list must hold at least ``min_entries`` entries
(:data:`MIN_ENTRIES` = 131,072 unless an ecosystem sets another bound), counted as
``bits // statusSize``: a list with ``statusSize`` 2 needs 262,144 bits (32 KB). With the
default bound every list is also at least the 16 KB that §2.2 requires of ``encodedList``.

Cost: get and set are O(1); encoding and decoding are linear in the list's bytes (at most
:data:`MAX_BITSTRING_BYTES`).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from anchor.errors import (
    StatusListLengthError,
    StatusListTooLargeError,
    StatusMalformedValueError,
    StatusRangeError,
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

GZIP_LEVEL: Final = 9
"""Default deflate level of :func:`encode_bitstring`: lists are encoded once per change and
fetched many times, so the smallest output wins (levels 4-9 all reproduce the spec's
all-zero Example 3 byte for byte)."""

MULTIBASE_BASE64URL: Final = "u"
"""Multibase prefix of base64url without padding, the only one §2.2 allows."""

# GZIP member header written by encode_bitstring: magic, CM=8 (deflate), no flags,
# MTIME=0 (deterministic), XFL=0, OS=3 (Unix), as in the spec's Example 3.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
_GZIP_MAGIC: Final = b"\x1f\x8b\x08"

_NONZERO_BYTE_RE = re.compile(rb"[^\x00]")
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


def malformed(prop: str, reason: str, detail: str) -> StatusMalformedValueError:
    return StatusMalformedValueError(detail, property=prop, reason=reason)


def check_status_size(size: object, prop: str = "statusSize") -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise malformed(prop, "not-an-integer", f"{prop} must be an integer, got {size!r}")
    if size < 1:
        raise malformed(prop, "not-positive", f"{prop} must be greater than zero, got {size}")
    if size > MAX_STATUS_SIZE:
        raise StatusListTooLargeError(
            f"{prop} {size} is larger than the {MAX_STATUS_SIZE} bits supported",
            property=prop,
            reason="status-size-unsupported",
        )
    return size


def check_min_entries(min_entries: object) -> int:
    if not isinstance(min_entries, int) or isinstance(min_entries, bool) or min_entries < 0:
        raise ValueError(f"min_entries must be a non-negative integer, got {min_entries!r}")
    return min_entries


def require_length(entries: int, status_size: int, min_entries: int, what: str) -> None:
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
        check_status_size(self.status_size)
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
            raise range_error(index, self.entries)
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


def range_error(index: int, entries: int) -> StatusRangeError:
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
        size = check_status_size(status_size)
        if not isinstance(entries, int) or isinstance(entries, bool) or entries < 0:
            raise ValueError(f"entries must be a non-negative integer, got {entries!r}")
        if entries > MAX_ENTRIES:
            raise StatusListTooLargeError(
                f"{entries} entries exceed the limit of {MAX_ENTRIES} per list",
                property="encodedList",
                reason="too-many-entries",
            )
        require_length(entries, size, check_min_entries(min_entries), "entries")
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
            raise range_error(index, self._entries)
        return _get(self._buf, self._size, index)

    def set(self, index: int, value: int) -> None:
        """Set entry ``index`` to ``value`` (0 .. 2**status_size - 1)."""
        self._check(index, value)
        self._put(index, value)

    def _check(self, index: int, value: int) -> None:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"a status list index is an int, got {type(index).__name__}")
        if not 0 <= index < self._entries:
            raise range_error(index, self._entries)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value < (1 << self._size)
        ):
            raise malformed(
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
            raise range_error(bad, entries)
        for v in values:
            if type(v) is not int or not 0 <= v < limit:
                raise malformed(
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
        raise malformed(prop, "not-a-string", f"encodedList must be a string, got {encoded!r}")
    if len(encoded) > MAX_ENCODED_LIST_CHARS:
        raise StatusListTooLargeError(
            f"encodedList of {len(encoded)} characters exceeds the limit of "
            f"{MAX_ENCODED_LIST_CHARS}",
            property=prop,
            reason="too-large",
        )
    if not encoded.startswith(MULTIBASE_BASE64URL):
        raise malformed(
            prop,
            "multibase-prefix",
            f"encodedList must start with the multibase prefix 'u' (base64url, no padding), "
            f"got {encoded[:1]!r}",
        )
    text = encoded[1:]
    if "=" in text:
        raise malformed(prop, "padding", "encodedList must be base64url without '=' padding")
    if not _BASE64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise malformed(
            prop, "base64url", "encodedList is not valid base64url (alphabet A-Z a-z 0-9 - _)"
        )
    try:
        member = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - prevented by the regex
        raise malformed(prop, "base64url", f"encodedList is not valid base64url: {exc}") from None
    if base64.urlsafe_b64encode(member).rstrip(b"=").decode("ascii") != text:
        raise malformed(
            prop, "non-canonical", "encodedList has non-zero unused bits in its last character"
        )
    if not member.startswith(_GZIP_MAGIC):
        raise malformed(prop, "not-gzip", "encodedList does not hold a GZIP (RFC 1952) member")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # GZIP wrapper only; checks CRC, ISIZE
    try:
        out = inflater.decompress(member, max_bytes + 1)
    except zlib.error as exc:
        raise malformed(prop, "gzip-corrupt", f"encodedList GZIP data is corrupt: {exc}") from None
    if len(out) > max_bytes:
        raise StatusListTooLargeError(
            f"encodedList inflates to more than the limit of {max_bytes} bytes",
            property=prop,
            reason="too-large",
        )
    if not inflater.eof:
        raise malformed(prop, "gzip-truncated", "encodedList GZIP member is truncated")
    if inflater.unused_data:
        raise malformed(
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
    size = check_status_size(status_size)
    minimum = check_min_entries(min_entries)
    bits = Bitstring(expand_bitstring(encoded, max_bytes=min(max_bytes, MAX_BITSTRING_BYTES)), size)
    require_length(bits.entries, size, minimum, "encodedList")
    return bits
