"""Issuer authentication (RFC 9421) over a real socket, plus every parser failure.

The service side is a real aiohttp application served by pytest-aiohttp on a local port,
with the durable nonce table in a real SQLite file. Requests are signed by
``anchor.client.signing``. Keys are resolved by a small did:key resolver written here from
the did:key method: a did:key document has one verification method, ``<did>#<id>``, and lists
it under ``authentication``; anything else is not an authentication key of that DID.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import http_sf
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from multidict import CIMultiDict

from anchor.auth.middleware import (
    PRINCIPAL_KEY,
    Authenticator,
    principal_of,
    require_signature,
)
from anchor.auth.nonces import NonceStore, ensure_schema
from anchor.auth.policy import (
    MAX_CLOCK_SKEW_SECONDS,
    check_keyid,
    check_nonce,
    check_request,
    check_times,
)
from anchor.auth.signatures import (
    ACCEPT_SIGNATURE,
    SignatureInput,
    SignedMessage,
    check_content_digest,
    parse_content_digest,
    parse_signature,
    parse_signature_input,
    verify_canonical,
    verify_signature,
)
from anchor.client.signing import (
    COVERED_COMPONENTS,
    new_nonce,
    signed_headers,
    target_uri,
)
from anchor.errors import ConfigError, InvalidInput, Unauthorized
from anchor.http.appkeys import AUTHENTICATOR_KEY
from anchor.keys import Ed25519Key, public_key_from_did_key
from anchor.log.store import SQLiteStore

PATH = "/v1/things"
BODY = b'{"digest": "sha-256:00ff", "kind": "credential"}'
PUBLIC_BASE = "https://anchor.example"

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


# --- a did:key resolver and an issuer registry (real, not stand-ins) ---------------------------


async def resolve_did_key(keyid: str) -> bytes | None:
    """The Ed25519 key of ``keyid`` if it is the authentication method of its did:key DID."""
    did = keyid.partition("#")[0]
    if not did.startswith("did:key:"):
        return None
    try:
        public = public_key_from_did_key(did)
    except InvalidInput:
        return None
    # The did:key document: verificationMethod [<did>#<msid>], authentication [<did>#<msid>].
    authentication = {f"{did}#{did.removeprefix('did:key:')}"}
    return public if keyid in authentication else None


class Registry:
    """Issuer DIDs registered by the operator."""

    def __init__(self, *dids: str) -> None:
        self.dids = set(dids)

    async def is_registered(self, did: str) -> bool:
        return did in self.dids


# --- the application under test -----------------------------------------------------------------


async def echo(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await request.read()
    return web.json_response(
        {"did": principal.did, "keyid": principal.keyid, "body": body.decode(), "n": len(body)}
    )


def make_app(
    store: SQLiteStore,
    registry: Registry,
    *,
    public_base_url: str | None = None,
) -> web.Application:
    ensure_schema(store)  # as the service does once, when it opens its database
    authenticator = Authenticator(
        resolve_key=resolve_did_key,
        is_registered=registry.is_registered,
        nonces=NonceStore(store),
        public_base_url=public_base_url,
    )
    app = web.Application()
    app[AUTHENTICATOR_KEY] = authenticator
    app.router.add_route("*", PATH, require_signature(echo))
    app.router.add_post("/v1/other", require_signature(echo))
    return app


@pytest.fixture
def alice() -> Ed25519Key:
    return Ed25519Key.generate()


@pytest.fixture
def bob() -> Ed25519Key:
    return Ed25519Key.generate()


@pytest.fixture
def registry(alice: Ed25519Key, bob: Ed25519Key) -> Registry:
    return Registry(alice.did, bob.did)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "anchor.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(db_path)
    ensure_schema(opened)  # as the service does once, when it opens its database
    yield opened
    opened.close()


@pytest_asyncio.fixture
async def client(
    aiohttp_client: ClientFactory, store: SQLiteStore, registry: Registry
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    yield await aiohttp_client(make_app(store, registry))


def url_of(client: TestClient[web.Request, web.Application], path: str = PATH) -> str:
    return str(client.make_url(path))


def sign(
    client: TestClient[web.Request, web.Application],
    key: Ed25519Key,
    *,
    body: bytes = BODY,
    method: str = "POST",
    path: str = PATH,
    keyid: str | None = None,
    now: float | None = None,
) -> dict[str, str]:
    return signed_headers(
        method,
        url_of(client, path),
        body,
        key,
        key.verification_method if keyid is None else keyid,
        now,
    )


async def problem(response: Any) -> dict[str, Any]:
    assert response.content_type == "application/problem+json"
    document: dict[str, Any] = await response.json()
    return document


async def assert_401(response: Any, reason: str, detail: str | None = None) -> dict[str, Any]:
    assert response.status == 401, await response.text()
    document = await problem(response)
    assert document["status"] == 401
    assert document["reason"] == reason
    assert document["hint"]
    if detail is not None:
        assert re.search(detail, document["detail"]), document["detail"]
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Signature realm="ler-anchor"')
    assert f'error="{reason}"' in challenge
    assert response.headers["Accept-Signature"] == ACCEPT_SIGNATURE
    return document


# --- over the socket ----------------------------------------------------------------------------


async def test_valid_signature(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    response = await client.post(PATH, data=BODY, headers=sign(client, alice))
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "did": alice.did,
        "keyid": alice.verification_method,
        "body": BODY.decode(),
        "n": len(BODY),
    }


async def test_valid_signature_on_empty_body(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    response = await client.post(PATH, data=b"", headers=sign(client, alice, body=b""))
    assert response.status == 200, await response.text()
    assert (await response.json())["n"] == 0


async def test_unsigned(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post(PATH, data=BODY)
    await assert_401(response, "unsigned", "not signed")
    accept: Any = http_sf.parse(response.headers["Accept-Signature"].encode(), tltype="dictionary")
    components, params = accept["sig1"]
    assert isinstance(components, list)
    assert [c for c, _ in components] == list(COVERED_COMPONENTS)
    assert params == {"created": True, "alg": "ed25519"}


async def test_stale(client: TestClient[web.Request, web.Application], alice: Ed25519Key) -> None:
    headers = sign(client, alice, now=time.time() - 600)
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "stale", r"stale: created 60\d s ago")


async def test_from_the_future(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice, now=time.time() + 600)
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "from-the-future", "in the future")


async def test_within_clock_skew_is_accepted(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    for offset in (-(MAX_CLOCK_SKEW_SECONDS - 30), MAX_CLOCK_SKEW_SECONDS - 30):
        headers = sign(client, alice, now=time.time() + offset)
        response = await client.post(PATH, data=BODY, headers=headers)
        assert response.status == 200, await response.text()


async def test_replay_is_refused(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    first = await client.post(PATH, data=BODY, headers=headers)
    assert first.status == 200, await first.text()
    second = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(second, "replayed-nonce", "already used")


async def test_replay_is_refused_after_restart(
    aiohttp_client: ClientFactory, db_path: Path, registry: Registry, alice: Ed25519Key
) -> None:
    headers = signed_headers("POST", PUBLIC_BASE + PATH, BODY, alice, alice.verification_method)
    first_store = SQLiteStore(db_path)
    first = await aiohttp_client(make_app(first_store, registry, public_base_url=PUBLIC_BASE))
    response = await first.post(PATH, data=BODY, headers=headers)
    assert response.status == 200, await response.text()
    await first.close()
    first_store.close()

    # A new process: new store connections, new application, new port, same database file.
    second_store = SQLiteStore(db_path)
    try:
        second = await aiohttp_client(make_app(second_store, registry, public_base_url=PUBLIC_BASE))
        replay = await second.post(PATH, data=BODY, headers=headers)
        await assert_401(replay, "replayed-nonce")
        fresh = signed_headers("POST", PUBLIC_BASE + PATH, BODY, alice, alice.verification_method)
        response = await second.post(PATH, data=BODY, headers=fresh)
        assert response.status == 200, await response.text()
    finally:
        second_store.close()


async def test_public_base_url_is_the_signed_target(
    aiohttp_client: ClientFactory, store: SQLiteStore, registry: Registry, alice: Ed25519Key
) -> None:
    proxied = await aiohttp_client(make_app(store, registry, public_base_url=PUBLIC_BASE))
    # Signed for the public address: accepted whatever Host the proxy sends.
    headers = signed_headers("POST", PUBLIC_BASE + PATH, BODY, alice, alice.verification_method)
    response = await proxied.post(PATH, data=BODY, headers=headers)
    assert response.status == 200, await response.text()
    # Signed for the internal address the request reached: refused.
    response = await proxied.post(PATH, data=BODY, headers=sign(proxied, alice))
    await assert_401(response, "bad-signature", re.escape(PUBLIC_BASE + PATH))


async def test_body_tampered_after_signing(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    tampered = BODY.replace(b"00ff", b"00fe")
    response = await client.post(PATH, data=tampered, headers=headers)
    await assert_401(response, "content-digest-mismatch", "does not match the body")


async def test_digest_and_body_replaced_together(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    tampered = BODY.replace(b"00ff", b"00fe")
    digest = base64.b64encode(hashlib.sha256(tampered).digest()).decode()
    headers["Content-Digest"] = f"sha-256=:{digest}:"
    response = await client.post(PATH, data=tampered, headers=headers)
    await assert_401(response, "bad-signature", "does not verify")


async def test_method_tampered(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    response = await client.put(PATH, data=BODY, headers=sign(client, alice, method="POST"))
    await assert_401(response, "bad-signature", "does not verify")


async def test_target_tampered(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    response = await client.post("/v1/other", data=BODY, headers=headers)
    await assert_401(response, "bad-signature")
    response = await client.post(PATH + "?issuer=someone-else", data=BODY, headers=headers)
    await assert_401(response, "bad-signature")


async def test_signature_parameters_tampered(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    headers["Signature-Input"] = re.sub(
        r'nonce="[^"]+"', f'nonce="{new_nonce()}"', headers["Signature-Input"]
    )
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "bad-signature")


async def test_key_of_another_did(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key, bob: Ed25519Key
) -> None:
    # Bob signs with his own key but names it as a key of Alice's DID.
    bob_fragment = bob.verification_method.partition("#")[2]
    keyid = f"{alice.did}#{bob_fragment}"
    response = await client.post(PATH, data=BODY, headers=sign(client, bob, keyid=keyid))
    await assert_401(response, "unknown-key", "not an Ed25519 key listed under authentication")


async def test_fragment_not_in_document(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    keyid = f"{alice.did}#key-2"
    response = await client.post(PATH, data=BODY, headers=sign(client, alice, keyid=keyid))
    await assert_401(response, "unknown-key")


async def test_signed_by_another_key_than_keyid(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key, bob: Ed25519Key
) -> None:
    headers = sign(client, bob, keyid=alice.verification_method)
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "bad-signature", re.escape(alice.verification_method))


async def test_unregistered_issuer_is_forbidden(
    client: TestClient[web.Request, web.Application],
) -> None:
    stranger = Ed25519Key.generate()
    response = await client.post(PATH, data=BODY, headers=sign(client, stranger))
    assert response.status == 403, await response.text()
    document = await problem(response)
    assert document["reason"] == "unregistered-issuer"
    assert document["detail"] == f"{stranger.did} is not a registered issuer"
    assert "WWW-Authenticate" not in response.headers


async def test_malformed_signature_input(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    headers["Signature-Input"] = headers["Signature-Input"].replace("sig1=(", "sig1=[", 1)
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(
        response,
        "malformed-signature-input",
        r"Signature-Input is not a structured-field dictionary \(RFC 8941\)",
    )


async def test_other_algorithm(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    headers["Signature-Input"] = headers["Signature-Input"].replace(
        'alg="ed25519"', 'alg="rsa-pss-sha512"'
    )
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "unsupported-algorithm", '"rsa-pss-sha512" is not accepted')


async def test_content_digest_not_covered(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    headers["Signature-Input"] = headers["Signature-Input"].replace(' "content-digest"', "")
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "missing-component", 'required component "content-digest"')


async def test_body_without_content_digest(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    del headers["Content-Digest"]
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "missing-content-digest")


async def test_signature_field_without_input(
    client: TestClient[web.Request, web.Application], alice: Ed25519Key
) -> None:
    headers = sign(client, alice)
    del headers["Signature-Input"]
    response = await client.post(PATH, data=BODY, headers=headers)
    await assert_401(response, "malformed-signature-input", "no Signature-Input")


async def test_principal_is_stored_under_request_key(
    aiohttp_client: ClientFactory, store: SQLiteStore, registry: Registry, alice: Ed25519Key
) -> None:
    seen: list[Any] = []

    @require_signature
    async def handler(request: web.Request) -> web.Response:
        seen.append(request[PRINCIPAL_KEY])
        return web.Response(text="ok")

    app = make_app(store, registry)
    app.router.add_post("/v1/key", handler)
    client = await aiohttp_client(app)
    response = await client.post("/v1/key", data=BODY, headers=sign(client, alice, path="/v1/key"))
    assert response.status == 200, await response.text()
    (principal,) = seen
    assert principal.did == alice.did
    assert principal.keyid == alice.verification_method
    assert abs(principal.created - time.time()) < 60
    assert len(principal.nonce) == 22


# --- the signing client -------------------------------------------------------------------------


def test_signed_headers_shape(alice: Ed25519Key) -> None:
    headers = signed_headers(
        "post", "https://anchor.example/v1/x", BODY, alice, alice.verification_method, 1700000000
    )
    assert set(headers) == {"Content-Digest", "Signature-Input", "Signature"}
    digest = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert headers["Content-Digest"] == f"sha-256=:{digest}:"
    sig = parse_signature_input(headers["Signature-Input"])
    assert sig.label == "sig1"
    assert sig.components == COVERED_COMPONENTS
    assert sig.created == 1700000000
    assert sig.keyid == alice.verification_method
    assert sig.alg == "ed25519"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", sig.nonce)
    assert headers["Signature-Input"].startswith(
        'sig1=("@method" "@target-uri" "content-digest");created=1700000000;keyid="'
    )


def test_signature_base_matches_rfc9421_by_hand(alice: Ed25519Key) -> None:
    """Rebuild the RFC 9421 §2.5 signature base independently and verify the signature."""
    url = "https://anchor.example/v1/things?batch=7"
    headers = signed_headers("POST", url, BODY, alice, alice.verification_method)
    params = headers["Signature-Input"].removeprefix("sig1=")
    base = "\n".join(
        [
            '"@method": POST',
            f'"@target-uri": {url}',
            f'"content-digest": {headers["Content-Digest"]}',
            f'"@signature-params": {params}',
        ]
    )
    signature = parse_signature(headers["Signature"], "sig1")
    Ed25519PublicKey.from_public_bytes(alice.public_bytes).verify(signature, base.encode())


def test_nonces_are_fresh() -> None:
    assert len({new_nonce() for _ in range(1000)}) == 1000


def test_target_uri_drops_fragment_and_encodes() -> None:
    assert target_uri("https://anchor.example/a b#frag") == "https://anchor.example/a%20b"


def test_target_uri_requires_absolute_url() -> None:
    with pytest.raises(InvalidInput, match="an absolute http"):
        target_uri("/v1/things")


# --- Signature-Input parsing: one error each ----------------------------------------------------

GOOD_PARAMS = ';created=1700000000;keyid="did:key:z6Mk#z6Mk";alg="ed25519";nonce="abcdefghijklmnop"'
GOOD_INPUT = 'sig1=("@method" "@target-uri" "content-digest")' + GOOD_PARAMS


def test_parse_signature_input() -> None:
    sig = parse_signature_input(GOOD_INPUT + ';expires=1700000300;tag="ler"')
    assert sig == SignatureInput(
        label="sig1",
        components=("@method", "@target-uri", "content-digest"),
        created=1700000000,
        keyid="did:key:z6Mk#z6Mk",
        nonce="abcdefghijklmnop",
        alg="ed25519",
        expires=1700000300,
        tag="ler",
    )
    assert sig.did == "did:key:z6Mk"


def test_signature_input_not_a_dictionary() -> None:
    with pytest.raises(Unauthorized, match="not a structured-field dictionary"):
        parse_signature_input('sig1=("@method"')


def test_signature_input_not_ascii() -> None:
    with pytest.raises(Unauthorized, match="not a structured-field dictionary"):
        parse_signature_input('sig1=("@méthod")' + GOOD_PARAMS)


def test_signature_input_empty() -> None:
    with pytest.raises(Unauthorized, match="declares no signature"):
        parse_signature_input("")


def test_signature_input_two_signatures() -> None:
    with pytest.raises(Unauthorized, match=r"declares 2 signatures \(sig1, sig2\); send exactly"):
        parse_signature_input(GOOD_INPUT + ", sig2=" + GOOD_INPUT.removeprefix("sig1="))


def test_signature_input_duplicate_label() -> None:
    with pytest.raises(Unauthorized, match='repeats the key "sig1"'):
        parse_signature_input(GOOD_INPUT + ", " + GOOD_INPUT)


def test_signature_input_member_not_inner_list() -> None:
    with pytest.raises(Unauthorized, match='member "sig1" is not an inner list'):
        parse_signature_input('sig1="@method"' + GOOD_PARAMS)


def test_signature_input_component_not_string() -> None:
    with pytest.raises(Unauthorized, match=r"covered component Token.* is not a quoted string"):
        parse_signature_input("sig1=(method)" + GOOD_PARAMS)


def test_signature_input_component_uppercase() -> None:
    with pytest.raises(Unauthorized, match='covered component "Content-Digest" must be lowercase'):
        parse_signature_input('sig1=("Content-Digest")' + GOOD_PARAMS)


def test_signature_input_unknown_parameter() -> None:
    with pytest.raises(Unauthorized, match=r"unknown signature parameter\(s\) color"):
        parse_signature_input(GOOD_INPUT + ';color="red"')


@pytest.mark.parametrize("name", ["created", "keyid", "nonce"])
def test_signature_input_missing_parameter(name: str) -> None:
    value = re.sub(rf";{name}=[^;]+", "", GOOD_INPUT)
    with pytest.raises(Unauthorized, match=f'has no "{name}" parameter'):
        parse_signature_input(value)


def test_signature_input_created_not_integer() -> None:
    with pytest.raises(Unauthorized, match='"created" signature parameter must be an integer'):
        parse_signature_input(GOOD_INPUT.replace("created=1700000000", "created=?1"))


def test_signature_input_keyid_not_string() -> None:
    with pytest.raises(Unauthorized, match='"keyid" signature parameter must be a quoted string'):
        parse_signature_input(GOOD_INPUT.replace('keyid="did:key:z6Mk#z6Mk"', "keyid=key1"))


def test_signature_input_expires_before_created() -> None:
    with pytest.raises(Unauthorized, match=r"expires \(1\) before it was created"):
        parse_signature_input(GOOD_INPUT + ";expires=1")


def test_signature_input_errors_carry_reason() -> None:
    with pytest.raises(Unauthorized) as caught:
        parse_signature_input("")
    assert caught.value.status == 401
    assert caught.value.problem()["reason"] == "malformed-signature-input"


# --- Signature parsing --------------------------------------------------------------------------

SIGNATURE_BYTES = bytes(range(64))
GOOD_SIGNATURE = "sig1=:" + base64.b64encode(SIGNATURE_BYTES).decode() + ":"


def test_parse_signature() -> None:
    assert parse_signature(GOOD_SIGNATURE, "sig1") == SIGNATURE_BYTES


def test_signature_label_mismatch() -> None:
    with pytest.raises(Unauthorized, match='label\\(s\\) sig1 but Signature-Input declares "sig2"'):
        parse_signature(GOOD_SIGNATURE, "sig2")


def test_signature_not_byte_sequence() -> None:
    with pytest.raises(Unauthorized, match='member "sig1" is not a byte sequence'):
        parse_signature('sig1="AAAA"', "sig1")


def test_signature_wrong_length() -> None:
    with pytest.raises(Unauthorized, match="is 63 bytes; an Ed25519 signature is 64"):
        parse_signature("sig1=:" + base64.b64encode(bytes(63)).decode() + ":", "sig1")


def test_signature_not_a_dictionary() -> None:
    with pytest.raises(Unauthorized, match="Signature is not a structured-field dictionary"):
        parse_signature("sig1=:AAA", "sig1")


# --- Content-Digest (RFC 9530) ------------------------------------------------------------------


def _sf_bytes(data: bytes) -> str:
    return ":" + base64.b64encode(data).decode() + ":"


SHA256 = hashlib.sha256(BODY).digest()
SHA512 = hashlib.sha512(BODY).digest()


def test_content_digest_sha256() -> None:
    assert parse_content_digest(f"sha-256={_sf_bytes(SHA256)}") == {"sha-256": SHA256}
    check_content_digest(f"sha-256={_sf_bytes(SHA256)}", BODY)


def test_content_digest_sha512() -> None:
    check_content_digest(f"sha-512={_sf_bytes(SHA512)}", BODY)


def test_content_digest_both_and_unknown_algorithms() -> None:
    value = f"unixsum={_sf_bytes(b'12')}, sha-512={_sf_bytes(SHA512)}, sha-256={_sf_bytes(SHA256)}"
    assert parse_content_digest(value) == {"sha-256": SHA256, "sha-512": SHA512}
    check_content_digest(value, BODY)


def test_content_digest_every_understood_digest_must_match() -> None:
    value = f"sha-256={_sf_bytes(SHA256)}, sha-512={_sf_bytes(hashlib.sha512(b'x').digest())}"
    with pytest.raises(Unauthorized, match="the sha-512 Content-Digest does not match the body"):
        check_content_digest(value, BODY)


def test_content_digest_mismatch() -> None:
    with pytest.raises(Unauthorized, match=r"sha-256 Content-Digest does not match.*\(1 bytes"):
        check_content_digest(f"sha-256={_sf_bytes(SHA256)}", b"x")


def test_content_digest_not_a_dictionary() -> None:
    with pytest.raises(Unauthorized, match="Content-Digest is not a structured-field dictionary"):
        parse_content_digest("sha-256=:not base64:")


def test_content_digest_empty() -> None:
    with pytest.raises(Unauthorized, match="Content-Digest is empty"):
        parse_content_digest("")


def test_content_digest_member_not_bytes() -> None:
    with pytest.raises(Unauthorized, match='member "sha-256" is not a byte sequence'):
        parse_content_digest('sha-256="abc"')


def test_content_digest_wrong_length() -> None:
    with pytest.raises(Unauthorized, match="the sha-256 Content-Digest is 31 bytes, expected 32"):
        parse_content_digest(f"sha-256={_sf_bytes(SHA256[:31])}")


def test_content_digest_only_unknown_algorithms() -> None:
    with pytest.raises(Unauthorized, match=r"no sha-256 or sha-512 digest \(only md5\)"):
        parse_content_digest(f"md5={_sf_bytes(bytes(16))}")


def test_content_digest_duplicate_algorithm() -> None:
    with pytest.raises(Unauthorized, match='repeats the key "sha-256"'):
        parse_content_digest(f"sha-256={_sf_bytes(SHA256)}, sha-256={_sf_bytes(SHA256)}")


def test_content_digest_errors_carry_reason() -> None:
    with pytest.raises(Unauthorized) as caught:
        parse_content_digest("")
    assert caught.value.extra["reason"] == "malformed-content-digest"


# --- keyid, nonce, times ------------------------------------------------------------------------


def test_keyid_must_be_did_url() -> None:
    assert check_keyid("did:web:example.com%3A8443:issuers:1#key-1") == (
        "did:web:example.com%3A8443:issuers:1"
    )


def test_keyid_without_fragment() -> None:
    with pytest.raises(Unauthorized, match="has no #fragment"):
        check_keyid("did:key:z6Mkabc")


def test_keyid_not_a_did() -> None:
    with pytest.raises(Unauthorized, match="does not start with a DID"):
        check_keyid("https://example.com/keys#1")


def test_keyid_bad_fragment() -> None:
    with pytest.raises(Unauthorized, match="has an invalid fragment"):
        check_keyid("did:key:z6Mkabc#key 1")


def test_keyid_too_long() -> None:
    with pytest.raises(Unauthorized, match="longer than 2048 characters"):
        check_keyid("did:key:z" + "a" * 2048 + "#x")


def test_nonce_too_short() -> None:
    with pytest.raises(Unauthorized, match="the nonce has 8 characters"):
        check_nonce("abcdefgh")


def test_nonce_bad_characters() -> None:
    with pytest.raises(Unauthorized, match="may only use the characters"):
        check_nonce("abcdefgh ijklmnop")


def _sig(created: int, expires: int | None = None) -> SignatureInput:
    return SignatureInput(
        label="sig1",
        components=COVERED_COMPONENTS,
        created=created,
        keyid="did:key:z6Mk#z6Mk",
        nonce="abcdefghijklmnop",
        expires=expires,
    )


def _message(method: str, url: str, headers: dict[str, str]) -> SignedMessage:
    """A request as plain values: the policy and the verification need no web framework."""
    target = "/" + url.split("/", 3)[3]
    fields = CIMultiDict(headers)
    raw = tuple((k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items())
    return SignedMessage(
        method=method, target_uri=url, request_target=target, headers=fields, raw_headers=raw
    )


@pytest.mark.parametrize("canonical", [True, False])
def test_policy_and_verification_of_a_plain_message(alice: Ed25519Key, canonical: bool) -> None:
    url = PUBLIC_BASE + PATH
    headers = signed_headers("POST", url, BODY, alice, alice.verification_method)
    if not canonical:  # an optional space: the package's path decides
        label, _, member = headers["Signature-Input"].partition("=")
        headers["Signature-Input"] = f"{label}=( {member[1:]}"
    key = public_key_from_did_key(alice.did)
    message = _message("POST", url, headers)
    checked = check_request(message, BODY, time.time())
    assert (checked.did, checked.sig.keyid) == (alice.did, alice.verification_method)
    args = (checked.input_field, checked.sig, checked.signature, key)
    assert verify_canonical(message, *args) is canonical
    verify_signature(message, BODY, *args)
    tampered = _message("PUT", url, headers)
    assert verify_canonical(tampered, *args) is False
    with pytest.raises(Unauthorized, match="does not verify") as refused:
        verify_signature(tampered, BODY, *args)
    assert refused.value.extra["reason"] == "bad-signature"
    with pytest.raises(Unauthorized, match="the signature is stale"):
        check_request(message, BODY, time.time() + MAX_CLOCK_SKEW_SECONDS + 60)
    with pytest.raises(Unauthorized, match="does not match the body"):
        check_request(message, BODY + b" ", time.time())


def test_times_at_the_limits_are_accepted() -> None:
    check_times(_sig(1000), 1000 + MAX_CLOCK_SKEW_SECONDS)
    check_times(_sig(1000), 1000 - MAX_CLOCK_SKEW_SECONDS)


def test_times_stale() -> None:
    with pytest.raises(Unauthorized, match="the signature is stale"):
        check_times(_sig(1000), 1000 + MAX_CLOCK_SKEW_SECONDS + 1)


def test_times_future() -> None:
    with pytest.raises(Unauthorized, match="in the future"):
        check_times(_sig(1000), 1000 - MAX_CLOCK_SKEW_SECONDS - 1)


def test_times_expired() -> None:
    with pytest.raises(Unauthorized, match="the signature expired 10 s ago"):
        check_times(_sig(1000, expires=1050), 1060)


# --- the durable nonce table --------------------------------------------------------------------


def test_nonce_store_refuses_a_nonce_until_it_expires(store: SQLiteStore) -> None:
    nonces = NonceStore(store)
    assert nonces.remember("did:key:a#a", "n" * 16, expires=1300, now=1000)
    assert not nonces.remember("did:key:a#a", "n" * 16, expires=1300, now=1200)
    assert not nonces.remember("did:key:a#a", "n" * 16, expires=1300, now=1300)
    assert nonces.remember("did:key:b#b", "n" * 16, expires=1300, now=1200)  # per key
    assert nonces.seen("did:key:a#a", "n" * 16, now=1300)
    assert not nonces.seen("did:key:a#a", "n" * 16, now=1301)
    assert nonces.remember("did:key:a#a", "n" * 16, expires=1700, now=1400)  # expired row


def test_nonce_store_purges_expired(store: SQLiteStore) -> None:
    nonces = NonceStore(store, purge_interval=3600)
    for i in range(5):
        nonces.remember("did:key:a#a", f"nonce-{i:011d}", expires=1000 + i, now=900)
    assert nonces.purge(now=1003) == 3
    remaining = store.reader().execute("SELECT count(*) FROM auth_nonces").fetchone()[0]
    assert remaining == 2


def test_nonce_store_purges_opportunistically(store: SQLiteStore) -> None:
    nonces = NonceStore(store, purge_interval=0)
    nonces.remember("did:key:a#a", "old-nonce-000000", expires=1000, now=900)
    nonces.remember("did:key:a#a", "new-nonce-000000", expires=2300, now=2000)
    rows = store.reader().execute("SELECT nonce FROM auth_nonces").fetchall()
    assert rows == [("new-nonce-000000",)]


def test_nonce_table_is_durable(db_path: Path) -> None:
    first = SQLiteStore(db_path)
    ensure_schema(first)
    NonceStore(first).remember("did:key:a#a", "n" * 16, expires=1300, now=1000)
    first.close()
    second = SQLiteStore(db_path)
    try:
        ensure_schema(second)  # idempotent
        assert not NonceStore(second).remember("did:key:a#a", "n" * 16, expires=1300, now=1001)
    finally:
        second.close()


# --- configuration ------------------------------------------------------------------------------


def test_public_base_url_must_be_an_origin(store: SQLiteStore) -> None:
    with pytest.raises(ConfigError, match="must be http\\(s\\)://host"):
        Authenticator(
            resolve_key=resolve_did_key,
            is_registered=Registry().is_registered,
            nonces=NonceStore(store),
            public_base_url="https://anchor.example/?x=1",
        )


async def test_missing_authenticator_is_a_configuration_error(
    aiohttp_client: ClientFactory, alice: Ed25519Key
) -> None:
    app = web.Application()
    app.router.add_post(PATH, require_signature(echo))
    client = await aiohttp_client(app)
    response = await client.post(PATH, data=BODY, headers=sign(client, alice))
    assert response.status == 500
