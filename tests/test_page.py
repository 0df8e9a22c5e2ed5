"""The employer's verification page at ``/``, in a real browser.

A ``ler-anchor serve`` process on the embedded chain (with ``--explorer-url`` and
``--page-origins``), an issuer who registers, issues three Open Badges 3.0 credentials to
hashed e-mail addresses with ``ler-anchor issue`` and revokes one and suspends another; then
Debian's Chromium, driven by playwright-core (``tests/browser/drive_page.cjs``), checks a
valid, a revoked, a suspended, a tampered and two not-a-credential files, compares e-mail
addresses, runs with the keyboard alone, opens the auditor's view, runs axe-core on each
state and loads the exported page from another origin. Screenshots are kept in
``$LER_ANCHOR_ARTIFACTS`` (default: the test's tmp directory).

Also, without a browser: the page's headers and OpenAPI entries, ``page export``, and that a
credential posted to ``/v1/verify`` is neither logged nor stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import io
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from helpers.anvil import free_port
from helpers.service import serve_command, service_config, wait_healthy
from helpers.system import missing

from anchor.cli.main import main
from anchor.errors import ConfigError
from anchor.http.app import create_app
from anchor.http.page import CSP
from anchor.http.problems import make_runner
from anchor.keys import Ed25519Key, save_key
from anchor.vc import credentials
from anchor.vc.credential_summary import summarize

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "contracts" / "node_modules"
DRIVER = ROOT / "tests" / "browser" / "drive_page.cjs"
CHROMIUM = Path("/usr/bin/chromium")
EXPLORER = "https://explorer.example"
LEARNER = "learner@example.org"
ACHIEVEMENT = {
    "id": "https://college.example/achievements/welding-1",
    "name": "Welding I",
    "description": "Basic shielded metal arc welding",
    "criteria": "Passed the practical and written assessments",
    "achievementType": "Certificate",
    "alignments": [
        {
            "targetName": "Welders, Cutters, Solderers, and Brazers",
            "targetUrl": "https://onet.example/51-4121.00",
            "targetFramework": "O*NET-SOC",
            "targetCode": "51-4121.00",
        }
    ],
}
STOP_TIMEOUT_SECONDS = 10
DRIVER_TIMEOUT_SECONDS = 180


def cli(*argv: str) -> str:
    """``ler-anchor ARGV`` in this process; its stdout (fails the test on a non-zero exit)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    assert code == 0, (argv, out.getvalue(), err.getvalue())
    return out.getvalue()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_host(directory: Path, port: int) -> Iterator[str]:
    """A plain static web host serving ``directory`` on ``port`` (another origin)."""
    handler = functools.partial(_QuietFiles, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass(frozen=True)
class Issued:
    service: str
    static_port: int
    files: dict[str, Path]
    log: Path
    data: Path


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    """The running service with three issued credentials: valid, revoked, suspended."""
    tmp = tmp_path_factory.mktemp("page")
    data = tmp / "data"
    port, static_port = free_port(), free_port()
    service = f"http://127.0.0.1:{port}"
    argv = serve_command(data, port, "--anchor-interval", "0.3", "--explorer-url", EXPLORER)
    argv += ["--page-origins", f"http://127.0.0.1:{static_port}"]
    log_path = tmp / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(argv, cwd=tmp, stdout=log, stderr=log)
    try:
        asyncio.run(wait_healthy(service))
        issuer = Ed25519Key.generate()
        key_file = tmp / "college.jwk"
        save_key(issuer, key_file)
        cli("issuer", "--data-dir", str(data), "add", issuer.did, "--name", "County College")
        signed = ("--service", service, "--key", str(key_file))
        cli("status", "key", *signed)
        achievement = tmp / "achievement.json"
        achievement.write_text(json.dumps(ACHIEVEMENT))
        learners = tmp / "learners.csv"
        with learners.open("w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["identifier", "id"])
            for name in ("valid", "revoked", "suspended"):
                rows.writerow([LEARNER, name])  # the id names the file: issued/NAME.json
        out_dir = tmp / "issued"
        cli(
            "issue",
            *signed,
            *("--achievement", str(achievement), "--csv", str(learners)),
            *("--out", str(out_dir), "--wait", "30", "--issuer-name", "County College"),
            *("--status", "revocation", "--status", "suspension"),
        )
        files: dict[str, Path] = {}
        for path in out_dir.glob("*.json"):
            if not path.name.endswith(".receipt.json"):
                files[path.stem] = path
        assert sorted(files) == ["revoked", "suspended", "valid"], files
        for name, purpose in (("revoked", "revocation"), ("suspended", "suspension")):
            entry = ("--entry", str(files[name]), "--purpose", purpose, "--value", "1")
            cli("status", "set", *signed, *entry)
        tampered = json.loads(files["valid"].read_text())
        tampered["credentialSubject"]["achievement"]["name"] = "Welding III (Master)"
        files["tampered"] = tmp / "tampered.json"
        files["tampered"].write_text(json.dumps(tampered))
        files["notJson"] = tmp / "notes.txt"
        files["notJson"].write_text("Dear hiring manager, please find my certificate attached.")
        files["notCredential"] = tmp / "other.json"
        files["notCredential"].write_text(json.dumps({"hello": "world"}))
        yield Issued(service, static_port, files, log_path, data)
    finally:
        server.terminate()
        try:
            server.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _artifacts(tmp_path: Path) -> Path:
    where = os.environ.get("LER_ANCHOR_ARTIFACTS")
    path = Path(where) / "page" if where else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _checks(case: dict[str, Any]) -> dict[str, str]:
    return dict(case["checks"])


@pytest.fixture(scope="module")
def browser_run(issued: Issued, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the browser driver over every case (one browser launch)."""
    if shutil.which("node") is None:
        missing("node", "install Node.js 20+")
    if not CHROMIUM.exists():
        missing(str(CHROMIUM), "apt-get install chromium")
    for package in ("playwright-core", "axe-core"):
        if not (MODULES / package).is_dir():
            missing(f"the npm package {package}", "npm ci --prefix contracts")
    tmp = tmp_path_factory.mktemp("browser")
    artifacts = _artifacts(tmp)
    exported = tmp / "exported"
    cli("page", "export", "--out", str(exported), "--service", issued.service)
    profile = tmp / "profile"
    profile.mkdir()
    spec = {
        "modules": str(MODULES),
        "chromium": str(CHROMIUM),
        "profile": str(profile),
        "url": issued.service + "/",
        "artifacts": str(artifacts),
        "files": {name: str(path) for name, path in issued.files.items()},
        "emails": {"match": LEARNER, "other": "someone.else@example.org"},
    }
    spec_file = tmp / "spec.json"
    with static_host(exported, issued.static_port) as host:
        spec["exportUrl"] = host + "/index.html"
        spec_file.write_text(json.dumps(spec))
        done = subprocess.run(
            ["node", str(DRIVER), str(spec_file)],
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT_SECONDS,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    (artifacts / "observations.json").write_text(done.stdout)
    result: dict[str, Any] = json.loads(done.stdout)
    result["artifacts"] = artifacts
    return result


ALL_VALID = dict.fromkeys(
    ("format", "anchoring", "issuer", "key", "proof", "validity", "status"), "valid"
)


def test_valid_credential_reads_in_plain_words(browser_run: dict[str, Any]) -> None:
    assert browser_run["headers"]["content-security-policy"] == CSP
    valid = browser_run["cases"]["valid"]
    assert valid["verdict"] == "valid", valid
    assert valid["title"] == "This credential checks out"
    assert _checks(valid) == ALL_VALID
    # What it is: achievement, criteria, skills, the registered issuer name, dates.
    what = valid["what"]
    for text in (
        "Welding I",
        "Basic shielded metal arc welding",
        "Passed the practical and written assessments",
        "51-4121.00",
        "O*NET-SOC",
        "County College (registered with this service)",
        "Does not expire",
    ):
        assert text in what, (text, what)
    assert valid["skills"] == [
        {
            "text": "Welders, Cutters, Solderers, and Brazers",
            "href": "https://onet.example/51-4121.00",
            "rel": "noopener noreferrer",
        }
    ]
    # The anchor, with a link to the explorer.
    assert "Confirmations" in valid["anchor"]
    assert "eip155:" in valid["anchor"]
    explorer = valid["explorer"]
    assert explorer["href"] == f"{EXPLORER}/tx/{explorer['text']}"
    assert explorer["text"].startswith("0x")
    assert explorer["rel"] == "noopener noreferrer"
    assert sorted(valid["status"]) == [["revocation", "valid"], ["suspension", "valid"]]
    assert valid["focused"] == "verdict-title"


def test_email_comparison_happens_in_the_browser(browser_run: dict[str, Any]) -> None:
    valid = browser_run["cases"]["valid"]
    assert valid["emailMatch"]["match"] == "yes", valid["emailMatch"]
    assert LEARNER in valid["emailMatch"]["text"]
    assert valid["emailCapitals"]["match"] == "yes"  # typed in capitals: compared lower-cased
    assert valid["emailOther"]["match"] == "no"
    assert "Does not match" in valid["emailOther"]["text"]


def test_revoked_suspended_and_tampered_fail(browser_run: dict[str, Any]) -> None:
    cases = browser_run["cases"]
    revoked, suspended, tampered = cases["revoked"], cases["suspended"], cases["tampered"]
    assert revoked["verdict"] == "invalid"
    assert revoked["title"] == "Do not rely on this credential"
    assert _checks(revoked) == {**ALL_VALID, "status": "invalid"}
    assert sorted(revoked["status"]) == [["revocation", "revoked"], ["suspension", "valid"]]
    assert suspended["verdict"] == "invalid"
    assert sorted(suspended["status"]) == [["revocation", "valid"], ["suspension", "suspended"]]
    assert tampered["verdict"] == "invalid"
    # Changed after signing: the signature fails and no receipt exists for its digest.
    assert _checks(tampered)["proof"] == "invalid"
    assert _checks(tampered)["anchoring"] != "valid"
    assert "Welding III (Master)" in tampered["what"]


def test_a_dropped_file_is_checked(browser_run: dict[str, Any]) -> None:
    dropped = browser_run["cases"]["dropped"]
    assert dropped["verdict"] == "invalid"
    assert sorted(dropped["status"]) == [["revocation", "valid"], ["suspension", "suspended"]]


def test_not_a_credential_is_said_plainly(browser_run: dict[str, Any]) -> None:
    not_json = browser_run["cases"]["notJson"]
    assert not not_json["shown"]
    assert not_json["message"].startswith("This is not a credential: the file is not JSON")
    other = browser_run["cases"]["notCredential"]
    assert other["shown"]
    assert other["verdict"] == "invalid"
    assert other["title"] == "This is not a valid credential"
    assert _checks(other)["format"] == "invalid"


def test_keyboard_alone_and_the_auditors_view(browser_run: dict[str, Any]) -> None:
    keyboard = browser_run["keyboard"]
    assert keyboard["reachedPaste"]
    assert keyboard["reachedButton"]
    assert keyboard["result"]["verdict"] == "valid"
    assert keyboard["reachedEmail"]
    assert keyboard["email"] == "yes"
    assert keyboard["reachedAudit"]
    audit = keyboard["audit"]
    assert "ler-anchor.localhost/log" in audit
    assert "final" in audit
    assert "Status list versions" in audit
    assert "No status lists published yet." not in audit


def test_no_accessibility_violations_and_no_page_errors(browser_run: dict[str, Any]) -> None:
    states = {
        "empty": browser_run["axeEmpty"],
        "valid": browser_run["cases"]["valid"]["axe"],
        **{name: browser_run["cases"][name]["axe"] for name in ("revoked", "tampered")},
        "notJson": browser_run["cases"]["notJson"]["axe"],
        "audit": browser_run["keyboard"]["axe"],
    }
    assert {name: v for name, v in states.items() if v} == {}
    # Nothing blocked by the CSP, no script errors.
    assert browser_run["console"] == []
    for name in ("valid", "revoked", "tampered", "audit", "page"):
        assert (browser_run["artifacts"] / f"{name}.png").stat().st_size > 10_000


def test_exported_page_on_another_origin(browser_run: dict[str, Any]) -> None:
    exported = browser_run["exported"]
    assert exported["verdict"] == "valid", exported
    assert _checks(exported) == ALL_VALID
    # That page's config names no explorer: the transaction is plain text.
    assert exported["explorer"] is None


# ---- without a browser -------------------------------------------------------------------------


async def test_page_routes_headers_and_export(tmp_path: Path) -> None:
    port = free_port()
    config = service_config(tmp_path, port=port, explorer_url=EXPLORER)
    runner = make_runner(create_app(config))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for path, media in (
                ("/", "text/html"),
                ("/page/page.css", "text/css"),
                ("/page/page.js", "text/javascript"),
                ("/page/config.js", "text/javascript"),
            ):
                async with session.get(base + path) as response:
                    assert response.status == 200, path
                    assert response.content_type == media
                    assert response.headers["Content-Security-Policy"] == CSP
                    assert response.headers["X-Content-Type-Options"] == "nosniff"
                    body = await response.text()
            assert json.loads(body.split("=", 1)[1].rstrip(";\n")) == {
                "service": "",
                "explorer": EXPLORER,
            }
            async with session.get(base + "/page/index.html") as response:
                assert response.status == 404
                assert response.content_type == "application/problem+json"
            # Same origin only: no CORS headers without --page-origins.
            headers = {"Origin": "https://elsewhere.example"}
            async with session.get(base + "/v1/log", headers=headers) as response:
                assert "Access-Control-Allow-Origin" not in response.headers
    finally:
        await runner.cleanup()

    out = tmp_path / "site"
    text = cli("page", "export", "--out", str(out), "--service", "https://anchor.example/")
    assert "connect-src 'self' https://anchor.example;" in text
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "index.html",
        "page/config.js",
        "page/page.css",
        "page/page.js",
    ]
    assert '"service": "https://anchor.example"' in (out / "page/config.js").read_text()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["page", "export", "--out", str(out), "--service", "javascript:alert(1)"])
    assert code == 2
    assert len(err.getvalue().strip().splitlines()) == 1
    assert "is not an http(s) URL" in err.getvalue()


async def test_cors_for_exported_pages(tmp_path: Path) -> None:
    port = free_port()
    page_origin = "https://verify.county.example"
    config = service_config(tmp_path, port=port, page_origins=page_origin)
    runner = make_runner(create_app(config))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            preflight = {"Origin": page_origin, "Access-Control-Request-Method": "POST"}
            async with session.options(base + "/v1/verify", headers=preflight) as response:
                assert response.status == 204
                assert response.headers["Access-Control-Allow-Origin"] == page_origin
            # A problem answer carries it too (the page can read why).
            async with session.post(
                base + "/v1/verify", data=b"[]", headers={"Origin": page_origin}
            ) as response:
                assert response.status == 400
                assert response.headers["Access-Control-Allow-Origin"] == page_origin
            # Other origins, signed writes and the admin API get nothing.
            stranger = {"Origin": "https://elsewhere.example"}
            async with session.get(base + "/v1/log", headers=stranger) as response:
                assert "Access-Control-Allow-Origin" not in response.headers
            preflight["Access-Control-Request-Method"] = "POST"
            async with session.options(base + "/v1/entries", headers=preflight) as response:
                assert "Access-Control-Allow-Origin" not in response.headers
            admin = {"Origin": page_origin}
            async with session.get(base + "/v1/admin/issuers", headers=admin) as response:
                assert "Access-Control-Allow-Origin" not in response.headers
    finally:
        await runner.cleanup()


async def test_verified_credentials_are_neither_logged_nor_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Everything the service logs at DEBUG (access log included) and every file it writes
    is searched for the credential's contents after ``POST /v1/verify``."""
    issuer = Ed25519Key.generate()
    marker = "Privacy-Marker-7d1f0c"
    identity = credentials.hashed_identity("private.person@example.org")
    achievement = credentials.parse_achievement({**ACHIEVEMENT, "name": marker})
    document = credentials.open_badge(
        issuer=issuer.did, issuer_name="County College", achievement=achievement, subject=identity
    )
    signed = credentials.sign(document, issuer.seed(), issuer.verification_method)
    secrets = [marker, identity["salt"], identity["identityHash"], signed["id"]]
    secrets.append(signed["proof"][0]["proofValue"])

    port = free_port()
    config = service_config(tmp_path, port=port)
    runner = make_runner(create_app(config))
    caplog.set_level(logging.DEBUG)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/v1/verify", json={"credential": signed}
            ) as response,
        ):
            assert response.status == 200
            report = await response.json()
    finally:
        await runner.cleanup()
    assert report["checks"][0] == {
        "check": "format",
        "result": "valid",
        "reason": "VC Data Model 2.0",
    }
    assert report["issuer"] == {"id": issuer.did, "registeredName": None}
    logged = caplog.text
    assert '"POST /v1/verify" 200' in logged  # the access log was captured
    for secret in secrets:
        assert secret not in logged
    written = [p for p in config.data_dir.rglob("*") if p.is_file()]
    assert any(p.name.startswith("ler-anchor.db") for p in written)
    for path in written:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, path


@pytest.mark.parametrize(
    "overrides",
    [
        {"explorer_url": "javascript:alert(1)"},
        {"explorer_url": 'https://explorer.example/"><script>'},
        {"explorer_url": "https://explorer.example/?q="},
        {"page_origins": "https://verify.county.example/path"},
        {"page_origins": "https://verify.county.example, ftp://files.example"},
    ],
)
def test_page_settings_are_checked(tmp_path: Path, overrides: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        service_config(tmp_path, **overrides)


def test_summary_leads_with_what_the_credential_claims() -> None:
    """OB 3.0 or CLR 2.0 (achievements in nested credentials), ``proof`` object or array."""
    badge = {
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": "did:web:college.example", "name": "County College"},
        "validFrom": "2026-01-05T00:00:00Z",
        "credentialSubject": {"achievement": ACHIEVEMENT},
        "proof": [{"type": "DataIntegrityProof"}, {"type": "DataIntegrityProof"}],
    }
    clr = {
        "type": ["VerifiableCredential", "ClrCredential"],
        "issuer": "did:web:board.example",
        "validFrom": "2026-02-01T00:00:00Z",
        "validUntil": "2031-02-01T00:00:00Z",
        "credentialSubject": {"verifiableCredential": [badge, "not an object"]},
        "proof": {"type": "DataIntegrityProof"},
    }
    summary = summarize(clr)
    assert summary is not None
    assert summary.lines() == [
        "credential  ClrCredential",
        "achievement Welding I: Basic shielded metal arc welding",
        "issuer      (did:web:board.example) as the credential says",
        "issued      2026-02-01T00:00:00Z",
        "expires     2031-02-01T00:00:00Z",
    ]
    badge_summary = summarize(badge)
    assert badge_summary is not None
    assert badge_summary.issuer_name == "County College"
    assert summarize(["not", "a", "credential"]) is None
    assert summarize({}) == summarize({"type": "odd"})


def test_missing_browser_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        missing(str(CHROMIUM), "apt-get install chromium")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        missing(str(CHROMIUM), "apt-get install chromium")
