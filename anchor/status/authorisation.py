"""Authorisation of an issuer's status key by its DID document. I/O: resolves DIDs (over
HTTP or the chain, through the :class:`did_methods.Resolver`); cost: one resolution, plus
one per candidate verification method.

Before signing a list version, :func:`authorized_signer` resolves the issuer's DID and finds
the verification method under ``assertionMethod`` that holds the status key; without one,
publishing is refused with :class:`StatusKeyNotAuthorized` (409), which says what to add.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from anchor.errors import Conflict
from anchor.keys import DID_KEY_PREFIX
from anchor.status.custody import PROOF_PURPOSE, StatusKeyCustody, StatusKeyInfo, StatusSigner
from anchor.verify.identity import ResolutionUnavailable, ed25519_key_for
from did_methods import ErrorCode, Resolver, absolute_did_url


class StatusKeyNotAuthorized(Conflict):
    """The issuer's DID document does not list the status key under ``assertionMethod``
    (or a did:key issuer has not uploaded its key): the list cannot be published. The
    problem document carries what to add (``didDocumentAddition``) or upload."""

    slug = "status-key-not-authorized"
    title = "Status list key not authorised"


async def find_assertion_method(resolver: Resolver, did: str, public_key: bytes) -> str | None:
    """The id of a verification method that ``did``'s document lists under
    ``assertionMethod`` with the Ed25519 key ``public_key``, or ``None``.

    Works for any fragment: the issuer's own choice for did:web, ``#delegate-N`` for a
    did:ethr attribute, the key itself for did:key. Raises
    :class:`~anchor.verify.identity.ResolutionUnavailable` when the DID cannot be resolved now.
    """
    result = await resolver.resolve(did)
    if result.error == ErrorCode.INTERNAL_ERROR:
        raise ResolutionUnavailable(
            f"resolving {did} failed: {result.error_message}",
            hint="the issuer's DID host or chain did not answer; retry later",
        )
    document = result.did_document
    if not result.ok or document is None:
        return None
    base = document.get("id") if isinstance(document.get("id"), str) else did
    listed = document.get(PROOF_PURPOSE)
    candidates: list[str] = []
    for item in listed if isinstance(listed, list) else [listed]:
        ref = item.get("id") if isinstance(item, Mapping) else item
        if isinstance(ref, str):
            candidates.append(absolute_did_url(ref, str(base)))
    for vm in candidates:
        if await ed25519_key_for(resolver, vm, PROOF_PURPOSE) == public_key:
            return vm
    return None


async def authorized_signer(keys: StatusKeyCustody, resolver: Resolver, did: str) -> StatusSigner:
    """The issuer's status key with the verification method that authorises it, or
    :class:`StatusKeyNotAuthorized` saying what the issuer must do."""
    key = await asyncio.to_thread(keys.signing_key, did, generate=True)
    if key is None:
        raise StatusKeyNotAuthorized(
            f"{did} has not uploaded its did:key key, which must sign its status lists",
            hint="upload your did:key private JWK once with a signed POST /v1/status-keys "
            "(ler-anchor status key --service URL --key KEY.jwk)",
        )
    vm = await find_assertion_method(resolver, did, key.public_bytes)
    if vm is None:
        info = StatusKeyInfo(did, key.public_bytes, uploaded=did.startswith(DID_KEY_PREFIX))
        raise StatusKeyNotAuthorized(
            f"the status list key {info.public_key_multibase} of {did} is not listed under "
            f"{PROOF_PURPOSE} in its DID document",
            hint=info.instructions() + "; then retry",
            **{k: v for k, v in info.to_json().items() if k != "did"},
        )
    return StatusSigner(did, vm, key)
