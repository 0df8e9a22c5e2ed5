"""``ler-anchor status``: the issuer's commands against the running service (over a socket,
signed with a key file), ``get``, and one-line errors with non-zero exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from anchor.cli.main import main
from anchor.http.appkeys import ISSUERS, STATUS
from anchor.keys import Ed25519Key, save_key
from anchor.status.credential import parse_status_list_credential, validate_status


@pytest.fixture
def key_file(client: TestClient, tmp_path: Path) -> tuple[Ed25519Key, Path]:
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "CLI College")
    path = tmp_path / "issuer.jwk"
    save_key(key, path)
    return key, path


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_issuer_workflow_on_the_command_line(
    client: TestClient,
    key_file: tuple[Ed25519Key, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, path = key_file
    service = str(client.make_url("")).rstrip("/")
    signed = ("--service", service, "--key", str(path))

    # Before the key is uploaded, publishing is refused with what to do.
    code, out, err = await cli(capsys, "status", "allocate", *signed, "--purpose", "revocation")
    assert code == 4  # Conflict
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "POST /v1/status-keys" in err

    code, out, _ = await cli(capsys, "status", "key", *signed)
    assert code == 0
    info = json.loads(out)
    assert (info["custody"], info["authorized"]) == ("uploaded", True)

    code, out, _ = await cli(
        capsys,
        "status",
        "allocate",
        *signed,
        "--purpose",
        "suspension",
        "--credential-id",
        "urn:uuid:1",
        "--credential-id",
        "urn:uuid:2",
    )
    assert code == 0
    entries = json.loads(out)
    assert [e["statusPurpose"] for e in entries] == ["suspension", "suspension"]
    code, out, _ = await cli(
        capsys,
        "status",
        "allocate",
        *signed,
        "--purpose",
        "suspension",
        "--credential-id",
        "urn:uuid:1",
    )
    assert json.loads(out) == entries[:1]  # idempotent per credential id

    entry_file = tmp_path / "entry.json"
    entry_file.write_text(json.dumps(entries[0]))
    code, out, _ = await cli(
        capsys,
        "status",
        "set",
        *signed,
        "--entry",
        str(entry_file),
        "--value",
        "1",
        "--reason",
        "hold",
    )
    assert code == 0
    assert "1 change(s)" in out
    code, out, _ = await cli(
        capsys,
        "status",
        "set",
        *signed,
        "--list",
        entries[1]["statusListCredential"],
        "--index",
        entries[1]["statusListIndex"],
        "--value",
        "1",
    )
    assert code == 0

    code, out, _ = await cli(capsys, "status", "get", entries[0]["statusListCredential"])
    assert code == 0
    listing = parse_status_list_credential(json.loads(out))
    assert all(not validate_status(e, listing, proofs_verified=True).valid for e in entries)
    list_id = entries[0]["statusListCredential"].rsplit("/", 1)[1]
    history = client.app[STATUS].history(list_id)
    assert [(h.reason, h.actor) for h in history] == [("hold", key.did), (None, key.did)]

    code, out, _ = await cli(
        capsys, "status", "get", entries[0]["statusListCredential"], "--timestamp", "1700000000"
    )
    assert code == 3  # NotFound: the list did not exist then

    code, out, _ = await cli(capsys, "status", "create", *signed, "--purpose", "revocation")
    assert code == 0
    assert json.loads(out)["statusPurpose"] == "revocation"


async def test_command_line_errors_are_one_line(
    client: TestClient,
    key_file: tuple[Ed25519Key, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _key, path = key_file
    service = str(client.make_url("")).rstrip("/")
    signed = ("--service", service, "--key", str(path))
    assert (await cli(capsys, "status", "key", *signed))[0] == 0
    code, out, _ = await cli(capsys, "status", "allocate", *signed, "--purpose", "revocation")
    (entry,) = json.loads(out)
    where = ("--list", entry["statusListCredential"], "--index", entry["statusListIndex"])
    assert (await cli(capsys, "status", "set", *signed, *where, "--value", "1"))[0] == 0

    failures = [
        (("status", "set", *signed, *where, "--value", "0"), 4, "cannot be undone"),
        (
            ("status", "set", *signed, "--list", entry["statusListCredential"], "--value", "1"),
            2,
            "--index",
        ),
        (
            ("status", "allocate", *signed, "--purpose", "revocation", "--count", "10001"),
            2,
            "at most 10000",  # the service's own limit (HTTP 413)
        ),
        (
            (
                "status",
                "allocate",
                "--service",
                service,
                "--key",
                str(tmp_path / "none.jwk"),
                "--purpose",
                "revocation",
            ),
            2,
            "does not exist",
        ),
        (
            (
                "status",
                "allocate",
                "--service",
                "http://127.0.0.1:9",
                "--key",
                str(path),
                "--purpose",
                "revocation",
            ),
            13,
            "cannot reach",
        ),
        (("status", "check", str(tmp_path / "missing.json")), 2, "cannot read"),
    ]
    for argv, exit_code, text in failures:
        code, out, err = await cli(capsys, *argv)
        assert code == exit_code, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
        assert text in err, err
    stranger = Ed25519Key.generate()
    stranger_file = tmp_path / "stranger.jwk"
    save_key(stranger, stranger_file)
    code, _, err = await cli(
        capsys,
        "status",
        "set",
        "--service",
        service,
        "--key",
        str(stranger_file),
        *where,
        "--value",
        "1",
    )
    assert code == 5  # Forbidden
    assert "registered issuer" in err
