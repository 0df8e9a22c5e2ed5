"""Fuzz the running service from its own OpenAPI document (schemathesis, every check).

For each documented operation, schemathesis's example, coverage and fuzzing phases generate
schema-valid and schema-violating requests, and every check runs on every answer: no 5xx,
only documented status codes, content types and headers, responses that match their schema,
schema-valid requests accepted, schema-violating ones refused, the ``Allow`` header of a 405
telling the truth, authentication not ignored. The admin routes get the operator's bearer
token; the signed routes a real RFC 9421 signature by a registered did:key issuer (computed
on the exact bytes sent, in :class:`SigningSession`).

The one exception, ``SPEC_MANDATED_5XX``: the DID Resolution HTTP binding answers a DID of
a method this resolver does not support with 501 (``methodNotSupported``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from helpers.anvil import free_port
from helpers.service import service_config
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.errors import SchemathesisError
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test

from anchor.client.signing import signed_headers
from anchor.http.app import create_app
from anchor.http.appkeys import ISSUERS, STATUS
from anchor.http.problems import make_runner
from anchor.keys import Ed25519Key

TOKEN = "operator-secret-token"

CONFIG = f"""
[generation]
max-examples = 8
mode = "all"

[phases.examples]
enabled = true

[phases.coverage]
enabled = true

[phases.fuzzing]
enabled = true

[phases.stateful]
enabled = false

# Opening a list: the coverage phase's boundary cases of the 7 message-list shapes (up to
# 256 ordered messages) are some 9,000 requests: examples and fuzzing only.
[[operations]]
include-path-regex = "^/v1/status-lists(/allocate)?$"
include-method = "POST"
phases.coverage.enabled = false

# 413 (a documented size limit) refuses a request as surely as 400 does
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

[auth.openapi.operatorToken]
bearer = "{TOKEN}"

[auth.openapi.httpMessageSignature]
api_key = "replaced-by-the-signing-session"
"""

SPEC_MANDATED_5XX = {("GET", "/1.0/identifiers/{did}"): {501}}
"""5xx answers a specification requires (checked to be exactly these, and well formed)."""


class SigningSession(requests.Session):
    """Signs every request that carries a ``Signature`` header (schemathesis puts one on the
    operations the document marks as signed, and leaves it off when it checks that
    authentication is not ignored) with the issuer's key, over the bytes actually sent."""

    def __init__(self, key: Ed25519Key) -> None:
        super().__init__()
        self.key = key

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if "Signature" in request.headers:
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else body
            assert isinstance(raw, bytes)
            assert request.method is not None
            assert request.url is not None
            for name in ("Signature", "Signature-Input", "Content-Digest"):
                request.headers.pop(name, None)
            request.headers.update(
                signed_headers(
                    request.method, request.url, raw, self.key, self.key.verification_method
                )
            )
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Ed25519Key]]:
    """The real service on a socket (the runner ``serve`` uses), its event loop in a thread
    of its own, with one registered did:key issuer."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    loop = asyncio.new_event_loop()
    # short status lists: every list the fuzzer opens is built and signed in milliseconds
    config = service_config(tmp, port=port, operator_token=TOKEN, status_list_entries=1024)
    app = create_app(config)
    runner = make_runner(app)
    started = threading.Event()
    issuer = Ed25519Key.generate()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        app[ISSUERS].add(issuer.did, "Fuzzing College")
        app[STATUS].keys.upload_key(issuer.did, issuer)  # its lists can be opened and updated
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(60)
    try:
        yield f"http://127.0.0.1:{port}", issuer
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@pytest.mark.slow
def test_every_check_on_every_operation(service: tuple[str, Ed25519Key]) -> None:
    base_url, issuer = service
    doc = requests.get(base_url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc, config=SchemathesisConfig.from_str(CONFIG))
    load_all_checks()
    checks = list(CHECKS.get_all())
    without_5xx_check = [c for c in checks if getattr(c, "__name__", "") != "not_a_server_error"]
    assert len(without_5xx_check) == len(checks) - 1
    failures: list[str] = []
    statuses: list[int] = []
    operations: list[str] = []
    with SigningSession(issuer) as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations.append(operation.label)
            allowed_5xx = SPEC_MANDATED_5XX.get((operation.method.upper(), operation.path), set())

            def make_check(allowed_5xx: set[int]) -> Any:
                def check(case: schemathesis.Case) -> None:
                    response = case.call_and_validate(
                        base_url=base_url,
                        session=session,
                        checks=without_5xx_check if allowed_5xx else checks,
                        timeout=30,
                    )
                    statuses.append(response.status_code)
                    if response.status_code >= 500:
                        assert response.status_code in allowed_5xx, response.text[:300]
                        assert b"methodNotSupported" in response.content

                return check

            # schemathesis's own test builder: the example, coverage and fuzzing phases
            test = build_operation_test(
                config=schema.config,
                operation=operation,
                test_func=make_check(allowed_5xx),
                given_kwargs={},
                feedback=FeedbackSources(),
            )
            try:
                test()
            except (AssertionError, FailureGroup, SchemathesisError) as err:
                failures.append(f"{operation.label}: {err}"[:3000])
    assert len(operations) >= 25
    assert len(statuses) >= len(operations) * 10  # the fuzzer really sent requests
    assert {s for s in statuses if s < 300}  # some succeeded,
    assert {s for s in statuses if s in (400, 401, 404)}  # some were refused,
    assert 201 in statuses  # and signed submissions went through
    assert failures == [], "\n\n".join(failures)
