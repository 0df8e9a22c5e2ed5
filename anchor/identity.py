"""Glue between the DID resolver (:mod:`did_methods`) and the service: which raw key a DID
URL names for a purpose, with resolution outages kept apart from plain refusals."""

from __future__ import annotations

from datetime import datetime

from anchor.errors import AnchorError
from did_methods import KeyType, PublicKeyError, Resolver, public_key_bytes


class ResolutionUnavailable(AnchorError):
    """A DID could not be resolved for a reason that is not the DID's fault (network, RPC)."""

    status = 503
    exit_code = 12
    slug = "did-resolution-unavailable"
    title = "DID resolution unavailable"


async def ed25519_key_for(
    resolver: Resolver, did_url: str, purpose: str, at: datetime | None = None
) -> bytes | None:
    """The raw Ed25519 key of verification method ``did_url`` if the DID document lists it
    under ``purpose`` (at time ``at``), else ``None``. Raises :class:`ResolutionUnavailable`
    when the DID could not be resolved because of an internal error (retry later)."""
    answer = await resolver.authorize(did_url, purpose, at=at)
    if not answer.authorized or answer.verification_method is None:
        resolution = answer.resolution
        if resolution is not None and resolution.error == "internalError":
            raise ResolutionUnavailable(
                f"resolving {did_url} failed: {resolution.error_message}",
                hint="the issuer's DID host or chain did not answer; retry later",
            )
        return None
    try:
        key_type, raw = public_key_bytes(answer.verification_method)
    except PublicKeyError:
        return None
    return raw if key_type is KeyType.ED25519 else None
