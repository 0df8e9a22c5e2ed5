"""Issuer authentication in the aiohttp service: every write is signed (RFC 9421).

:class:`Authenticator` turns an aiohttp request into a
:class:`~anchor.auth.signatures.SignedMessage` (:meth:`Authenticator.message`), applies the
stateless policy (:func:`~anchor.auth.policy.check_request`), then the checks that need
state, cheapest first:

* the keyid's DID must be a registered, active issuer (injected :data:`RegistryCheck`, a
  local look-up), else 403: checked before anything costly, so an unregistered signer
  causes no DID resolution (no did:web fetch) and no nonce row (no fsync). Whether a DID is
  registered is thus visible to anyone; registered issuers are public anyway (they are the
  submitters named in the log's entries);
* the key is found by the injected :data:`KeyResolver`, which returns it only when the DID
  document lists it under ``authentication``; the signature must verify with it;
* the nonce is remembered durably (:class:`~anchor.auth.nonces.NonceStore`), concurrent
  requests sharing one transaction; it is consumed only once the signature verifies
  (nobody can burn another issuer's nonces).

The ``@target-uri`` is built from the configured public base URL when the service runs
behind a proxy, else from the request as received.

Wiring: store the :class:`Authenticator` under :data:`~anchor.http.appkeys.AUTHENTICATOR_KEY` in
the application, then protect handlers with :func:`require_signature`. The verified
:class:`~anchor.auth.policy.Principal` is in ``request[PRINCIPAL_KEY]`` (or
:func:`principal_of`). A failure becomes an ``application/problem+json`` response made by the
error's own :meth:`~anchor.errors.AnchorError.problem`, with ``WWW-Authenticate`` and
``Accept-Signature`` (RFC 9421 §5.1) on a 401.

I/O: through the injected look-ups and the nonce store only (reads the request body, which
aiohttp caches). Cost per request: the policy's checks, one registry look-up and one key
resolution (both usually shared or cached by the caller), one Ed25519 verification, and a
share of one nonce transaction.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from anchor.auth.nonces import NonceStore
from anchor.auth.policy import MAX_CLOCK_SKEW_SECONDS, Principal, check_request
from anchor.auth.signatures import (
    ACCEPT_SIGNATURE,
    ED25519_PUBLIC_KEY_SIZE,
    SIGNATURE_ALGORITHM,
    AuthFailure,
    SignedMessage,
    unauthorized,
    verify_signature,
)
from anchor.errors import AnchorError, ConfigError, Forbidden, Unauthorized
from anchor.http.appkeys import AUTHENTICATOR_KEY
from anchor.log.grouping import GroupCall

AUTH_REALM: Final = "ler-anchor"

KeyResolver = Callable[[str], Awaitable[bytes | None]]
"""``await resolve(keyid)``: the raw 32-byte Ed25519 public key of the DID URL ``keyid``,
only if the DID document lists that key under ``authentication``; else ``None``."""

RegistryCheck = Callable[[str], Awaitable[bool]]
"""``await is_registered(did)``: whether the operator registered this issuer DID."""


class Authenticator:
    """Verifies signed requests (see the module docstring for the order of the checks).

    ``public_base_url`` (e.g. ``https://anchor.example``, optionally with a path prefix) is
    the service's address as clients see it: behind a proxy the ``@target-uri`` is that
    base followed by the request's path and query, instead of the Host the proxy sent.
    Without it the request's own scheme, Host and target are used.
    """

    def __init__(
        self,
        *,
        resolve_key: KeyResolver,
        is_registered: RegistryCheck,
        nonces: NonceStore,
        public_base_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._resolve_key = resolve_key
        self._is_registered = is_registered
        self._nonces = nonces
        self._nonce_commit: GroupCall[tuple[str, str, int], bool] = GroupCall(
            lambda items: nonces.remember_many(items, now=self._clock())
        )
        self._base = None if public_base_url is None else _check_base_url(public_base_url)
        self._clock = clock

    def target_uri(self, request: web.BaseRequest) -> str:
        """The ``@target-uri`` the client must have signed."""
        path = request.rel_url.raw_path_qs
        if self._base is not None:
            return self._base + path
        return f"{request.scheme}://{request.host}{path}"

    def message(self, request: web.BaseRequest) -> SignedMessage:
        """``request`` as the signature covers it."""
        return SignedMessage(
            method=request.method,
            target_uri=self.target_uri(request),
            request_target=request.raw_path,
            headers=request.headers,
            raw_headers=request.raw_headers,
        )

    async def authenticate(self, request: web.BaseRequest, body: bytes) -> Principal:
        """The :class:`~anchor.auth.policy.Principal` of a correctly signed ``request`` whose
        body is ``body``; raises :class:`Unauthorized` (401) or :class:`Forbidden` (403)."""
        message = self.message(request)
        checked = check_request(message, body, self._clock())
        sig, did = checked.sig, checked.did
        # Cheap things first: the registry is a local look-up, so a signer the operator did
        # not register costs no DID resolution (a did:web fetch) and no nonce row (an fsync).
        if not await self._is_registered(did):
            raise Forbidden(
                f"{did} is not a registered issuer",
                hint="ask the operator of this service to register the issuer DID",
                reason=AuthFailure.UNREGISTERED_ISSUER.value,
            )

        public_key = await self._resolve_key(sig.keyid)
        if public_key is None or len(public_key) != ED25519_PUBLIC_KEY_SIZE:
            raise unauthorized(
                AuthFailure.UNKNOWN_KEY,
                f"{sig.keyid} is not an Ed25519 key listed under authentication "
                f"in the DID document of {did}",
                hint="sign with a key your DID document lists under authentication, "
                "and use its verification method id as keyid",
            )
        verify_signature(message, body, checked.input_field, sig, checked.signature, public_key)

        expires = sig.created + MAX_CLOCK_SKEW_SECONDS
        fresh = await self._nonce_commit((sig.keyid, sig.nonce, expires))
        if not fresh:
            raise unauthorized(
                AuthFailure.REPLAYED_NONCE,
                "this nonce was already used with this key: the request is a replay",
                hint="use a fresh random nonce for every request",
            )
        return Principal(did=did, keyid=sig.keyid, created=sig.created, nonce=sig.nonce)


def _check_base_url(base: str) -> str:
    url = URL(base)
    if (
        not url.absolute
        or url.scheme not in {"http", "https"}
        or not url.host
        or url.query_string
        or url.fragment
        or url.user is not None
    ):
        raise ConfigError(
            f"public base URL {base!r} must be http(s)://host[:port][/prefix] "
            "without query, fragment or credentials"
        )
    return str(url).rstrip("/")


# -- aiohttp wiring -----------------------------------------------------------------------

PRINCIPAL_KEY: Final = web.RequestKey("anchor.auth.principal", Principal)
"""Where a verified request carries its :class:`~anchor.auth.policy.Principal`."""


def principal_of(request: web.Request) -> Principal:
    """The verified principal of a request that went through signature checking."""
    if PRINCIPAL_KEY not in request:
        raise Unauthorized(
            "this handler requires a signed request but signature checking did not run",
            hint="protect the route with require_signature",
        )
    return request[PRINCIPAL_KEY]


def challenge_headers(error: Unauthorized) -> dict[str, str]:
    """``WWW-Authenticate`` and ``Accept-Signature`` for a 401, so the client learns how to
    sign (and why this request failed)."""
    reason = str(error.extra.get("reason", AuthFailure.UNSIGNED.value))
    return {
        "WWW-Authenticate": (
            f'Signature realm="{AUTH_REALM}", alg="{SIGNATURE_ALGORITHM}", error="{reason}"'
        ),
        "Accept-Signature": ACCEPT_SIGNATURE,
    }


def problem_response(error: AnchorError, request: web.BaseRequest) -> web.Response:
    """``error`` as ``application/problem+json``; a 401 also carries
    :func:`challenge_headers`. (The service maps errors in its own middleware with the same
    headers; this serves applications that use only this module.)"""
    headers = challenge_headers(error) if isinstance(error, Unauthorized) else {}
    return web.json_response(
        error.problem(instance=request.path),
        status=error.status,
        headers=headers,
        content_type="application/problem+json",
    )


async def _check(request: web.Request) -> web.Response | None:
    """Authenticate ``request``; store its principal, or return the failure response."""
    authenticator = request.config_dict.get(AUTHENTICATOR_KEY)
    if authenticator is None:
        raise ConfigError(
            "signature checking is enabled but the application has no Authenticator",
            hint="set app[AUTHENTICATOR_KEY] when building the application",
        )
    body = await request.read()  # cached: the handler can read it again
    try:
        request[PRINCIPAL_KEY] = await authenticator.authenticate(request, body)
    except (Unauthorized, Forbidden) as error:
        return problem_response(error, request)
    return None


def require_signature(handler: Handler) -> Handler:
    """Decorate a handler so that it runs only for a correctly signed request from a
    registered issuer, with ``request[PRINCIPAL_KEY]`` set."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        failure = await _check(request)
        if failure is not None:
            return failure
        return await handler(request)

    return checked
