"""Trust roots as values: the logs a verifier believes, so that a receipt never vouches for
itself (pure).

A receipt names its log's verifier key, its chain and its anchor contract; anyone can run a
second log and anchor it through a LogAnchor of their own on the same chain, and its
receipts are internally just as sound. What makes a receipt worth anything is that its log
is one the verifier decided to trust beforehand, out of band. A :class:`TrustRoot` is that
decision for one log: its origin, its checkpoint verifier key (C2SP ``name+id+base64``), the
CAIP-2 id of the chain it anchors on (``eip155:N``) and its LogAnchor contract address. A
:class:`TrustSet` is several of them, at most one key per origin. :meth:`TrustSet.check`
raises :class:`~anchor.errors.UntrustedLog` (a :class:`~anchor.errors.VerificationError`
whose ``what`` is ``trust``) naming what differs: ``origin``, ``key``, ``chain`` or
``contract``.

Each root has a fingerprint, SHA-256 of its RFC 8785 canonical JSON form (:meth:`to_json`),
shown as 16 groups of 4 hex digits, for people to compare out of band. The trust file that
holds a :class:`TrustSet` (:meth:`TrustSet.to_json`) is read and written by
:mod:`anchor.verify.trust`.

Pure: values and checks, no I/O. Every check is a few string comparisons; a fingerprint is
one SHA-256 of a few hundred bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import rfc8785
from eth_utils.address import to_checksum_address

from anchor.core.checkpoint import NoteVerifier, check_key_name
from anchor.errors import CheckpointFormatError, Conflict, InvalidInput, NotFound, UntrustedLog

if TYPE_CHECKING:
    from anchor.core.receipt import Receipt

TRUST_FILE_VERSION: Final = 1
"""The trust file format version (:meth:`TrustSet.to_json`, :meth:`TrustSet.from_json`)."""

MAX_TRUST_ROOTS: Final = 1000
"""Most logs one trust set holds."""

MAX_ORIGIN_LENGTH: Final = 256
"""Longest log origin accepted."""

MAX_VERIFIER_KEY_LENGTH: Final = 512
"""Longest verifier key accepted (an Ed25519 one is the key name plus 55 characters)."""

_CAIP2_EIP155 = re.compile(r"eip155:[1-9][0-9]{0,19}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_FINGERPRINT_SEPARATORS = re.compile(r"[\s:]")

ROOT_MEMBERS: Final = frozenset({"origin", "verifierKey", "chain", "contract"})


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """One trusted log. Validated when built (:class:`InvalidInput` naming the bad member);
    ``contract`` is kept checksummed (EIP-55) and compared case-insensitively."""

    origin: str
    verifier_key: str
    chain: str
    contract: str

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise InvalidInput("a trusted log needs an origin")
        if len(self.origin) > MAX_ORIGIN_LENGTH or not self.origin.isprintable():
            raise InvalidInput(
                f"the origin must be at most {MAX_ORIGIN_LENGTH} printable characters"
            )
        if (
            not isinstance(self.verifier_key, str)
            or len(self.verifier_key) > MAX_VERIFIER_KEY_LENGTH
        ):
            raise InvalidInput("the verifier key is not a C2SP verifier key (name+id+base64)")
        try:
            NoteVerifier.from_vkey(self.verifier_key)
        except CheckpointFormatError as err:
            raise InvalidInput(f"the verifier key is malformed: {err.detail}") from None
        if not isinstance(self.chain, str) or not _CAIP2_EIP155.fullmatch(self.chain):
            raise InvalidInput(f"the chain {self.chain!r} is not a CAIP-2 id eip155:<chain id>")
        if not isinstance(self.contract, str) or not _ADDRESS.fullmatch(self.contract):
            raise InvalidInput(f"the contract {self.contract!r} is not a 0x-prefixed address")
        object.__setattr__(self, "contract", to_checksum_address(self.contract))

    @classmethod
    def pinned(cls, verifier_key: str, contract: str, chain: str) -> TrustRoot:
        """A root from a verifier key alone (``--log-key``): its origin is the key's name,
        as for every LER Anchor log."""
        try:
            name = NoteVerifier.from_vkey(verifier_key).name
        except CheckpointFormatError as err:
            raise InvalidInput(f"the log key is malformed: {err.detail}") from None
        return cls(check_key_name(name), verifier_key, chain, contract)

    @classmethod
    def from_json(cls, doc: Any) -> TrustRoot:
        """A root from its JSON form (:meth:`to_json`; other members are refused)."""
        if not isinstance(doc, Mapping):
            raise InvalidInput("a trusted log must be a JSON object")
        missing = sorted(ROOT_MEMBERS - set(doc))
        if missing:
            raise InvalidInput(f"a trusted log lacks {', '.join(missing)}")
        extra = sorted(set(doc) - ROOT_MEMBERS)
        if extra:
            raise InvalidInput(f"a trusted log has unknown member(s) {', '.join(extra)}")
        return cls(doc["origin"], doc["verifierKey"], doc["chain"], doc["contract"])

    def to_json(self) -> dict[str, str]:
        return {
            "origin": self.origin,
            "verifierKey": self.verifier_key,
            "chain": self.chain,
            "contract": self.contract,
        }

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(self.verifier_key)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the RFC 8785 form of :meth:`to_json` (the contract lowercased), as 16
        groups of 4 hex digits."""
        doc = self.to_json() | {"contract": self.contract.lower()}
        digest = hashlib.sha256(rfc8785.dumps(doc)).hexdigest()
        return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))

    def differences(
        self, origin: str, verifier_key: str, chain: str, contract: str
    ) -> tuple[str, ...]:
        """What of ``origin``, ``key``, ``chain``, ``contract`` differs from this root."""
        differs: list[str] = []
        if origin != self.origin:
            differs.append("origin")
        if NoteVerifier.from_vkey(verifier_key) != self.verifier:
            differs.append("key")
        if chain != self.chain:
            differs.append("chain")
        if contract.lower() != self.contract.lower():
            differs.append("contract")
        return tuple(differs)

    def describe(self) -> str:
        """Several lines for a person: every member and the fingerprint."""
        return (
            f"origin       {self.origin}\n"
            f"verifier key {self.verifier_key}\n"
            f"chain        {self.chain}\n"
            f"contract     {self.contract}\n"
            f"fingerprint  {self.fingerprint}"
        )


def normalise_fingerprint(text: str) -> str:
    """A fingerprint as 64 lowercase hex digits (spaces and colons dropped)."""
    return _FINGERPRINT_SEPARATORS.sub("", text).lower()


@dataclass(frozen=True, slots=True)
class TrustSet:
    """Trusted logs, at most :data:`MAX_TRUST_ROOTS` roots. One origin may have several roots
    only with one verifier key: a log that moved its anchoring to another contract (or chain)
    stays one log, and receipts anchored on each of its contracts verify."""

    roots: tuple[TrustRoot, ...] = ()

    def __post_init__(self) -> None:
        if len(self.roots) > MAX_TRUST_ROOTS:
            raise InvalidInput(f"at most {MAX_TRUST_ROOTS} trusted logs")
        keys: dict[str, set[str]] = {}
        for r in self.roots:
            keys.setdefault(r.origin, set()).add(r.verifier_key)
        twice = sorted(o for o, k in keys.items() if len(k) > 1)
        if twice:
            raise InvalidInput(f"log origin(s) trusted with two keys: {', '.join(twice)}")
        if len(set(self.roots)) != len(self.roots):
            raise InvalidInput("a trusted log is listed twice")

    @classmethod
    def of(cls, trust: Trust) -> TrustSet:
        return trust if isinstance(trust, TrustSet) else cls((trust,))

    def __len__(self) -> int:
        return len(self.roots)

    def __iter__(self) -> Iterator[TrustRoot]:
        return iter(self.roots)

    def get(self, origin: str) -> TrustRoot | None:
        """The first root of ``origin`` (see :meth:`roots_of` for all of them)."""
        return next((r for r in self.roots if r.origin == origin), None)

    def roots_of(self, origin: str) -> list[TrustRoot]:
        """Every root of ``origin``: one per contract (and chain) the log anchored on."""
        return [r for r in self.roots if r.origin == origin]

    def check(self, receipt: Receipt) -> TrustRoot:
        """The trusted root of ``receipt``'s log, which must have the receipt's key, chain
        and contract; else :class:`UntrustedLog` naming what differs. Checks no proof
        (:meth:`Receipt.check` does both)."""
        origin = receipt.checkpoint.origin
        fields = (origin, receipt.log_key, receipt.anchor.chain, receipt.anchor.contract)
        candidates = self.roots_of(origin)
        if not candidates:
            key = receipt.checkpoint.verifier
            candidates = [r for r in self.roots if r.verifier == key]
        if not candidates:
            named = [r.origin for r in self.roots[:5]]
            more = len(self.roots) - len(named)
            trusted = ", ".join(named + ([f"{more} more"] if more else [])) or "none"
            raise UntrustedLog(
                f"the receipt's log {origin!r} (key {receipt.log_key}) is not a trusted log "
                f"(trusted: {trusted})",
                differs=("origin", "key"),
                actual=origin,
                hint="run `ler-anchor trust add SERVICE_URL` for a log you mean to trust",
            )
        # the closest root explains the refusal: fewest differing members
        root = min(candidates, key=lambda r: len(r.differences(*fields)))
        differs = root.differences(*fields)
        if differs:
            theirs = dict(zip(("origin", "key", "chain", "contract"), fields, strict=True))
            ours = {
                "origin": root.origin,
                "key": root.verifier_key,
                "chain": root.chain,
                "contract": root.contract,
            }
            raise UntrustedLog(
                f"the receipt's log {origin!r} is trusted with another "
                f"{' and '.join(differs)}: "
                + "; ".join(f"{d} {theirs[d]} is not the trusted {ours[d]}" for d in differs),
                differs=differs,
                expected=" ".join(ours[d] for d in differs),
                actual=" ".join(theirs[d] for d in differs),
            )
        return root

    def added(self, root: TrustRoot, *, replace: bool = False) -> TrustSet:
        """This set with ``root``. A root of a trusted origin with the same key and another
        contract or chain is added beside the others (the log moved its anchoring); one with
        another key is a :class:`Conflict` unless ``replace``, which drops the origin's
        other roots."""
        current = self.roots_of(root.origin)
        if root in current:
            return self
        if current and current[0].verifier_key != root.verifier_key:
            if not replace:
                raise Conflict(
                    f"log {root.origin!r} is already trusted with fingerprint "
                    f"{current[0].fingerprint} and another key; the service now presents "
                    f"{root.fingerprint}",
                    hint="compare the fingerprints out of band, then add it again with --replace",
                )
            others = tuple(r for r in self.roots if r.origin != root.origin)
            return TrustSet((*others, root))
        return TrustSet((*self.roots, root))

    def removed(self, which: str) -> tuple[TrustSet, TrustRoot]:
        """This set without the root whose fingerprint is ``which``, or without every root
        of the origin ``which`` (the first of them is returned)."""
        wanted = normalise_fingerprint(which)
        for root in self.roots:
            if root.origin == which:
                return TrustSet(tuple(r for r in self.roots if r.origin != which)), root
            if normalise_fingerprint(root.fingerprint) == wanted:
                return TrustSet(tuple(r for r in self.roots if r is not root)), root
        raise NotFound(
            f"no trusted log has origin or fingerprint {which!r}",
            hint="see `ler-anchor trust list`",
        )

    def to_json(self) -> dict[str, Any]:
        return {"version": TRUST_FILE_VERSION, "logs": [r.to_json() for r in self.roots]}

    @classmethod
    def from_json(cls, doc: Any) -> TrustSet:
        if not isinstance(doc, Mapping):
            raise InvalidInput("the trust file is not a JSON object")
        if doc.get("version") != TRUST_FILE_VERSION:
            raise InvalidInput(
                f"the trust file has version {doc.get('version')!r}, not {TRUST_FILE_VERSION}"
            )
        extra = sorted(set(doc) - {"version", "logs"})
        if extra:
            raise InvalidInput(f"the trust file has unknown member(s) {', '.join(extra)}")
        logs = doc.get("logs")
        if not isinstance(logs, list):
            raise InvalidInput("the trust file's 'logs' is not a list")
        if len(logs) > MAX_TRUST_ROOTS:
            raise InvalidInput(f"at most {MAX_TRUST_ROOTS} trusted logs")
        return cls(tuple(TrustRoot.from_json(item) for item in logs))


Trust = TrustRoot | TrustSet
"""What the receipt checks take: one trusted log or several."""
