"""The service's HTTP client connects only to public addresses (and its own port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from helpers.service import service_config

from anchor import outbound
from anchor.errors import ConfigError
from anchor.http.app import create_app


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fc00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:8.8.8.8", True),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert outbound.is_public(address) is public


@pytest.fixture
async def local_server() -> AsyncIterator[TestServer]:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def _get(connector: aiohttp.TCPConnector | None, url: str) -> str:
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as resp:
        return await resp.text()


async def test_a_private_address_is_refused_by_ip_and_by_name(local_server: TestServer) -> None:
    port = local_server.port
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(aiohttp.ClientConnectorError, match="non-public address"):
            await _get(outbound.connector(outbound.PUBLIC, []), f"http://{host}:{port}/")


async def test_the_services_own_port_and_the_any_policy_are_allowed(
    local_server: TestServer,
) -> None:
    port = local_server.port
    own = outbound.own_addresses("0.0.0.0", port)  # listening on every interface
    assert await _get(outbound.connector(outbound.PUBLIC, own), f"http://127.0.0.1:{port}/") == (
        "hello"
    )
    with pytest.raises(aiohttp.ClientConnectorError, match="non-public address"):
        await _get(
            outbound.connector(outbound.PUBLIC, [("127.0.0.1", port + 1)]),
            f"http://127.0.0.1:{port}/",
        )
    assert outbound.connector(outbound.ANY, []) is None
    assert await _get(None, f"http://127.0.0.1:{port}/") == "hello"


def test_own_addresses() -> None:
    assert outbound.own_addresses("127.0.0.1", 8080) == [("127.0.0.1", 8080)]
    assert ("127.0.0.1", 9) in outbound.own_addresses("localhost", 9)
    assert outbound.own_addresses("::", 1) == [("127.0.0.1", 1), ("::1", 1)]
    assert callable(outbound.guarded_socket_factory([("fe80::1%lo", 80)]))  # a scoped address


def test_an_unknown_policy_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outbound networks must be one of public, any"):
        service_config(tmp_path, outbound_networks="intranet")


async def test_the_service_refuses_to_resolve_a_did_web_on_a_private_address(
    aiohttp_client: Any, tmp_path: Path, local_server: TestServer
) -> None:
    client: TestClient = await aiohttp_client(create_app(service_config(tmp_path)))
    did = f"did:web:localhost%3A{local_server.port}"
    resp = await client.get(f"/1.0/identifiers/{did}")
    assert resp.status >= 400
    assert "non-public address" in await resp.text()
