"""The public log as data: the JSON shape of entries, an export to plain files, and readers
that give auditors the same view from the running service or from an export.

An export directory holds::

    log.json                  {"origin", "verifierKey", "treeSize", "entryPages": [...]}
    checkpoints.json          every signed checkpoint note, oldest first
    entries/<start>.json      pages of up to PAGE_SIZE entries, the shape of GET /v1/entries
    status-versions.json      every published status list version: list id, version,
                              digest, log index and the signed credential (canonical JSON)

With ``--tiles`` (:func:`export_tiles`) it holds the log as C2SP tlog-tiles instead, files any
web host or CDN serves as they are: ``checkpoint`` (the latest signed note), ``tile/<L>/<N>``
and ``tile/entries/<N>`` (with ``.p/<W>`` for the partial ones), exactly what the service
serves at those paths (:mod:`anchor.http.routes.tile_routes`).

Readers never trust what they read: each entry's canonical bytes are decoded and its leaf
hash recomputed by the auditor (:mod:`anchor.verify.audit`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from anchor.core import jsonlimits, merkle
from anchor.core.checkpoint import NoteVerifier
from anchor.core.entry import Entry, decode
from anchor.core.tiles import HASH_SIZE, TILE_HEIGHT, Tile, tile_nodes, tiles_for_size
from anchor.errors import EncodingError, IntegrityFailure, InvalidInput, NotFound
from anchor.log.log import open_stored
from anchor.log.store import LogStore, StoredEntry

PAGE_SIZE = 10_000
"""Entries per exported page and per HTTP page read by auditors."""

EXPORT_FORMAT = 1
"""Version of the export layout."""

_T = TypeVar("_T")


def iso_ms(ms: int) -> str:
    """``ms`` milliseconds since the epoch as ISO 8601 UTC, e.g. ``2026-01-31T12:00:00.250Z``
    (the API's times: ``appendedAt``, ``signedAt``)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def entry_json(stored: StoredEntry) -> dict[str, Any]:
    return {
        "index": stored.index,
        "kind": stored.entry.kind.label,
        "digest": stored.entry.digest.hex(),
        "submitter": stored.entry.submitter,
        "entry": base64.b64encode(stored.entry.encode()).decode("ascii"),
        "leafHash": base64.b64encode(stored.leaf_hash).decode("ascii"),
        "appendedAt": iso_ms(stored.created_ms),
    }


def parse_entry_json(doc: Any, expected_index: int) -> tuple[int, Entry, bytes]:
    """Index, decoded entry and the entry's canonical bytes from one JSON entry; the claimed
    fields must agree with the canonical bytes."""
    if not isinstance(doc, dict):
        raise EncodingError(f"entry {expected_index} is not a JSON object")
    index = doc.get("index")
    if index != expected_index:
        raise EncodingError(f"expected entry {expected_index}, found index {index!r}")
    try:
        raw = base64.b64decode(str(doc.get("entry", "")), validate=True)
    except ValueError:
        raise EncodingError(f"entry {index}: 'entry' is not base64") from None
    entry = decode(raw)
    if doc.get("digest") != entry.digest.hex() or doc.get("submitter") != entry.submitter:
        raise EncodingError(f"entry {index}: digest or submitter differ from the entry bytes")
    if doc.get("kind") != entry.kind.label:
        raise EncodingError(f"entry {index}: kind differs from the entry bytes")
    return int(index), entry, raw


def export_log(store: LogStore, out: Path) -> dict[str, Any]:
    """Write the whole log (entries and signed checkpoints) under ``out``. Needs no key: the
    log's verifier key is recorded in the database by :class:`~anchor.log.log.Log`."""
    vkey = store.meta("log_verifier_key")
    if vkey is None:
        raise NotFound("this database has no log identity yet", hint="start the service once")
    size = store.size()
    (out / "entries").mkdir(parents=True, exist_ok=True)
    pages = []
    for start in range(0, size, PAGE_SIZE):
        end = min(size, start + PAGE_SIZE)
        name = f"entries/{start:012d}.json"
        body = {
            "start": start,
            "end": end,
            "entries": [entry_json(e) for e in store.entries(start, end)],
        }
        _write(out / name, body)
        pages.append(name)
    notes = [
        str(row[0]) for row in store.reader().execute("SELECT note FROM checkpoints ORDER BY size")
    ]
    _write(out / "checkpoints.json", {"checkpoints": notes})
    _write(out / "status-versions.json", {"versions": _status_versions(store)})
    meta = {
        "format": EXPORT_FORMAT,
        "origin": vkey.split("+", 1)[0],
        "verifierKey": vkey,
        "treeSize": size,
        "entryPages": pages,
    }
    _write(out / "log.json", meta)
    return meta


def export_tiles(store: LogStore, out: Path) -> tuple[int, int]:
    """Write the log as C2SP tlog-tiles under ``out``, up to its latest signed checkpoint
    (never beyond it); returns the tree size and the number of files written.

    Nothing is written that the signed root does not commit to. Levels are written top down:
    first the root is recomputed from the rightmost (partial) tile of every level and
    compared with the signed root; then every full tile must hash to its hash in the level
    above (already checked), and every leaf hash is recomputed from its entry. Any mismatch
    is an :class:`~anchor.errors.IntegrityFailure`, raised before the tile is written. Cost:
    one read of every leaf and of every stored hash at heights ``8·L``, about two SHA-256
    per leaf, one file per tile, and memory for one level of hashes above level 0 (128 KiB
    per million leaves)."""
    vkey = store.meta("log_verifier_key")
    row = None
    if vkey is not None:
        row = (
            store.reader()
            .execute("SELECT size, note, created FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetchone()
        )
    if vkey is None or row is None:
        raise NotFound("this database has no signed checkpoint yet", hint="start the service once")
    signed = open_stored((int(row[0]), str(row[1]), int(row[2])), NoteVerifier.from_vkey(vkey))
    size = signed.size
    levels: dict[int, list[Tile]] = {}
    for tile in tiles_for_size(size):
        levels.setdefault(tile.level, []).append(tile)
    partial = {t.level: _tile_bytes(store, t) for ts in levels.values() for t in ts if not t.full}
    _check_root(size, signed.root, levels, partial)
    written = 0
    above = b""  # the hashes of the level above, checked
    for level in sorted(levels, reverse=True):
        hashes_here = bytearray()
        for tile in levels[level]:
            entries = b""
            if level == 0:
                hashes, entries = store.tile_rows(tile.first, tile.first + tile.width)
            else:
                hashes = _tile_bytes(store, tile) if tile.full else partial[level]
            if tile.full:
                chunks = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
                parent = above[HASH_SIZE * tile.index : HASH_SIZE * (tile.index + 1)]
                if merkle.root(chunks) != parent:
                    raise IntegrityFailure(
                        f"{tile.path()} does not hash to its hash in the level above",
                        hint="run 'ler-anchor log check'",
                    )
            elif hashes != partial[level]:
                raise IntegrityFailure(f"{tile.path()} changed while it was exported")
            if level == 0:
                bundle = Tile(0, tile.index, tile.width, entries=True)
                _check_leaves(tile, hashes, entries)
                _write_bytes(out / bundle.path(), entries)
                written += 1
            else:
                hashes_here += hashes
            _write_bytes(out / tile.path(), hashes)
            written += 1
        above = bytes(hashes_here)
    _write_bytes(out / "checkpoint", signed.note.encode())
    return size, written + 1


def _tile_bytes(store: LogStore, tile: Tile) -> bytes:
    if tile.level == 0:
        return store.tile_rows(tile.first, tile.first + tile.width)[0]
    return b"".join(store.read_hashes(tile_nodes(tile)))


def _check_root(
    size: int, root: bytes, levels: dict[int, list[Tile]], partial: dict[int, bytes]
) -> None:
    """The root of the tree of ``size`` leaves, from the complete subtrees that make it up,
    each hashed from the rightmost (partial) tile of its level, must be ``root``."""
    if size == 0:
        return
    frontier = []
    for height, index in merkle.subtrees(0, size):
        level, k = divmod(height, TILE_HEIGHT)
        tile = levels[level][-1]
        first = (index << k) - tile.first
        data = partial[level]
        chunks = [data[HASH_SIZE * i : HASH_SIZE * (i + 1)] for i in range(first, first + (1 << k))]
        frontier.append(merkle.root(chunks))
    if merkle.fold(frontier) != root:
        raise IntegrityFailure(
            f"the tiles of the tree of {size} leaves do not hash to the signed root",
            hint="run 'ler-anchor log check'",
        )


def _check_leaves(tile: Tile, hashes: bytes, entries: bytes) -> None:
    pos = 0
    for i in range(tile.width):
        n = int.from_bytes(entries[pos : pos + 2], "big")
        if merkle.leaf_hash(entries[pos + 2 : pos + 2 + n]) != hashes[32 * i : 32 * i + 32]:
            raise IntegrityFailure(
                f"leaf {tile.first + i}: its stored hash is not its entry's",
                hint="run 'ler-anchor log check'",
            )
        pos += 2 + n


def _write_bytes(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)


def _status_versions(store: LogStore) -> list[dict[str, Any]]:
    if not store.has_table("status_versions"):
        return []
    conn = store.reader()
    return [
        {
            "listId": row[0],
            "version": int(row[1]),
            "digest": bytes(row[2]).hex(),
            "logIndex": row[3],
            "credential": row[4],
        }
        for row in conn.execute(
            "SELECT list_id, version, digest, log_index, credential FROM status_versions"
            " ORDER BY list_id, version"
        )
    ]


def _write(path: Path, body: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(body, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


class LogSource(Protocol):
    """Where an auditor reads the public log from."""

    location: str

    async def tree_size(self) -> int: ...

    async def verifier_key(self) -> str: ...

    async def checkpoints(self) -> list[str]: ...

    async def status_versions(self) -> list[dict[str, Any]] | None:
        """Published status list versions, or ``None`` when the source cannot list them."""
        ...

    def entries(self, start: int, end: int) -> AsyncIterator[list[Any]]: ...


class DirectorySource:
    """A log exported with :func:`export_log` (or ``ler-anchor log export``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        meta_path = root / "log.json"
        if not meta_path.is_file():
            raise NotFound(
                f"{meta_path} does not exist", hint="export with `ler-anchor log export`"
            )
        self.meta = _read_json(meta_path)
        if self.meta.get("format") != EXPORT_FORMAT:
            raise InvalidInput(
                f"{meta_path}: unsupported export format {self.meta.get('format')!r}"
            )

    async def tree_size(self) -> int:
        return _member(self.meta, "treeSize", int, "log.json")

    async def verifier_key(self) -> str:
        return _member(self.meta, "verifierKey", str, "log.json")

    async def status_versions(self) -> list[dict[str, Any]] | None:
        path = self.root / "status-versions.json"
        if not path.is_file():
            return None
        versions = _read_json(path).get("versions")
        if not isinstance(versions, list):
            raise EncodingError("status-versions.json must hold a list of versions")
        return versions

    async def checkpoints(self) -> list[str]:
        doc = _read_json(self.root / "checkpoints.json")
        notes = doc.get("checkpoints")
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise EncodingError("checkpoints.json must hold a list of notes")
        return notes

    async def entries(self, start: int, end: int) -> AsyncIterator[list[Any]]:
        for name in self.meta.get("entryPages", []):
            page = _read_json(self.root / str(name))
            if page.get("end", 0) <= start or page.get("start", 0) >= end:
                continue
            items = page.get("entries")
            if not isinstance(items, list):
                raise EncodingError(f"{name}: 'entries' is not a list")
            yield [e for e in items if isinstance(e, dict) and start <= e.get("index", -1) < end]


class HttpSource:
    """The running service's public API (one shared ``ClientSession``)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base = base_url.rstrip("/")
        self.location = self.base
        self.session = session

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        async with self.session.get(self.base + path, params=params) as resp:
            if resp.status != 200:
                raise NotFound(f"{self.base}{path} answered {resp.status}")
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                raise NotFound(
                    f"{self.base}{path} did not answer JSON", hint="is --log the service's URL?"
                ) from None
        if not isinstance(body, dict):
            raise NotFound(f"{self.base}{path} did not answer a JSON object")
        return body

    async def tree_size(self) -> int:
        body = await self._get("/v1/entries", {"start": "0", "end": "0"})
        return _member(body, "treeSize", int, f"{self.base}/v1/entries")

    async def verifier_key(self) -> str:
        body = await self._get("/v1/log")
        return _member(body, "verifierKey", str, f"{self.base}/v1/log")

    async def status_versions(self) -> list[dict[str, Any]] | None:
        """Every published version, page by page (``None`` from a service too old to list
        them: a 404)."""
        versions: list[dict[str, Any]] = []
        path: str | None = "/v1/status-versions"
        while path is not None:
            async with self.session.get(self.base + path) as resp:
                if resp.status == 404 and not versions:
                    return None
                if resp.status != 200:
                    raise NotFound(f"{self.base}{path} answered {resp.status}")
                body = await resp.json(content_type=None)
            page = body.get("versions") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise EncodingError(f"{self.base}{path}: 'versions' is not a list")
            versions += page
            following = body.get("next")
            if following is not None and not (
                isinstance(following, str) and following.startswith("/v1/status-versions?")
            ):
                raise EncodingError(f"{self.base}{path}: 'next' is not a versions page")
            path = following
        return versions

    async def checkpoints(self) -> list[str]:
        """Every checkpoint note, following the service's pages (``next``)."""
        notes: list[str] = []
        path: str | None = "/v1/checkpoints"
        while path is not None:
            body = await self._get(path)
            page = body.get("checkpoints") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise EncodingError(f"{self.base}{path}: 'checkpoints' is not a list")
            notes += [str(n) for n in page]
            following = body.get("next")
            if following is not None and not (
                isinstance(following, str) and following.startswith("/v1/checkpoints?")
            ):
                raise EncodingError(f"{self.base}{path}: 'next' is not a checkpoints page")
            if following is not None and not page:
                raise EncodingError(f"{self.base}{path}: an empty page with a 'next'")
            path = following
        return notes

    async def entries(self, start: int, end: int) -> AsyncIterator[list[Any]]:
        for page_start in range(start, end, PAGE_SIZE):
            page_end = min(end, page_start + PAGE_SIZE)
            body = await self._get("/v1/entries", {"start": str(page_start), "end": str(page_end)})
            yield _member(body, "entries", list, f"{self.base}/v1/entries")


def _member(body: dict[str, Any], key: str, kind: type[_T], where: str) -> _T:
    """``body[key]``, which must be a ``kind`` (a bool is not an int)."""
    value = body.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EncodingError(f"{where}: {key!r} must be of type {kind.__name__}")
    return value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = jsonlimits.loads(
            path.read_bytes(), max_bytes=jsonlimits.MAX_FILE_BYTES, what=str(path)
        )
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    if not isinstance(value, dict):
        raise EncodingError(f"{path} is not a JSON object")
    return value
