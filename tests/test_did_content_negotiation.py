"""``GET /1.0/identifiers/{did}`` content negotiation (W3C DID Resolution, HTTP binding) on
the running service over a socket, for did:key, did:web (a local HTTPS host) and did:ethr
(the embedded chain's network): each media type, the document's representation and the
``contentType`` metadata that goes with it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from helpers.service import WebDidHost, serve_web_did, service_config
from pytest_aiohttp import AiohttpClient
from yarl import URL

from anchor.http.app import create_app
from anchor.keys import Ed25519Key

DID_JSON = "application/did+json"
DID_LD_JSON = "application/did+ld+json"
RESOLUTION = "application/did-resolution"
RESOLUTION_LD = 'application/ld+json;profile="https://w3id.org/did-resolution"'
DID_CONTEXT = "https://www.w3.org/ns/did/v1"


@pytest.fixture
async def web_did(tmp_path: Path) -> AsyncIterator[WebDidHost]:
    async with serve_web_did(tmp_path) as host:
        yield host


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path, web_did: WebDidHost) -> TestClient:
    config = service_config(  # the did:web host is a test server on this machine
        tmp_path, ca_file=web_did.ca_file, outbound_networks="any"
    )
    return await aiohttp_client(create_app(config))


def _url(client: TestClient, did: str, query: str = "") -> URL:
    """The resolver URL of ``did`` as written (its %3A port separator kept): an encoded URL,
    which the client sends as it is."""
    base = str(client.make_url("/")).rstrip("/")
    return URL(f"{base}/1.0/identifiers/{quote(did, safe=':%')}{query}", encoded=True)


async def get(client: TestClient, did: str, accept: str | None) -> tuple[int, str, Any]:
    headers = {} if accept is None else {"Accept": accept}
    # the DID as written (its %3A port separator kept: an encoded URL, not requoted)
    resp = await client.session.get(_url(client, did), headers=headers)
    return resp.status, resp.headers["Content-Type"], json.loads(await resp.read())


def _dids(web_did: WebDidHost, *, with_context: bool) -> list[str]:
    """A did:key, the did:web host's DID (its document with or without ``@context``), and
    a did:ethr of the embedded chain (its default document)."""
    web_did.document = {"id": web_did.did, "verificationMethod": []}
    if with_context:
        web_did.document["@context"] = [DID_CONTEXT]
    return [
        Ed25519Key.generate().did,
        web_did.did,
        "did:ethr:anchor:0x" + "5a" * 20,
    ]


async def test_each_media_type_for_each_method(client: TestClient, web_did: WebDidHost) -> None:
    for did in _dids(web_did, with_context=True):
        # the document alone, as JSON-LD when asked for: with @context, and said so
        status, content_type, body = await get(client, did, DID_LD_JSON)
        assert (status, content_type) == (200, DID_LD_JSON), (did, body)
        assert body["id"] == did
        assert DID_CONTEXT in body["@context"]
        # the document alone as JSON
        status, content_type, body = await get(client, did, DID_JSON)
        assert (status, content_type) == (200, DID_JSON), (did, body)
        assert body["id"] == did
        # the whole result: its contentType names the document's representation (it has an
        # @context, so JSON-LD, as ethr-did-resolver says)
        for accept, media_type in (
            (None, RESOLUTION),
            ("*/*", RESOLUTION),
            (RESOLUTION, RESOLUTION),
            (RESOLUTION_LD, RESOLUTION_LD),
        ):
            status, content_type, body = await get(client, did, accept)
            assert (status, content_type) == (200, media_type), (did, accept, body)
            assert body["didDocument"]["id"] == did
            assert body["didResolutionMetadata"]["contentType"] == DID_LD_JSON, (did, accept)
        # preferences by q: JSON-LD is preferred over JSON here
        status, content_type, _ = await get(client, did, f"{DID_JSON};q=0.5, {DID_LD_JSON}")
        assert (status, content_type) == (200, DID_LD_JSON)
        # a representation asked for in the query is what the metadata says
        resp = await client.session.get(_url(client, did, f"?accept={quote(DID_JSON)}"), headers={})
        body = json.loads(await resp.read())
        assert body["didResolutionMetadata"]["contentType"] == DID_JSON


async def test_a_document_without_context(client: TestClient, web_did: WebDidHost) -> None:
    did = _dids(web_did, with_context=False)[1]
    status, content_type, body = await get(client, did, None)
    assert (status, content_type) == (200, RESOLUTION)
    assert body["didResolutionMetadata"]["contentType"] == DID_JSON
    status, content_type, body = await get(client, did, DID_JSON)
    assert (status, content_type, body) == (200, DID_JSON, web_did.document)
    # JSON-LD cannot be had without an @context: 406, the reason in a resolution result
    status, content_type, body = await get(client, did, DID_LD_JSON)
    assert (status, content_type) == (406, RESOLUTION)
    assert body["didResolutionMetadata"]["error"] == "representationNotSupported"
    assert "@context" in body["didResolutionMetadata"]["errorMessage"]
