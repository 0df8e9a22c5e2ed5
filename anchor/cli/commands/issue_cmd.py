"""``ler-anchor issue``: issue Open Badges 3.0 credentials (or CLR 2.0 transcripts) to one
learner or a CSV of them. Client of the HTTP API; cost: one allocation and one submission
request per 10,000 credentials, one signature per credential, and receipt polls.

For each learner: an entry is allocated from the issuer's status list of each ``--status``
purpose (revocation by default; idempotent per credential id), the credential is built and
signed with ``eddsa-jcs-2022`` by the issuer's key, its digest is submitted for anchoring, and
the signed credential is written to ``--out``; with ``--wait`` each receipt is fetched once
anchored and written beside it. The inputs are described in :data:`INPUT_HELP` (what
``issue --help`` prints).

``--selective-disclosure`` signs with ``ecdsa-sd-2023`` instead, by a P-256 key of the issuer
DID (``--sd-key``, ``--sd-keyid``): the CSV columns of
:data:`~anchor.vc.credentials.PERSON_FIELDS` go into the subject, and the learner may withhold
them (``ler-anchor disclose``); the anchored digest is SHA-256 of the base signature.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from anchor.cli.commands.client_cmd import issuer_key
from anchor.client.api import SUBMIT_CHUNK, ServiceClient, Signer
from anchor.core import jsonlimits
from anchor.errors import InvalidInput
from anchor.keys import P256Key, load_p256_key
from anchor.vc import credentials

MAX_LEARNERS = 100_000
"""Most rows one ``--csv`` run issues."""

MAX_ACHIEVEMENT_BYTES = 1024 * 1024
"""Largest ``--achievement`` file read."""

MAX_CREDENTIAL_BYTES = 16 * 1024 * 1024
"""Largest existing credential file a re-run reads."""

MAX_ROW_ID = 200
"""Longest value of the CSV ``id`` column."""

ALLOCATE_CHUNK = 10_000
"""Status entries allocated per request."""

RECEIPT_CONCURRENCY = 16
"""Receipts fetched at once while waiting."""

STATUS_PURPOSES = ("revocation", "suspension")
"""Status purposes ``--status`` offers (a status list with messages is set up by hand)."""

MANIFEST = "issued.csv"
"""The file in ``--out`` that maps each learner to its credential file."""

EXIT_PENDING = 3
"""Exit status when some receipts were not anchored within ``--wait``."""

ID_NAMESPACE = uuid.UUID("1b0e6a52-3f0e-4c8e-9a35-5d6c1a9e7f20")
"""UUID v5 namespace of credential ids derived from the issuer DID and a CSV ``id``."""

INPUT_HELP = """\
The learners: --subject DID (or email:ADDRESS, hashed into the credential), or --csv FILE
with a header row and these columns:
  id            optional; names the output file (OUT/ID.json) and fixes the credential id,
                so re-running the same CSV skips what was issued before (no duplicates)
  subject       a learner DID, or email:ADDRESS
  identifier    instead of subject: an identifier hashed (salted SHA-256) into an OB 3.0
                IdentityObject, so no e-mail address or name is in the credential
  identityType  for identifier: an OB 3.0 identifier type: emailAddress (default),
                sisSourcedId, sourcedId, systemId, userName, accountId, name, ...;
                other types as ext:NAME, e.g. ext:studentId
Example learners.csv:
  id,identifier,identityType
  alice-welding-2026,alice@students.example.edu,emailAddress
  bob-welding-2026,S-20931,sisSourcedId

The achievement (--achievement FILE, JSON; repeat it with --clr):
  {"id": "https://college.example/achievements/welding-1",   (a URI, required)
   "name": "Structural Welding I",                          (required)
   "description": "Shielded metal arc welding of steel.",   (required)
   "criteria": "Passed the AWS D1.1 practical test.",       (required; text)
   "achievementType": "Certificate",                         (optional: Course, Competency,
                                                              Degree, License, ...)
   "alignments": [{"targetName": "Welders, Cutters, Solderers, and Brazers",
                   "targetUrl": "https://www.onetonline.org/link/summary/51-4121.00",
                   "targetFramework": "O*NET-SOC", "targetCode": "51-4121.00"}]}

--clr bundles every --achievement into one 1EdTech CLR 2.0 ClrCredential per learner (a
transcript: courses, competencies, an employment record), each achievement a signed
AchievementCredential inside it; the CLR carries the status entries and is anchored.

Status: one credentialStatus entry (revocation) by default, as OB 3.0 allows at most one.
Asking for both --status revocation --status suspension gives credentialStatus as an array
of two entries: valid VC 2.0, but not valid against 1EdTech's OB 3.0 JSON Schema.

Output: OUT/NAME.json per credential (NAME is the CSV id, else the credential id), with
--wait OUT/NAME.receipt.json beside it, and OUT/issued.csv mapping each learner to its file.
A line "FILE  digest HEX" per credential on stdout, and a summary on stderr. Exit 0, or 3
when some receipts were still pending (fetch them later: ler-anchor receipt --dir OUT).
"""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "issue",
        help="issue Open Badges 3.0 credentials (or CLR 2.0 transcripts) and anchor them",
        description="Issue Open Badges 3.0 credentials, or CLR 2.0 transcripts, sign them with "
        "the issuer's key and submit their digests for anchoring.",
        epilog=INPUT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--service", required=True, help="service base URL")
    parser.add_argument("--key", required=True, type=Path, help="issuer key (JWK file)")
    parser.add_argument("--keyid", help="DID URL of the key (default: its did:key method)")
    parser.add_argument("--issuer-name", default="", help="the issuer's display name")
    parser.add_argument(
        "--achievement",
        required=True,
        type=Path,
        action="append",
        help="ACHIEVEMENT.json (see below); repeat it with --clr",
    )
    parser.add_argument(
        "--clr", action="store_true", help="bundle the achievements into one CLR 2.0 per learner"
    )
    parser.add_argument("--clr-name", default="", help="the CLR's name (default: Transcript)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject", help="a learner DID, or email:ADDRESS for a hashed identifier")
    who.add_argument("--csv", type=Path, help="a CSV of learners (columns below)")
    parser.add_argument("--out", type=Path, default=Path("credentials"), help="output directory")
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for receipts")
    parser.add_argument(
        "--status",
        action="append",
        choices=STATUS_PURPOSES,
        help="give each credential a status entry of this purpose (default: revocation; "
        "both purposes depart from OB 3.0, see below)",
    )
    parser.add_argument(
        "--selective-disclosure",
        action="store_true",
        help="sign with ecdsa-sd-2023 so the learner can withhold personal fields (CSV columns "
        + ", ".join(credentials.PERSON_FIELDS)
        + "); needs --sd-key",
    )
    parser.add_argument(
        "--sd-key", type=Path, help="P-256 issuer key (`ler-anchor keygen --type p256`)"
    )
    parser.add_argument(
        "--sd-keyid",
        help="DID URL of the P-256 key: a key of the issuer DID (the --keyid DID) listed under "
        "assertionMethod",
    )
    parser.set_defaults(handler=_issue)


@dataclass(frozen=True, slots=True)
class Learner:
    """One row: who, and the credential id and file name it is issued under."""

    row: dict[str, str]
    credential_id: str
    name: str


def _learners(args: argparse.Namespace, issuer: str) -> list[Learner]:
    if args.subject:
        rows = [{"subject": args.subject}]
    else:
        rows = []
        try:
            with args.csv.open(newline="", encoding="utf-8") as f:
                for n, row in enumerate(csv.DictReader(f), start=2):
                    if len(rows) >= MAX_LEARNERS:
                        raise InvalidInput(f"{args.csv} has more than {MAX_LEARNERS} learners")
                    if not (row.get("subject") or row.get("identifier")):
                        raise InvalidInput(
                            f"{args.csv} line {n}: needs a subject or an identifier",
                            hint="the header row names the columns: id, subject or identifier",
                        )
                    rows.append({k: (v or "").strip() for k, v in row.items() if k})
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidInput(f"cannot read {args.csv}: {err}") from None
        if not rows:
            raise InvalidInput(f"{args.csv} has no learners")
    learners: list[Learner] = []
    names: set[str] = set()
    for n, row in enumerate(rows, start=2):
        row_id = row.get("id", "")
        if len(row_id) > MAX_ROW_ID:
            raise InvalidInput(f"{args.csv} line {n}: id is longer than {MAX_ROW_ID} characters")
        if row_id:
            cid = f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, issuer + chr(0) + row_id)}"
            name = _file_name(row_id)
        else:
            cid = f"urn:uuid:{uuid.uuid4()}"
            name = _file_name(cid)
        if name in names:
            raise InvalidInput(f"{args.csv} line {n}: id {row_id!r} is used twice")
        names.add(name)
        learners.append(Learner(row, cid, name))
    return learners


def _subject(row: dict[str, str]) -> str | dict[str, Any]:
    subject = row.get("subject", "")
    if subject.startswith("email:"):
        return credentials.hashed_identity(subject[len("email:") :], "emailAddress")
    if subject:
        return subject
    return credentials.hashed_identity(row["identifier"], row.get("identityType") or "emailAddress")


def _achievement(path: Path) -> credentials.Achievement:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read {path}: {err.strerror}") from None
    if len(raw) > MAX_ACHIEVEMENT_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_ACHIEVEMENT_BYTES} bytes")
    doc = jsonlimits.loads(raw, max_bytes=MAX_ACHIEVEMENT_BYTES, what=str(path))
    try:
        return credentials.parse_achievement(doc)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err.detail}", hint="see `ler-anchor issue --help`") from None


def _existing(path: Path, credential_id: str) -> dict[str, Any] | None:
    """The credential already issued at ``path`` under ``credential_id``, if any."""
    if not path.exists():
        return None
    if path.stat().st_size > MAX_CREDENTIAL_BYTES:
        raise InvalidInput(f"{path} exists and is larger than any credential issued here")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InvalidInput(f"{path} exists and cannot be read: {err.strerror}") from None
    try:
        doc = jsonlimits.loads(raw, max_bytes=MAX_CREDENTIAL_BYTES, what=str(path))
    except InvalidInput as err:
        raise InvalidInput(f"{path} exists and is not a credential: {err.detail}") from None
    if not isinstance(doc, dict) or doc.get("id") != credential_id:
        raise InvalidInput(
            f"{path} exists and holds another credential",
            hint="give each CSV row its own id, or write to another --out directory",
        )
    return doc


@dataclass(frozen=True, slots=True)
class Issued:
    """One credential of this run: where it is, its digest, and whether it is new."""

    learner: Learner
    digest: str
    document: dict[str, Any]
    new: bool


def _issue(args: argparse.Namespace) -> int:
    key = issuer_key(args.key)
    signer = Signer.for_key(key, args.keyid)
    seed = key.seed()
    if len(args.achievement) > 1 and not args.clr:
        raise InvalidInput(
            "several --achievement files need --clr", hint="or issue one achievement per run"
        )
    if len(args.achievement) > credentials.MAX_CLR_ACHIEVEMENTS:
        raise InvalidInput(f"at most {credentials.MAX_CLR_ACHIEVEMENTS} achievements per CLR")
    achievements = [_achievement(p) for p in args.achievement]
    learners = _learners(args, signer.did)
    sd_key = _sd_key(args, signer.did)
    if sd_key is not None and args.clr:
        raise InvalidInput("--selective-disclosure issues Open Badges, not CLR transcripts")
    args.out.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    for learner in learners:
        found = _existing(args.out / f"{learner.name}.json", learner.credential_id)
        if found is not None:
            done[learner.credential_id] = found
    fresh = [learner for learner in learners if learner.credential_id not in done]
    purposes = list(dict.fromkeys(args.status or ["revocation"]))

    def build(learner: Learner, entries: list[dict[str, Any]]) -> dict[str, Any]:
        subject = _subject(learner.row)
        if not args.clr:
            return credentials.open_badge(
                issuer=signer.did,
                issuer_name=args.issuer_name,
                achievement=achievements[0],
                subject=subject,
                status=entries,
                credential_id=learner.credential_id,
            )
        parts = [
            credentials.sign(
                credentials.open_badge(
                    issuer=signer.did,
                    issuer_name=args.issuer_name,
                    achievement=a,
                    subject=subject,
                    credential_id="urn:uuid:"
                    + str(uuid.uuid5(ID_NAMESPACE, learner.credential_id + chr(0) + a.id)),
                ),
                seed,
                signer.keyid,
            )
            for a in achievements
        ]
        return credentials.clr(
            issuer=signer.did,
            issuer_name=args.issuer_name,
            subject=subject,
            credentials=parts,
            name=args.clr_name or "Transcript",
            status=entries,
            credential_id=learner.credential_id,
        )

    async def run() -> tuple[list[Issued], int]:
        async with ServiceClient(args.service, signer) as client:
            status: list[list[dict[str, Any]]] = [[] for _ in fresh]
            ids = [learner.credential_id for learner in fresh]
            for purpose in purposes:
                for start in range(0, len(ids), ALLOCATE_CHUNK):
                    chunk = ids[start : start + ALLOCATE_CHUNK]
                    answer = await client.post_signed(
                        "/v1/status-lists/allocate",
                        {"purpose": purpose, "credentialIds": chunk},
                    )
                    for n, entry in enumerate(answer["entries"]):
                        status[start + n].append(entry)
            issued: list[Issued] = []
            for learner in learners:
                old = done.get(learner.credential_id)
                if old is not None:
                    issued.append(Issued(learner, credentials.digest(old).hex(), old, new=False))
            for learner, entries in zip(fresh, status, strict=True):
                doc = build(learner, entries)
                if sd_key is not None:
                    doc = credentials.with_person_fields(doc, learner.row)
                    signed = _sign_sd(doc, sd_key, args.sd_keyid)
                else:
                    signed = credentials.sign(doc, seed, signer.keyid)
                issued.append(Issued(learner, credentials.digest(signed).hex(), signed, True))
            bar = tqdm(
                total=len(issued), unit="credential", file=sys.stderr, disable=len(issued) < 50
            )
            for start in range(0, len(issued), SUBMIT_CHUNK):
                chunk_docs = issued[start : start + SUBMIT_CHUNK]
                # re-submitting what was issued before is harmless: the log keeps one entry
                await client.submit([i.digest for i in chunk_docs])
                for item in chunk_docs:
                    if item.new:
                        path = args.out / f"{item.learner.name}.json"
                        path.write_text(json.dumps(item.document, indent=2) + "\n")
                bar.update(len(chunk_docs))
            bar.close()
            pending = 0
            if args.wait > 0:
                pending = await _wait_for_receipts(client, signer.did, issued, args)
            return issued, pending

    issued, pending = asyncio.run(run())
    _write_manifest(args.out, issued)
    for item in issued:
        print(f"{args.out / item.learner.name}.json  digest {item.digest}")
    new = sum(1 for item in issued if item.new)
    anchored = sum(
        1 for item in issued if (args.out / f"{item.learner.name}.receipt.json").exists()
    )
    kind = "CLR" if args.clr else "credential"
    print(
        f"ler-anchor issue: {new} {kind}s issued, {len(issued) - new} already issued "
        f"(skipped); {anchored} anchored, {len(issued) - anchored} pending; "
        f"{new} credential files and {args.out / MANIFEST} written",
        file=sys.stderr,
    )
    if pending:
        print(
            f"ler-anchor issue: {pending} of {len(issued)} receipts not anchored within "
            f"{args.wait:g} s; fetch them later with `ler-anchor receipt --service "
            f"{args.service} --dir {args.out}`",
            file=sys.stderr,
        )
        return EXIT_PENDING
    return 0


async def _wait_for_receipts(
    client: ServiceClient, submitter: str, issued: list[Issued], args: argparse.Namespace
) -> int:
    """Fetch the receipts not yet in ``--out`` (several at once, one deadline for all),
    showing progress; the number still pending."""
    todo = [i for i in issued if not (args.out / f"{i.learner.name}.receipt.json").exists()]
    deadline = time.monotonic() + args.wait  # one deadline for the whole batch
    gate = asyncio.Semaphore(RECEIPT_CONCURRENCY)
    bar = tqdm(
        total=len(todo),
        unit="receipt",
        desc="waiting for receipts",
        file=sys.stderr,
        disable=not todo,
    )
    pending = 0

    async def one(item: Issued) -> None:
        nonlocal pending
        async with gate:
            left = max(0.0, deadline - time.monotonic())
            receipt = await client.receipt(item.digest, submitter=submitter, wait=left)
        if receipt.get("status") == "pending":
            pending += 1
            return
        path = args.out / f"{item.learner.name}.receipt.json"
        path.write_text(json.dumps(receipt, indent=2) + "\n")
        bar.update(1)

    await asyncio.gather(*(one(item) for item in todo))
    bar.close()
    return pending


def _write_manifest(out: Path, issued: list[Issued]) -> None:
    """``OUT/issued.csv``: one row per learner of this run and its credential file."""
    with (out / MANIFEST).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "learner", "credentialId", "file", "digest"])
        for item in issued:
            row = item.learner.row
            who = row.get("subject") or row.get("identifier", "")
            writer.writerow(
                [
                    row.get("id", ""),
                    who,
                    item.learner.credential_id,
                    f"{item.learner.name}.json",
                    item.digest,
                ]
            )


def _sd_key(args: argparse.Namespace, issuer: str) -> P256Key | None:
    """The P-256 key of ``--selective-disclosure``, checked to be a key of ``issuer``: the
    anchoring entries and status lists are the issuer DID's, so the proof's key must be too."""
    if not args.selective_disclosure:
        if args.sd_key is not None or args.sd_keyid is not None:
            raise InvalidInput("--sd-key and --sd-keyid are only used with --selective-disclosure")
        return None
    if args.sd_key is None:
        raise InvalidInput(
            "--selective-disclosure needs --sd-key P256.jwk",
            hint="make one with `ler-anchor keygen --type p256 --out P256.jwk`",
        )
    key = load_p256_key(args.sd_key)
    keyid = args.sd_keyid or key.verification_method
    if keyid.split("#", 1)[0] != issuer:
        raise InvalidInput(
            f"the P-256 key {keyid} is not a key of the issuer {issuer}",
            hint="list the P-256 key in the issuer's DID document (did:web or did:ethr) under "
            "assertionMethod and name it with --sd-keyid DID#FRAGMENT",
        )
    return key


def _sign_sd(doc: dict[str, Any], key: P256Key, keyid: str | None) -> dict[str, Any]:
    from anchor.vc import ecdsa_sd  # JSON-LD stack: only for selective disclosure

    return ecdsa_sd.create_base_proof(
        doc,
        issuer_key=key.private_key,
        verification_method=keyid or key.verification_method,
        mandatory_pointers=credentials.sd_mandatory_pointers(doc),
        created=str(doc["validFrom"]),
    )


def _file_name(credential_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in credential_id)
