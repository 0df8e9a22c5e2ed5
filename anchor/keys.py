"""Key files and key identifiers: Ed25519 keys as JWK, the chain account key as hex.

LER Anchor holds three kinds of private keys (the log's checkpoint key, the chain account
that sends anchor transactions, per-issuer status list keys). Each lives in a file that only
its owner can read, or comes from an environment variable. This module is the one place that
reads, writes and generates them.

Formats
    * Ed25519 (:class:`Ed25519Key`): a JSON Web Key per RFC 8037,
      ``{"kty": "OKP", "crv": "Ed25519", "x": ..., "d": ...}``, ``x`` and ``d`` base64url
      without padding. Parsing is strict: exact lengths, canonical base64url, and ``x`` must
      be the public key of ``d``.
    * secp256k1 (:class:`ChainAccountKey`): the 32-byte private key as ``0x`` + 64 hex
      digits, one line, loaded through eth-account.

Files
    Written atomically with mode ``0600``: a temporary file in the same directory, fsync,
    then a no-clobber link (or a rename when overwriting is asked for), then an fsync of the
    directory. An existing file is never replaced unless ``overwrite=True``. A file that its
    group or others can read or write is refused with the ``chmod 600 FILE`` to run.

Environment
    Library functions never read ``os.environ``: callers pass a variable's *value* to
    :func:`ed25519_key_from_text` / :func:`chain_account_from_text` / :func:`key_from_text`.
    :func:`from_env` is the one explicit exception, for callers that want exactly that.

did:key
    :func:`did_key_for` turns an Ed25519 public key into ``did:key:z6Mk...`` (multibase
    base58btc of the multicodec prefix ``0xed 0x01`` and the 32 key bytes);
    :func:`verification_method_id` gives its single verification method
    ``did:key:z...#z...``; :func:`public_key_from_did_key` decodes one back.

Secrets never appear in ``repr()``, ``str()`` or log records: key objects print their public
identifier only.

Every failure raises :class:`anchor.errors.ConfigError` (a key file or variable is missing
or wrong) or, for a malformed did:key, :class:`anchor.errors.InvalidInput`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import base58
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from anchor.core import jsonlimits
from anchor.errors import ConfigError, InvalidInput, LimitExceeded

if TYPE_CHECKING:  # eth_account costs ~0.5 s to import: loaded only for chain keys
    from eth_account.signers.local import LocalAccount

logger = logging.getLogger(__name__)

KeyKind = Literal["ed25519", "secp256k1"]
"""The kinds of key files: an Ed25519 JWK or a secp256k1 chain account key."""

ED25519: Final = "ed25519"
SECP256K1: Final = "secp256k1"
KEY_KINDS: Final[tuple[KeyKind, ...]] = ("ed25519", "secp256k1")

KEY_FILE_MODE: Final = 0o600
"""Permissions of every key file: read and write for the owner only."""

KEY_DIR_MODE: Final = 0o700
"""Permissions of a directory this module creates to hold key files."""

FORBIDDEN_MODE_BITS: Final = 0o077
"""Permission bits that make a key file unacceptable (any access by group or others)."""

DEFAULT_DATA_DIR: Final = Path("data")
"""Where the embedded default keeps its generated keys, relative to the working directory."""

ED25519_KEY_SIZE: Final = 32
"""Bytes of an Ed25519 private seed and of an Ed25519 public key."""

SECP256K1_KEY_SIZE: Final = 32
"""Bytes of a secp256k1 private key."""

JWK_KTY: Final = "OKP"
JWK_CRV: Final = "Ed25519"

MAX_KEY_TEXT_CHARS: Final = 4096
"""Longest key file or variable value accepted (a JWK is about 150 characters)."""

DID_KEY_PREFIX: Final = "did:key:"
MULTIBASE_BASE58BTC: Final = "z"
"""Multibase prefix of base58btc (the Bitcoin alphabet)."""
MULTICODEC_ED25519_PUB: Final = b"\xed\x01"
"""Unsigned-varint multicodec code 0xed (``ed25519-pub``)."""

_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")
_HEX_KEY_RE: Final = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")


# -- base64url (RFC 7515 §2: no padding) ------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, what: str) -> bytes:
    """Strict, canonical base64url without padding; ``what`` names the value in errors."""
    if not _B64URL_RE.fullmatch(text):
        raise ConfigError(
            f"{what} is not base64url without padding (only A-Z a-z 0-9 - _ are allowed)"
        )
    if len(text) % 4 == 1:
        raise ConfigError(f"{what} has an impossible base64url length ({len(text)} characters)")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise ConfigError(f"{what} is not canonical base64url (non-zero trailing bits)")
    return data


# -- did:key ----------------------------------------------------------------------------------


def did_key_for(public_key: bytes) -> str:
    """The did:key DID of a raw 32-byte Ed25519 public key (``did:key:z6Mk...``)."""
    if len(public_key) != ED25519_KEY_SIZE:
        raise InvalidInput(
            f"an Ed25519 public key is {ED25519_KEY_SIZE} bytes, got {len(public_key)}"
        )
    encoded = base58.b58encode(MULTICODEC_ED25519_PUB + public_key).decode("ascii")
    return DID_KEY_PREFIX + MULTIBASE_BASE58BTC + encoded


def verification_method_id(public_key: bytes) -> str:
    """The id of the single verification method of its did:key document:
    ``did:key:z6Mk...#z6Mk...`` (the fragment repeats the method-specific id)."""
    did = did_key_for(public_key)
    return f"{did}#{did.removeprefix(DID_KEY_PREFIX)}"


def public_key_from_did_key(did: str) -> bytes:
    """The raw Ed25519 public key a ``did:key:z6Mk...`` DID (without fragment) encodes."""
    if not did.startswith(DID_KEY_PREFIX):
        raise InvalidInput(f"{did!r} is not a did:key DID", hint="it must start with did:key:")
    value = did.removeprefix(DID_KEY_PREFIX)
    if not value.startswith(MULTIBASE_BASE58BTC):
        raise InvalidInput(
            f"the did:key value {value!r} is not multibase base58btc",
            hint="it must start with 'z'",
        )
    try:
        raw = base58.b58decode(value[1:])
    except ValueError as exc:
        raise InvalidInput(f"the did:key value {value!r} is not valid base58btc") from exc
    if not raw.startswith(MULTICODEC_ED25519_PUB):
        raise InvalidInput(f"{did} does not hold an Ed25519 public key (multicodec 0xed)")
    key = raw[len(MULTICODEC_ED25519_PUB) :]
    if len(key) != ED25519_KEY_SIZE:
        raise InvalidInput(
            f"{did} holds {len(key)} key bytes; an Ed25519 key is {ED25519_KEY_SIZE}"
        )
    return key


# -- key objects ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Ed25519Key:
    """An Ed25519 private key. ``repr()`` shows only its did:key; compare ``public_bytes``."""

    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> Ed25519Key:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Key:
        """The key with this 32-byte private seed (RFC 8032 ``d``)."""
        if len(seed) != ED25519_KEY_SIZE:
            raise ConfigError(
                f"an Ed25519 private key is {ED25519_KEY_SIZE} bytes, got {len(seed)}"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_jwk(cls, jwk: Any, *, source: str = "the JWK") -> Ed25519Key:
        """Parse an RFC 8037 private OKP JWK (a decoded JSON object)."""
        if not isinstance(jwk, dict):
            raise ConfigError(f"{source} is not a JSON object")
        if jwk.get("kty") != JWK_KTY:
            raise ConfigError(f'{source} has kty {jwk.get("kty")!r}, expected "{JWK_KTY}"')
        if jwk.get("crv") != JWK_CRV:
            raise ConfigError(f'{source} has crv {jwk.get("crv")!r}, expected "{JWK_CRV}"')
        members = {}
        for name in ("d", "x"):
            value = jwk.get(name)
            if not isinstance(value, str):
                hint = "it holds only a public key" if name == "d" else None
                raise ConfigError(f'{source} has no "{name}" string member', hint=hint)
            members[name] = b64url_decode(value, what=f'"{name}" of {source}')
            if len(members[name]) != ED25519_KEY_SIZE:
                raise ConfigError(
                    f'"{name}" of {source} is {len(members[name])} bytes, '
                    f"expected {ED25519_KEY_SIZE}"
                )
        key = cls.from_seed(members["d"])
        if not secrets.compare_digest(key.public_bytes, members["x"]):
            raise ConfigError(f'"x" of {source} is not the public key of its "d"')
        return key

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def did(self) -> str:
        """This key's did:key DID."""
        return did_key_for(self.public_bytes)

    @property
    def verification_method(self) -> str:
        """This key's did:key verification method id (``did:key:z...#z...``)."""
        return verification_method_id(self.public_bytes)

    def sign(self, data: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``data``."""
        return self.private_key.sign(data)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (no ``d``): safe to publish."""
        return {"kty": JWK_KTY, "crv": JWK_CRV, "x": b64url_encode(self.public_bytes)}

    def seed(self) -> bytes:
        """The 32-byte private seed (RFC 8032 ``d``). Secret: never log or return it."""
        return self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def private_jwk(self) -> dict[str, str]:
        """The private JWK, with ``d``. Secret: write it only with :func:`save_key`."""
        return {**self.public_jwk(), "d": b64url_encode(self.seed())}

    def __repr__(self) -> str:
        return f"Ed25519Key(did={self.did!r}, private=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class ChainAccountKey:
    """A secp256k1 chain account. ``repr()`` shows only the address."""

    account: LocalAccount = field(repr=False)

    @classmethod
    def generate(cls) -> ChainAccountKey:
        from eth_account import Account

        return cls(Account.create())

    @classmethod
    def from_hex(cls, text: str, *, source: str = "the value") -> ChainAccountKey:
        """Parse ``0x`` + 64 hex digits (the ``0x`` is optional)."""
        match = _HEX_KEY_RE.fullmatch(text.strip())
        if match is None:
            raise ConfigError(
                f"{source} is not a secp256k1 private key",
                hint="expected 0x followed by 64 hexadecimal digits on one line",
            )
        from eth_account import Account

        try:
            account = Account.from_key(bytes.fromhex(match.group(1)))
        except ValueError as exc:  # zero or not below the curve order
            raise ConfigError(f"{source} is out of range for a secp256k1 private key") from exc
        return cls(account)

    @property
    def address(self) -> str:
        """The checksummed account address (public)."""
        return str(self.account.address)

    def to_hex(self) -> str:
        """The private key as ``0x`` + 64 hex digits. Secret: write it only with
        :func:`save_key`."""
        return "0x" + bytes(self.account.key).hex()

    def __repr__(self) -> str:
        return f"ChainAccountKey(address={self.address!r}, private=<redacted>)"

    __str__ = __repr__


Key = Ed25519Key | ChainAccountKey
"""Any private key this module handles."""


# -- parsing from text (file contents or a variable's value) ----------------------------------


def _check_text(text: str, source: str) -> str:
    if len(text) > MAX_KEY_TEXT_CHARS:
        raise ConfigError(f"{source} is too long to be a key ({len(text)} characters)")
    if not text.strip():
        raise ConfigError(f"{source} is empty")
    return text


_JWK_HINT: Final = 'expected a JWK {"kty":"OKP","crv":"Ed25519",...}'


def ed25519_key_from_text(text: str, *, source: str = "the value") -> Ed25519Key:
    """An Ed25519 key from the text of a private JWK."""
    _check_text(text, source)
    try:
        jwk = jsonlimits.loads(text, max_bytes=MAX_KEY_TEXT_CHARS, what=source)
    except LimitExceeded as exc:
        raise ConfigError(exc.detail, hint=_JWK_HINT) from None
    except InvalidInput:
        raise ConfigError(f"{source} is not JSON", hint=_JWK_HINT) from None
    return Ed25519Key.from_jwk(jwk, source=source)


def chain_account_from_text(text: str, *, source: str = "the value") -> ChainAccountKey:
    """A chain account key from hex text."""
    return ChainAccountKey.from_hex(_check_text(text, source), source=source)


@overload
def key_from_text(text: str, kind: Literal["ed25519"], *, source: str = ...) -> Ed25519Key: ...
@overload
def key_from_text(
    text: str, kind: Literal["secp256k1"], *, source: str = ...
) -> ChainAccountKey: ...
@overload
def key_from_text(text: str, kind: KeyKind, *, source: str = ...) -> Key: ...
def key_from_text(text: str, kind: KeyKind, *, source: str = "the value") -> Key:
    """A key of ``kind`` from its text form (JWK JSON or hex)."""
    if kind == ED25519:
        return ed25519_key_from_text(text, source=source)
    if kind == SECP256K1:
        return chain_account_from_text(text, source=source)
    raise ConfigError(f"unknown key kind {kind!r}", hint=f"use one of {', '.join(KEY_KINDS)}")


def key_to_text(key: Key) -> str:
    """The text form written to a key file (one line and a newline)."""
    if isinstance(key, Ed25519Key):
        return json.dumps(key.private_jwk(), separators=(",", ":")) + "\n"
    return key.to_hex() + "\n"


@overload
def from_env(name: str, kind: Literal["ed25519"] = ...) -> Ed25519Key: ...
@overload
def from_env(name: str, kind: Literal["secp256k1"]) -> ChainAccountKey: ...
def from_env(name: str, kind: KeyKind = "ed25519") -> Key:
    """The key in environment variable ``name``: the one function here that reads
    ``os.environ``."""
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"environment variable {name} is not set",
            hint=f"set it to the key ({'a JWK' if kind == ED25519 else '0x + 64 hex digits'})",
        )
    return key_from_text(value, kind, source=f"environment variable {name}")


# -- files ------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key_file(path: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` to ``path`` with mode 0600, atomically; refuse an existing file unless
    ``overwrite``. Returns the path written."""
    target = Path(path)
    directory = target.parent
    directory.mkdir(mode=KEY_DIR_MODE, parents=True, exist_ok=True)
    if not overwrite and target.exists():
        raise ConfigError(
            f"refusing to overwrite the existing key file {target}",
            hint="move it away first, or ask explicitly to overwrite it",
        )
    temp = directory / f".{target.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, KEY_FILE_MODE)  # exactly 0600, whatever the umask
            data = text.encode("utf-8")
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target)  # fails if the target appeared meanwhile
            except FileExistsError as exc:
                raise ConfigError(
                    f"refusing to overwrite the existing key file {target}",
                    hint="another process created it first",
                ) from exc
            except OSError:  # a file system without hard links
                if target.exists():
                    raise ConfigError(
                        f"refusing to overwrite the existing key file {target}"
                    ) from None
                os.replace(temp, target)
        _fsync_dir(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return target


def read_key_file(path: str | os.PathLike[str]) -> str:
    """The text of a key file, refusing one that group or others can access."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(
            f"key file {target} does not exist",
            hint="create it, point the configuration at the right file, "
            "or let the embedded default generate one",
        ) from None
    except PermissionError:
        raise ConfigError(
            f"key file {target} cannot be read by this user",
            hint=f"run the service as the owner of {target}",
        ) from None
    except OSError as exc:  # not a file one can open (a socket, a FIFO's device), I/O error
        raise ConfigError(
            f"key file {target} cannot be opened ({exc.strerror or type(exc).__name__})",
            hint=f"make {target} a regular file readable by this user",
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"key file {target} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if os.name != "nt" and mode & FORBIDDEN_MODE_BITS:
            raise ConfigError(
                f"key file {target} has mode {mode:04o}: group or others can access it",
                hint=f"chmod 600 {target}",
            )
        chunks = []
        total = 0
        while chunk := os.read(fd, MAX_KEY_TEXT_CHARS + 1):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_KEY_TEXT_CHARS:
                raise ConfigError(f"key file {target} is too large to be a key file")
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"key file {target} is not UTF-8 text") from exc


@overload
def load_key(path: str | os.PathLike[str], kind: Literal["ed25519"]) -> Ed25519Key: ...
@overload
def load_key(path: str | os.PathLike[str], kind: Literal["secp256k1"]) -> ChainAccountKey: ...
@overload
def load_key(path: str | os.PathLike[str], kind: KeyKind) -> Key: ...
def load_key(path: str | os.PathLike[str], kind: KeyKind) -> Key:
    """The key of ``kind`` in the file at ``path`` (mode must be 0600 or stricter)."""
    return key_from_text(read_key_file(path), kind, source=f"key file {Path(path)}")


def save_key(key: Key, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``key`` to ``path`` (mode 0600, atomic, no overwrite unless asked)."""
    return write_key_file(path, key_to_text(key), overwrite=overwrite)


def load_ed25519_key(path: str | os.PathLike[str]) -> Ed25519Key:
    return load_key(path, "ed25519")


def load_chain_account(path: str | os.PathLike[str]) -> ChainAccountKey:
    return load_key(path, "secp256k1")


def public_identifier(key: Key) -> str:
    """What may be shown about a key: its did:key or its account address."""
    return key.did if isinstance(key, Ed25519Key) else key.address


@overload
def generate_if_missing(
    path: str | os.PathLike[str], kind: Literal["ed25519"]
) -> tuple[Ed25519Key, bool]: ...
@overload
def generate_if_missing(
    path: str | os.PathLike[str], kind: Literal["secp256k1"]
) -> tuple[ChainAccountKey, bool]: ...
@overload
def generate_if_missing(path: str | os.PathLike[str], kind: KeyKind) -> tuple[Key, bool]: ...
def generate_if_missing(path: str | os.PathLike[str], kind: KeyKind) -> tuple[Key, bool]:
    """Load the key at ``path``, or generate, save (0600) and announce a new one.

    Returns ``(key, created)``. A new key is logged at WARNING with its path and public
    identifier (never the key itself), so that an operator notices it and backs it up.
    """
    if kind not in KEY_KINDS:
        raise ConfigError(f"unknown key kind {kind!r}", hint=f"use one of {', '.join(KEY_KINDS)}")
    target = Path(path)
    if target.exists():
        return load_key(target, kind), False
    key: Key = Ed25519Key.generate() if kind == ED25519 else ChainAccountKey.generate()
    try:
        save_key(key, target)
    except ConfigError:
        if target.exists():  # another process generated it first: use theirs
            return load_key(target, kind), False
        raise
    logger.warning(
        "generated a new %s key in %s (%s); keep a backup of this file",
        kind,
        target,
        public_identifier(key),
    )
    return key, True


# -- P-256 issuer keys (ecdsa-sd-2023) ---------------------------------------------------------

P256_JWK_KTY: Final = "EC"
P256_JWK_CRV: Final = "P-256"
MULTICODEC_P256_PUB: Final = b"\x80\x24"
"""Multicodec ``p256-pub`` (0x1200) as an unsigned varint: did:key ``zDn...``."""


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class P256Key:
    """A P-256 private key for ``ecdsa-sd-2023`` proofs, stored as an RFC 7518 EC JWK
    ``{"kty": "EC", "crv": "P-256", "x", "y", "d"}``. ``repr()`` shows only its did:key."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> P256Key:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_jwk(cls, jwk: Any, *, source: str = "the JWK") -> P256Key:
        if not isinstance(jwk, dict):
            raise ConfigError(f"{source} is not a JSON object")
        if jwk.get("kty") != P256_JWK_KTY or jwk.get("crv") != P256_JWK_CRV:
            raise ConfigError(f'{source} is not a P-256 EC JWK (kty "EC", crv "P-256")')
        members = {}
        for name in ("d", "x", "y"):
            value = jwk.get(name)
            if not isinstance(value, str):
                hint = "it holds only a public key" if name == "d" else None
                raise ConfigError(f'{source} has no "{name}" string member', hint=hint)
            members[name] = b64url_decode(value, what=f'"{name}" of {source}')
            if len(members[name]) != 32:
                raise ConfigError(f'"{name}" of {source} is not 32 bytes')
        try:
            key = ec.derive_private_key(int.from_bytes(members["d"], "big"), ec.SECP256R1())
        except ValueError as exc:
            raise ConfigError(f'"d" of {source} is not a P-256 private key') from exc
        numbers = key.public_key().public_numbers()
        if (numbers.x, numbers.y) != (
            int.from_bytes(members["x"], "big"),
            int.from_bytes(members["y"], "big"),
        ):
            raise ConfigError(f'"x", "y" of {source} are not the public key of its "d"')
        return cls(key)

    def private_jwk(self) -> dict[str, str]:
        numbers = self.private_key.private_numbers()
        return {
            "kty": P256_JWK_KTY,
            "crv": P256_JWK_CRV,
            "x": b64url_encode(numbers.public_numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.public_numbers.y.to_bytes(32, "big")),
            "d": b64url_encode(numbers.private_value.to_bytes(32, "big")),
        }

    @property
    def public_bytes(self) -> bytes:
        """The 33-byte SEC1 compressed public key."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )

    @property
    def did(self) -> str:
        """This key's did:key DID (``did:key:zDn...``)."""
        return "did:key:z" + base58.b58encode(MULTICODEC_P256_PUB + self.public_bytes).decode()

    @property
    def verification_method(self) -> str:
        """Its did:key verification method ``did:key:zDn...#zDn...``."""
        return f"{self.did}#{self.did.removeprefix('did:key:')}"

    def __repr__(self) -> str:
        return f"P256Key({self.did})"


def save_p256_key(key: P256Key, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a P-256 key as its JWK (mode 0600, atomic, no overwrite unless asked)."""
    text = json.dumps(key.private_jwk(), separators=(",", ":")) + "\n"
    return write_key_file(path, text, overwrite=overwrite)


def load_p256_key(path: str | os.PathLike[str]) -> P256Key:
    """The P-256 key in the JWK file at ``path`` (mode must be 0600 or stricter)."""
    source = f"key file {Path(path)}"
    text = _check_text(read_key_file(path), source)
    try:
        jwk = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not JSON", hint="expected a P-256 EC JWK") from exc
    return P256Key.from_jwk(jwk, source=source)
