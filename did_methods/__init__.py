"""DID resolution (did:key, did:web, did:ethr) with the W3C DID Resolution result shape.

This package never imports ``anchor``: it is usable on its own by any verifier.

Modules: :mod:`~did_methods.syntax` (DID / DID URL parsing), :mod:`~did_methods.result`
(the result and its error codes), :mod:`~did_methods.resolver` (registry, cache,
authorisation), :mod:`~did_methods.document` (verification methods and relationships),
:mod:`~did_methods.multikey` and :mod:`~did_methods.keys` (key encodings),
:mod:`~did_methods.key`, :mod:`~did_methods.web` and :mod:`~did_methods.ethr` (method drivers),
:mod:`~did_methods.http_binding` (HTTP status codes and content negotiation) and
:mod:`~did_methods.defaults` (ready-made resolvers).
"""

from did_methods import ethstack  # noqa: F401  (first: restores the recursion limit)
from did_methods.defaults import build_resolver, open_resolver
from did_methods.document import (
    VERIFICATION_RELATIONSHIPS,
    Authorization,
    absolute_did_url,
    check_authorization,
    dereference_verification_method,
    expand_relative_urls,
)
from did_methods.ethr import (
    AsyncWeb3ChainReader,
    ChainReader,
    EthrDriver,
    EthrIdentifier,
    EthrNetwork,
    InvalidEthrDidError,
    ThreadedWeb3ChainReader,
    parse_ethr_did,
)
from did_methods.key import (
    DidKeyError,
    KeyDriver,
    did_key_document,
    did_key_from_public_key,
    resolve_did_key,
)
from did_methods.keys import (
    InvalidPublicKeyError,
    PublicKeyError,
    UnsupportedPublicKeyError,
    ed25519_to_x25519,
    public_key_bytes,
    public_key_from_jwk,
    public_key_to_jwk,
    validate_public_key,
)
from did_methods.multikey import KeyType, decode_multikey, encode_multikey
from did_methods.resolver import (
    CacheStats,
    MethodDriver,
    Options,
    Resolver,
    format_version_time,
)
from did_methods.result import (
    DEFAULT_CONTENT_TYPE,
    MEDIA_TYPE_DID,
    MEDIA_TYPE_DID_JSON,
    MEDIA_TYPE_DID_LD_JSON,
    ErrorCode,
    ResolutionResult,
)
from did_methods.syntax import (
    DidSyntaxError,
    ParsedDid,
    is_did,
    is_did_url,
    parse_did,
    parse_did_url,
)
from did_methods.web import InvalidWebDidError, WebDriver, did_web_url, open_web_driver

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MEDIA_TYPE_DID",
    "MEDIA_TYPE_DID_JSON",
    "MEDIA_TYPE_DID_LD_JSON",
    "VERIFICATION_RELATIONSHIPS",
    "AsyncWeb3ChainReader",
    "Authorization",
    "CacheStats",
    "ChainReader",
    "DidKeyError",
    "DidSyntaxError",
    "ErrorCode",
    "EthrDriver",
    "EthrIdentifier",
    "EthrNetwork",
    "InvalidEthrDidError",
    "InvalidPublicKeyError",
    "InvalidWebDidError",
    "KeyDriver",
    "KeyType",
    "MethodDriver",
    "Options",
    "ParsedDid",
    "PublicKeyError",
    "ResolutionResult",
    "Resolver",
    "ThreadedWeb3ChainReader",
    "UnsupportedPublicKeyError",
    "WebDriver",
    "absolute_did_url",
    "build_resolver",
    "check_authorization",
    "decode_multikey",
    "dereference_verification_method",
    "did_key_document",
    "did_key_from_public_key",
    "did_web_url",
    "ed25519_to_x25519",
    "encode_multikey",
    "expand_relative_urls",
    "format_version_time",
    "is_did",
    "is_did_url",
    "open_resolver",
    "open_web_driver",
    "parse_did",
    "parse_did_url",
    "parse_ethr_did",
    "public_key_bytes",
    "public_key_from_jwk",
    "public_key_to_jwk",
    "resolve_did_key",
    "validate_public_key",
]
