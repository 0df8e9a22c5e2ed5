"""JSON limits at every boundary: deep, large or numerous JSON is refused before parsing,
the interpreter's recursion limit stays sane, and a deeply nested request body (the one that
used to kill the process) is answered 413 by a running service, which keeps serving."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from helpers.service import ServiceProcess

from anchor.cli.main import main
from anchor.core import jsonlimits
from anchor.errors import InvalidInput, LimitExceeded, StatusRetrievalError
from anchor.status.check import StatusChecker
from did_methods import build_resolver
from did_methods import jsonlimits as pure

DEEP = b"[" * 100_000 + b"]" * 100_000


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_depth_is_checked_without_recursion() -> None:
    assert jsonlimits.loads(nested(64), max_bytes=1000) == json.loads(nested(64))
    with pytest.raises(LimitExceeded, match="deeper than 64") as caught:
        jsonlimits.loads(nested(65), max_bytes=1000)
    assert caught.value.status == 413
    assert caught.value.extra["limit"] == "depth"
    with pytest.raises(LimitExceeded, match="deeper than 64"):
        jsonlimits.loads(DEEP, max_bytes=len(DEEP))
    objects = b'{"a":' * 70 + b"1" + b"}" * 70
    with pytest.raises(LimitExceeded, match="deeper than 64"):
        jsonlimits.loads(objects, max_bytes=1000)
    assert jsonlimits.loads(nested(3), max_bytes=100, max_depth=3) == [[[]]]


def test_brackets_and_escapes_inside_strings_are_not_structure() -> None:
    text = json.dumps({"s": "[[[[{{{{" * 50, "q": 'a\\"[[[[\\\\', "u": "\u00e9\\u005b"})
    assert jsonlimits.loads(text, max_bytes=10_000, max_depth=2) == json.loads(text)
    with pytest.raises(InvalidInput, match=r"(?i)unterminated string"):
        jsonlimits.loads(b'["abc\\"]', max_bytes=100)  # found by the parser
    with pytest.raises(InvalidInput, match=r"unterminated string starting at character 0"):
        jsonlimits.loads(b'"abc\\"', max_bytes=100, max_values=0)  # found by the scan


def test_size_count_and_syntax_limits() -> None:
    with pytest.raises(LimitExceeded, match="the limit is 10") as caught:
        jsonlimits.loads(b"[" + b"1," * 10 + b"1]", max_bytes=10)
    assert caught.value.extra["limit"] == "bytes"
    many = json.dumps(["x"] * 101).encode()
    assert len(jsonlimits.loads(many, max_bytes=10_000, max_values=102)) == 101
    with pytest.raises(LimitExceeded, match="more than 100 arrays, objects and strings"):
        jsonlimits.loads(many, max_bytes=10_000, max_values=100)
    for bad in (b"[NaN]", b"{", b"\xff[]", b"[1,]"):
        with pytest.raises(InvalidInput) as err:
            jsonlimits.loads(bad, max_bytes=100, what="the body")
        assert not isinstance(err.value, LimitExceeded)
        assert err.value.detail.startswith("the body is not valid JSON")
    # the pure helper raises ValueError subclasses with typed fields, for did_methods
    with pytest.raises(pure.JsonLimitError) as limit:
        pure.loads(nested(100), max_bytes=1000)
    assert (limit.value.limit, limit.value.maximum) == ("depth", pure.MAX_JSON_DEPTH)


def test_recursion_limit_is_sane_after_importing_the_service() -> None:
    """py_ecc raises the limit to 100,000 on import (py-evm to 12,288); the service puts it
    back, and nothing imported later raises it again."""
    code = (
        "import sys, anchor.http.app; first = sys.getrecursionlimit();"
        "import anchor.cli.commands.verify_cmd, anchor.chain, anchor.chain.contracts;"
        "import eth, py_ecc, web3;"
        "print(first, sys.getrecursionlimit())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert [int(n) for n in out.stdout.split()] == [1000, 1000]


async def test_a_deep_body_is_refused_and_the_service_keeps_running(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path / "data", "--fetch-rate", "0")
    try:
        await service.wait_ready()
        async with aiohttp.ClientSession() as session:
            body = b'{"credential": ' + DEEP + b"}"  # 200 KB, unauthenticated
            for _ in range(2):
                async with session.post(
                    service.url + "/v1/verify",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    problem = await resp.json(content_type=None)
                    assert resp.status == 413, problem
                    assert resp.content_type == "application/problem+json"
                    assert problem["type"].endswith("/limit-exceeded")
                    assert "deeper than 64" in problem["detail"]
            async with session.get(service.url + "/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["store"]["ok"] is True
        assert service.proc.poll() is None, "the service died"
    finally:
        log = service.stop()
    assert "Traceback" not in log


@pytest.fixture
async def deep_host() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=DEEP, content_type="application/vc")

    app = web.Application()
    app.router.add_get("/lists/deep", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/lists/deep"
    await runner.cleanup()


async def test_a_deep_status_list_is_a_retrieval_error(deep_host: str) -> None:
    async with aiohttp.ClientSession() as session:
        checker = StatusChecker(build_resolver(session), session)
        with pytest.raises(StatusRetrievalError, match="deeper than 64"):
            await checker.fetch(deep_host)
        issuer = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
        entry = {
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "7",
            "statusListCredential": deep_host,
        }
        (status,) = await checker.check_credential({"issuer": issuer, "credentialStatus": entry})
        assert status.outcome.value == "unknown"
        assert status.error is not None
        assert status.error["type"].endswith("STATUS_RETRIEVAL_ERROR")


@pytest.mark.parametrize(
    "argv", [["verify", "{file}"], ["verify", "ok.json", "--receipt", "{file}"]]
)
def test_the_cli_refuses_deep_files_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"a": ' + DEEP + b"}")
    (tmp_path / "ok.json").write_text(json.dumps({"issuer": "did:example:1"}))
    args = [
        a.replace("{file}", str(deep)).replace("ok.json", str(tmp_path / "ok.json")) for a in argv
    ]
    assert main(args) == LimitExceeded.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "deeper than 64" in err
    assert "Traceback" not in err
