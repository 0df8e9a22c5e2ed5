"""``ler-anchor issue``: issue Open Badges 3.0 credentials to one learner or a CSV of them.

For each learner: an entry is allocated from the issuer's status list of each ``--status``
purpose (revocation by default; idempotent per credential id), the credential is built and
signed with ``eddsa-jcs-2022`` by the issuer's key, its digest is submitted for anchoring, and
the signed credential is written to ``--out``; with ``--wait`` each receipt is fetched once
anchored and written beside it.

CSV columns: ``subject`` (a DID) or ``identifier`` (hashed into an OB 3.0 IdentityObject,
with ``identityType`` defaulting to ``emailAddress``); an optional ``id`` fixes the
credential id (re-running the same CSV then re-issues nothing twice).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from anchor import credentials
from anchor.client import SUBMIT_CHUNK, ServiceClient, Signer
from anchor.commands.client_cmd import issuer_key
from anchor.errors import InvalidInput

MAX_LEARNERS = 100_000
"""Most rows one ``--csv`` run issues."""

ALLOCATE_CHUNK = 10_000
"""Status entries allocated per request."""

STATUS_PURPOSES = ("revocation", "suspension")
"""Status purposes ``--status`` offers (a status list with messages is set up by hand)."""


def register(sub: Any) -> None:
    parser = sub.add_parser("issue", help="issue Open Badges 3.0 credentials and anchor them")
    parser.add_argument("--service", required=True, help="service base URL")
    parser.add_argument("--key", required=True, type=Path, help="issuer key (JWK file)")
    parser.add_argument("--keyid", help="DID URL of the key (default: its did:key method)")
    parser.add_argument("--issuer-name", default="", help="the issuer's display name")
    parser.add_argument("--achievement", required=True, type=Path, help="ACHIEVEMENT.json")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject", help="a learner DID, or email:ADDRESS for a hashed identifier")
    who.add_argument("--csv", type=Path, help="a CSV of learners (see the command's docs)")
    parser.add_argument("--out", type=Path, default=Path("credentials"), help="output directory")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for receipts")
    parser.add_argument(
        "--status",
        action="append",
        choices=STATUS_PURPOSES,
        help="give each credential a status entry of this purpose (repeatable; "
        "default: revocation)",
    )
    parser.set_defaults(handler=_issue)


def _learners(args: argparse.Namespace) -> list[dict[str, str]]:
    if args.subject:
        return [{"subject": args.subject}]
    rows: list[dict[str, str]] = []
    with args.csv.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            if len(rows) >= MAX_LEARNERS:
                raise InvalidInput(f"{args.csv} has more than {MAX_LEARNERS} learners")
            if not (row.get("subject") or row.get("identifier")):
                raise InvalidInput(f"{args.csv} line {n}: needs a subject or an identifier")
            rows.append({k: (v or "").strip() for k, v in row.items() if k})
    if not rows:
        raise InvalidInput(f"{args.csv} has no learners")
    return rows


def _subject(row: dict[str, str]) -> str | dict[str, Any]:
    subject = row.get("subject", "")
    if subject.startswith("email:"):
        return credentials.hashed_identity(subject[len("email:") :], "emailAddress")
    if subject:
        return subject
    return credentials.hashed_identity(row["identifier"], row.get("identityType") or "emailAddress")


def _issue(args: argparse.Namespace) -> int:
    key = issuer_key(args.key)
    signer = Signer.for_key(key, args.keyid)
    seed = key.seed()
    try:
        achievement = credentials.parse_achievement(json.loads(args.achievement.read_text()))
    except ValueError as err:
        raise InvalidInput(f"{args.achievement} is not JSON: {err}") from None
    learners = _learners(args)
    ids = [row.get("id") or f"urn:uuid:{uuid.uuid4()}" for row in learners]
    args.out.mkdir(parents=True, exist_ok=True)

    async def run() -> tuple[list[tuple[str, str]], int]:
        async with ServiceClient(args.service, signer) as client:
            bar = tqdm(
                total=len(learners), unit="credential", file=sys.stderr, disable=len(learners) < 50
            )
            status: list[list[dict[str, Any]]] = [[] for _ in ids]
            for purpose in dict.fromkeys(args.status or ["revocation"]):
                for start in range(0, len(ids), ALLOCATE_CHUNK):
                    chunk = ids[start : start + ALLOCATE_CHUNK]
                    answer = await client.post_signed(
                        "/v1/status-lists/allocate",
                        {"purpose": purpose, "credentialIds": chunk},
                    )
                    for n, entry in enumerate(answer["entries"]):
                        status[start + n].append(entry)
            issued: list[tuple[str, str, dict[str, Any]]] = []
            for row, cid, entries in zip(learners, ids, status, strict=True):
                doc = credentials.open_badge(
                    issuer=signer.did,
                    issuer_name=args.issuer_name,
                    achievement=achievement,
                    subject=_subject(row),
                    status=entries,
                    credential_id=cid,
                )
                signed = credentials.sign(doc, seed, signer.keyid)
                issued.append((cid, credentials.digest(signed).hex(), signed))
            for start in range(0, len(issued), SUBMIT_CHUNK):
                chunk_docs = issued[start : start + SUBMIT_CHUNK]
                await client.submit([d for _, d, _ in chunk_docs])
                for cid, _digest, signed in chunk_docs:
                    (args.out / f"{_file_name(cid)}.json").write_text(
                        json.dumps(signed, indent=2) + "\n"
                    )
                bar.update(len(chunk_docs))
            bar.close()
            pending = 0
            if args.wait > 0:
                deadline = time.monotonic() + args.wait  # one deadline for the whole batch
                for cid, digest, _ in issued:
                    left = max(0.0, deadline - time.monotonic())
                    receipt = await client.receipt(digest, submitter=signer.did, wait=left)
                    if receipt.get("status") == "pending":
                        pending += 1
                        continue
                    path = args.out / f"{_file_name(cid)}.receipt.json"
                    path.write_text(json.dumps(receipt, indent=2) + "\n")
            return [(cid, digest) for cid, digest, _ in issued], pending

    written, pending = asyncio.run(run())
    for cid, digest in written:
        print(f"{args.out / _file_name(cid)}.json  digest {digest}")
    if pending:
        print(
            f"ler-anchor issue: {pending} of {len(written)} receipts not anchored within "
            f"{args.wait:g} s; fetch them later with `ler-anchor receipt`",
            file=sys.stderr,
        )
        return 3
    return 0


def _file_name(credential_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in credential_id)
