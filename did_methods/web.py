"""did:web (W3C CCG did:web Method Specification): DID documents fetched over HTTPS.

Transformation (:func:`did_web_url`, pure): the method-specific id is split on ``:``; the
first segment is the host, where ``%3A`` is the port separator; the other segments are the
path. No path -> ``https://<host>/.well-known/did.json``; a path ->
``https://<host>/<path>/did.json``::

    did:web:example.com                  -> https://example.com/.well-known/did.json
    did:web:example.com%3A3000:user:bob  -> https://example.com:3000/user/bob/did.json

Refused as ``invalidDid`` before any network traffic: hosts that are IP addresses (IPv4 in
any inet_aton form, IPv6 literals) or not DNS names, ports outside 1-65535, other
percent-escapes in the host, and empty, ``.`` or ``..`` path segments.

Fetching (:class:`WebDriver`): HTTPS only, never plain HTTP; the certificate is checked
against an ``ssl.SSLContext`` built once when the driver is made (by default the system
trust store, or the ``SSL_CERT_FILE`` bundle, or ``ca_file``); at most
:data:`MAX_REDIRECTS` redirects, each to an ``https`` URL that passes the same host checks;
the whole resolution within ``timeout`` seconds (:data:`DEFAULT_TIMEOUT_SECONDS`); the body
read in chunks and abandoned as soon as it exceeds ``max_document_bytes``
(:data:`MAX_DOCUMENT_BYTES`; counted after content decoding, so a compressed bomb is cut
off too). The driver borrows one shared ``aiohttp.ClientSession`` from its caller (one
without a ``base_url``); :func:`open_web_driver` makes one for standalone use.

Outcomes: HTTP 404 and 410 -> ``notFound``. A body that is not a JSON object, or whose
``id`` is not the DID, or that nests arrays and objects deeper than
:data:`~did_methods.jsonlimits.MAX_JSON_DEPTH` (checked before parsing) ->
``invalidDidDocument`` (DID Resolution's code for a malformed document: the DID itself is
well-formed, so ``invalidDid`` would blame the caller, and the
server did answer, so ``notFound`` would hide a misconfigured or hostile host). Timeouts,
TLS and connection failures, other HTTP statuses and oversized bodies -> ``internalError``
with a message naming the URL and the cause.

Relative DID URLs inside documents are accepted (the did:web specification asks hosts to
publish absolute ones) since the document ``id`` they resolve against has been checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import aiohttp
from yarl import URL

from did_methods import jsonlimits
from did_methods.result import ErrorCode, ResolutionResult
from did_methods.syntax import DidSyntaxError, ParsedDid, parse_did

MAX_DOCUMENT_BYTES = 100_000
"""Largest DID document accepted, in bytes of the HTTP body (checked while reading)."""
DEFAULT_TIMEOUT_SECONDS = 10.0
"""Default limit on a whole did:web resolution: connection, TLS, redirects and body."""
MAX_REDIRECTS = 3
"""Redirects followed at most (each must stay on HTTPS and pass the host checks)."""
READ_CHUNK_BYTES = 16_384
"""Size of the chunks the body is read in."""
ACCEPT_HEADER = "application/did+json, application/did+ld+json;q=0.9, application/json;q=0.8"
"""``Accept`` sent with every request."""

_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PORT_SEPARATOR_RE = re.compile(r"%3[Aa]")
_MAX_HOST_LENGTH = 253


class InvalidWebDidError(ValueError):
    """The DID cannot name a did:web document location; the message says why."""


def _check_host(host: str, what: str) -> None:
    """Refuse IP addresses and anything that is not a DNS host name."""
    if host.startswith("[") or ":" in host:
        raise InvalidWebDidError(f"{what} {host!r} is an IPv6 address; did:web needs a domain name")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise InvalidWebDidError(f"{what} {host!r} is an IP address; did:web needs a domain name")
    try:
        socket.inet_aton(host)  # also catches 127.1, 0x7f.1, 2130706433 (no lookup is done)
    except OSError:
        pass
    else:
        raise InvalidWebDidError(f"{what} {host!r} is an IP address; did:web needs a domain name")
    labels = host.split(".")
    if (
        not host
        or len(host) > _MAX_HOST_LENGTH
        or not all(_LABEL_RE.fullmatch(label) for label in labels)
    ):
        raise InvalidWebDidError(f"{what} {host!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise InvalidWebDidError(
            f"{what} {host!r} ends in a numeric label, which only IP addresses do"
        )


def did_web_url(did: str | ParsedDid) -> str:
    """The HTTPS URL of a did:web's document. Raises :class:`InvalidWebDidError`."""
    if isinstance(did, str):
        try:
            did = parse_did(did)
        except DidSyntaxError as exc:
            raise InvalidWebDidError(str(exc)) from None
    if did.method != "web":
        raise InvalidWebDidError(f"{did.did!r} is not a did:web")
    host_part, *path = did.method_specific_id.split(":")
    decoded_host = unquote(host_part)
    if decoded_host.startswith("[") or decoded_host.count(":") > 1:
        raise InvalidWebDidError(
            f"{did.did!r}: host {decoded_host!r} is an IPv6 address; did:web needs a domain name"
        )
    host, sep, port = _PORT_SEPARATOR_RE.sub(":", host_part).partition(":")
    if "%" in host_part and not sep:
        raise InvalidWebDidError(
            f"{did.did!r}: only %3A (the port separator) may be percent-encoded in the host"
        )
    if "%" in host or "%" in port or ":" in port:
        raise InvalidWebDidError(
            f"{did.did!r}: the host part {unquote(host_part)!r} is not host[%3Aport]"
        )
    _check_host(host, "host")
    authority = host.lower()
    if sep:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidWebDidError(f"{did.did!r}: port {port!r} is not a number from 1 to 65535")
        authority += f":{int(port)}"
    for segment in path:
        if unquote(segment) in ("", ".", "..") or "/" in unquote(segment):
            raise InvalidWebDidError(
                f"{did.did!r}: path segment {segment!r} is not allowed "
                "(empty, '.', '..' or an encoded '/')"
            )
    location = "/" + "/".join(path) if path else "/.well-known"
    return f"https://{authority}{location}/did.json"


def default_ssl_context(ca_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A certificate- and host-checking TLS client context.

    Trusts ``ca_file`` if given, else the bundle named by ``SSL_CERT_FILE`` if set, else
    the system store. Read once, when called.
    """
    cafile = ca_file if ca_file is not None else os.environ.get("SSL_CERT_FILE") or None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Failure(Exception):
    """Internal: ends a resolution with an error result."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WebDriver:
    """The did:web method driver (:class:`did_methods.resolver.MethodDriver`)."""

    method = "web"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        """``session`` is borrowed, never closed here. ``ssl_context`` or ``ca_file`` (not
        both) replace the default trust (:func:`default_ssl_context`); a context that does
        not check certificates and host names is refused."""
        if ssl_context is not None and ca_file is not None:
            raise ValueError("give ssl_context or ca_file, not both")
        if ssl_context is None:
            ssl_context = default_ssl_context(ca_file)
        if ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname:
            raise ValueError("the did:web TLS context must verify certificates and host names")
        if timeout <= 0 or max_document_bytes <= 0:
            raise ValueError("timeout and max_document_bytes must be positive")
        self._session = session
        self._ssl = ssl_context
        self._timeout = timeout
        self._max_bytes = max_document_bytes

    async def resolve(self, did: ParsedDid, options: Mapping[str, Any]) -> ResolutionResult:
        """Fetch and check the document of ``did``."""
        try:
            url = did_web_url(did)
        except InvalidWebDidError as exc:
            return ResolutionResult.failure(ErrorCode.INVALID_DID, str(exc))
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._fetch(url)
        except _Failure as failure:
            return ResolutionResult.failure(failure.code, failure.message)
        except TimeoutError:
            return ResolutionResult.failure(
                ErrorCode.INTERNAL_ERROR,
                f"fetching {url} timed out after {self._timeout:g} s",
            )
        try:
            document = _parse_document(body, did.did, url, self._max_bytes)
        except _Failure as failure:
            return ResolutionResult.failure(failure.code, failure.message)
        accept = options.get("accept")
        if isinstance(accept, str):
            return ResolutionResult.success(document, content_type=accept)
        return ResolutionResult.success(document)

    async def _fetch(self, url: str) -> bytes:
        """GET ``url`` (following safe redirects) and return the body."""
        target = URL(url, encoded=True)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._session.get(
                    target,
                    ssl=self._ssl,
                    allow_redirects=False,
                    raise_for_status=False,
                    headers={"Accept": ACCEPT_HEADER},
                ) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        target = self._redirect_target(target, response)
                        continue
                    if response.status in (404, 410):
                        raise _Failure(
                            ErrorCode.NOT_FOUND,
                            f"no DID document at {target} (HTTP {response.status})",
                        )
                    if response.status != 200:
                        raise _Failure(
                            ErrorCode.INTERNAL_ERROR,
                            f"{target} answered HTTP {response.status} "
                            f"{response.reason or ''}".rstrip(),
                        )
                    return await self._read_body(response, target)
            except aiohttp.ClientConnectorCertificateError as exc:
                raise _Failure(
                    ErrorCode.INTERNAL_ERROR,
                    f"the TLS certificate of {target.host} is not trusted: {exc.certificate_error}",
                ) from None
            except aiohttp.ClientSSLError as exc:
                raise _Failure(
                    ErrorCode.INTERNAL_ERROR,
                    f"the TLS handshake with {target.host}:{target.port} failed (is it an HTTPS "
                    f"server?): {exc}",
                ) from None
            except aiohttp.ClientConnectorError as exc:
                raise _Failure(
                    ErrorCode.INTERNAL_ERROR,
                    f"could not connect to {target.host}:{target.port}: {exc.os_error}",
                ) from None
            except aiohttp.ClientError as exc:
                raise _Failure(
                    ErrorCode.INTERNAL_ERROR,
                    f"fetching {target} failed: {type(exc).__name__}: {exc}",
                ) from None
        raise _Failure(
            ErrorCode.INTERNAL_ERROR, f"more than {MAX_REDIRECTS} redirects starting from {url}"
        )

    @staticmethod
    def _redirect_target(current: URL, response: aiohttp.ClientResponse) -> URL:
        location = response.headers.get("Location")
        if not location:
            raise _Failure(
                ErrorCode.INTERNAL_ERROR,
                f"{current} answered HTTP {response.status} without a Location header",
            )
        target = current.join(URL(location))
        if target.scheme != "https":
            raise _Failure(
                ErrorCode.INTERNAL_ERROR,
                f"{current} redirects to {target}, which is not HTTPS; not followed",
            )
        try:
            _check_host(target.raw_host or "", "redirect host")
        except InvalidWebDidError as exc:
            raise _Failure(
                ErrorCode.INTERNAL_ERROR, f"{current} redirects to {target}: {exc}"
            ) from None
        return target

    async def _read_body(self, response: aiohttp.ClientResponse, url: URL) -> bytes:
        limit = self._max_bytes
        if response.content_length is not None and response.content_length > limit:
            raise _Failure(
                ErrorCode.INTERNAL_ERROR,
                f"the document at {url} is {response.content_length} bytes; the limit is {limit}",
            )
        body = bytearray()
        async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise _Failure(
                    ErrorCode.INTERNAL_ERROR,
                    f"the document at {url} is larger than the limit of {limit} bytes",
                )
        return bytes(body)


def _parse_document(body: bytes, did: str, url: str, max_bytes: int) -> dict[str, Any]:
    try:
        document = jsonlimits.loads(body, max_bytes=max_bytes)
    except jsonlimits.JsonLimitError as exc:
        raise _Failure(
            ErrorCode.INVALID_DID_DOCUMENT, f"the document at {url} is refused: {exc}"
        ) from None
    except jsonlimits.JsonSyntaxError as exc:
        raise _Failure(
            ErrorCode.INVALID_DID_DOCUMENT, f"the document at {url} is not UTF-8 JSON: {exc}"
        ) from None
    if not isinstance(document, dict):
        raise _Failure(
            ErrorCode.INVALID_DID_DOCUMENT,
            f"the document at {url} is a JSON {type(document).__name__}, not an object",
        )
    if document.get("id") != did:
        raise _Failure(
            ErrorCode.INVALID_DID_DOCUMENT,
            f"the document at {url} has id {document.get('id')!r}, not the DID {did!r}",
        )
    return document


@asynccontextmanager
async def open_web_driver(
    *,
    ssl_context: ssl.SSLContext | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
) -> AsyncIterator[WebDriver]:
    """A :class:`WebDriver` with its own ``aiohttp.ClientSession``, closed on exit.

    The session ignores proxy environment variables and keeps no cookies.
    """
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    ) as session:
        yield WebDriver(
            session,
            ssl_context=ssl_context,
            ca_file=ca_file,
            timeout=timeout,
            max_document_bytes=max_document_bytes,
        )
