"""The fast RFC 9421 verification path agrees with http-message-signatures: it accepts
exactly what the package accepts for canonical requests, and defers everything else."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import http_sf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from anchor.auth.middleware import Authenticator
from anchor.auth.nonces import NonceStore, ensure_schema
from anchor.auth.signatures import (
    _fast_dictionary,
    parse_signature,
    parse_signature_input,
    verify_canonical,
    verify_with_package,
)
from anchor.client.signing import signed_headers
from anchor.errors import Unauthorized
from anchor.keys import Ed25519Key
from anchor.log.store import SQLiteStore
from anchor.verify.identity import did_key_ed25519


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path) -> TestClient:
    store = SQLiteStore(tmp_path / "auth.db")
    ensure_schema(store)

    async def resolve_key(keyid: str) -> bytes | None:
        return did_key_ed25519(keyid)

    async def registered(_did: str) -> bool:
        return True

    authenticator = Authenticator(
        resolve_key=resolve_key, is_registered=registered, nonces=NonceStore(store)
    )

    async def probe(request: web.Request) -> web.Response:
        """Both verification paths on the same real request."""
        body = await request.read()
        input_field = request.headers["Signature-Input"]
        sig = parse_signature_input(input_field)
        signature = parse_signature(request.headers["Signature"], sig.label)
        key = did_key_ed25519(sig.keyid)
        assert key is not None
        message = authenticator.message(request)
        fast = verify_canonical(message, input_field, sig, signature, key)
        try:
            verify_with_package(message, body, sig, key)
            library = "ok"
        except Unauthorized as err:
            library = err.detail
        return web.json_response({"fast": fast, "library": library})

    app = web.Application()
    app.router.add_post("/probe", probe)
    app.router.add_put("/probe", probe)
    return await aiohttp_client(app)


async def _probe(
    client: TestClient, headers: dict[str, str], body: bytes, method: str = "POST"
) -> Any:
    resp = await client.request(method, "/probe", data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_canonical_request_takes_the_fast_path_and_both_agree(client: TestClient) -> None:
    key = Ed25519Key.generate()
    body = json.dumps({"digests": ["00" * 32]}).encode()
    headers = signed_headers(
        "POST", str(client.make_url("/probe")), body, key, key.verification_method
    )
    assert await _probe(client, headers, body) == {"fast": True, "library": "ok"}


async def test_tampering_fails_both_paths(client: TestClient) -> None:
    key = Ed25519Key.generate()
    body = b'{"a": 1}'
    headers = signed_headers(
        "POST", str(client.make_url("/probe")), body, key, key.verification_method
    )
    other = Ed25519Key.generate()
    forged = signed_headers(
        "POST", str(client.make_url("/probe")), body, other, key.verification_method
    )
    headers_with_foreign_signature = {**headers, "Signature": forged["Signature"]}
    result = await _probe(client, headers_with_foreign_signature, body)
    assert result["fast"] is False
    assert result["library"] != "ok"
    wrong_method = await _probe(client, headers, body, method="PUT")
    assert wrong_method["fast"] is False
    assert wrong_method["library"] != "ok"


async def test_non_canonical_serialisation_is_left_to_the_package(client: TestClient) -> None:
    key = Ed25519Key.generate()
    body = b'{"a": 1}'
    headers = signed_headers(
        "POST", str(client.make_url("/probe")), body, key, key.verification_method
    )
    label, _, member = headers["Signature-Input"].partition("=")
    headers["Signature-Input"] = f"{label}=( {member[1:]}"  # an optional space after "("
    result = await _probe(client, headers, body)
    assert result == {"fast": False, "library": "ok"}


@pytest.mark.parametrize("keyid_suffix", ["", "?service=files", '#key-"quoted"', "#back\\slash"])
def test_direct_signer_matches_the_package_byte_for_byte(keyid_suffix: str) -> None:
    from anchor.client.signing import signed_headers_reference

    key = Ed25519Key.generate()
    keyid = key.verification_method + keyid_suffix
    for method, url, body in [
        ("POST", "https://anchor.example/v1/entries", b'{"digests": []}'),
        ("post", "http://127.0.0.1:8080/v1/status-lists/abc/statuses?x=1", b""),
    ]:
        fast = signed_headers(
            method, url, body, key, keyid, now=1_795_000_000, nonce="n0nce-value_123456"
        )
        reference = signed_headers_reference(
            method, url, body, key, keyid, now=1_795_000_000, nonce="n0nce-value_123456"
        )
        assert fast == reference


def test_direct_signer_refuses_non_ascii_keyids() -> None:
    from anchor.errors import InvalidInput

    key = Ed25519Key.generate()
    with pytest.raises(InvalidInput, match="printable ASCII"):
        signed_headers("POST", "https://a.example/x", b"", key, key.did + "#clé")


def test_nonces_remembered_in_one_batch(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "n.db")
    ensure_schema(store)
    nonces = NonceStore(store)
    items = [("did:key:a#a", "n1", 2000), ("did:key:a#a", "n2", 2000), ("did:key:a#a", "n1", 2000)]
    assert nonces.remember_many(items, now=1000) == [True, True, False]
    assert nonces.remember_many([("did:key:a#a", "n2", 3000)], now=1500) == [False]
    assert nonces.remember_many([("did:key:a#a", "n2", 3000)], now=2500) == [True]  # expired
    store.close()


# -- the fast structured-field parser -------------------------------------------------------

_SF_TEXT = st.text(
    alphabet=st.sampled_from(list('sig1=()"@-: ;,*.abkeyidnoc0129+/=AZ\\\t\x7f\xe9')),
    max_size=60,
)
_SF_STRINGS = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12
).map(lambda t: '"' + t + '"')
_SF_PARAM = st.tuples(
    st.sampled_from(["created", "keyid", "nonce", "alg", "a", "*x", "a.b", "A", "1x"]),
    st.one_of(
        st.integers(-(10**16), 10**16).map(str),
        _SF_STRINGS,
        st.sampled_from(["?1", "tok", "1.5", "007", "-0", ":AA==:"]),
    ),
).map(lambda kv: f";{kv[0]}={kv[1]}")
_SF_INNER = st.builds(
    lambda label, items, sep, params: f"{label}=({sep.join(items)}){''.join(params)}",
    st.sampled_from(["sig1", "s", "*a", "Sig", "a_b-c.d*"]),
    st.lists(_SF_STRINGS, max_size=4),
    st.sampled_from([" ", "  "]),
    st.lists(_SF_PARAM, max_size=5),
)
_SF_BYTES = st.builds(
    lambda label, data, mangle: f"{label}=:{mangle(base64.b64encode(data).decode())}:",
    st.sampled_from(["sig1", "sha-256", "sha-512", "X"]),
    st.binary(max_size=70),
    st.sampled_from([lambda t: t, lambda t: t.rstrip("="), lambda t: t + "=", lambda t: t[:-2]]),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_SF_TEXT, _SF_INNER, _SF_BYTES))
def test_fast_dictionary_parser_agrees_with_http_sf(value: str) -> None:
    """Whatever the fast parser accepts, http_sf parses to exactly the same value."""
    fast = _fast_dictionary(value)
    if fast is None:
        return
    assert fast == http_sf.parse(value.encode("ascii"), tltype="dictionary")


def test_fast_dictionary_parser_takes_the_client_shape() -> None:
    key = Ed25519Key.generate()
    headers = signed_headers("POST", "http://h/v1/entries", b"{}", key, key.verification_method)
    for name in ("Signature-Input", "Signature", "Content-Digest"):
        assert _fast_dictionary(headers[name]) is not None, name
    assert _fast_dictionary("sig1=();a=1;a=2") is None  # duplicates: the general parser
    assert _fast_dictionary("sig1=:AAA:") is None  # padding missing: the general parser
    assert _fast_dictionary('sig1=("a");x=?1') is None  # booleans: the general parser
