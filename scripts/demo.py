#!/usr/bin/env python3
"""The whole LER Anchor story, end to end, against a real anvil node.

Every step drives the real ``ler-anchor`` command line as a subprocess, prints the command
exactly as a user would type it (run from the demo's working directory, so paths are short)
and the command's real output, trimmed when long::

    python scripts/demo.py [--workdir DIR] [--learners N] [--quiet]

 1. a local chain (anvil) and the anchor contract (``deploy``)
 2. the service (``serve``), anchoring every second
 3. two issuers, a college and a training provider (``keygen``, ``issuer add``, ``status key``)
 4. the college issues N credentials from a CSV of learners (hashed e-mail identifiers), the
    provider a few, one of them with a suspension entry too; every receipt anchored on chain
 5. three credentials revoked, one suspended (``status set``)
 6. an employer trusts the service's log (``trust add``), verifies a receipt alone
    (``receipt verify``), then a good, a revoked and a tampered credential (``verify``)
 7. selective disclosure: a did:web college (its DID document served over HTTPS on
    127.0.0.1) issues an ``ecdsa-sd-2023`` credential with the learner's name and birth date
    (``keygen --type p256``, ``issue --selective-disclosure``); the learner hides both
    (``disclose``) and an employer verifies the derived copy (``verify``)
 8. the log exported and replayed by an auditor from the chain (``log export``, ``audit``)
 9. an altered entry in a copy of the export, caught by the audit
10. the service and the chain shut down; nothing left running

The demo exits 0 when every step came out as the story says, 1 as soon as one did not (the
reason is printed), 2 when it cannot start (anvil missing, a non-empty ``--workdir``). It only
ever talks to 127.0.0.1. Without ``--workdir`` everything lives in a temporary directory that
is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import http.server
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import base58
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from eth_account import Account

from anchor.core.entry import Entry, decode
from anchor.keys import load_ed25519_key
from anchor.vc import credentials

REPO = Path(__file__).resolve().parent.parent
ANVIL_WRAPPER = REPO / "contracts" / "node_modules" / ".bin" / "anvil"
ANVIL_NATIVE = {
    ("linux", "x86_64"): "anvil-linux-amd64",
    ("linux", "aarch64"): "anvil-linux-arm64",
    ("darwin", "x86_64"): "anvil-darwin-amd64",
    ("darwin", "arm64"): "anvil-darwin-arm64",
}
"""The npm platform package holding anvil's native binary (signals reach it directly)."""

HOST = "127.0.0.1"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_ACCOUNT_PATH = "m/44'/60'/0'/0/0"
"""anvil's first funded account: the service's deploying and anchoring account."""

DEFAULT_LEARNERS = 1000
DEFAULT_TIMEOUT = 900.0
COMMAND_TIMEOUT = 300.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
ANCHOR_TIMEOUT = 90.0
WIDTH = 96
PROGRESS_BAR = re.compile(r"\s*\d+%\|")
"""A line of a tqdm progress bar."""

EXIT_OK = 0
EXIT_STORY = 1
EXIT_SETUP = 2

COLLEGE = "County Community College"
PROVIDER = "Northside Training Center"
WEB_COLLEGE = "Riverside Polytechnic"
REVOCATIONS = ("issued in error", "academic misconduct", "duplicate record")
SUSPENSION_REASON = "safety review pending"

WELDING = {
    "id": "https://county-college.example/achievements/welding-1",
    "name": "Certificate in Welding Technology I",
    "description": "Shielded metal arc and gas metal arc welding, blueprint reading, safety.",
    "criteria": "Completed 240 lab hours and passed the AWS D1.1 practical bend test.",
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
FORKLIFT = {
    "id": "https://northside-training.example/badges/forklift-operator",
    "name": "Powered Industrial Truck Operator",
    "description": "Safe operation of counterbalanced forklifts (OSHA 29 CFR 1910.178).",
    "criteria": "Passed the written test and a supervised driving evaluation.",
    "achievementType": "License",
}


class StoryError(Exception):
    """A step did not come out as the story says."""


class SetupError(Exception):
    """The demo cannot run here (no anvil, unusable working directory)."""


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def _loopback_opener() -> urllib.request.OpenerDirector:
    """urllib without proxies: the demo only ever talks to 127.0.0.1."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(url: str, timeout: float = 5.0) -> Any:
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"refusing a non-loopback URL {url}")
    with _loopback_opener().open(url, timeout=timeout) as response:
        return json.loads(response.read())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def progress_lines(text: str) -> list[str]:
    """stderr lines as a terminal would leave them: of a progress bar (redrawn with ``\\r``
    on a terminal, one line per refresh in a pipe) only its last state."""
    lines: list[str] = []
    for line in text.splitlines():
        parts = [part.rstrip() for part in line.split("\r") if part.strip()]
        if not parts:
            continue
        if lines and PROGRESS_BAR.match(lines[-1]) and PROGRESS_BAR.match(parts[-1]):
            lines[-1] = parts[-1]
        else:
            lines.append(parts[-1])
    return lines


def trim(lines: Sequence[str], head: int, tail: int) -> list[str]:
    if len(lines) <= head + tail + 1:
        return list(lines)
    hidden = len(lines) - head - tail
    return [*lines[:head], f"… ({hidden:,} more lines)", *lines[len(lines) - tail :]]


def shorten(line: str, width: int = 150) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def command_text(argv: Sequence[str]) -> str:
    """``$ argv`` wrapped at argument boundaries with shell continuations."""
    words = [shlex.quote(word) for word in argv]
    lines: list[str] = []
    current = "$"
    for word in words:
        if len(current) + 1 + len(word) > WIDTH and current not in ("$", "   "):
            lines.append(current + " \\")
            current = "   "
        current += " " + word
    lines.append(current)
    return "\n".join(lines)


def ler_anchor() -> list[str]:
    """How to run the CLI of the Python running this script."""
    script = Path(sys.executable).parent / "ler-anchor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "anchor"]


def find_anvil() -> Path:
    if not ANVIL_WRAPPER.exists():
        raise SetupError(
            f"anvil is not installed at {ANVIL_WRAPPER}: run `npm ci --prefix contracts`"
        )
    package = ANVIL_NATIVE.get((platform.system().lower(), platform.machine().lower()))
    if package:
        native = REPO / "contracts" / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"
        if native.is_file():
            return native
    return ANVIL_WRAPPER


def chain_key_hex() -> str:
    """The private key of anvil's first funded account, ``0x`` + 64 hex digits."""
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=ANVIL_ACCOUNT_PATH)
    return "0x" + bytes(account.key).hex()


def write_secret(path: Path, text: str) -> None:
    """A new file readable by its owner only (mode 0600), as ``anchor.keys`` requires."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text + "\n")


def stop_process(process: subprocess.Popen[bytes], sig: int) -> int | None:
    """Signal the process group started for ``process``; SIGKILL it if it lingers.
    Returns its exit status, None when it had to be killed."""
    if process.poll() is not None:
        return process.returncode
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)
        return None


class WebDidHost:
    """A did:web DID document served over HTTPS on 127.0.0.1 (self-signed ``localhost``
    certificate in the working directory, handed to the service and the verifier)."""

    def __init__(self, workdir: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        self.ca_file = workdir / "localhost.crt"
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = workdir / "localhost.key"
        write_secret(
            key_file,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
        )
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(self.ca_file, key_file)
        self.document: dict[str, Any] = {}
        self.server: http.server.ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def did(self) -> str:
        return f"did:web:localhost%3A{self.port}"

    def start(self) -> None:
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/.well-known/did.json":
                    self.send_error(404)
                    return
                body = json.dumps(host.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/did+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Demo:
    def __init__(self, workdir: Path, learners: int, quiet: bool, deadline: float) -> None:
        self.workdir = workdir
        self.learners = learners
        self.quiet = quiet
        self.deadline = deadline
        self.cli = ler_anchor()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LER_ANCHOR_")}
        self.env["NO_PROXY"] = self.env["no_proxy"] = f"{HOST},localhost"
        # the employer's trust file (`trust add`) stays in the working directory
        self.env["XDG_CONFIG_HOME"] = str(workdir / "config")
        self.anvil: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.anvil_port = 0
        self.service_port = 0
        self.rpc_url = ""
        self.service = ""
        self.contract = ""
        self.web_host = WebDidHost(workdir)
        self.started = time.monotonic()
        self.step_number = 0
        self.checks = 0

    # -- printing ----------------------------------------------------------------------

    def out(self, text: str = "") -> None:
        if not self.quiet:
            print(text, flush=True)

    def heading(self, title: str) -> None:
        self.step_number += 1
        elapsed = time.monotonic() - self.started
        line = f"━━ {self.step_number}. {title} "
        if self.quiet:
            print(f"{self.step_number}. {title} ({elapsed:.0f} s)", flush=True)
        else:
            print(f"\n{line}{'━' * max(4, WIDTH - len(line) - 8)} {elapsed:5.1f}s", flush=True)

    def note(self, text: str) -> None:
        """Narration: what happens and why."""
        self.out(f"# {text}")

    def check(self, ok: bool, what: str, failure: str | None = None) -> None:
        if not ok:
            raise StoryError(failure or f"expected: {what}")
        self.checks += 1
        self.out(f"✔ {what}")

    # -- running commands ----------------------------------------------------------------

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StoryError("the demo ran out of time (see --timeout)")
        return left

    def run(
        self,
        *args: str,
        expect: int | None = 0,
        head: int = 12,
        tail: int = 4,
        timeout: float = COMMAND_TIMEOUT,
        stderr_first: bool = False,
    ) -> Result:
        """Run ``ler-anchor ARGS`` in the working directory, show it and its output, and
        check its exit status (``expect``; None: any)."""
        shown = ("ler-anchor", *args)
        self.out(command_text(shown))
        began = time.monotonic()
        try:
            done = subprocess.run(
                [*self.cli, *args],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=min(timeout, self.remaining()),
            )
        except subprocess.TimeoutExpired as err:
            raise StoryError(f"`{' '.join(shown)}` did not finish in {err.timeout:.0f} s") from None
        result = Result(
            tuple(shown), done.returncode, done.stdout, done.stderr, time.monotonic() - began
        )
        out_lines = [shorten(line) for line in result.lines]
        err_lines = [shorten(line) for line in progress_lines(result.stderr)]
        blocks = [err_lines, out_lines] if stderr_first else [out_lines, err_lines]
        failed = expect is not None and result.code != expect
        if failed and self.quiet:
            print(command_text(shown), flush=True)
        for block in blocks:
            for line in trim(block, head if not failed else 40, tail if not failed else 20):
                if self.quiet and not failed:
                    continue
                print(f"  {line}", flush=True)
        self.out(f"  [exit {result.code}, {result.seconds:.1f} s]")
        if failed:
            raise StoryError(f"`{' '.join(shown[:3])} …` exited {result.code}, expected {expect}")
        return result

    # -- the chain and the service -------------------------------------------------------

    def start_anvil(self) -> None:
        executable = find_anvil()
        for _ in range(5):
            port = free_port()
            command = [str(executable), "--host", HOST, "--port", str(port), "--silent"]
            log = (self.workdir / "anvil.log").open("wb")
            with log:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.anvil = process
            if self.wait_rpc(process, f"http://{HOST}:{port}"):
                self.anvil_port = port
                self.rpc_url = f"http://{HOST}:{port}"
                shown = command_text(["anvil", "--host", HOST, "--port", str(port), "--silent"])
                self.out(shown + " &")
                return
            stop_process(process, signal.SIGKILL)
        raise SetupError(f"anvil did not start; see {self.workdir / 'anvil.log'}")

    def wait_rpc(self, process: subprocess.Popen[bytes], url: str) -> bool:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end and process.poll() is None:
            request = urllib.request.Request(
                url, data=body.encode(), headers={"Content-Type": "application/json"}
            )
            try:
                with _loopback_opener().open(request, timeout=2) as response:
                    if "result" in json.loads(response.read()):
                        return True
            except (OSError, ValueError):
                time.sleep(0.1)
        return False

    def start_service(self, token: str) -> None:
        for _ in range(3):
            port = free_port()
            args = [
                "serve",
                "--rpc-url",
                self.rpc_url,
                "--contract",
                self.contract,
                "--data-dir",
                "data",
                "--port",
                str(port),
                "--anchor-interval",
                "1",
                "--confirmations",
                "1",
                "--operator-token",
                token,
                # the did:web college of step 7 is served on this machine, self-signed
                "--ca-file",
                self.web_host.ca_file.name,
                "--outbound-networks",
                "any",
            ]
            self.out(command_text(["ler-anchor", *args]) + " > serve.log 2>&1 &")
            log = (self.workdir / "serve.log").open("ab")
            with log:
                process = subprocess.Popen(
                    [*self.cli, *args],
                    cwd=self.workdir,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.server = process
            url = f"http://{HOST}:{port}"
            end = time.monotonic() + START_TIMEOUT
            while time.monotonic() < end and process.poll() is None:
                try:
                    health = http_json(f"{url}/healthz", timeout=2)
                except (OSError, ValueError):
                    time.sleep(0.2)
                    continue
                self.service_port = port
                self.service = url
                for line in (self.workdir / "serve.log").read_text().splitlines():
                    if "WARNING" in line or "listening" in line:
                        self.out(f"  {shorten(line)}")
                self.out(f"$ curl -s {url}/healthz")
                self.out(f"  {shorten(json.dumps(health))}")
                return
            stop_process(process, signal.SIGKILL)
            self.note(f"the service did not come up on port {port}; trying another port")
        tail = (self.workdir / "serve.log").read_text().splitlines()[-10:]
        raise SetupError("the service did not start:\n  " + "\n  ".join(tail))

    def health(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = http_json(f"{self.service}/healthz")
        except urllib.error.HTTPError as err:  # 503 "failing" still carries the document
            if err.code != 503:
                raise
            body = json.loads(err.read())
        return body

    def wait_anchored(self) -> dict[str, Any]:
        """Wait until a final anchor covers the whole log; return the health document."""
        end = time.monotonic() + min(ANCHOR_TIMEOUT, self.remaining())
        while True:
            health = self.health()
            chain = health.get("chain") or {}
            last = chain.get("lastAnchor") or {}
            size = health["store"]["treeSize"]
            if last.get("state") == "final" and last.get("treeSize") == size:
                return health
            if time.monotonic() > end:
                raise StoryError(f"the log ({size} entries) was not anchored in time: {chain}")
            time.sleep(0.3)

    def show_anchor(self, health: dict[str, Any]) -> None:
        last = health["chain"]["lastAnchor"]
        self.note(
            f"/healthz: last anchor covers {last['treeSize']:,} entries, block "
            f"{last['blockNumber']} (tx {last['transactionHash'][:18]}…), {last['state']}"
        )

    def stop(self) -> tuple[int | None, int | None]:
        """Stop the service (Ctrl-C, as its user would) and anvil; their exit statuses."""
        self.web_host.stop()
        served = stop_process(self.server, signal.SIGINT) if self.server else 0
        chain = stop_process(self.anvil, signal.SIGTERM) if self.anvil else 0
        return served, chain

    # -- the story -----------------------------------------------------------------------

    def story(self) -> None:
        self.step_chain()
        self.step_service()
        college, provider = self.step_issuers()
        issued = self.step_issue(college, provider)
        self.step_status(issued)
        tampered = self.step_verify(issued)
        self.step_selective_disclosure()
        export, verifier_key = self.step_audit()
        self.step_altered_log(export, verifier_key, issued["good"], tampered)
        self.step_shutdown()

    def step_chain(self) -> None:
        self.heading("A local chain and the anchor contract")
        self.out(f"$ cd {self.workdir}")
        self.start_anvil()
        (self.workdir / "data").mkdir(mode=0o700)
        write_secret(self.workdir / "data" / "chain-key.hex", chain_key_hex())
        self.note("anvil's first funded account becomes the anchoring account (hex, mode 0600)")
        result = self.run(
            "deploy", "--rpc-url", self.rpc_url, "--chain-key-file", "data/chain-key.hex"
        )
        found = [line.split()[1] for line in result.lines if line.startswith("LogAnchor")]
        self.check(
            len(found) == 1 and found[0].startswith("0x"),
            f"LogAnchor deployed at {found[0] if found else '?'}",
        )
        self.contract = found[0]

    def step_service(self) -> None:
        self.heading("The anchoring service")
        self.start_service(secrets.token_hex(16))
        self.check(self.health()["chain"]["ok"] is True, "service up, chain reachable")

    def step_issuers(self) -> tuple[str, str]:
        self.heading("Two issuers: a college and a training provider")
        dids = []
        for name, keyfile in ((COLLEGE, "college.jwk"), (PROVIDER, "provider.jwk")):
            did = self.run("keygen", "--out", keyfile).stdout.strip()
            self.run("issuer", "--data-dir", "data", "add", did, "--name", name)
            key = self.run("status", "key", "--service", self.service, "--key", keyfile, head=4)
            info = json.loads(key.stdout)
            self.check(
                info.get("authorized") is True and info.get("custody") == "uploaded",
                f"{name}: {did[:24]}…, status list key uploaded",
            )
            dids.append(did)
        return dids[0], dids[1]

    def write_learners(self, path: Path, count: int, domain: str) -> None:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["identifier"])
            for n in range(1, count + 1):
                writer.writerow([f"learner{n:05d}@{domain}"])

    def issued_files(self, result: Result) -> list[tuple[Path, str]]:
        """(credential file, digest) from the lines ``issue`` prints."""
        files = []
        for line in result.lines:
            parts = line.split()
            if len(parts) == 3 and parts[1] == "digest":
                files.append((self.workdir / parts[0], parts[2]))
        return files

    def step_issue(self, college: str, provider: str) -> dict[str, Any]:
        self.heading(f"Issuing: {self.learners:,} college certificates, a few provider licenses")
        (self.workdir / "welding.json").write_text(json.dumps(WELDING, indent=2) + "\n")
        (self.workdir / "forklift.json").write_text(json.dumps(FORKLIFT, indent=2) + "\n")
        self.write_learners(self.workdir / "learners.csv", self.learners, "students.example.edu")
        self.write_learners(self.workdir / "trainees.csv", 4, "mail.example.org")
        head = (self.workdir / "learners.csv").read_text().splitlines()[:3]
        self.out("$ head -3 learners.csv")
        self.out("\n".join(f"  {line}" for line in head))
        self.note("e-mail addresses are hashed (salted SHA-256) into the credentials;")
        self.note("only the credentials' digests ever reach the service")
        result = self.run(
            "issue",
            "--service",
            self.service,
            "--key",
            "college.jwk",
            "--issuer-name",
            COLLEGE,
            "--achievement",
            "welding.json",
            "--csv",
            "learners.csv",
            "--out",
            "credentials/college",
            "--wait",
            "120",
            head=3,
            tail=2,
            stderr_first=True,
        )
        college_files = self.issued_files(result)
        receipts = list((self.workdir / "credentials" / "college").glob("*.receipt.json"))
        self.out("$ ls credentials/college/*.receipt.json | wc -l")
        self.out(f"  {len(receipts)}")
        self.check(
            len(college_files) == self.learners and len(receipts) == self.learners,
            f"{len(college_files):,} credentials signed and written, "
            f"{len(receipts):,} receipts anchored on chain",
        )
        result = self.run(
            "issue",
            "--service",
            self.service,
            "--key",
            "provider.jwk",
            "--issuer-name",
            PROVIDER,
            "--achievement",
            "forklift.json",
            "--csv",
            "trainees.csv",
            "--out",
            "credentials/provider",
            "--wait",
            "60",
        )
        provider_files = self.issued_files(result)
        self.check(len(provider_files) == 4, "4 provider credentials")
        suspendable = self.issue_with_suspension(provider)
        health = self.wait_anchored()
        self.run("log", "--db", "data/ler-anchor.db", "info")
        self.show_anchor(health)
        expected = self.learners + len(provider_files) + 1
        self.check(
            health["store"]["treeSize"] >= expected,
            f"log of {health['store']['treeSize']:,} entries, all under a final anchor",
        )
        return {
            "good": college_files[-1][0],
            "revoke": [path for path, _ in college_files[:3]],
            "suspend": suspendable,
            "college": college_files,
        }

    def issue_with_suspension(self, provider: str) -> Path:
        """A credential carrying a revocation and a suspension entry: allocated with the
        CLI, built and signed by the provider's own system, anchored with ``submit``."""
        self.note("the provider's own system issues a license that can also be suspended:")
        self.note("entries from `status allocate`, anchoring with `submit` and `receipt`")
        credential_id = "urn:uuid:6d7c1f0e-3b2a-4c55-9e0f-1a2b3c4d5e6f"
        entries = []
        for purpose in ("revocation", "suspension"):
            result = self.run(
                "status",
                "allocate",
                "--service",
                self.service,
                "--key",
                "provider.jwk",
                "--purpose",
                purpose,
                "--credential-id",
                credential_id,
                head=8,
            )
            entries.extend(json.loads(result.stdout))
        key = load_ed25519_key(self.workdir / "provider.jwk")
        seed = key.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        document = credentials.open_badge(
            issuer=provider,
            issuer_name=PROVIDER,
            achievement=credentials.parse_achievement(FORKLIFT),
            subject=credentials.hashed_identity("lead.operator@mail.example.org"),
            status=entries,
            credential_id=credential_id,
        )
        signed = credentials.sign(document, seed, key.verification_method)
        path = self.workdir / "credentials" / "provider" / "forklift-lead-operator.json"
        path.write_text(json.dumps(signed, indent=2) + "\n")
        self.note(f"built and signed (anchor.vc.credentials.open_badge, sign) → {self.rel(path)}")
        result = self.run(
            "submit", "--service", self.service, "--key", "provider.jwk", "--file", self.rel(path)
        )
        digest = credentials.digest(signed).hex()
        self.check(digest in result.stdout, "submitted for anchoring")
        receipt = path.with_suffix(".receipt.json")
        self.run(
            "receipt",
            "--service",
            self.service,
            digest,
            "--wait",
            "60",
            "--out",
            self.rel(receipt),
        )
        doc = json.loads(receipt.read_text())
        anchor = doc.get("anchor") or {}
        self.check(
            receipt.exists() and bool(anchor.get("transactionHash")),
            f"receipt: leaf {doc.get('leafIndex')} under checkpoint {doc['checkpoint']['size']}, "
            f"anchored in block {anchor.get('blockNumber')} on {anchor.get('chain')}",
        )
        return path

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.workdir))

    def step_status(self, issued: dict[str, Any]) -> None:
        self.heading("Three credentials revoked, one suspended")
        for path, reason in zip(issued["revoke"], REVOCATIONS, strict=True):
            self.run(
                "status",
                "set",
                "--service",
                self.service,
                "--key",
                "college.jwk",
                "--entry",
                self.rel(path),
                "--value",
                "1",
                "--reason",
                reason,
            )
        suspendable: Path = issued["suspend"]
        entry = next(
            e
            for e in json.loads(suspendable.read_text())["credentialStatus"]
            if e["statusPurpose"] == "suspension"
        )
        entry_file = self.workdir / "suspension-entry.json"
        entry_file.write_text(json.dumps(entry, indent=2) + "\n")
        self.note("the license has two status entries: its suspension entry, saved to a file")
        self.run(
            "status",
            "set",
            "--service",
            self.service,
            "--key",
            "provider.jwk",
            "--entry",
            "suspension-entry.json",
            "--value",
            "1",
            "--reason",
            SUSPENSION_REASON,
        )
        revoked = self.run("status", "check", self.rel(issued["revoke"][0]), expect=1)
        suspended = self.run("status", "check", self.rel(suspendable), expect=1)
        self.check(
            "status: revoked" in revoked.stdout and "status: suspended" in suspended.stdout,
            "status check: revoked (exit 1), suspended (exit 1)",
        )
        self.show_anchor(self.wait_anchored())
        self.check(True, "every new status list version logged and anchored")

    def step_verify(self, issued: dict[str, Any]) -> Path:
        self.heading("An employer verifies three credentials")
        good: Path = issued["good"]
        revoked: Path = issued["revoke"][0]
        tampered = self.workdir / "tampered.json"
        doc = json.loads(good.read_text())
        achievement = doc["credentialSubject"]["achievement"]
        achievement["name"] = "Certificate in Welding Technology III (Master)"
        tampered.write_text(json.dumps(doc, indent=2) + "\n")
        self.note(f"tampered.json: {self.rel(good)} with its achievement renamed to")
        self.note(f"  {achievement['name']!r}")
        chain = ("--rpc-url", self.rpc_url)
        receipt = self.rel(good.with_suffix(".receipt.json"))
        self.note("the employer trusts the service's log once (a receipt never vouches for")
        self.note("itself): compare the fingerprint with the one the college publishes")
        trusted = self.run("trust", "add", self.service)
        self.check(
            "fingerprint" in trusted.stdout,
            "the log's trust root (origin, key, chain, contract) stored with its fingerprint",
        )
        self.note("the learner's wallet holds the credential and its receipt")
        alone = self.run("receipt", "verify", receipt, *chain, expect=None)
        self.check(
            alone.code == 0 and "RESULT" in alone.stdout,
            "the receipt alone verifies: entry, leaf, checkpoint, block, time (exit 0)",
            f"the receipt did not verify (exit {alone.code})",
        )
        ok = self.run("verify", self.rel(good), "--receipt", receipt, *chain, expect=None)
        self.check(
            ok.code == 0,
            "the good credential verifies (exit 0)",
            f"the good credential did not verify (exit {ok.code})",
        )
        self.note("without a receipt, the verifier looks it up by the credential's digest")
        bad = self.run("verify", self.rel(revoked), "--service", self.service, *chain, expect=None)
        self.check(
            bad.code == 1 and "revoked" in bad.stdout,
            "the revoked credential is refused (exit 1)",
            f"the revoked credential was not refused as revoked (exit {bad.code})",
        )
        forged = self.run("verify", "tampered.json", "--receipt", receipt, *chain, expect=None)
        self.check(
            forged.code == 1,
            "the tampered credential is refused (exit 1)",
            f"the tampered credential was not refused (exit {forged.code})",
        )
        return tampered

    def step_selective_disclosure(self) -> None:
        self.heading("Selective disclosure: the learner hides her name and birth date")
        host = self.web_host
        host.start()
        did = host.did
        keyid, sd_keyid = f"{did}#key-1", f"{did}#sd-1"
        self.note(f"a college publishing its DID document at https://localhost:{host.port}")
        self.run("keygen", "--out", "web-college.jwk")
        p256 = self.run("keygen", "--type", "p256", "--out", "web-college-p256.jwk")
        request_key = load_ed25519_key(self.workdir / "web-college.jwk")
        host.document = {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "verificationMethod": [
                {
                    "id": keyid,
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": "z"
                    + base58.b58encode(b"\xed\x01" + request_key.public_bytes).decode(),
                },
                {
                    "id": sd_keyid,
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": p256.stdout.strip().removeprefix("did:key:"),
                },
            ],
            "authentication": [keyid],
            "assertionMethod": [sd_keyid],
        }
        self.note("its DID document: the Ed25519 key signs requests (authentication), the")
        self.note("P-256 key signs selective disclosure credentials (assertionMethod)")
        self.run("issuer", "--data-dir", "data", "add", did, "--name", WEB_COLLEGE)
        signed = ("--service", self.service, "--key", "web-college.jwk", "--keyid", keyid)
        key = self.run("status", "key", *signed, head=3, expect=None)
        addition = json.loads(key.stdout)["didDocumentAddition"]
        host.document["verificationMethod"] += addition["verificationMethod"]
        host.document["assertionMethod"] += addition["assertionMethod"]
        self.note("the college adds the service's status list key to its DID document; the")
        self.note("service caches DID documents for 5 minutes, so the operator restarts it")
        self.out("$ kill -INT %ler-anchor")
        self.check(
            stop_process(self.server, signal.SIGINT) == 0 if self.server else False,
            "the service stopped cleanly (exit 0)",
        )
        self.start_service(secrets.token_hex(16))
        signed = ("--service", self.service, "--key", "web-college.jwk", "--keyid", keyid)
        key = self.run("status", "key", *signed, head=3)
        self.check(
            json.loads(key.stdout).get("authorized") is True,
            "the status list key is now authorised by the college's DID document",
        )
        with (self.workdir / "graduates.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["identifier", "name", "birthDate"])
            writer.writerow(["ada@students.example.edu", "Ada Lovelace", "1815-12-10"])
        self.out("$ cat graduates.csv")
        for line in (self.workdir / "graduates.csv").read_text().splitlines():
            self.out(f"  {line}")
        result = self.run(
            *("issue", *signed, "--issuer-name", WEB_COLLEGE, "--achievement", "welding.json"),
            *("--csv", "graduates.csv", "--out", "credentials/sd", "--wait", "60"),
            *("--selective-disclosure", "--sd-key", "web-college-p256.jwk"),
            *("--sd-keyid", sd_keyid),
        )
        ((credential, _digest),) = self.issued_files(result)
        full = json.loads(credential.read_text())["credentialSubject"]
        self.check(
            full.get("name") == "Ada Lovelace" and full.get("birthDate") == "1815-12-10",
            "an ecdsa-sd-2023 credential with her name and birth date, anchored",
        )
        self.note("the learner, offline: she reveals nothing but what the college made mandatory")
        self.run("disclose", self.rel(credential), "--out", "ada-shown.json")
        shown = json.loads((self.workdir / "ada-shown.json").read_text())["credentialSubject"]
        self.check(
            "name" not in shown and "birthDate" not in shown and "achievement" in shown,
            "the derived copy shows the achievement, not her name or birth date",
        )
        chain = ("--rpc-url", self.rpc_url, "--ca-file", host.ca_file.name)
        ok = self.run("verify", "ada-shown.json", "--service", self.service, *chain, expect=None)
        self.check(
            ok.code == 0 and "not disclosed: name" in ok.stdout and "birthDate" in ok.stdout,
            "the employer verifies the derived copy: anchored (receipt found from the copy), "
            "issuer's key, proof, status; name and birth date withheld (exit 0)",
            f"the derived copy did not verify (exit {ok.code})",
        )

    def step_audit(self) -> tuple[Path, str]:
        self.heading("An auditor replays the log against the chain")
        self.run("log", "--db", "data/ler-anchor.db", "export", "--out", "export")
        log_info = http_json(f"{self.service}/v1/log")
        self.out(f"$ curl -s {self.service}/v1/log")
        self.out(f"  {shorten(json.dumps(log_info), 200)}")
        key = str(log_info["verifierKey"])
        result = self.run(
            "audit",
            "--rpc-url",
            self.rpc_url,
            "--contract",
            self.contract,
            "--log",
            "export",
            "--log-key",
            key,
            head=20,
            expect=None,
        )
        self.check(
            result.code == 0 and "CLEAN" in result.stdout,
            "audit clean (exit 0)",
            f"the audit of the untouched export is not clean (exit {result.code})",
        )
        return self.workdir / "export", key

    def step_altered_log(self, export: Path, key: str, good: Path, tampered: Path) -> None:
        self.heading("An altered log entry is caught")
        altered = self.workdir / "export-altered"
        shutil.copytree(export, altered)
        receipt = json.loads(good.with_suffix(".receipt.json").read_text())
        index = int(receipt["leafIndex"])
        forged = credentials.digest(json.loads(tampered.read_text()))
        for name in json.loads((altered / "log.json").read_text())["entryPages"]:
            page = altered / name
            body = json.loads(page.read_text())
            if body["start"] <= index < body["end"]:
                break
        else:
            raise StoryError(f"entry {index} is not in the export")
        entry_doc = next(e for e in body["entries"] if e["index"] == index)
        original = decode(base64.b64decode(entry_doc["entry"]))
        swapped = Entry(original.kind, forged, original.submitter)
        entry_doc["entry"] = base64.b64encode(swapped.encode()).decode()
        entry_doc["digest"] = forged.hex()
        page.write_text(json.dumps(body, separators=(",", ":")) + "\n")
        self.note(f"an insider swaps entry {index} ({self.rel(good)}) for the digest of")
        self.note(
            f"tampered.json in {self.rel(page)}: digest {original.digest.hex()[:16]}… "
            f"→ {forged.hex()[:16]}…"
        )
        result = self.run(
            "audit",
            "--rpc-url",
            self.rpc_url,
            "--contract",
            self.contract,
            "--log",
            self.rel(altered),
            "--log-key",
            key,
            head=10,
            tail=3,
            expect=None,
        )
        self.check(
            result.code == 1 and "DISCREPANCIES" in result.stdout,
            "audit finds the altered entry (exit 1)",
            f"the audit of the altered export exited {result.code} without discrepancies",
        )

    def step_shutdown(self) -> None:
        self.heading("Shutdown")
        server, anvil = self.server, self.anvil
        self.out(f"$ kill -INT {server.pid if server else '?'}   # Ctrl-C to the service")
        served = stop_process(server, signal.SIGINT) if server else None
        log = (self.workdir / "serve.log").read_text(errors="replace").splitlines()
        last = next((line for line in reversed(log) if line.strip()), "")
        self.out(f"  {shorten(last)}")
        self.check(
            served == 0,
            "service stopped cleanly (exit status 0)",
            f"the service exited with status {served}: {shorten(last)}",
        )
        self.out(f"$ kill -TERM {anvil.pid if anvil else '?'}   # anvil")
        stopped = stop_process(anvil, signal.SIGTERM) if anvil else None
        self.check(stopped is not None, "anvil stopped")
        self.check(
            not port_open(self.service_port) and not port_open(self.anvil_port),
            "nothing left listening",
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The LER Anchor story end to end against a real anvil node."
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where the data, keys and credentials go (kept; default: a temporary directory)",
    )
    parser.add_argument(
        "--learners",
        type=int,
        default=DEFAULT_LEARNERS,
        help="credentials the college issues (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only steps and failures")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="give up after this many seconds (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 4 <= args.learners <= 100_000:
        parser.error("--learners must be between 4 and 100000")
    return args


@contextlib.contextmanager
def working_directory(path: Path | None) -> Iterator[Path]:
    if path is None:
        temporary = Path(tempfile.mkdtemp(prefix="ler-anchor-demo-"))
        try:
            yield temporary
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return
    if path.exists() and any(path.iterdir()):
        raise SetupError(f"--workdir {path} is not empty")
    path.mkdir(parents=True, exist_ok=True)
    yield path.resolve()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    try:
        with working_directory(args.workdir) as workdir:
            demo = Demo(workdir, args.learners, args.quiet, began + args.timeout)
            try:
                demo.story()
            except StoryError as err:
                print(f"\nDEMO FAILED in step {demo.step_number}: {err}", file=sys.stderr)
                return EXIT_STORY
            finally:
                demo.stop()
            where = "removed" if args.workdir is None else f"kept in {workdir}"
            print(
                f"\nDEMO OK: {demo.checks} checks in {time.monotonic() - began:.1f} s; "
                f"data {where}",
                flush=True,
            )
            return EXIT_OK
    except SetupError as err:
        print(f"demo: {err}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
