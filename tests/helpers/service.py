"""Shared helpers for tests of the running service (imported by test modules)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from anchor.cli.main import main
from anchor.client.signing import signed_headers
from anchor.config import Config
from anchor.http.appkeys import ISSUERS
from anchor.keys import Ed25519Key
from helpers.anvil import free_port

MakeClient = Callable[..., Awaitable[TestClient]]
"""The ``make_client`` fixture: ``await make_client(**overrides)`` is the service over a socket."""


def service_config(tmp_path: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "port": 8080,
        "operator_token": "operator-secret-token",
        "anchor_interval": 0.2,
        "anchor_size": 100,
    }
    values.update(overrides)
    return Config(**values).check()  # type: ignore[arg-type]


def database_settings(database: str) -> dict[str, object]:
    """:func:`service_config` overrides that put the service's database at ``database`` (the
    ``database`` fixture's value: a SQLite file path or a PostgreSQL URL)."""
    if database.startswith(("postgresql://", "postgres://")):
        return {"database": database}
    return {"db": Path(database)}


def serve_command(data_dir: Path, port: int, *extra: str) -> list[str]:
    """``ler-anchor serve`` on ``data_dir`` and ``port`` as a separate process's argv."""
    serve = (sys.executable, "-m", "anchor", "serve")
    return [*serve, "--port", str(port), "--data-dir", str(data_dir), *extra]


async def wait_healthy(url: str, timeout: float = 60) -> dict[str, Any]:
    """Poll ``url``/healthz until it answers 200; returns its body."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        body: dict[str, Any] = await resp.json()
                        return body
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy")


class TarPit:
    """A TCP server on 127.0.0.1 that counts the connections it accepts and never answers
    (``hold``: keeps them open until :meth:`close`), or closes each at once (``hold=False``:
    a host that refuses to talk, so a client fails fast)."""

    def __init__(self, *, hold: bool = True) -> None:
        self.hold = hold
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> TarPit:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.hold:
            self._writers.append(writer)
        else:
            writer.close()

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class ServiceProcess:
    """``python -m anchor serve`` in a child process (so a crash of the service is seen as a
    crash, not as a failure of the test process)."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "anchor", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", str(data_dir), *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log_path = data_dir.parent / f"service-{self.port}.log"
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the service exited with {self.proc.returncode}")
                try:
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status in (200, 503):
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.url} did not answer")

    def stop(self) -> str:
        """Stop the service; what it wrote on standard error."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log_path.read_text(errors="replace")


# --- 1EdTech JSON Schemas (tests/vectors/1edtech/, see its README) ---------------------------

_VECTORS_1EDTECH = Path(__file__).parents[1] / "vectors" / "1edtech"


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((_VECTORS_1EDTECH / name).read_text(encoding="utf-8"))
    return loaded


def ob3_schema_errors(credential: dict[str, Any]) -> list[str]:
    """Why 1EdTech's OB 3.0 AchievementCredential JSON Schema rejects ``credential``
    (empty when it accepts it)."""
    schema = _schema("ob_v3p0_achievementcredential_schema.json")
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(credential)]


def assert_ob3_valid(credential: dict[str, Any]) -> None:
    errors = ob3_schema_errors(credential)
    assert not errors, "\n".join(errors)


def as_vc11(credential: dict[str, Any]) -> dict[str, Any]:
    """``credential`` with the VC 2.0 terms the VC 1.1-era CLR 2.0 schema does not know
    renamed to their VC 1.1 names (``validFrom`` -> ``issuanceDate``, ``validUntil`` ->
    ``expirationDate``) and its status entries cut to ``id`` and ``type`` (that schema
    admits no other status property), in it and every embedded credential; nothing else
    changes (see tests/vectors/1edtech/README.md)."""
    doc = dict(credential)
    if "validFrom" in doc:
        doc["issuanceDate"] = doc.pop("validFrom")
    if "validUntil" in doc:
        doc["expirationDate"] = doc.pop("validUntil")
    status = doc.get("credentialStatus")
    if isinstance(status, dict):
        doc["credentialStatus"] = {"id": status["id"], "type": status["type"]}
    subject = doc.get("credentialSubject")
    if isinstance(subject, dict) and isinstance(subject.get("verifiableCredential"), list):
        doc["credentialSubject"] = {
            **subject,
            "verifiableCredential": [as_vc11(vc) for vc in subject["verifiableCredential"]],
        }
    return doc


def clr_schema_errors(credential: dict[str, Any]) -> list[str]:
    """Why 1EdTech's CLR 2.0 ClrCredential JSON Schema rejects ``credential`` (read through
    :func:`as_vc11`); empty when it accepts it."""
    schema = _schema("clr_v2p0_clrcredential_schema_draft4.json")
    validator = jsonschema.Draft4Validator(schema)
    return [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(as_vc11(credential))
    ]


def assert_clr_valid(credential: dict[str, Any]) -> None:
    """The CLR passes the CLR 2.0 schema and each embedded credential the OB 3.0 schema."""
    errors = clr_schema_errors(credential)
    assert not errors, "\n".join(errors)
    for vc in credential["credentialSubject"]["verifiableCredential"]:
        assert_ob3_valid(vc)


# --- Digital Bazaar's ecdsa-sd-2023 (tests/interop/) ---------------------------------------

INTEROP_SCRIPT = Path(__file__).parents[1] / "interop" / "ecdsa_sd.mjs"


def run_db_ecdsa_sd(request: dict[str, Any], timeout: float = 120) -> Any:
    """Run Digital Bazaar's ecdsa-sd-2023 (tests/interop/ecdsa_sd.mjs) on one JSON request.

    The packaged context files are passed along so that both sides load the same bytes.
    """
    from anchor.vc import jsonld_contexts

    contexts_dir = Path(jsonld_contexts.__file__).parents[1] / "contexts"
    contexts = {
        url: str(contexts_dir / name) for url, name in jsonld_contexts.CONTEXT_FILES.items()
    }
    result = subprocess.run(
        ["node", str(INTEROP_SCRIPT)],
        input=json.dumps({**request, "contexts": contexts}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"node ecdsa_sd.mjs failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


# --- a did:web host over HTTPS -----------------------------------------------------------------


class WebDidHost:
    """did:web:localhost%3APORT served over HTTPS with a throw-away self-signed certificate
    (``ca_file``); ``document`` can be changed while it runs. Start it with
    :func:`serve_web_did`."""

    def __init__(self, directory: Path) -> None:
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
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        self.ca_file = directory / "web-did-localhost.crt"
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = directory / "web-did-localhost.key"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(self.ca_file, key_file)
        self.document: dict[str, Any] = {}
        self.port = 0

    @property
    def did(self) -> str:
        return f"did:web:localhost%3A{self.port}"

    async def serve(self, request: web.Request) -> web.Response:
        return web.json_response(self.document, content_type="application/did+json")


@asynccontextmanager
async def serve_web_did(directory: Path) -> AsyncIterator[WebDidHost]:
    """A running :class:`WebDidHost` on a free port of 127.0.0.1."""
    host = WebDidHost(directory)
    app = web.Application()
    app.router.add_get("/.well-known/did.json", host.serve)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host.port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=host.tls).start()
    try:
        yield host
    finally:
        await runner.cleanup()


# --- signed requests to the status API (status, audit and verification tests) -------------


async def signed_post(
    client: TestClient, key: Ed25519Key, path: str, body: Any, keyid: str | None = None
) -> aiohttp.ClientResponse:
    raw = json.dumps(body).encode()
    url = str(client.make_url(path))
    headers = signed_headers("POST", url, raw, key, keyid or key.verification_method)
    headers["Content-Type"] = "application/json"
    return await client.post(path, data=raw, headers=headers)


async def ok_json(response: aiohttp.ClientResponse, status: int | tuple[int, ...] = 200) -> Any:
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status in expected, await response.text()
    return await response.json()


async def new_issuer(client: TestClient, *, upload: bool = True) -> Ed25519Key:
    """A registered did:key issuer that (by default) uploaded its key for status lists."""
    key = Ed25519Key.generate()
    client.app[ISSUERS].add(key.did, "Test College")
    if upload:
        info = await ok_json(await signed_post(client, key, "/v1/status-keys", key.private_jwk()))
        assert info["authorized"] is True
    return key


async def allocate(
    client: TestClient,
    key: Ed25519Key,
    purpose: str = "revocation",
    count: int | None = None,
    **extra: Any,
) -> list[dict[str, Any]]:
    body = {"purpose": purpose, **extra}
    if count is not None:
        body["count"] = count
    answer = await ok_json(
        await signed_post(client, key, "/v1/status-lists/allocate", body), (200, 201)
    )
    entries: list[dict[str, Any]] = answer["entries"]
    return entries


def list_id_of(entry: dict[str, Any]) -> str:
    return str(entry["statusListCredential"]).rsplit("/", 1)[1]


async def set_statuses(
    client: TestClient, key: Ed25519Key, list_id: str, changes: list[dict[str, Any]]
) -> aiohttp.ClientResponse:
    return await signed_post(client, key, f"/v1/status-lists/{list_id}/statuses", changes)


# --- signed submissions -----------------------------------------------------------------------


async def post_signed(
    client: TestClient, key: Ed25519Key, body: Any, path: str = "/v1/entries"
) -> aiohttp.ClientResponse:
    raw = json.dumps(body).encode()
    url = str(client.make_url(path))
    headers = signed_headers("POST", url, raw, key, key.verification_method)
    headers["Content-Type"] = "application/json"
    return await client.post(path, data=raw, headers=headers)


# --- the CLI in a worker thread --------------------------------------------------------------


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``ler-anchor ARGV`` in a worker thread (it runs its own event loop)."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- a real PostgreSQL server ------------------------------------------------------------

POSTGRES_INSTALL_HINT = (
    "install Debian's postgresql package (apt-get install postgresql) to run the PostgreSQL tests"
)


def postgres_bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: found on PATH, else the newest Debian
    install (``/usr/lib/postgresql/<version>/bin``); None without PostgreSQL."""
    import shutil

    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(on_path).resolve().parent
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.parent.name.split(".")],
    )
    return installed[-1].parent if installed else None


class PostgresServer:
    """A throw-away PostgreSQL server in a temporary folder, listening only on a unix
    socket in that folder (no TCP port to collide with). When the tests run as root the
    server runs as the ``postgres`` user (initdb refuses root), in a folder it owns."""

    def __init__(self, bin_dir: Path, *, fsync: bool = True) -> None:
        import pwd
        import tempfile

        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="ler-anchor-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as: list[str] = []
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")  # Debian's package creates it
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
            self.user = "postgres"
        self._run(
            str(bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-k {self.folder} -c listen_addresses='' -c max_connections=200"
        if not fsync:
            options += " -c fsync=off"
        self._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def _run(self, *argv: str) -> None:
        result = subprocess.run(
            [*self._as, *argv], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip()} {log[-2000:]}")

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """A ``postgresql://`` URL of ``database`` over the server's unix socket (a password,
        if given, is sent and ignored: the test server trusts local connections)."""
        secret = f":{password}" if password else ""
        return f"postgresql://{self.user}{secret}@/{database}?host={self.folder}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        import shutil

        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(*, fsync: bool = True) -> PostgresServer | None:
    """A running :class:`PostgresServer`, or None when PostgreSQL is not installed."""
    bin_dir = postgres_bin_dir()
    return None if bin_dir is None else PostgresServer(bin_dir, fsync=fsync)
