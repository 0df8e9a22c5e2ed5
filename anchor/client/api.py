"""A small async client of the LER Anchor HTTP API (used by the CLI, the demo and tests).

Writes are signed with RFC 9421 HTTP Message Signatures; problem-details answers become the
matching :class:`~anchor.errors.AnchorError` so the CLI prints one clear line.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from anchor import errors
from anchor.client.signing import signed_headers
from anchor.core import jsonlimits
from anchor.keys import Ed25519Key

SUBMIT_CHUNK = 10_000
"""Digests per submission request (the service's maximum)."""

REQUEST_TIMEOUT_SECONDS = 60.0

_BY_STATUS: dict[int, type[errors.AnchorError]] = {
    400: errors.InvalidInput,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.LimitExceeded,
    422: errors.InvalidInput,
    502: errors.ChainError,
    503: errors.StoreError,
}


class ServiceError(errors.AnchorError):
    """The service answered with an unexpected status."""

    status = 502
    exit_code = 13
    slug = "service-error"
    title = "Service error"


def error_from_problem(status: int, body: Any, url: str) -> errors.AnchorError:
    detail = f"{url} answered {status}"
    hint = None
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("title") or detail)
        hint = body.get("hint") if isinstance(body.get("hint"), str) else None
    return _BY_STATUS.get(status, ServiceError)(detail, hint=hint)


@dataclass(frozen=True)
class Signer:
    """An issuer's key and the DID URL (keyid) that names it."""

    key: Ed25519Key
    keyid: str

    @classmethod
    def for_key(cls, key: Ed25519Key, keyid: str | None = None) -> Signer:
        return cls(key, keyid or key.verification_method)

    @property
    def did(self) -> str:
        return self.keyid.split("#", 1)[0]


class ServiceClient:
    """One ``ClientSession`` for all calls; use as an async context manager."""

    def __init__(self, base_url: str, signer: Signer | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ServiceClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise errors.ConfigError("ServiceClient used outside 'async with'")
        return self._session

    async def _answer(self, resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        try:
            body = (
                jsonlimits.loads(text, max_bytes=jsonlimits.MAX_FILE_BYTES, what=str(resp.url))
                if text
                else None
            )
        except errors.LimitExceeded:
            raise
        except errors.InvalidInput:  # not JSON: an error page, kept as text
            body = text
        if resp.status >= 400:
            raise error_from_problem(resp.status, body, str(resp.url))
        return body

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with self.session.get(self.base_url + path, params=params) as resp:
                return await self._answer(resp)
        except aiohttp.ClientError as err:
            raise ServiceError(
                f"cannot reach {self.base_url}: {err}", hint="is the service running?"
            ) from None

    async def post_signed(self, path: str, body: Any) -> Any:
        if self.signer is None:
            raise errors.ConfigError("this request must be signed: give --key")
        raw = json.dumps(body, separators=(",", ":")).encode()
        url = self.base_url + path
        headers = signed_headers("POST", url, raw, self.signer.key, self.signer.keyid)
        headers["Content-Type"] = "application/json"
        try:
            async with self.session.post(url, data=raw, headers=headers) as resp:
                return await self._answer(resp)
        except aiohttp.ClientError as err:
            raise ServiceError(
                f"cannot reach {self.base_url}: {err}", hint="is the service running?"
            ) from None

    async def submit(
        self,
        digests: Sequence[str],
        *,
        kind: str = "credential",
        progress: Callable[[int], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Submit digests in chunks of :data:`SUBMIT_CHUNK`; returns one record per digest."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(digests), SUBMIT_CHUNK):
            chunk = list(digests[start : start + SUBMIT_CHUNK])
            answer = await self.post_signed("/v1/entries", {"digests": chunk, "kind": kind})
            out.extend(answer["entries"])
            if progress is not None:
                progress(len(chunk))
        return out

    async def receipt(
        self, digest: str, *, submitter: str | None = None, wait: float = 0.0
    ) -> dict[str, Any]:
        """The receipt of ``digest``; with ``wait`` > 0, poll until it is anchored."""
        params = {"submitter": submitter} if submitter else None
        deadline = time.monotonic() + wait
        while True:
            body = await self.get_json(f"/v1/receipts/{digest}", params)
            if not isinstance(body, dict):
                raise ServiceError("receipt answer is not a JSON object")
            if body.get("status") != "pending" or time.monotonic() >= deadline:
                return body
            await asyncio.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
