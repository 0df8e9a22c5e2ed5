"""A client's fault is a clear answer, never a traceback: the HTTP API over a real socket
(problem documents, one log line) and the CLI (one line on stderr, a non-zero exit)."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from helpers.anvil import free_port
from helpers.service import service_config

from anchor.cli.main import main
from anchor.core.entry import Entry, EntryKind
from anchor.errors import InvalidInput
from anchor.http.app import create_app
from anchor.http.appkeys import MERKLE_LOG
from anchor.http.problems import make_runner
from anchor.http.routes.status_bodies import parse_timestamp
from anchor.keys import Ed25519Key, save_key
from anchor.log.logfiles import HttpSource

TOKEN = "operator-secret-token"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[str, int, web.Application]]:
    """The service as ``serve`` runs it (its runner), on a socket."""
    app = create_app(service_config(tmp_path, operator_token=TOKEN))
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", port, app
    finally:
        await runner.cleanup()


async def _raw(port: int, request: bytes) -> bytes:
    """Send ``request`` as bytes on a socket of its own and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer


def _problem(answer: bytes, status: int) -> str:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split(" ")[1] == str(status), lines[0]
    assert "content-type: application/problem+json; charset=utf-8" in (
        line.lower() for line in lines
    )
    return body.decode()


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- HTTP ------------------------------------------------------------------------------------


async def test_a_nul_in_a_header_is_a_problem_and_one_warning_line(
    service: tuple[str, int, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    _base, port, _app = service
    with caplog.at_level(logging.INFO):
        answer = await _raw(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Odd: a\x00b\r\nConnection: close\r\n\r\n"
        )
    assert '"status": 400' in _problem(answer, 400)
    assert _tracebacks(caplog) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("refused a malformed HTTP request from 127.0.0.1: ")
    assert "\n" not in warnings[0]


async def test_a_request_line_too_long_is_a_problem(
    service: tuple[str, int, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    _base, port, _app = service
    with caplog.at_level(logging.INFO):
        answer = await _raw(port, b"GET /v1/entries?x=" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert "malformed HTTP request" in _problem(answer, 400)
    assert _tracebacks(caplog) == []


async def test_a_non_ascii_bearer_token_is_401(
    service: tuple[str, int, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    _base, port, _app = service
    with caplog.at_level(logging.INFO):
        answer = await _raw(
            port,
            b"GET /v1/admin/issuers HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer \xc3\xa9t\xe9\r\nConnection: close\r\n\r\n",
        )
    assert "wrong operator token" in _problem(answer, 401)
    assert _tracebacks(caplog) == []


async def test_a_timestamp_before_year_one_in_utc_is_an_answer(
    service: tuple[str, int, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    base, _port, _app = service
    async with aiohttp.ClientSession() as session:
        url = base + "/v1/status-lists/0123456789abcdef?timestamp=0001-01-01T00:00:00%2B01:00"
        async with session.get(url) as resp:
            assert resp.status == 404  # parsed; there is no such list
            assert resp.content_type == "application/problem+json"
        async with session.get(url.replace("T00:00:00%2B01:00", "T25:00:00Z")) as resp:
            assert resp.status == 400
            assert "not a date-time" in (await resp.json())["detail"]
    assert _tracebacks(caplog) == []


def test_timestamps() -> None:
    assert parse_timestamp("0001-01-01T00:00:00+01:00") == -62135600400000
    assert parse_timestamp("1970-01-01T01:00:00.5+01:00") == 500
    assert parse_timestamp("2016-12-31T23:59:60Z") == 1483228799999  # a leap second
    assert parse_timestamp("1748779200.25") == 1748779200250
    for bad, why in [
        ("2025-02-30T00:00:00Z", "not a date-time"),
        ("2025-06-01T12:00:00", "no time zone"),
        ("2025-06-01", "neither unix seconds"),
        ("9" * 13, "neither unix seconds"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            parse_timestamp(bad)


async def test_a_did_in_the_path_keeps_its_own_escapes(
    service: tuple[str, int, web.Application],
) -> None:
    """``did:web:localhost%3A8443`` is port 8443 of localhost (the service refuses to fetch
    from it: the refusal names the port), whether written as is or URL-encoded."""
    base, _port, _app = service
    async with aiohttp.ClientSession() as session:
        for path in ("did:web:localhost%3A8443", "did%3Aweb%3Alocalhost%253A8443"):
            url = f"{base}/1.0/identifiers/{path}"
            async with session.get(aiohttp.client.URL(url, encoded=True)) as resp:
                message = (await resp.json(content_type=None))["didResolutionMetadata"]
            assert "port 8443" in message["errorMessage"], message
        url = f"{base}/1.0/identifiers/did%3Aweb%3Alocalhost%3A8443"  # colons all encoded
        async with session.get(aiohttp.client.URL(url, encoded=True)) as resp:
            message = (await resp.json(content_type=None))["didResolutionMetadata"]
        assert "port 443" in message["errorMessage"], message  # host localhost, path 8443
        for path in ("did:nomethod:a~b%20c", "did%3Anomethod%3Aa~b%20c"):  # '~' is '%7E'
            url = f"{base}/1.0/identifiers/{path}"
            async with session.get(aiohttp.client.URL(url, encoded=True)) as resp:
                assert resp.status == 501  # a valid DID, 'did:nomethod:a%7Eb%20c'


async def test_checkpoints_are_paged_and_the_audit_source_follows_the_pages(
    service: tuple[str, int, web.Application],
) -> None:
    base, _port, app = service
    log = app[MERKLE_LOG]
    for i in range(5):
        log.append([Entry(EntryKind.CREDENTIAL, bytes([i]) * 32, "did:web:a.example")])
        log.checkpoint()
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/v1/checkpoints", params={"limit": "2"}) as resp:
            first = await resp.json()
        assert len(first["checkpoints"]) == 2
        assert first["next"].startswith("/v1/checkpoints?start=")
        async with session.get(base + first["next"]) as resp:
            second = await resp.json()
        assert set(first["checkpoints"]).isdisjoint(second["checkpoints"])
        async with session.get(base + "/v1/checkpoints", params={"limit": "1001"}) as resp:
            assert resp.status == 400
        every = await HttpSource(base, session).checkpoints()
    assert len(every) == 5
    assert every[:2] == first["checkpoints"]


# --- CLI -------------------------------------------------------------------------------------


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return err


def test_submit_with_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "issuer.jwk"
    save_key(Ed25519Key.generate(), key)
    missing = tmp_path / "nope.json"
    argv = ["submit", "--service", "http://127.0.0.1:9", "--key", str(key), "--file", str(missing)]
    assert main(argv) == 3
    assert f"--file {missing} does not exist" in _one_line(capsys)


def test_a_missing_key_file_points_at_keygen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "issuer.jwk"
    argv = ["submit", "--service", "http://127.0.0.1:9", "--key", str(key), "0" * 64]
    assert main(argv) == 2
    err = _one_line(capsys)
    assert f"ler-anchor keygen --out {key}" in err
    assert "embedded" not in err


def test_keygen_over_an_existing_file_names_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "issuer.jwk"
    assert main(["keygen", "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["keygen", "--out", str(out)]) == 2
    assert "--force" in _one_line(capsys)
    assert out.read_bytes() == before
    assert main(["keygen", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != before


def test_resolve_did_ethr_names_the_flags_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "did:ethr:0x" + "12" * 20]) == 2
    err = _one_line(capsys)
    assert "--ethr-rpc-url" in err
    assert "--ethr-registry" in err


def test_serve_on_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "anchor", "serve", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ler-anchor serve:")]
    assert len(errors) == 1, done.stderr
    assert f"Configuration error: cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "address already in use" in errors[0]
    assert "choose another --port" in errors[0]


async def test_an_exception_escaping_a_handler_is_a_problem_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service's own fault: 500, a problem document, the traceback in the log only."""

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = create_app(service_config(tmp_path))
    app.router.add_get("/broken", broken)
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with caplog.at_level(logging.INFO):
            answer = await _raw(
                port, b"GET /broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
    finally:
        await runner.cleanup()
    body = _problem(answer, 500)
    assert "Traceback" not in body
    assert "a bug" not in body
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)
