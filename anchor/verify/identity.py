"""Glue between the DID resolver (:mod:`did_methods`) and the service: which raw key a DID
URL names for a purpose, with resolution outages kept apart from plain refusals."""

from __future__ import annotations

import functools
from datetime import datetime

from anchor.errors import AnchorError
from did_methods import ErrorCode, KeyType, PublicKeyError, Resolver, public_key_bytes
from did_methods.multikey import MultikeyError, decode_multikey


class ResolutionUnavailable(AnchorError):
    """A DID could not be resolved for a reason that is not the DID's fault (network, RPC)."""

    status = 503
    exit_code = 12
    slug = "did-resolution-unavailable"
    title = "DID resolution unavailable"


_DID_KEY_PURPOSES = frozenset(
    {"authentication", "assertionMethod", "capabilityInvocation", "capabilityDelegation"}
)


@functools.lru_cache(maxsize=4096)
def did_key_ed25519(did_url: str) -> bytes | None:
    """The Ed25519 key of a did:key verification method URL ``did:key:z..#z..`` (the only
    verification method of an Ed25519 did:key, listed under every relationship but
    ``keyAgreement``), or ``None`` if ``did_url`` is not one. Pure and immutable, so cached."""
    did, sep, fragment = did_url.partition("#")
    if not sep or not did.startswith("did:key:") or did[len("did:key:") :] != fragment:
        return None
    try:
        key = decode_multikey(fragment)
    except MultikeyError:
        return None
    return key.raw if key.key_type is KeyType.ED25519 else None


async def ed25519_key_for(
    resolver: Resolver, did_url: str, purpose: str, at: datetime | None = None
) -> bytes | None:
    """The raw Ed25519 key of verification method ``did_url`` if the DID document lists it
    under ``purpose`` (at time ``at``), else ``None``. Raises :class:`ResolutionUnavailable`
    when the DID could not be resolved because of an internal error (retry later).

    Ed25519 did:key URLs are answered without resolving (their document is a pure function
    of the DID); everything else goes through ``resolver``."""
    if purpose in _DID_KEY_PURPOSES:
        direct = did_key_ed25519(did_url)
        if direct is not None:
            return direct
    return await _key_for(resolver, did_url, purpose, at, KeyType.ED25519)


async def p256_key_for(
    resolver: Resolver, did_url: str, purpose: str, at: datetime | None = None
) -> bytes | None:
    """The 33-byte compressed P-256 key of verification method ``did_url`` if the DID document
    lists it under ``purpose`` (at ``at``), else ``None`` (ecdsa-sd-2023 issuers). Raises
    :class:`ResolutionUnavailable` like :func:`ed25519_key_for`."""
    return await _key_for(resolver, did_url, purpose, at, KeyType.P256)


async def _key_for(
    resolver: Resolver, did_url: str, purpose: str, at: datetime | None, wanted: KeyType
) -> bytes | None:
    """The raw key of type ``wanted`` of verification method ``did_url`` if the DID document
    lists it under ``purpose`` (at ``at``), else ``None``; :class:`ResolutionUnavailable` when
    the resolution failed for an internal reason."""
    answer = await resolver.authorize(did_url, purpose, at=at)
    if not answer.authorized or answer.verification_method is None:
        resolution = answer.resolution
        if resolution is not None and resolution.error == ErrorCode.INTERNAL_ERROR:
            raise ResolutionUnavailable(
                f"resolving {did_url} failed: {resolution.error_message}",
                hint="the issuer's DID host or chain did not answer; retry later",
            )
        return None
    try:
        key_type, raw = public_key_bytes(answer.verification_method)
    except PublicKeyError:
        return None
    return raw if key_type is wanted else None
