"""The canonical byte encoding of a log entry (pure).

An entry binds what was anchored, by whom, and as what. Its bytes are the leaf input of the
Merkle log (``leaf = SHA-256(0x00 || entry)``), so there is exactly one encoding of each entry
and the decoder refuses everything else.

Version 1 layout (all integers big-endian)::

    offset  size  field
    0       1     version            0x01
    1       1     kind               0x01 credential, 0x02 status-list (0x00 and 0x03-0xff
                                     are reserved for later versions and refused by v1)
    2       1     digest algorithm   0x12 (the multihash code of SHA-256)
    3       1     digest length      0x20 (32)
    4       32    digest             bytes 2..35 are thus the digest's multihash
    36      2     submitter length   L, 1..MAX_DID_LENGTH
    38      L     submitter DID      ASCII, DID Core syntax ``did:<method>:<id>``

Nothing may follow. Total size: ``38 + L`` bytes.

Digest encodings of the ``credential`` kind (the log stores 32 bytes; the issuer and every
verifier agree on what they are the SHA-256 of):

* an ``eddsa-jcs-2022`` (or unsecured) credential: its RFC 8785 canonical JSON, proof included;
* an ``ecdsa-sd-2023`` credential: its 64-byte base signature (``r || s``, the first component
  of the proof value), which the signed credential and every derived disclosure of it carry
  unchanged, so a verifier recomputes the digest from any disclosed copy and finds the same
  entry (:func:`anchor.vc.credentials.digest`).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from anchor.errors import EncodingError

ENTRY_VERSION = 1
"""The only encoding version this module reads and writes."""

SHA256_MULTIHASH_CODE = 0x12
"""Multihash code of SHA-256, the only digest algorithm of version 1."""

DIGEST_SIZE = 32
"""Bytes in a SHA-256 digest."""

MAX_DID_LENGTH = 2048
"""Longest submitter DID accepted, in bytes (did:web and did:ethr DIDs are far shorter)."""

_HEADER = 4 + DIGEST_SIZE + 2
MAX_ENTRY_SIZE = _HEADER + MAX_DID_LENGTH
"""Largest valid entry, in bytes."""

# DID Core §3.1: did:<method-name>:<method-specific-id>, method-name = 1*(%x61-7A / DIGIT),
# method-specific-id = *( *idchar ":" ) 1*idchar, idchar = ALPHA / DIGIT / "." / "-" / "_" /
# pct-encoded.
_DID_RE = re.compile(
    r"did:[a-z0-9]+:(?:(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})*:)*(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+"
)
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")


class EntryKind(enum.IntEnum):
    """What an entry's digest is the digest of."""

    CREDENTIAL = 1
    """A verifiable credential (SHA-256 of its RFC 8785 canonical JSON; for ``ecdsa-sd-2023``
    SHA-256 of its base signature; or any 32 bytes the issuer chooses to anchor)."""
    STATUS_LIST = 2
    """A published version of a Bitstring Status List credential."""

    @property
    def label(self) -> str:
        """The wire name: ``credential`` or ``status-list``."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> EntryKind:
        for kind in cls:
            if kind.label == label:
                return kind
        raise EncodingError(
            f"unknown entry kind {label!r}",
            hint="use one of: " + ", ".join(k.label for k in cls),
        )


@functools.lru_cache(maxsize=4096)
def check_did(did: str) -> str:
    """Return ``did`` if it is a syntactically valid DID (no path, query or fragment).
    Cached: a log sees few distinct submitters and many entries."""
    if len(did) > MAX_DID_LENGTH:
        raise EncodingError(f"DID is {len(did)} characters, longer than {MAX_DID_LENGTH}")
    if not _DID_RE.fullmatch(did):
        raise EncodingError(f"{did[:80]!r} is not a DID", hint="expected did:<method>:<identifier>")
    return did


_HEADERS = {
    kind: bytes((ENTRY_VERSION, kind, SHA256_MULTIHASH_CODE, DIGEST_SIZE)) for kind in EntryKind
}


@functools.lru_cache(maxsize=4096)
def _did_field(did: str) -> bytes:
    """Length-prefixed submitter DID (cached: a log has few submitters and many entries)."""
    raw = did.encode("ascii")
    return len(raw).to_bytes(2, "big") + raw


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry: ``kind``, a SHA-256 ``digest`` and the ``submitter``'s DID."""

    kind: EntryKind
    digest: bytes
    submitter: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, EntryKind):
            raise EncodingError(f"entry kind {self.kind!r} is not an EntryKind")
        if len(self.digest) != DIGEST_SIZE:
            raise EncodingError(f"digest is {len(self.digest)} bytes, not {DIGEST_SIZE}")
        check_did(self.submitter)

    def encode(self) -> bytes:
        """The canonical version-1 bytes (see the module docstring)."""
        return _HEADERS[self.kind] + self.digest + _did_field(self.submitter)


def decode(data: bytes) -> Entry:
    """Parse canonical version-1 entry bytes; anything else raises :class:`EncodingError`."""
    if len(data) > MAX_ENTRY_SIZE:
        raise EncodingError(f"entry is {len(data)} bytes, more than {MAX_ENTRY_SIZE}")
    if len(data) < _HEADER + 1:
        raise EncodingError(f"entry is {len(data)} bytes, shorter than the smallest entry")
    if data[0] != ENTRY_VERSION:
        raise EncodingError(f"unsupported entry version {data[0]}")
    try:
        kind = EntryKind(data[1])
    except ValueError:
        raise EncodingError(f"unknown entry kind byte 0x{data[1]:02x}") from None
    if data[2] != SHA256_MULTIHASH_CODE:
        raise EncodingError(f"unsupported digest algorithm 0x{data[2]:02x}")
    if data[3] != DIGEST_SIZE:
        raise EncodingError(f"digest length byte is {data[3]}, not {DIGEST_SIZE}")
    did_len = int.from_bytes(data[4 + DIGEST_SIZE : _HEADER], "big")
    if did_len == 0:
        raise EncodingError("submitter DID is empty")
    end = _HEADER + did_len
    if len(data) < end:
        raise EncodingError(f"entry is truncated: DID needs {did_len} bytes")
    if len(data) > end:
        raise EncodingError(f"{len(data) - end} trailing bytes after the entry")
    try:
        did = data[_HEADER:end].decode("ascii")
    except UnicodeDecodeError:
        raise EncodingError("submitter DID is not ASCII") from None
    return Entry(kind, bytes(data[4 : 4 + DIGEST_SIZE]), did)


def parse_digest(text: str) -> bytes:
    """A SHA-256 digest from 64 hex characters (either case), else :class:`EncodingError`."""
    if len(text) != 2 * DIGEST_SIZE:
        raise EncodingError(
            f"digest {text[:80]!r} is {len(text)} characters, not {2 * DIGEST_SIZE} hex digits"
        )
    if not _HEX_RE.fullmatch(text):
        raise EncodingError(f"digest {text!r} is not hexadecimal")
    return bytes.fromhex(text)
