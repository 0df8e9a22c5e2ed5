"""Key files and identifiers: RFC 8037 JWK vectors, did:key vectors, 0600 files, redaction."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
from pathlib import Path
from typing import Any

import base58
import pytest

from anchor.errors import ConfigError, InvalidInput
from anchor.keys import (
    KEY_FILE_MODE,
    ChainAccountKey,
    Ed25519Key,
    b64url_decode,
    b64url_encode,
    chain_account_from_text,
    did_key_for,
    ed25519_key_from_text,
    from_env,
    generate_if_missing,
    key_from_text,
    load_chain_account,
    load_ed25519_key,
    load_key,
    public_key_from_did_key,
    read_key_file,
    save_key,
    verification_method_id,
    write_key_file,
)

VECTORS = Path(__file__).parent / "vectors" / "did-key"

# RFC 8037 Appendix A.1 (private key), A.2 (public key) and A.4 (an Ed25519 signature).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_SIGNING_INPUT = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
RFC8037_SIGNATURE = (
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "d": RFC8037_D, "x": RFC8037_X}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _ed25519_vectors() -> list[tuple[str, dict[str, Any]]]:
    data = json.loads((VECTORS / "ed25519-x25519.json").read_text())
    return [(did, v) for did, v in data.items() if did.startswith("did:key:z6Mk")]


# --- did:key --------------------------------------------------------------------------------


@pytest.mark.parametrize(("did", "vector"), _ed25519_vectors())
def test_did_key_vectors(did: str, vector: dict[str, Any]) -> None:
    key = Ed25519Key.from_seed(bytes.fromhex(vector["seed"]))
    pair = vector["verificationKeyPair"]
    if "publicKeyJwk" in pair:
        public = b64url_decode(pair["publicKeyJwk"]["x"], what="x")
        from_jwk = Ed25519Key.from_jwk(pair["privateKeyJwk"])
        assert from_jwk.public_bytes == public
        assert from_jwk.private_jwk() == pair["privateKeyJwk"]
    else:
        public = base58.b58decode(pair["publicKeyBase58"])
    assert key.public_bytes == public
    assert did_key_for(public) == did == key.did
    document = vector["didDocument"]
    assert verification_method_id(public) == document["verificationMethod"][0]["id"]
    assert key.verification_method in document["authentication"]
    assert key.verification_method == f"{did}#{did.removeprefix('did:key:')}"
    assert public_key_from_did_key(did) == public


def test_ed25519_vectors_present() -> None:
    assert len(_ed25519_vectors()) >= 3


def test_did_key_for_rejects_wrong_length() -> None:
    with pytest.raises(InvalidInput, match="is 32 bytes, got 33"):
        did_key_for(b"\x01" * 33)


def test_did_key_decoding_rejects_other_methods() -> None:
    with pytest.raises(InvalidInput, match="is not a did:key DID"):
        public_key_from_did_key("did:web:example.com")


def test_did_key_decoding_rejects_other_multibase() -> None:
    with pytest.raises(InvalidInput, match="not multibase base58btc"):
        public_key_from_did_key("did:key:u7QE")


def test_did_key_decoding_rejects_bad_base58() -> None:
    with pytest.raises(InvalidInput, match="not valid base58btc"):
        public_key_from_did_key("did:key:z0OIl")


def test_did_key_decoding_rejects_other_key_types() -> None:
    secp = next(iter(json.loads((VECTORS / "secp256k1.json").read_text())))
    with pytest.raises(InvalidInput, match="does not hold an Ed25519 public key"):
        public_key_from_did_key(secp)


def test_did_key_decoding_rejects_wrong_key_length() -> None:
    short = "did:key:z" + base58.b58encode(b"\xed\x01" + b"\x07" * 31).decode()
    with pytest.raises(InvalidInput, match="holds 31 key bytes"):
        public_key_from_did_key(short)


# --- JWK (RFC 8037) ---------------------------------------------------------------------------


def test_rfc8037_jwk_vector() -> None:
    key = Ed25519Key.from_jwk(RFC8037_JWK)
    assert b64url_encode(key.public_bytes) == RFC8037_X
    assert b64url_encode(key.sign(RFC8037_SIGNING_INPUT)) == RFC8037_SIGNATURE
    assert key.private_jwk() == {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "d": RFC8037_D}
    assert key.public_jwk() == {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}


def test_jwk_text_roundtrip() -> None:
    key = Ed25519Key.generate()
    again = ed25519_key_from_text(json.dumps(key.private_jwk()))
    assert again.public_bytes == key.public_bytes


def test_jwk_rejects_non_json() -> None:
    with pytest.raises(ConfigError, match="is not JSON"):
        ed25519_key_from_text("kty=OKP")


def test_jwk_rejects_empty_text() -> None:
    with pytest.raises(ConfigError, match="is empty"):
        ed25519_key_from_text("  \n")


def test_jwk_rejects_non_object() -> None:
    with pytest.raises(ConfigError, match="is not a JSON object"):
        ed25519_key_from_text("[1, 2]")


def test_jwk_rejects_other_kty() -> None:
    with pytest.raises(ConfigError, match=r"has kty 'EC', expected \"OKP\""):
        Ed25519Key.from_jwk({**RFC8037_JWK, "kty": "EC"})


def test_jwk_rejects_other_curve() -> None:
    with pytest.raises(ConfigError, match=r"has crv 'X25519', expected \"Ed25519\""):
        Ed25519Key.from_jwk({**RFC8037_JWK, "crv": "X25519"})


def test_jwk_rejects_public_only() -> None:
    with pytest.raises(ConfigError, match='has no "d" string member'):
        Ed25519Key.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})


def test_jwk_rejects_padding() -> None:
    with pytest.raises(ConfigError, match="not base64url without padding"):
        Ed25519Key.from_jwk({**RFC8037_JWK, "d": RFC8037_D + "="})


def test_jwk_rejects_standard_base64_alphabet() -> None:
    with pytest.raises(ConfigError, match="not base64url without padding"):
        Ed25519Key.from_jwk({**RFC8037_JWK, "x": RFC8037_X.replace("_", "/")})


def test_jwk_rejects_wrong_length() -> None:
    with pytest.raises(ConfigError, match='"d" of the JWK is 24 bytes, expected 32'):
        Ed25519Key.from_jwk({**RFC8037_JWK, "d": RFC8037_D[:32]})


def test_jwk_rejects_mismatched_public_key() -> None:
    other = b64url_encode(Ed25519Key.generate().public_bytes)
    with pytest.raises(ConfigError, match='"x" of the JWK is not the public key of its "d"'):
        Ed25519Key.from_jwk({**RFC8037_JWK, "x": other})


def test_b64url_rejects_impossible_length() -> None:
    with pytest.raises(ConfigError, match="impossible base64url length"):
        b64url_decode("abcde", what="value")


def test_b64url_rejects_non_canonical_trailing_bits() -> None:
    assert b64url_decode("AA", what="value") == b"\x00"
    with pytest.raises(ConfigError, match="not canonical base64url"):
        b64url_decode("AB", what="value")


# --- redaction ----------------------------------------------------------------------------------


def test_ed25519_repr_is_redacted() -> None:
    key = Ed25519Key.from_jwk(RFC8037_JWK)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert RFC8037_D not in text
        assert "<redacted>" in text
        assert key.did in text


def test_chain_account_repr_is_redacted() -> None:
    account = ChainAccountKey.generate()
    secret = account.to_hex()
    for text in (repr(account), str(account), f"{account!r}"):
        assert secret[2:] not in text
        assert secret[2:].upper() not in text
        assert account.address in text


# --- files --------------------------------------------------------------------------------------


def test_save_writes_0600_and_loads_back(tmp_path: Path) -> None:
    key = Ed25519Key.from_jwk(RFC8037_JWK)
    path = save_key(key, tmp_path / "keys" / "checkpoint.jwk")
    assert _mode(path) == KEY_FILE_MODE
    assert json.loads(path.read_text()) == key.private_jwk()
    assert load_ed25519_key(path).public_bytes == key.public_bytes
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.jwk"]  # no temp file left


def test_save_ignores_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = save_key(Ed25519Key.generate(), tmp_path / "k.jwk")
    finally:
        os.umask(previous)
    assert _mode(path) == KEY_FILE_MODE


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = save_key(Ed25519Key.generate(), tmp_path / "k.jwk")
    before = path.read_text()
    with pytest.raises(ConfigError, match="refusing to overwrite the existing key file"):
        save_key(Ed25519Key.generate(), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.jwk"]


def test_save_overwrites_when_asked(tmp_path: Path) -> None:
    path = save_key(Ed25519Key.generate(), tmp_path / "k.jwk")
    replacement = Ed25519Key.generate()
    save_key(replacement, path, overwrite=True)
    assert load_ed25519_key(path).public_bytes == replacement.public_bytes
    assert _mode(path) == KEY_FILE_MODE


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_group_or_other_access(tmp_path: Path, mode: int) -> None:
    path = save_key(Ed25519Key.generate(), tmp_path / "k.jwk")
    path.chmod(mode)
    with pytest.raises(ConfigError, match=f"has mode {mode:04o}") as caught:
        load_ed25519_key(path)
    assert caught.value.hint == f"chmod 600 {path}"
    assert f"chmod 600 {path}" in caught.value.diagnostics()


def test_load_accepts_owner_read_only(tmp_path: Path) -> None:
    key = Ed25519Key.generate()
    path = save_key(key, tmp_path / "k.jwk")
    path.chmod(0o400)
    assert load_ed25519_key(path).public_bytes == key.public_bytes


def test_load_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_ed25519_key(tmp_path / "absent.jwk")


def test_load_reports_a_file_that_cannot_be_opened(tmp_path: Path) -> None:
    """A Unix socket where the key file should be: opening it fails (ENXIO) even as root."""
    path = tmp_path / "key.jwk"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        with pytest.raises(ConfigError, match="cannot be opened") as caught:
            load_ed25519_key(path)
    assert "regular file" in (caught.value.hint or "")


def test_load_refuses_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="is not a regular file"):
        read_key_file(folder)


def test_load_names_the_file_in_parse_errors(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k.jwk", '{"kty": "OKP"}')
    with pytest.raises(ConfigError, match=re.escape(f"key file {path} has crv None")):
        load_ed25519_key(path)


def test_load_refuses_oversized_file(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "big.jwk", " " * 5000)
    with pytest.raises(ConfigError, match="too large to be a key file"):
        read_key_file(path)


# --- chain account (secp256k1) ------------------------------------------------------------------


def test_chain_account_file_roundtrip(tmp_path: Path) -> None:
    account = ChainAccountKey.generate()
    path = save_key(account, tmp_path / "chain.key")
    assert _mode(path) == KEY_FILE_MODE
    text = path.read_text()
    assert text.startswith("0x")
    assert len(text.strip()) == 66
    assert text.endswith("\n")
    assert load_chain_account(path).address == account.address


def test_chain_account_known_key() -> None:
    # Anvil/Hardhat's well-known first development account.
    account = chain_account_from_text(
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    )
    assert account.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_chain_account_rejects_non_hex() -> None:
    with pytest.raises(ConfigError, match="is not a secp256k1 private key"):
        chain_account_from_text("0x" + "g" * 64)


def test_chain_account_rejects_zero_key() -> None:
    with pytest.raises(ConfigError, match="out of range for a secp256k1 private key"):
        chain_account_from_text("0x" + "0" * 64)


def test_chain_account_refuses_0644(tmp_path: Path) -> None:
    path = save_key(ChainAccountKey.generate(), tmp_path / "chain.key")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="group or others can access it"):
        load_key(path, "secp256k1")


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="unknown key kind 'rsa'"):
        key_from_text("x", "rsa")  # type: ignore[call-overload]


# --- environment --------------------------------------------------------------------------------


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LER_ANCHOR_TEST_KEY", json.dumps(RFC8037_JWK))
    assert b64url_encode(from_env("LER_ANCHOR_TEST_KEY").public_bytes) == RFC8037_X
    account = ChainAccountKey.generate()
    monkeypatch.setenv("LER_ANCHOR_TEST_CHAIN_KEY", account.to_hex())
    assert from_env("LER_ANCHOR_TEST_CHAIN_KEY", "secp256k1").address == account.address


def test_from_env_reports_unset_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LER_ANCHOR_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="environment variable LER_ANCHOR_TEST_KEY is not set"):
        from_env("LER_ANCHOR_TEST_KEY")


def test_from_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LER_ANCHOR_TEST_KEY", "{}")
    with pytest.raises(ConfigError, match="environment variable LER_ANCHOR_TEST_KEY has kty"):
        from_env("LER_ANCHOR_TEST_KEY")


# --- generate_if_missing ------------------------------------------------------------------------


def test_generate_if_missing_ed25519(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "data" / "checkpoint.jwk"
    with caplog.at_level(logging.WARNING, logger="anchor.keys"):
        key, created = generate_if_missing(path, "ed25519")
    assert created
    assert _mode(path) == KEY_FILE_MODE
    assert str(path) in caplog.text
    assert key.did in caplog.text
    assert key.private_jwk()["d"] not in caplog.text
    caplog.clear()
    again, created_again = generate_if_missing(path, "ed25519")
    assert not created_again
    assert again.public_bytes == key.public_bytes
    assert caplog.text == ""


def test_generate_if_missing_secp256k1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "chain.key"
    with caplog.at_level(logging.WARNING, logger="anchor.keys"):
        account, created = generate_if_missing(path, "secp256k1")
    assert created
    assert account.address in caplog.text
    assert account.to_hex()[2:] not in caplog.text
    loaded, created_again = generate_if_missing(path, "secp256k1")
    assert not created_again
    assert loaded.address == account.address


def test_generate_if_missing_refuses_existing_insecure_file(tmp_path: Path) -> None:
    path = save_key(Ed25519Key.generate(), tmp_path / "k.jwk")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="group or others can access it"):
        generate_if_missing(path, "ed25519")
