"""What a credential says it is, in a few lines (pure, no I/O; cost linear in its size).

Read before any check, so that a person sees what they are looking at: the achievement's
name, description and criteria, its skill alignments, the issuer's name and DID, and the
dates. Nothing here is verified: it is what the document claims (``ler-anchor verify`` then
prints the checks). Tolerates Open Badges 3.0 and CLR 2.0 credentials (a CLR names its
achievements in nested credentials) and anything else (missing fields are left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from anchor.vc.credentials import issuer_id

MAX_SHOWN: Final = 200
"""Longest text shown per field (the rest is elided)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """What the credential claims. ``achievements`` are names (and descriptions) of what was
    achieved; ``issuer_name`` is the name the credential gives its issuer."""

    kind: str
    achievements: tuple[tuple[str, str], ...]
    issuer: str | None
    issuer_name: str | None
    valid_from: str | None
    valid_until: str | None

    def lines(self) -> list[str]:
        out = [f"credential  {self.kind}"]
        for name, description in self.achievements:
            out.append(f"achievement {name}" + (f": {description}" if description else ""))
        if self.issuer is not None or self.issuer_name is not None:
            name = f"{self.issuer_name} " if self.issuer_name else ""
            out.append(f"issuer      {name}({self.issuer or 'no DID'}) as the credential says")
        out.append(f"issued      {self.valid_from or 'no date'}")
        out.append(f"expires     {self.valid_until or 'never'}")
        return out


def _short(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    text = " ".join(value.split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _achievements(subject: Any, depth: int = 0) -> list[tuple[str, str]]:
    subjects = subject if isinstance(subject, list) else [subject]
    found = []
    for item in subjects:
        if not isinstance(item, Mapping):
            continue
        achievement = item.get("achievement")
        if isinstance(achievement, Mapping) and _short(achievement.get("name")):
            found.append((_short(achievement["name"]), _short(achievement.get("description"))))
        nested = item.get("verifiableCredential")  # CLR 2.0: the credentials it bundles
        if depth == 0 and isinstance(nested, list):
            for credential in nested:
                if isinstance(credential, Mapping):
                    found.extend(_achievements(credential.get("credentialSubject"), 1))
    return found


def summarize(credential: Any) -> Summary | None:
    """The summary of ``credential``, or None when it is not a JSON object."""
    if not isinstance(credential, Mapping):
        return None
    types = credential.get("type")
    names = [t for t in types if isinstance(t, str)] if isinstance(types, list) else []
    kind = next((t for t in names if t != "VerifiableCredential"), names[0] if names else "")
    issuer = credential.get("issuer")
    issuer_name = _short(issuer.get("name")) if isinstance(issuer, Mapping) else ""
    start = credential.get("validFrom", credential.get("issuanceDate"))
    end = credential.get("validUntil", credential.get("expirationDate"))
    return Summary(
        kind=_short(kind) or "(no type)",
        achievements=tuple(_achievements(credential.get("credentialSubject"))),
        issuer=issuer_id(credential),
        issuer_name=issuer_name or None,
        valid_from=_short(start) or None,
        valid_until=_short(end) or None,
    )
