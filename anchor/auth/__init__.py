"""Issuer authentication: who may write, and proof that a write comes from them.

Walk it in this order (each module says whether it is pure and what it costs):

* :mod:`anchor.auth.signatures` — RFC 9421 HTTP Message Signatures and RFC 9530
  ``Content-Digest``: the structured fields parsed, the signature base built, the Ed25519
  signature verified. Pure.
* :mod:`anchor.auth.policy` — which signatures are accepted: covered components, times,
  key ids, nonce syntax, the body's digest. Pure.
* :mod:`anchor.auth.nonces` — nonces already used (table ``auth_nonces``), so a replay is
  refused. I/O (the database).
* :mod:`anchor.auth.issuers` — the issuer registry the operator keeps (table ``issuers``).
  I/O (the database).
* :mod:`anchor.auth.middleware` — the aiohttp side: the ``Authenticator`` that runs the
  checks in order against the registry, the DID resolver and the nonces, and
  ``require_signature`` for handlers.

Both tables are created once when the service opens its database (each module's
``ensure_schema``), never on a request. This package module itself imports nothing.
"""
