"""Issuing as the field expects: credentials valid against 1EdTech's own OB 3.0 and CLR 2.0
JSON Schemas (tests/vectors/1edtech/), and the issuer's command line (``issue`` with a CSV,
re-runs, ``--clr``; ``receipt --dir`` and ``--wait``; ``status set --value`` words;
``issuer add --rename``) against the service on the embedded chain over a socket."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers.anvil import free_port
from helpers.service import (
    assert_clr_valid,
    assert_ob3_valid,
    clr_schema_errors,
    ob3_schema_errors,
    service_config,
)
from pytest_aiohttp import AiohttpClient

from anchor.cli.main import main
from anchor.errors import InvalidInput
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS
from anchor.keys import Ed25519Key, load_ed25519_key, save_key
from anchor.log.store import SQLiteStore
from anchor.vc import credentials, data_integrity

STATUS = {
    "id": "https://anchor.example/v1/status-lists/1#42",
    "type": "BitstringStatusListEntry",
    "statusPurpose": "revocation",
    "statusListIndex": "42",
    "statusListCredential": "https://anchor.example/v1/status-lists/1",
}
WELDING = {
    "id": "https://college.example/achievements/welding-1",
    "name": "Structural Welding I",
    "description": "Shielded metal arc welding of structural steel.",
    "criteria": "Passed the AWS D1.1 practical test.",
    "achievementType": "Certificate",
    "alignments": [
        {
            "targetName": "Welders, Cutters, Solderers, and Brazers",
            "targetUrl": "https://www.onetonline.org/link/summary/51-4121.00",
            "targetFramework": "O*NET-SOC",
            "targetCode": "51-4121.00",
        }
    ],
}
ALIGNMENT = {"targetName": "Welding", "targetUrl": "https://skills.example/welding"}
COURSE = {
    "id": "https://college.example/courses/math-101",
    "name": "Technical Mathematics",
    "description": "Algebra and trigonometry for the trades.",
    "criteria": "Completed the course with a grade of C or better.",
    "achievementType": "Course",
}
COMPETENCY = {
    "id": "https://college.example/competencies/blueprint-reading",
    "name": "Blueprint Reading",
    "description": "Reads welding symbols and structural drawings.",
    "criteria": "Assessed in the workshop.",
    "achievementType": "Competency",
}
EMPLOYMENT = {
    "id": "https://college.example/records/apprenticeship",
    "name": "Welding Apprenticeship",
    "description": "Two years as an apprentice welder at a fabrication shop.",
    "criteria": "Employment verified by the employer.",
    "achievementType": "ApprenticeshipCertificate",
}


def _badge(key: Ed25519Key, subject: Any, status: list[dict[str, Any]]) -> dict[str, Any]:
    doc = credentials.open_badge(
        issuer=key.did,
        issuer_name="County College",
        achievement=credentials.parse_achievement(WELDING),
        subject=subject,
        status=status,
    )
    return credentials.sign(doc, key.seed(), key.verification_method)


# --- the schemas, without the service ----------------------------------------------------------


@pytest.mark.parametrize(
    "subject", ["did:example:learner", credentials.hashed_identity("learner@example.org")]
)
def test_every_kind_of_credential_passes_the_1edtech_schemas(subject: Any) -> None:
    key = Ed25519Key.generate()
    badge = _badge(key, subject, [STATUS])
    assert isinstance(badge["proof"], list)
    assert len(badge["proof"]) == 1
    assert isinstance(badge["credentialStatus"], dict)
    assert_ob3_valid(badge)
    assert_ob3_valid(_badge(key, subject, []))
    data_integrity.verify_proof(badge, key.public_bytes)  # a one-proof set verifies

    parts = [_badge(key, subject, []) for _ in range(3)]
    clr = credentials.clr(
        issuer=key.did,
        issuer_name="County College",
        subject=subject,
        credentials=parts,
        name="Transcript",
        status=[STATUS],
    )
    signed = credentials.sign(clr, key.seed(), key.verification_method)
    assert signed["type"] == ["VerifiableCredential", "ClrCredential"]
    assert_clr_valid(signed)
    data_integrity.verify_proof(signed, key.public_bytes)


def test_the_schemas_reject_what_they_should() -> None:
    """The checks can fail: the shapes issue 16 reported are rejected."""
    key = Ed25519Key.generate()
    badge = _badge(key, "did:example:learner", [STATUS])
    as_object = {**badge, "proof": badge["proof"][0]}
    assert any("proof" in e for e in ob3_schema_errors(as_object))
    two = _badge(key, "did:example:learner", [STATUS, {**STATUS, "statusPurpose": "suspension"}])
    assert isinstance(two["credentialStatus"], list)
    assert any("credentialStatus" in e for e in ob3_schema_errors(two))
    no_subject = {**badge, "credentialSubject": {"type": ["AchievementSubject"]}}
    assert ob3_schema_errors(no_subject)
    clr = credentials.sign(
        credentials.clr(
            issuer=key.did, issuer_name="", subject="did:example:learner", credentials=[badge],
            name="Transcript",
        ),
        key.seed(),
        key.verification_method,
    )  # fmt: skip
    assert not clr_schema_errors(clr)
    empty = {**clr, "credentialSubject": {"type": ["ClrSubject"], "verifiableCredential": []}}
    assert clr_schema_errors(empty)


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({"achievementType": "Bootcamp"}, False),
        ({"achievementType": "ext:Bootcamp"}, True),
        ({"alignments": [{**ALIGNMENT, "targetType": "Skill"}]}, False),
        ({"alignments": [{**ALIGNMENT, "targetType": "CFItem"}]}, True),
    ],
)
def test_achievement_vocabularies_are_ob3s(change: dict[str, Any], accepted: bool) -> None:
    """What the achievement file may say is what the OB 3.0 schema admits."""
    doc = {**WELDING, **change}
    if not accepted:
        with pytest.raises(InvalidInput, match=r"is not an Open Badges 3\.0"):
            credentials.parse_achievement(doc)
        return
    key = Ed25519Key.generate()
    unsigned = credentials.open_badge(
        issuer=key.did,
        issuer_name="County College",
        achievement=credentials.parse_achievement(doc),
        subject="did:example:learner",
    )
    assert_ob3_valid(credentials.sign(unsigned, key.seed(), key.verification_method))


def test_old_object_proof_credentials_still_verify() -> None:
    key = Ed25519Key.generate()
    unsigned = credentials.open_badge(
        issuer=key.did,
        issuer_name="County College",
        achievement=credentials.parse_achievement(WELDING),
        subject="did:example:learner",
    )
    old = data_integrity.create_proof(unsigned, key.seed(), key.verification_method)
    assert isinstance(old["proof"], dict)
    data_integrity.verify_proof(old, key.public_bytes)


# --- the command line against the service ------------------------------------------------------


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path) -> TestClient:
    port = free_port()  # the service's own status lists are fetched at its configured port
    config = service_config(
        tmp_path, port=port, anchor_interval=0.2, confirmations=1, status_ttl_ms=1
    )
    return await aiohttp_client(create_app(config), server_kwargs={"port": port})


@pytest.fixture
async def signed_args(
    client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, ...]:
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "County College")
    path = tmp_path / "college.jwk"
    save_key(key, path)
    args = ("--service", str(client.make_url("")).rstrip("/"), "--key", str(path))
    code, _, err = await cli(capsys, "status", "key", *args)
    assert code == 0, err
    return args


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


async def test_issue_a_csv_twice_then_fetch_receipts_by_folder(
    client: TestClient,
    signed_args: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    achievement = _write(tmp_path / "welding.json", WELDING)
    learners = tmp_path / "learners.csv"
    learners.write_text(
        "id,identifier,identityType\n"
        "alice-welding,alice@students.example.edu,emailAddress\n"
        "bob-welding,S-20931,ext:studentId\n"
    )
    out_dir = tmp_path / "issued"
    issue = ("issue", *signed_args, "--achievement", str(achievement), "--csv", str(learners))
    code, out, err = await cli(capsys, *issue, "--out", str(out_dir))
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == [
        str(out_dir / "alice-welding.json"),
        str(out_dir / "bob-welding.json"),
    ]
    assert "2 credentials issued, 0 already issued (skipped); 0 anchored, 2 pending" in err
    first = {p.name: p.read_text() for p in out_dir.glob("*.json")}
    assert set(first) == {"alice-welding.json", "bob-welding.json"}
    for text in first.values():
        assert_ob3_valid(json.loads(text))
    with (out_dir / "issued.csv").open(newline="") as f:
        manifest = list(csv.DictReader(f))
    assert [(r["id"], r["learner"], r["file"]) for r in manifest] == [
        ("alice-welding", "alice@students.example.edu", "alice-welding.json"),
        ("bob-welding", "S-20931", "bob-welding.json"),
    ]
    assert manifest[0]["credentialId"] == json.loads(first["alice-welding.json"])["id"]

    # A re-run issues nothing twice: the files stay as they were, and it waits for receipts.
    code, out, err = await cli(capsys, *issue, "--out", str(out_dir), "--wait", "30")
    assert code == 0, err
    assert "0 credentials issued, 2 already issued (skipped); 2 anchored, 0 pending" in err
    assert "waiting for receipts" in err  # progress while waiting
    assert {p.name: p.read_text() for p in out_dir.glob("*[!t].json")} == first
    assert sorted(p.name for p in out_dir.glob("*.receipt.json")) == [
        "alice-welding.receipt.json",
        "bob-welding.receipt.json",
    ]
    # A different file under the same name is refused, not overwritten.
    (out_dir / "bob-welding.json").write_text(json.dumps({"id": "urn:uuid:someone-else"}))
    code, _, err = await cli(capsys, *issue, "--out", str(out_dir))
    assert code == 2
    assert "bob-welding.json exists and holds another credential" in err
    assert len(err.strip().splitlines()) == 1

    # receipt --dir: fetches the receipts a folder lacks (a receipt removed, a new file).
    (out_dir / "bob-welding.json").write_text(first["bob-welding.json"])
    (out_dir / "alice-welding.receipt.json").unlink()
    code, out, err = await cli(
        capsys, "receipt", "--service", signed_args[1], "--dir", str(out_dir), "--wait", "10"
    )
    assert code == 0, err
    assert out.strip() == f"wrote {out_dir / 'alice-welding.receipt.json'}"
    assert "1 credentials without a receipt" in err
    assert "1 receipts written" in err
    receipt = json.loads((out_dir / "alice-welding.receipt.json").read_text())
    digest = credentials.digest(json.loads(first["alice-welding.json"])).hex()
    assert receipt["entry"]["digest"] == digest
    code, out, err = await cli(
        capsys, "receipt", "--service", signed_args[1], "--dir", str(out_dir)
    )
    assert (code, out) == (0, "")
    assert "0 credentials without a receipt" in err


async def test_receipt_wait_says_what_it_waits_for_and_writes_no_stub(
    aiohttp_client: AiohttpClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no anchoring happens (an interval of an hour): the receipt stays pending
    config = service_config(tmp_path, anchor_interval=3600, confirmations=2)
    client = await aiohttp_client(create_app(config))
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "County College")
    save_key(key, tmp_path / "k.jwk")
    service = str(client.make_url("")).rstrip("/")
    digest = "ab" * 32
    code, _, err = await cli(
        capsys, "submit", "--service", service, "--key", str(tmp_path / "k.jwk"), digest
    )
    assert code == 0, err
    target = tmp_path / "receipt.json"
    code, out, err = await cli(
        capsys, "receipt", "--service", service, digest, "--wait", "1.5", "--out", str(target)
    )
    assert code == 3
    assert out == ""
    assert not target.exists()
    lines = err.strip().splitlines()
    assert "no mined anchor covers it yet (2 confirmations needed)" in lines[0]
    assert "s left)" in lines[0]
    assert lines[-1].startswith(f"ler-anchor receipt: {digest} is logged but not anchored yet")
    body = await (await client.get(f"/v1/receipts/{digest}")).json()
    assert (body["status"], body["confirmations"], body["confirmationsRequired"]) == (
        "pending",
        0,
        2,
    )


async def test_issue_a_clr_then_verify_it(
    client: TestClient,
    signed_args: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = [
        _write(tmp_path / f"{name}.json", doc)
        for name, doc in (("course", COURSE), ("competency", COMPETENCY), ("job", EMPLOYMENT))
    ]
    achievements = [arg for f in files for arg in ("--achievement", str(f))]
    out_dir = tmp_path / "clr"
    code, _, err = await cli(
        capsys, "issue", *signed_args, *achievements, "--subject", "did:example:learner"
    )
    assert code == 2
    assert "several --achievement files need --clr" in err
    code, out, err = await cli(
        capsys,
        *("issue", *signed_args, *achievements, "--clr", "--clr-name", "Welding transcript"),
        *("--subject", "email:learner@example.org", "--out", str(out_dir), "--wait", "30"),
    )
    assert code == 0, err
    assert "1 CLRs issued" in err
    path = Path(out.split()[0])
    clr = json.loads(path.read_text())
    assert_clr_valid(clr)
    inner = clr["credentialSubject"]["verifiableCredential"]
    assert [vc["credentialSubject"]["achievement"]["achievementType"] for vc in inner] == [
        "Course",
        "Competency",
        "ApprenticeshipCertificate",
    ]
    assert clr["credentialStatus"]["statusPurpose"] == "revocation"
    receipt = json.loads(path.with_name(path.stem + ".receipt.json").read_text())
    resp = await client.post("/v1/verify", json={"credential": clr, "receipt": receipt})
    report = await resp.json()
    assert report["result"] == "valid", report
    proof = next(c for c in report["checks"] if c["check"] == "proof")
    assert proof["details"]["embeddedChecked"] == 3
    tampered = json.loads(json.dumps(clr))
    tampered["credentialSubject"]["verifiableCredential"][0]["name"] = "Advanced Mathematics"
    resp = await client.post("/v1/verify", json={"credential": tampered, "receipt": receipt})
    assert (await resp.json())["result"] == "invalid"
    # re-signed around an altered embedded credential: the embedded proof gives it away
    key = load_ed25519_key(Path(signed_args[3]))
    del tampered["proof"]
    forged = credentials.sign(tampered, key.seed(), key.verification_method)
    resp = await client.post("/v1/verify", json={"credential": forged})
    proof = next(c for c in (await resp.json())["checks"] if c["check"] == "proof")
    assert proof["result"] == "invalid"
    assert proof["reason"].startswith("embedded credential 0: ")


async def test_status_set_takes_words_and_says_which_purpose_is_missing(
    client: TestClient,
    signed_args: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    achievement = _write(tmp_path / "welding.json", WELDING)
    out_dir = tmp_path / "one"
    code, out, err = await cli(
        capsys,
        *("issue", *signed_args, "--achievement", str(achievement), "--status", "suspension"),
        *("--subject", "did:example:learner", "--out", str(out_dir)),
    )
    assert code == 0, err
    credential = out.split()[0]
    entry = ("status", "set", *signed_args, "--entry", credential)
    code, _, err = await cli(capsys, *entry, "--purpose", "revocation", "--value", "revoked")
    assert code == 2
    assert "has no status entries of purpose revocation (its entries' purposes: suspension)" in (
        err
    )
    assert "choose one with --purpose" not in err
    for word, value in (("suspended", 1), ("valid", 0), ("1", 1), ("0", 0)):
        code, out, err = await cli(capsys, *entry, "--value", word)
        assert code == 0, err
        assert f"= {value} (1 change(s)" in out
    code, _, err = await cli(capsys, *entry, "--value", "maybe")
    assert code == 2
    assert "'maybe' is not revoked, suspended, valid or a number" in err


def test_issuer_add_refuses_to_rename_without_rename(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ler-anchor.db"
    SQLiteStore(db).close()  # the database `serve` creates
    data = ("--db", str(db))
    did = "did:web:college.example"

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["issuer", *data, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("add", did, "--name", "County College")[0] == 0
    code, _, err = run("add", did, "--name", "Other College")
    assert code == 4
    assert "is registered as 'County College'" in err
    assert "--rename" in err
    code, out, _ = run("add", did, "--name", "County Technical College", "--rename")
    assert code == 0
    assert out.strip() == f"renamed {did} (County Technical College)"
    assert run("remove", did)[0] == 0
    code, out, _ = run("add", did)  # re-adding keeps the name
    assert (code, out.strip()) == (0, f"registered again {did} (County Technical College)")
    code, out, err = run("list", "--json")
    assert [i["name"] for i in json.loads(out)] == ["County Technical College"]


async def test_receipt_wait_counts_the_confirmations_left(
    aiohttp_client: AiohttpClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # anchored at once, but final only after 50 confirmations
    config = service_config(tmp_path, anchor_interval=0.2, confirmations=50)
    client = await aiohttp_client(create_app(config))
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "County College")
    save_key(key, tmp_path / "k.jwk")
    service = str(client.make_url("")).rstrip("/")
    digest = "cd" * 32
    code, _, err = await cli(
        capsys, "submit", "--service", service, "--key", str(tmp_path / "k.jwk"), digest
    )
    assert code == 0, err
    for _ in range(100):
        body = await (await client.get(f"/v1/receipts/{digest}")).json()
        if body["confirmations"] > 0:
            break
        await asyncio.sleep(0.1)
    have = body["confirmations"]
    assert 0 < have < 50
    code, out, err = await cli(capsys, "receipt", "--service", service, digest, "--wait", "0.5")
    assert code == 3
    assert out == ""
    assert f"its anchor has {have} of 50 confirmations, {50 - have} to go" in err
