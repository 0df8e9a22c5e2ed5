"""Shared helpers for tests of the running service (imported by test modules)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from anchor.config import Config


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


def serve_command(data_dir: Path, port: int, *extra: str) -> list[str]:
    """``ler-anchor serve`` on ``data_dir`` and ``port`` as a separate process's argv."""
    serve = (sys.executable, "-m", "anchor", "serve")
    return [*serve, "--port", str(port), "--data-dir", str(data_dir), *extra]


async def wait_healthy(url: str, timeout: float = 30) -> dict[str, Any]:
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


INTEROP_SCRIPT = Path(__file__).parent / "interop" / "ecdsa_sd.mjs"


def run_db_ecdsa_sd(request: dict[str, Any], timeout: float = 120) -> Any:
    """Run Digital Bazaar's ecdsa-sd-2023 (tests/interop/ecdsa_sd.mjs) on one JSON request.

    The packaged context files are passed along so that both sides load the same bytes.
    """
    from anchor import jsonld_contexts

    contexts_dir = Path(jsonld_contexts.__file__).parent / "contexts"
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


class WebDidHost:
    """did:web:localhost%3APORT served over HTTPS with a throw-away self-signed certificate;
    ``document`` can be changed while it runs."""

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
        self.ca_file = directory / "localhost.crt"
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = directory / "localhost.key"
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
