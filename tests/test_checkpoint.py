"""C2SP signed-note checkpoints: format, sign, verify, and one error per malformed note."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from anchor.core.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    ed25519_key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint_text,
    parse_note,
)
from anchor.errors import CheckpointFormatError, VerificationError

ORIGIN = "ler-anchor.example/log"
SEED = hashlib.sha256(b"checkpoint key").digest()
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, SEED)


def test_format_matches_the_spec(signer: NoteSigner) -> None:
    note = Checkpoint(ORIGIN, 20852163, ROOT).sign(signer)
    text, sig_line = note.split("\n\n")
    assert text == f"{ORIGIN}\n20852163\n{base64.b64encode(ROOT).decode()}"
    assert sig_line.startswith(f"\u2014 {ORIGIN} ")
    assert sig_line.endswith("\n")
    blob = base64.b64decode(sig_line.split(" ")[2])
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
    assert blob[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert blob[:4] == ed25519_key_id(ORIGIN, public)
    assert len(blob) == 68


def test_round_trip_with_extensions(signer: NoteSigner) -> None:
    cp = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "ext-two"))
    assert open_checkpoint(cp.sign(signer), signer.verifier) == cp


def test_vkey_round_trip(signer: NoteSigner) -> None:
    vkey = signer.verifier.vkey()
    assert vkey.startswith(ORIGIN + "+")
    assert NoteVerifier.from_vkey(vkey) == signer.verifier
    assert "redacted" in repr(signer)
    assert SEED.hex() not in repr(signer)


def test_go_note_vector() -> None:
    """The signed-note example key and note of Go's golang.org/x/mod/sumdb/note docs."""
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    note = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
        "\n"
        "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
        "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    parsed = open_note(note, [NoteVerifier.from_vkey(vkey)])
    assert parsed.text.startswith("If you think")


def test_wrong_key_and_tampering(signer: NoteSigner) -> None:
    note = Checkpoint(ORIGIN, 5, ROOT).sign(signer)
    other = NoteSigner(ORIGIN, hashlib.sha256(b"other").digest())
    with pytest.raises(VerificationError, match="no signature by a known key"):
        open_checkpoint(note, other.verifier)
    tampered = note.replace("\n5\n", "\n6\n")
    with pytest.raises(VerificationError, match="does not verify"):
        open_checkpoint(tampered, signer.verifier)
    foreign = NoteSigner("elsewhere.example/log", SEED)
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(Checkpoint(ORIGIN, 5, ROOT).sign(foreign), foreign.verifier)


def test_unknown_signatures_are_ignored(signer: NoteSigner) -> None:
    cp = Checkpoint(ORIGIN, 9, ROOT)
    witness = NoteSigner("witness.example/w1", hashlib.sha256(b"w").digest())
    note = cp.sign(signer) + witness.sign(cp.text()).line()
    assert open_checkpoint(note, signer.verifier) == cp
    assert len(parse_note(note).signatures) == 2


GOOD = f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}\n"


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GOOD, "no blank line"),
        (GOOD + "\n", "no signature lines"),
        (GOOD + "\n— name AAAA\n".replace("\n", "", 0)[:-1], "does not end with a newline"),
        (GOOD + "\n- name " + "A" * 92 + "\n", "does not start with"),
        (GOOD + "\n— name\n", "is not '— <name> <base64>'"),
        (GOOD + "\n— na+me " + "A" * 92 + "\n", "contains a space or"),
        (GOOD + "\n— name not*base64\n", "not valid base64"),
        (GOOD + "\n— name AAAAAB==\n", "not canonical base64"),
        (GOOD + "\n— name AAAA\n", "shorter than a key ID"),
        (GOOD.replace("7", "\t7") + "\n— name AAAAAAA=\n", "control character"),
        (b"\xff\xfe" + GOOD.encode(), "not valid UTF-8"),
        ("x" * 20000, "more than"),
    ],
)
def test_parse_note_rejects(note: str | bytes, message: str) -> None:
    with pytest.raises(CheckpointFormatError, match=message):
        parse_note(note)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n7\n", "needs at least 3"),
        (f"\n7\n{base64.b64encode(ROOT).decode()}\n", "origin line is empty"),
        (f"{ORIGIN}\n07\n{base64.b64encode(ROOT).decode()}\n", "leading zeros"),
        (f"{ORIGIN}\n-7\n{base64.b64encode(ROOT).decode()}\n", "not a decimal"),
        (f"{ORIGIN}\n99999999999999999999\n{base64.b64encode(ROOT).decode()}\n", "not a decimal"),
        (f"{ORIGIN}\n9223372036854775808\n{base64.b64encode(ROOT).decode()}\n", "larger than"),
        (f"{ORIGIN}\n7\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}\n\n", "empty extension line"),
        (f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}", "does not end with a newline"),
    ],
)
def test_parse_checkpoint_rejects(text: str, message: str) -> None:
    with pytest.raises(CheckpointFormatError, match=message):
        parse_checkpoint_text(text)


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("name+c74f20a3", "must be <name>"),
        ("name+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("name+c74f20a3+" + base64.b64encode(bytes(33)).decode(), "not an Ed25519 key"),
    ],
)
def test_vkey_rejects(vkey: str, message: str) -> None:
    with pytest.raises(CheckpointFormatError, match=message):
        NoteVerifier.from_vkey(vkey)
