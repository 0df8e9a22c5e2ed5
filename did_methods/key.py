"""did:key (W3C CCG did:key Method v0.7/0.9): the DID is the public key, no I/O.

``did:key:<mb>`` or ``did:key:<version>:<mb>``, where ``<mb>`` is a Multikey value
(:mod:`did_methods.multikey`). Checks, each with its own error code and message:

* not did:key -> ``invalidDid``; a version other than ``1`` -> ``invalidDid``;
* ``<mb>`` not starting with ``z`` -> ``invalidDid``; not base58btc -> ``invalidDid``;
* a malformed multicodec varint -> ``invalidDid``;
* a multicodec that is no public key type -> ``invalidPublicKeyType``; a public key type
  not supported here (RSA, BLS12-381, ...) -> ``unsupportedPublicKeyType``;
* the wrong key length for the type -> ``invalidPublicKeyLength``;
* bytes that are no valid key (not a point on the curve) -> ``invalidPublicKey``.

The document (default ``publicKeyFormat`` ``Multikey``)::

    @context             https://www.w3.org/ns/did/v1, https://w3id.org/security/multikey/v1
    verificationMethod   [{id: <did>#<mb>, type: Multikey, controller: <did>,
                           publicKeyMultibase: <mb>}, <key agreement method>?]
    authentication, assertionMethod, capabilityInvocation, capabilityDelegation: [<did>#<mb>]
    keyAgreement         [<id of the key agreement method>]

Key agreement: an Ed25519 key gets a second method, the X25519 key derived from it
(:func:`did_methods.keys.ed25519_to_x25519`), id ``<did>#<its Multikey>``; an elliptic curve
key (secp256k1, P-256, P-384, P-521) serves ECDH itself, so ``keyAgreement`` lists the same
method, as the specification's test vectors do. An X25519 did:key cannot sign: its single
method is listed under ``keyAgreement`` only.

Options: ``version`` (only ``"1"``), ``publicKeyFormat`` (``Multikey``,
``JsonWebKey2020``, ``Ed25519VerificationKey2020`` for Ed25519 keys; another known type ->
``invalidPublicKeyType``, an unknown one -> ``unsupportedPublicKeyType``),
``enableEncryptionKeyDerivation`` (default ``true``) and
``enableExperimentalPublicKeyTypes`` (accepted; no experimental types are implemented).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from did_methods.keys import InvalidPublicKeyError, ed25519_to_x25519, public_key_to_jwk
from did_methods.keys import validate_public_key as _validate_public_key
from did_methods.multikey import (
    Base58Error,
    KeyLengthError,
    KeyType,
    MultibasePrefixError,
    UnknownCodecError,
    UnsupportedKeyCodecError,
    VarintError,
    decode_multikey,
    encode_multikey,
)
from did_methods.result import ErrorCode, ResolutionResult
from did_methods.syntax import DidSyntaxError, ParsedDid, parse_did

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
JWS_2020_CONTEXT = "https://w3id.org/security/suites/jws-2020/v1"
ED25519_2020_CONTEXT = "https://w3id.org/security/suites/ed25519-2020/v1"
X25519_2020_CONTEXT = "https://w3id.org/security/suites/x25519-2020/v1"

SUPPORTED_VERSION = "1"
"""The only did:key version defined."""
PUBLIC_KEY_FORMATS = ("Multikey", "JsonWebKey2020", "Ed25519VerificationKey2020")
"""``publicKeyFormat`` values implemented (``Multikey`` is the default)."""
_KNOWN_UNUSABLE_FORMATS = frozenset({"X25519KeyAgreementKey2020"})
"""Formats named by the specification that cannot express a signature key."""
_SIGNING_RELATIONSHIPS = (
    "authentication",
    "assertionMethod",
    "capabilityInvocation",
    "capabilityDelegation",
)
_CONTEXTS = {
    "Multikey": MULTIKEY_CONTEXT,
    "JsonWebKey2020": JWS_2020_CONTEXT,
    "Ed25519VerificationKey2020": ED25519_2020_CONTEXT,
    "X25519KeyAgreementKey2020": X25519_2020_CONTEXT,
}


class DidKeyError(ValueError):
    """A did:key that cannot be expanded; ``code`` is its resolution error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def did_key_from_public_key(key_type: KeyType, raw: bytes) -> str:
    """The did:key of a raw public key (validated first; ``InvalidPublicKeyError``)."""
    _validate_public_key(key_type, raw)
    return "did:key:" + encode_multikey(key_type, raw)


def _flag(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value: object = options.get(name, default)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise DidKeyError(
        ErrorCode.INVALID_OPTIONS, f"option {name!r} must be a boolean, not {value!r}"
    )


def _method(did: str, fmt: str, key_type: KeyType, raw: bytes, multibase: str) -> dict[str, Any]:
    method: dict[str, Any] = {"id": f"{did}#{multibase}", "type": fmt, "controller": did}
    if fmt == "JsonWebKey2020":
        method["publicKeyJwk"] = public_key_to_jwk(key_type, raw)
    else:
        method["publicKeyMultibase"] = multibase
    return method


def _split(did_or_parsed: str | ParsedDid) -> tuple[str, str, str]:
    """The DID, version and multibase value of a did:key (``DidKeyError`` when not one)."""
    if isinstance(did_or_parsed, ParsedDid):
        parsed = did_or_parsed
    else:
        try:
            parsed = parse_did(did_or_parsed)
        except DidSyntaxError as exc:
            raise DidKeyError(ErrorCode.INVALID_DID, str(exc)) from None
    did = parsed.did
    if parsed.method != "key":
        raise DidKeyError(
            ErrorCode.INVALID_DID, f"{did!r} is not a did:key (method {parsed.method})"
        )
    parts = parsed.method_specific_id.split(":")
    if len(parts) == 1:
        return did, SUPPORTED_VERSION, parts[0]
    if len(parts) == 2:
        version, multibase = parts
        if not version.isdigit() or int(version) < 1:
            raise DidKeyError(
                ErrorCode.INVALID_DID, f"did:key version {version!r} is not a positive integer"
            )
        return did, version, multibase
    raise DidKeyError(
        ErrorCode.INVALID_DID,
        f"{did!r} is not a did:key: expected did:key:<multibase> or did:key:<version>:<multibase>",
    )


def did_key_document(
    did_or_parsed: str | ParsedDid, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The DID document of a did:key. Raises :class:`DidKeyError` (with its code)."""
    options = options or {}
    did, version, multibase = _split(did_or_parsed)
    wanted = options.get("version", SUPPORTED_VERSION)
    if not isinstance(wanted, str | int) or isinstance(wanted, bool):
        raise DidKeyError(
            ErrorCode.INVALID_OPTIONS, f"option 'version' must be a string, not {wanted!r}"
        )
    if str(wanted) != SUPPORTED_VERSION:
        raise DidKeyError(
            ErrorCode.INVALID_OPTIONS,
            f"did:key version {wanted!r} requested; only version {SUPPORTED_VERSION} is defined",
        )
    if version != SUPPORTED_VERSION:
        raise DidKeyError(
            ErrorCode.INVALID_DID,
            f"did:key version {version} is not supported; "
            f"only version {SUPPORTED_VERSION} is defined",
        )
    fmt = options.get("publicKeyFormat", "Multikey")
    if not isinstance(fmt, str):
        raise DidKeyError(
            ErrorCode.INVALID_OPTIONS, f"option 'publicKeyFormat' must be a string, not {fmt!r}"
        )
    derive = _flag(options, "enableEncryptionKeyDerivation", True)
    _flag(options, "enableExperimentalPublicKeyTypes", False)
    try:
        key = decode_multikey(multibase)
    except MultibasePrefixError as exc:
        raise DidKeyError(ErrorCode.INVALID_DID, f"{did!r}: {exc}") from None
    except Base58Error as exc:
        raise DidKeyError(ErrorCode.INVALID_DID, f"{did!r} is not base58btc: {exc}") from None
    except VarintError as exc:
        raise DidKeyError(ErrorCode.INVALID_DID, f"{did!r}: {exc}") from None
    except UnknownCodecError as exc:
        raise DidKeyError(ErrorCode.INVALID_PUBLIC_KEY_TYPE, f"{did!r}: {exc}") from None
    except UnsupportedKeyCodecError as exc:
        raise DidKeyError(ErrorCode.UNSUPPORTED_PUBLIC_KEY_TYPE, f"{did!r}: {exc}") from None
    except KeyLengthError as exc:
        raise DidKeyError(ErrorCode.INVALID_PUBLIC_KEY_LENGTH, f"{did!r}: {exc}") from None
    if fmt not in PUBLIC_KEY_FORMATS:
        if fmt in _KNOWN_UNUSABLE_FORMATS:
            raise DidKeyError(
                ErrorCode.INVALID_PUBLIC_KEY_TYPE,
                f"publicKeyFormat {fmt} cannot express a signature verification method; use "
                + ", ".join(PUBLIC_KEY_FORMATS),
            )
        raise DidKeyError(
            ErrorCode.UNSUPPORTED_PUBLIC_KEY_TYPE,
            f"publicKeyFormat {fmt!r} is not supported; use one of "
            + ", ".join(PUBLIC_KEY_FORMATS),
        )
    if fmt == "Ed25519VerificationKey2020" and key.key_type is not KeyType.ED25519:
        raise DidKeyError(
            ErrorCode.INVALID_PUBLIC_KEY_TYPE,
            f"publicKeyFormat Ed25519VerificationKey2020 cannot hold a {key.key_type.value} key",
        )
    agreement_key: bytes | None = None
    try:
        if key.key_type is KeyType.ED25519:
            # Validates the point too; derived even when not published, so that a key is
            # accepted or refused the same way whatever the options.
            agreement_key = ed25519_to_x25519(key.raw)
        else:
            _validate_public_key(key.key_type, key.raw)
    except InvalidPublicKeyError as exc:
        raise DidKeyError(ErrorCode.INVALID_PUBLIC_KEY, f"{did!r}: {exc}") from None

    if key.key_type is KeyType.X25519:
        agreement_format = (
            "X25519KeyAgreementKey2020" if fmt == "Ed25519VerificationKey2020" else fmt
        )
        only = _method(did, agreement_format, key.key_type, key.raw, multibase)
        return {
            "@context": [DID_CONTEXT, _CONTEXTS[agreement_format]],
            "id": did,
            "verificationMethod": [only],
            "keyAgreement": [only["id"]],
        }
    signing = _method(did, fmt, key.key_type, key.raw, multibase)
    methods = [signing]
    contexts = [DID_CONTEXT, _CONTEXTS[fmt]]
    document: dict[str, Any] = {"@context": contexts, "id": did, "verificationMethod": methods}
    for relationship in _SIGNING_RELATIONSHIPS:
        document[relationship] = [signing["id"]]
    if agreement_key is not None:
        if derive:
            agreement_format = (
                "X25519KeyAgreementKey2020" if fmt == "Ed25519VerificationKey2020" else fmt
            )
            agreement = _method(
                did,
                agreement_format,
                KeyType.X25519,
                agreement_key,
                encode_multikey(KeyType.X25519, agreement_key),
            )
            methods.append(agreement)
            if _CONTEXTS[agreement_format] not in contexts:
                contexts.append(_CONTEXTS[agreement_format])
            document["keyAgreement"] = [agreement["id"]]
    else:
        document["keyAgreement"] = [signing["id"]]
    return document


def resolve_did_key(
    did: str | ParsedDid, options: Mapping[str, Any] | None = None
) -> ResolutionResult:
    """Resolve a did:key without a resolver (pure); errors as data."""
    try:
        document = did_key_document(did, options)
    except DidKeyError as exc:
        return ResolutionResult.failure(exc.code, str(exc))
    accept = (options or {}).get("accept")
    if isinstance(accept, str):
        return ResolutionResult.success(document, content_type=accept)
    return ResolutionResult.success(document)


class KeyDriver:
    """The did:key method driver (:class:`did_methods.resolver.MethodDriver`)."""

    method = "key"

    async def resolve(self, did: ParsedDid, options: Mapping[str, Any]) -> ResolutionResult:
        """Expand ``did`` into its DID document."""
        return resolve_did_key(did, options)
