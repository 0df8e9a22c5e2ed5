"""The DID glue of the service: did:key fast path agrees with full resolution."""

from __future__ import annotations

from anchor.keys import Ed25519Key
from anchor.verify.identity import did_key_ed25519, ed25519_key_for
from did_methods import build_resolver


async def test_fast_path_agrees_with_resolution() -> None:
    resolver = build_resolver()
    key = Ed25519Key.generate()
    vm = key.verification_method
    assert did_key_ed25519(vm) == key.public_bytes
    answer = await resolver.authorize(vm, "authentication")
    assert answer.authorized
    for purpose in ("authentication", "assertionMethod"):
        assert await ed25519_key_for(resolver, vm, purpose) == key.public_bytes
    # keyAgreement lists the X25519 key, never the Ed25519 one: full resolution says no
    assert await ed25519_key_for(resolver, vm, "keyAgreement") is None
    other = Ed25519Key.generate()
    assert did_key_ed25519(f"{key.did}#{other.did[8:]}") is None
    assert await ed25519_key_for(resolver, f"{key.did}#{other.did[8:]}", "authentication") is None
    assert did_key_ed25519("did:key:zNotAKey#zNotAKey") is None
    assert did_key_ed25519(key.did) is None
