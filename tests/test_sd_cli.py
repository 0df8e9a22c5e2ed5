"""Selective disclosure end to end, through the CLI and the real service over a socket:
``keygen --type p256``; a did:web issuer (served over HTTPS) listing an Ed25519 key for
requests, the service's status list key and its P-256 key under ``assertionMethod``;
``issue --selective-disclosure`` from a CSV with personal columns; ``disclose`` offline; and
``POST /v1/verify`` / ``ler-anchor verify`` of the derived copy: its receipt is found from the
copy alone, its status still checked, and the withheld fields named."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.anvil import free_port
from helpers.service import WebDidHost, serve_web_did, service_config

from anchor.cli.main import main
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS, RESOLVER
from anchor.keys import Ed25519Key, load_p256_key, save_key
from anchor.vc import ecdsa_sd
from anchor.vc.credentials import PERSON_FIELDS, digest
from anchor.vc.data_integrity import ed25519_public_key_to_multibase

ACHIEVEMENT = {
    "id": "https://college.example/achievements/welding-1",
    "name": "Welding I",
    "description": "Basic shielded metal arc welding",
    "criteria": "Passed the practical and written assessments",
    "alignments": [
        {"targetName": "Weld", "targetUrl": "https://skills.example/weld", "targetCode": "W1"}
    ],
}


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def by_check(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in report["checks"]}


async def test_issue_disclose_verify(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serve_web_did(tmp_path) as host:
        await _scenario(aiohttp_client, tmp_path, capsys, host)


async def _scenario(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], host: WebDidHost
) -> None:
    port = free_port()
    config = service_config(
        tmp_path,
        port=port,
        ca_file=host.ca_file,
        outbound_networks="any",
        anchor_interval=0.2,
        confirmations=1,
        status_ttl_ms=1,
    )
    client = await aiohttp_client(create_app(config), server_kwargs={"port": port})
    service = str(client.make_url("")).rstrip("/")

    request_key = Ed25519Key.generate()
    key_file = tmp_path / "college.jwk"
    save_key(request_key, key_file)
    sd_file = tmp_path / "college-p256.jwk"
    code, out, err = await cli(capsys, "keygen", "--type", "p256", "--out", str(sd_file))
    assert code == 0, err
    assert out.startswith("did:key:zDn")
    p256 = load_p256_key(sd_file)
    assert p256.did == out.strip()

    did = host.did
    keyid, sd_keyid = f"{did}#key-1", f"{did}#sd-1"
    host.document = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [
            {
                "id": keyid,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": ed25519_public_key_to_multibase(request_key.public_bytes),
            },
            {
                "id": sd_keyid,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": p256.did.removeprefix("did:key:"),
            },
        ],
        "authentication": [keyid],
        "assertionMethod": [sd_keyid],
    }
    client.app[ISSUERS].add(did, "Web College")
    signed = ("--service", service, "--key", str(key_file), "--keyid", keyid)
    code, out, err = await cli(capsys, "status", "key", *signed)
    assert code == 0, err
    addition = json.loads(out)["didDocumentAddition"]
    host.document["verificationMethod"] += addition["verificationMethod"]
    host.document["assertionMethod"] += addition["assertionMethod"]
    client.app[RESOLVER].clear_cache()

    achievement = tmp_path / "achievement.json"
    achievement.write_text(json.dumps(ACHIEVEMENT))
    roster = tmp_path / "learners.csv"
    roster.write_text(
        "identifier,name,birthDate,address\n"
        "ada@example.org,Ada Lovelace,1815-12-10,12 St James's Square\n"
    )
    out_dir = tmp_path / "issued"
    issue = ("issue", *signed, "--achievement", str(achievement), "--csv", str(roster))
    issue += ("--out", str(out_dir), "--wait", "30", "--selective-disclosure")
    code, out, err = await cli(capsys, *issue)
    assert code == 2
    assert "--sd-key" in err
    code, out, err = await cli(capsys, *issue, "--sd-key", str(sd_file))
    assert code == 2  # the P-256 did:key is not a key of the did:web issuer
    assert "--sd-keyid" in err
    assert "Traceback" not in err
    code, out, err = await cli(capsys, *issue, "--sd-key", str(sd_file), "--sd-keyid", sd_keyid)
    assert code == 0, err
    credential = Path(out.split()[0])
    original = json.loads(credential.read_text())
    assert original["issuer"]["id"] == did
    assert original["proof"]["verificationMethod"] == sd_keyid
    assert original["credentialSubject"]["birthDate"] == "1815-12-10"
    assert ecdsa_sd.proof_kind(original) == "base"
    assert out.split()[2] == digest(original).hex()
    assert credential.with_name(credential.stem + ".receipt.json").exists()

    # The learner hides everything personal: offline, nothing but the file.
    shown = tmp_path / "shown.json"
    code, out, err = await cli(capsys, "disclose", str(credential), "--out", str(shown))
    assert code == 0, err
    derived = json.loads(shown.read_text())
    subject = derived["credentialSubject"]
    assert {"name", "birthDate", "address", "identifier"}.isdisjoint(subject)
    assert subject["achievement"]["alignment"][0]["targetCode"] == "W1"
    assert "credentialStatus" in derived
    assert digest(derived) == digest(original)

    # The employer: the service finds the receipt from the derived copy alone.
    report = await _verify(client, derived)
    checks = by_check(report)
    assert report["result"] == "valid", report
    assert report["digest"] == digest(original).hex()
    assert checks["proof"]["details"]["withheld"] == list(PERSON_FIELDS)
    assert "not disclosed: name" in checks["proof"]["reason"]
    # The learner's own full copy verifies too.
    assert (await _verify(client, original))["result"] == "valid"

    # Revealing the name only.
    reveal = ("disclose", str(credential), "--reveal", "/credentialSubject/name")
    code, _, err = await cli(capsys, *reveal, "--out", str(shown))
    assert code == 0, err
    named = json.loads(shown.read_text())
    assert named["credentialSubject"]["name"] == "Ada Lovelace"
    assert "birthDate" not in named["credentialSubject"]
    report = await _verify(client, named)
    assert report["result"] == "valid", report
    assert "name" not in by_check(report)["proof"]["details"]["withheld"]
    # ... and the CLI says the same offline (no chain given: anchoring unknown, proof valid).
    code, out, _ = await cli(capsys, "verify", str(shown), "--ca-file", str(host.ca_file), "--json")
    assert by_check(json.loads(out))["proof"]["result"] == "valid", out

    # A forged disclosure fails; the issuer's revocation reaches every derived copy.
    forged = json.loads(json.dumps(named))
    forged["credentialSubject"]["name"] = "Charles Babbage"
    report = await _verify(client, forged)
    assert by_check(report)["proof"]["result"] == "invalid"
    assert report["result"] == "invalid"
    code, _, err = await cli(
        capsys, "status", "set", *signed, "--entry", str(credential), "--value", "1"
    )
    assert code == 0, err
    report = await _verify(client, derived)
    assert by_check(report)["status"]["result"] == "invalid", report

    # Usage errors: one line, no traceback.
    code, _, err = await cli(
        capsys, "disclose", str(credential), "--reveal", "/nope", "--out", str(shown)
    )
    assert code == 2
    assert "/nope" in err
    assert "Traceback" not in err
    code, _, err = await cli(capsys, "disclose", str(shown), "--out", str(shown))
    assert code == 2
    assert "base proof" in err


async def _verify(client: Any, credential: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/verify", json={"credential": credential})
    assert resp.status == 200, await resp.text()
    report: dict[str, Any] = await resp.json()
    return report
