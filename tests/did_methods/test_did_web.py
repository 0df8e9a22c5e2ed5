"""did:web: the DID -> URL transformation, and resolution against real local HTTPS servers.

The servers are aiohttp applications on 127.0.0.1 (random ports) with certificates from a
test CA made here with ``cryptography``; DIDs name them as ``localhost%3A<port>``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from did_methods import Resolver, build_resolver, open_resolver
from did_methods.syntax import parse_did
from did_methods.web import (
    MAX_DOCUMENT_BYTES,
    InvalidWebDidError,
    WebDriver,
    default_ssl_context,
    did_web_url,
    open_web_driver,
)

# -- the transformation (pure) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("did", "url"),
    [
        ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
        ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
        ("did:web:example.com%3A3000", "https://example.com:3000/.well-known/did.json"),
        ("did:web:example.com%3a3000:user:alice", "https://example.com:3000/user/alice/did.json"),
        ("did:web:Example.COM", "https://example.com/.well-known/did.json"),
        ("did:web:localhost%3A1234:user:alice", "https://localhost:1234/user/alice/did.json"),
        ("did:web:example.com:a%20b", "https://example.com/a%20b/did.json"),
        ("did:web:xn--bcher-kva.example", "https://xn--bcher-kva.example/.well-known/did.json"),
    ],
)
def test_did_to_url(did: str, url: str) -> None:
    assert did_web_url(did) == url
    assert did_web_url(parse_did(did)) == url


@pytest.mark.parametrize(
    ("did", "message"),
    [
        ("did:web:127.0.0.1", "is an IP address"),
        ("did:web:127.0.0.1%3A8443", "is an IP address"),
        ("did:web:10.1", "is an IP address"),
        ("did:web:0x7f000001", "is an IP address"),
        ("did:web:2130706433", "is an IP address"),
        ("did:web:%5B%3A%3A1%5D%3A8443", "is an IPv6 address"),
        ("did:web:%5B2001%3Adb8%3A%3A1%5D", "is an IPv6 address"),
        ("did:web:fe80%3A%3A1", "is an IPv6 address"),
        ("did:web:example.com%3A0", "port '0' is not a number from 1 to 65535"),
        ("did:web:example.com%3A65536", "port '65536'"),
        ("did:web:example.com%3Ahttps", "port 'https'"),
        ("did:web:example.com%2Fpath", "only %3A (the port separator)"),
        ("did:web:exa_mple.com", "is not a valid domain name"),
        ("did:web:-example.com", "is not a valid domain name"),
        ("did:web:example..com", "is not a valid domain name"),
        ("did:web:" + "a" * 64 + ".com", "is not a valid domain name"),
        ("did:web:example.123", "numeric label"),
        ("did:web:example.com::alice", "path segment '' is not allowed"),
        ("did:web:example.com:..:etc", "path segment '..' is not allowed"),
        ("did:web:example.com:%2E%2E", "path segment '%2E%2E' is not allowed"),
        ("did:web:example.com:a%2Fb", "an encoded '/'"),
        ("did:key:z6Mk", "is not a did:web"),
        ("did:web:", "method-specific id is empty"),
    ],
)
def test_refused_dids(did: str, message: str) -> None:
    with pytest.raises(InvalidWebDidError) as info:
        did_web_url(did)
    assert message in str(info.value)


# -- a test PKI ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    good: tuple[Path, Path]  # leaf for localhost from the test CA: (cert, key)
    other_ca: tuple[Path, Path]  # leaf for localhost from a different CA
    self_signed: tuple[Path, Path]  # self-signed leaf for localhost
    wrong_host: tuple[Path, Path]  # leaf from the test CA for another host name
    other_ca_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None, hosts: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    issuer_key, issuer_name = (issuer[0], issuer[1].subject) if issuer else (key, _name(hosts[0]))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[0].public_key()),
            critical=False,
        )
    return key, builder.sign(issuer_key, hashes.SHA256())


def _write_pair(
    directory: Path, name: str, pair: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> tuple[Path, Path]:
    key, cert = pair
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = _make_ca("LER Anchor test CA")
    other = _make_ca("Some other CA")
    ca_file, _ = _write_pair(directory, "ca", ca)
    other_ca_file, _ = _write_pair(directory, "other-ca", other)
    return Pki(
        ca_file=ca_file,
        good=_write_pair(directory, "good", _make_leaf(ca, ["localhost", "did.localhost"])),
        other_ca=_write_pair(directory, "other", _make_leaf(other, ["localhost"])),
        self_signed=_write_pair(directory, "self", _make_leaf(None, ["localhost"])),
        wrong_host=_write_pair(directory, "wrong", _make_leaf(ca, ["elsewhere.test"])),
        other_ca_file=other_ca_file,
    )


# -- local servers -----------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DocServer:
    """An HTTP(S) server on 127.0.0.1 that serves what a test puts in ``routes``."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[str] = []
        self.release = asyncio.Event()
        self.port = 0
        self.bytes_streamed = 0

    def did(self, *path: str) -> str:
        return f"did:web:localhost%3A{self.port}" + "".join(f":{p}" for p in path)

    def document(self, *path: str) -> dict[str, Any]:
        did = self.did(*path)
        return {
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "assertionMethod": [f"{did}#key-1"],
            "verificationMethod": [
                {
                    "id": f"{did}#key-1",
                    "type": "Multikey",
                    "controller": did,
                    "publicKeyMultibase": "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                }
            ],
        }

    def serve(self, path: str, body: bytes | dict[str, Any] | list[Any], status: int = 200) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, status=status, content_type="application/did+json")

        self.routes[path] = handler

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})

        self.routes[path] = handler

    def compressed(self, path: str, body: bytes) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.Response(body=body, content_type="application/json")
            response.enable_compression(web.ContentCoding.gzip)
            return response

        self.routes[path] = handler

    def slow(self, path: str) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            await asyncio.wait_for(self.release.wait(), timeout=5)
            return web.Response(status=404)

        self.routes[path] = handler

    def endless(self, path: str) -> None:
        """Streams a JSON prefix then spaces, chunked, without Content-Length, for ever."""

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_type = "application/json"
            await response.prepare(request)
            await response.write(b'{"id": "x", "padding": "')
            try:
                for _ in range(2000):
                    await response.write(b" " * 65536)
                    self.bytes_streamed += 65536
            except ConnectionError:
                pass
            return response

        self.routes[path] = handler

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such document")
        return await handler(request)


def _server_context(cert_and_key: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert_and_key)
    return context


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[[ssl.SSLContext | None], Awaitable[DocServer]]]:
    runners: list[tuple[DocServer, web.AppRunner]] = []

    async def start(context: ssl.SSLContext | None) -> DocServer:
        server = DocServer()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server.port = sock.getsockname()[1]
        await web.SockSite(runner, sock, ssl_context=context).start()
        runners.append((server, runner))
        return server

    yield start
    for server, runner in runners:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
async def https(start_server: Callable[..., Awaitable[DocServer]], pki: Pki) -> DocServer:
    return await start_server(_server_context(pki.good))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def resolver(session: aiohttp.ClientSession, pki: Pki) -> Resolver:
    return build_resolver(session, ca_file=pki.ca_file)


# -- resolution over HTTPS ----------------------------------------------------------------


async def test_bare_domain_uses_the_well_known_path(https: DocServer, resolver: Resolver) -> None:
    https.serve("/.well-known/did.json", https.document())
    result = await resolver.resolve(https.did())
    assert result.error is None, result.error_message
    assert result.did_document == https.document()
    assert result.content_type == "application/did+json"
    assert https.requests == ["/.well-known/did.json"]


async def test_path_did(https: DocServer, resolver: Resolver) -> None:
    https.serve("/user/alice/did.json", https.document("user", "alice"))
    did = https.did("user", "alice")
    result = await resolver.resolve(did, accept="application/did+ld+json")
    assert result.ok
    assert result.did_document is not None
    assert result.did_document["id"] == did
    assert result.content_type == "application/did+ld+json"
    assert https.requests == ["/user/alice/did.json"]
    assert await resolver.is_authorized(f"{did}#key-1", "assertionMethod")


async def test_wrong_id_is_an_invalid_document(https: DocServer, resolver: Resolver) -> None:
    https.serve("/.well-known/did.json", https.document("user", "mallory"))
    result = await resolver.resolve(https.did())
    assert result.error == "invalidDidDocument"
    assert result.error_message is not None
    assert "has id" in result.error_message
    assert "not the DID" in result.error_message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>hello</html>", "not UTF-8 JSON"),
        (b'{"id": NaN}', "not UTF-8 JSON"),
        (b"\xff\xfe{}", "not UTF-8 JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'{"id": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "deeper than 64"),
    ],
)
async def test_malformed_documents(
    https: DocServer, resolver: Resolver, body: bytes, message: str
) -> None:
    https.serve("/.well-known/did.json", body)
    result = await resolver.resolve(https.did())
    assert result.error == "invalidDidDocument"
    assert result.error_message is not None
    assert message in result.error_message


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, "notFound"), (410, "notFound"), (500, "internalError"), (403, "internalError")],
)
async def test_http_statuses(https: DocServer, resolver: Resolver, status: int, code: str) -> None:
    https.serve("/.well-known/did.json", b"nope", status=status)
    result = await resolver.resolve(https.did())
    assert result.error == code
    assert result.error_message is not None
    assert f"HTTP {status}" in result.error_message


async def test_size_limit_boundary(https: DocServer, resolver: Resolver) -> None:
    document = https.document()
    body = json.dumps(document).encode()
    padded = body[:-1] + b', "p": "' + b"x" * (MAX_DOCUMENT_BYTES - len(body) - 9) + b'"}'
    assert len(padded) == MAX_DOCUMENT_BYTES
    https.serve("/.well-known/did.json", padded)
    assert (await resolver.resolve(https.did())).ok

    https.serve("/user/big/did.json", padded[:-2] + b'x"}')
    result = await resolver.resolve(https.did("user", "big"))
    assert result.error == "internalError"
    assert result.error_message is not None
    assert f"is {MAX_DOCUMENT_BYTES + 1} bytes; the limit is {MAX_DOCUMENT_BYTES}" in (
        result.error_message
    )


async def test_size_limit_is_enforced_while_streaming(
    https: DocServer, session: aiohttp.ClientSession, pki: Pki
) -> None:
    https.endless("/.well-known/did.json")
    driver_resolver = Resolver()
    driver_resolver.register("web", WebDriver(session, ca_file=pki.ca_file, timeout=20))
    started = time.monotonic()
    result = await driver_resolver.resolve(https.did())
    elapsed = time.monotonic() - started
    assert result.error == "internalError"
    assert result.error_message is not None
    assert f"larger than the limit of {MAX_DOCUMENT_BYTES} bytes" in result.error_message
    assert elapsed < 5  # not the 20 s timeout, and not 128 MB read


async def test_size_limit_counts_decompressed_bytes(https: DocServer, resolver: Resolver) -> None:
    """A small gzip body that inflates past the limit is cut off (a compression bomb)."""
    bomb = b'{"id": "x", "p": "' + b" " * (20 * MAX_DOCUMENT_BYTES) + b'"}'
    https.compressed("/.well-known/did.json", bomb)
    result = await resolver.resolve(https.did())
    assert result.error == "internalError"
    assert result.error_message is not None
    assert f"larger than the limit of {MAX_DOCUMENT_BYTES} bytes" in result.error_message

    https.compressed("/small/did.json", json.dumps(https.document("small")).encode())
    assert (await resolver.resolve(https.did("small"))).ok


async def test_callers_session_settings_do_not_change_outcomes(https: DocServer, pki: Pki) -> None:
    async with aiohttp.ClientSession(raise_for_status=True) as strict:
        strict_resolver = Resolver()
        strict_resolver.register("web", WebDriver(strict, ca_file=pki.ca_file))
        result = await strict_resolver.resolve(https.did("nobody"))
    assert result.error == "notFound"


async def test_smaller_configured_limit(
    https: DocServer, session: aiohttp.ClientSession, pki: Pki
) -> None:
    https.serve("/.well-known/did.json", https.document())
    small = Resolver()
    small.register("web", WebDriver(session, ca_file=pki.ca_file, max_document_bytes=50))
    result = await small.resolve(https.did())
    assert result.error == "internalError"
    assert result.error_message is not None
    assert "the limit is 50" in result.error_message


async def test_timeout(https: DocServer, session: aiohttp.ClientSession, pki: Pki) -> None:
    https.slow("/.well-known/did.json")
    quick = Resolver()
    quick.register("web", WebDriver(session, ca_file=pki.ca_file, timeout=0.3))
    started = time.monotonic()
    result = await quick.resolve(https.did())
    assert time.monotonic() - started < 3
    assert result.error == "internalError"
    assert result.error_message is not None
    assert "timed out after 0.3 s" in result.error_message


async def test_plain_http_is_refused(
    start_server: Callable[..., Awaitable[DocServer]], resolver: Resolver
) -> None:
    plain = await start_server(None)
    plain.serve("/.well-known/did.json", plain.document())
    result = await resolver.resolve(plain.did())
    assert result.error == "internalError"
    assert result.error_message is not None
    assert "TLS handshake" in result.error_message
    assert plain.requests == []  # no fallback to http://


@pytest.mark.parametrize("leaf", ["other_ca", "self_signed", "wrong_host"])
async def test_untrusted_certificates_are_refused(
    start_server: Callable[..., Awaitable[DocServer]], resolver: Resolver, pki: Pki, leaf: str
) -> None:
    server = await start_server(_server_context(getattr(pki, leaf)))
    server.serve("/.well-known/did.json", server.document())
    result = await resolver.resolve(server.did())
    assert result.error == "internalError"
    assert result.error_message is not None
    assert "certificate of localhost is not trusted" in result.error_message
    assert server.requests == []


async def test_ip_address_dids_are_refused_without_a_request(
    https: DocServer, resolver: Resolver
) -> None:
    https.serve("/.well-known/did.json", https.document())
    for did in (
        f"did:web:127.0.0.1%3A{https.port}",
        f"did:web:%5B%3A%3A1%5D%3A{https.port}",
        f"did:web:2130706433%3A{https.port}",
    ):
        result = await resolver.resolve(did)
        assert result.error == "invalidDid", did
        assert result.error_message is not None
        assert "address" in result.error_message
    assert https.requests == []


async def test_nothing_listening(resolver: Resolver) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await resolver.resolve(f"did:web:localhost%3A{port}")
    assert result.error == "internalError"
    assert result.error_message is not None
    assert "could not connect" in result.error_message


async def test_redirects(
    start_server: Callable[..., Awaitable[DocServer]], https: DocServer, resolver: Resolver
) -> None:
    moved = https.document("moved")
    https.serve("/new/did.json", moved)
    https.redirect("/moved/did.json", "/new/did.json", status=301)
    assert (await resolver.resolve(https.did("moved"))).ok
    assert https.requests == ["/moved/did.json", "/new/did.json"]

    plain = await start_server(None)
    plain.serve("/x/did.json", https.document("to-http"))
    https.redirect("/to-http/did.json", f"http://localhost:{plain.port}/x/did.json")
    result = await resolver.resolve(https.did("to-http"))
    assert result.error == "internalError"
    assert result.error_message is not None
    assert "not HTTPS; not followed" in result.error_message
    assert plain.requests == []

    https.redirect("/to-ip/did.json", f"https://127.0.0.1:{https.port}/new/did.json")
    result = await resolver.resolve(https.did("to-ip"))
    assert result.error_message is not None
    assert "is an IP address" in result.error_message

    https.redirect("/loop/did.json", "/loop/did.json")
    result = await resolver.resolve(https.did("loop"))
    assert result.error_message is not None
    assert "more than 3 redirects" in result.error_message


async def test_cached_resolution_makes_no_request(https: DocServer, resolver: Resolver) -> None:
    https.serve("/.well-known/did.json", https.document())
    first = await resolver.resolve(https.did())
    second = await resolver.resolve(https.did())
    assert first.ok
    assert second == first
    assert https.requests == ["/.well-known/did.json"]
    await resolver.resolve(https.did(), noCache=True)
    assert len(https.requests) == 2
    # A failure is not cached: it is asked again.
    await resolver.resolve(https.did("nobody"))
    await resolver.resolve(https.did("nobody"))
    assert https.requests[2:] == ["/nobody/did.json", "/nobody/did.json"]


async def test_ssl_cert_file_is_read_once_at_construction(
    https: DocServer,
    session: aiohttp.ClientSession,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    https.serve("/.well-known/did.json", https.document())
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    trusting = Resolver(cache_ttl=0)
    trusting.register("web", WebDriver(session))
    assert (await trusting.resolve(https.did())).ok

    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca_file))
    assert (await trusting.resolve(https.did())).ok  # built once: the change is not seen
    distrusting = Resolver(cache_ttl=0)
    distrusting.register("web", WebDriver(session))
    result = await distrusting.resolve(https.did())
    assert result.error == "internalError"
    assert result.error_message is not None
    assert "not trusted" in result.error_message


async def test_explicit_ssl_context(
    https: DocServer, session: aiohttp.ClientSession, pki: Pki
) -> None:
    https.serve("/.well-known/did.json", https.document())
    custom = Resolver()
    custom.register("web", WebDriver(session, ssl_context=default_ssl_context(pki.ca_file)))
    assert (await custom.resolve(https.did())).ok


def test_driver_configuration_errors(pki: Pki) -> None:
    session = object()  # never used: construction fails first
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="must verify certificates"):
        WebDriver(session, ssl_context=lax)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        WebDriver(session, ssl_context=default_ssl_context(), ca_file=pki.ca_file)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        WebDriver(session, ca_file=pki.ca_file, timeout=0)  # type: ignore[arg-type]


async def test_standalone_driver_and_resolver(https: DocServer, pki: Pki) -> None:
    https.serve("/.well-known/did.json", https.document())
    async with open_web_driver(ca_file=pki.ca_file) as driver:
        result = await driver.resolve(parse_did(https.did()), {"accept": "application/did+json"})
        assert result.ok
    async with open_resolver(ca_file=pki.ca_file) as standalone:
        assert standalone.methods == ("key", "web")
        assert (await standalone.resolve(https.did())).ok
        assert (
            await standalone.resolve("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
        ).ok


def test_pki_fixture_is_what_it_claims(pki: Pki) -> None:
    """The refusal tests mean something only if the good chain does verify."""
    context = default_ssl_context(pki.ca_file)
    names = [cert["subject"] for cert in context.get_ca_certs()]
    assert names == [((("commonName", "LER Anchor test CA"),),)]
    leaf = x509.load_pem_x509_certificate(pki.good[0].read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "did.localhost"]
