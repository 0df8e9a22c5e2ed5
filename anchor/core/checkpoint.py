"""C2SP signed notes and tlog checkpoints with Ed25519 signatures (pure).

A checkpoint (c2sp.org/tlog-checkpoint) is a signed note (c2sp.org/signed-note) whose text is::

    <origin>\\n<tree size>\\n<base64 root hash>\\n[<extension line>\\n ...]

followed by a blank line and one or more signature lines
``— <key name> <base64(4-byte key ID || signature)>``. Ed25519 key IDs are
``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``; the signature covers the note text
including its final newline. Verifier keys travel as ``<name>+<hex key ID>+<base64(0x01 ||
public key)>`` (the Go ``note`` package's vkey form).

Parsing is strict: every malformed note raises :class:`~anchor.errors.CheckpointFormatError`
saying what was wrong; a note with no valid signature from the expected key raises
:class:`~anchor.errors.VerificationError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from anchor.core.merkle import HASH_SIZE, MAX_TREE_SIZE
from anchor.errors import CheckpointFormatError, VerificationError, What

MAX_NOTE_SIZE = 16 * 1024
"""Largest signed note accepted, in bytes (a checkpoint with 16 Ed25519 signatures is ~2 KB)."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec asks verifiers to take at least 16)."""

SIG_TYPE_ED25519 = 0x01
"""The signed-note signature type byte of Ed25519."""

ED25519_SIGNATURE_SIZE = 64
_EM_DASH_PREFIX = "\u2014 "
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")
_SPACE_RE = re.compile(r"\s")


def _b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 §4) with padding, canonical: re-encoding gives ``text``."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointFormatError(f"{what} is not valid base64: {text[:60]!r}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointFormatError(f"{what} is not canonical base64: {text[:60]!r}")
    return raw


def check_key_name(name: str) -> str:
    """A key name must be non-empty, with no Unicode space and no ``+``."""
    if not name:
        raise CheckpointFormatError("key name is empty")
    if _SPACE_RE.search(name) or "+" in name:
        raise CheckpointFormatError(f"key name {name!r} contains a space or '+'")
    return name


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x01 || public_key)[:4]``."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([SIG_TYPE_ED25519]) + public_key
    ).digest()[:4]


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, the 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_EM_DASH_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """An Ed25519 note verifier: key name, key ID and 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        check_key_name(name)
        if len(public_key) != 32:
            raise CheckpointFormatError(f"Ed25519 public key is {len(public_key)} bytes, not 32")
        return cls(name, ed25519_key_id(name, public_key), public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<8 hex key ID>+<base64(0x01 || key)>``."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise CheckpointFormatError("verifier key must be <name>+<key id>+<key>")
        name, hex_id, b64 = parts
        check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise CheckpointFormatError(f"verifier key ID {hex_id!r} is not 8 lowercase hex")
        raw = _b64decode_strict(b64, "verifier key")
        if len(raw) != 33 or raw[0] != SIG_TYPE_ED25519:
            raise CheckpointFormatError("verifier key is not an Ed25519 key (0x01 || 32 bytes)")
        verifier = cls.from_public_key(name, raw[1:])
        if verifier.key_id.hex() != hex_id:
            raise CheckpointFormatError(
                f"verifier key ID {hex_id} does not match its key ({verifier.key_id.hex()})"
            )
        return verifier

    def vkey(self) -> str:
        blob = base64.b64encode(bytes([SIG_TYPE_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify(self, text: str, sig: NoteSignature) -> None:
        """Raise :class:`VerificationError` unless ``sig`` is this key's signature of ``text``."""
        if sig.name != self.name or sig.key_id != self.key_id:
            raise VerificationError(
                f"signature is by {sig.name}+{sig.key_id.hex()}, not by this key",
                what=What.SIGNATURE,
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                sig.signature, text.encode("utf-8")
            )
        except InvalidSignature:
            raise VerificationError(
                f"Ed25519 signature by {self.name} does not verify",
                what=What.SIGNATURE,
            ) from None


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 note signer (holds the 32-byte private seed; never print it)."""

    name: str
    private_key: bytes

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, private_key=<redacted>)"

    @property
    def verifier(self) -> NoteVerifier:
        public = Ed25519PrivateKey.from_private_bytes(self.private_key).public_key()
        return NoteVerifier.from_public_key(self.name, public.public_bytes_raw())

    def sign(self, text: str) -> NoteSignature:
        signature = Ed25519PrivateKey.from_private_bytes(self.private_key).sign(
            text.encode("utf-8")
        )
        return NoteSignature(self.name, self.verifier.key_id, signature)


# --- Signed notes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed, not yet verified, signed note."""

    text: str
    signatures: tuple[NoteSignature, ...]


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into its text and signature lines, checking the format only."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_SIZE:
            raise CheckpointFormatError(f"note is {len(note)} bytes, more than {MAX_NOTE_SIZE}")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointFormatError("note is not valid UTF-8") from None
    if len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise CheckpointFormatError(f"note is more than {MAX_NOTE_SIZE} bytes")
    if any(c < " " and c != "\n" for c in note):
        raise CheckpointFormatError("note contains a control character other than newline")
    if not note.endswith("\n"):
        raise CheckpointFormatError("note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointFormatError("note has no blank line before its signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not text.strip("\n"):
        raise CheckpointFormatError("note text is empty")
    lines = sig_block.split("\n")[:-1]
    if not lines:
        raise CheckpointFormatError("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointFormatError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = []
    for line in lines:
        if not line.startswith(_EM_DASH_PREFIX):
            raise CheckpointFormatError(f"signature line does not start with '— ': {line[:60]!r}")
        fields = line[len(_EM_DASH_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise CheckpointFormatError(f"signature line is not '— <name> <base64>': {line[:60]!r}")
        name, blob = fields
        check_key_name(name)
        raw = _b64decode_strict(blob, "signature")
        if len(raw) < 5:
            raise CheckpointFormatError("signature is shorter than a key ID and one byte")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> Note:
    """Parse ``note`` and verify it: every signature by a known key must verify, and at least
    one must exist. Signatures by unknown keys are ignored, as the spec requires."""
    return verify_note(parse_note(note), verifiers)


def verify_note(parsed: Note, verifiers: Sequence[NoteVerifier]) -> Note:
    """Verify a note already parsed (:func:`parse_note`), as :func:`open_note` does:
    ``parsed`` itself, or :class:`VerificationError` (``what`` ``signature``)."""
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = 0
    for sig in parsed.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if len(sig.signature) != ED25519_SIGNATURE_SIZE:
            raise VerificationError(
                f"Ed25519 signature by {sig.name} is {len(sig.signature)} bytes, not 64",
                what=What.SIGNATURE,
            )
        verifier.verify(parsed.text, sig)
        verified += 1
    if not verified:
        names = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in verifiers) or "none"
        raise VerificationError(
            f"note carries no signature by a known key (known: {names})", what=What.SIGNATURE
        )
    return parsed


# --- Checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, size and RFC 6962 root, plus optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointFormatError("checkpoint origin must be one non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointFormatError(f"tree size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointFormatError(f"root hash is {len(self.root)} bytes, not {HASH_SIZE}")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointFormatError("extension lines must be non-empty single lines")

    def text(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in newline."""
        root_b64 = base64.b64encode(self.root).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root_b64, *self.extensions)
        )

    def sign(self, signer: NoteSigner) -> str:
        """The whole signed note."""
        text = self.text()
        return text + "\n" + signer.sign(text).line()


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (what precedes the blank line)."""
    if not text.endswith("\n"):
        raise CheckpointFormatError("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointFormatError(f"checkpoint has {len(lines)} lines, needs at least 3")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise CheckpointFormatError("checkpoint origin line is empty")
    if not _SIZE_RE.fullmatch(size_text):
        raise CheckpointFormatError(
            f"tree size {size_text[:30]!r} is not a decimal number without leading zeros"
        )
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise CheckpointFormatError(f"tree size {size} is larger than {MAX_TREE_SIZE}")
    root_hash = _b64decode_strict(root_text, "root hash")
    if len(root_hash) != HASH_SIZE:
        raise CheckpointFormatError(f"root hash is {len(root_hash)} bytes, not {HASH_SIZE}")
    for ext in extensions:
        if not ext:
            raise CheckpointFormatError("checkpoint has an empty extension line")
    return Checkpoint(origin, size, root_hash, tuple(extensions))


def open_checkpoint(
    note: str | bytes, verifier: NoteVerifier, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note with ``verifier`` and parse it.

    ``origin`` defaults to the verifier's key name (the spec's convention); a checkpoint for
    another origin raises :class:`VerificationError`.
    """
    parsed = open_note(note, [verifier])
    checkpoint = parse_checkpoint_text(parsed.text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise VerificationError(
            f"checkpoint origin {checkpoint.origin!r} is not {expected!r}",
            what="origin",
            expected=expected,
            actual=checkpoint.origin,
        )
    return checkpoint
