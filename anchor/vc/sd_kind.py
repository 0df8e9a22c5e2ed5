"""Recognising an ``ecdsa-sd-2023`` credential without loading the JSON-LD stack (pure, O(1)).

:mod:`anchor.vc.ecdsa_sd` imports PyLD; code paths that only need to know *whether* a credential
carries a selective disclosure proof (anchoring digests, verification dispatch) ask here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

CRYPTOSUITE: Final = "ecdsa-sd-2023"
BASE_PREFIX: Final = "u2V0A"
"""``u`` + base64url of the base proof header ``0xd9 0x5d 0x00``."""
DERIVED_PREFIX: Final = "u2V0B"
"""``u`` + base64url of the derived proof header ``0xd9 0x5d 0x01``."""


def sd_proof_kind(document: Mapping[str, Any]) -> Literal["base", "derived"] | None:
    """``"base"`` / ``"derived"`` for a document whose (single) proof is ``ecdsa-sd-2023``
    with a base / derived ``proofValue`` header; ``None`` otherwise."""
    proof = document.get("proof")
    if not isinstance(proof, Mapping) or proof.get("cryptosuite") != CRYPTOSUITE:
        return None
    value = proof.get("proofValue")
    if isinstance(value, str) and value.startswith(BASE_PREFIX):
        return "base"
    if isinstance(value, str) and value.startswith(DERIVED_PREFIX):
        return "derived"
    return None
