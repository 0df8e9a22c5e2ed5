"""``ler-anchor disclose``: a learner's selective disclosure of an ``ecdsa-sd-2023`` credential.

Reads the credential the issuer signed (base proof), keeps the issuer's mandatory fields and the
``--reveal`` JSON pointers, and writes the derived credential to ``--out``. Works offline: no
contact with the issuer or the service (JSON-LD contexts are packaged).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from anchor.errors import InvalidInput

MAX_CREDENTIAL_BYTES = 1024 * 1024
"""Largest credential file read."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "disclose",
        help="derive a copy of a selective disclosure credential",
        description="Mandatory fields (issuer, validity, achievement, status) are always kept; "
        "every other field is withheld unless named by --reveal.",
    )
    parser.add_argument("credential", type=Path, metavar="CREDENTIAL", help="the signed credential")
    parser.add_argument(
        "--reveal",
        action="append",
        default=[],
        metavar="POINTER",
        help="a JSON pointer to reveal, e.g. /credentialSubject/name (repeatable)",
    )
    parser.add_argument("--out", required=True, type=Path, help="file to write")
    parser.set_defaults(handler=_disclose)


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror}") from None
    if len(raw) > MAX_CREDENTIAL_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_CREDENTIAL_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{path} is not JSON: {err}") from None


def _disclose(args: argparse.Namespace) -> int:
    from anchor.vc import ecdsa_sd

    credential = _read(args.credential)
    if not isinstance(credential, dict) or ecdsa_sd.proof_kind(credential) != "base":
        raise InvalidInput(
            f"{args.credential} is not a credential with an ecdsa-sd-2023 base proof",
            hint="disclose the credential as the issuer signed it "
            "(issued with `ler-anchor issue --selective-disclosure`)",
        )
    derived = ecdsa_sd.derive_proof(credential, args.reveal)
    args.out.write_text(json.dumps(derived, indent=2) + "\n")
    print(f"{args.out}: revealed {len(args.reveal)} field(s) beyond the mandatory ones")
    return 0
