"""The log as C2SP tlog-tiles: coordinates and paths (pure), the served tiles over a real
socket, the static export, and interop with Go's golang.org/x/mod/sumdb/tlog."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers.service import service_config
from helpers.system import missing

from anchor.core import merkle
from anchor.core.checkpoint import NoteSigner, NoteVerifier, open_checkpoint
from anchor.core.entry import Entry, EntryKind
from anchor.core.tiles import (
    Tile,
    encode_index,
    entry_bundles_for_size,
    parse_tile_path,
    tiles_for_size,
    width_in,
)
from anchor.errors import IntegrityFailure, NotFound
from anchor.http.app import create_app
from anchor.http.appkeys import MERKLE_LOG, STORE
from anchor.http.routes.tile_routes import read_tile
from anchor.log.log import Log
from anchor.log.logfiles import export_tiles
from anchor.log.store import SQLiteStore

GO_SOURCE = Path(__file__).parent / "tlog_client" / "main.go"
GO_PATH = "/usr/share/gocode"  # Debian's golang-golang-x-mod-dev installs the source here
INSTALL = "apt-get install golang-go golang-golang-x-mod-dev"


def test_index_paths_follow_the_spec() -> None:
    assert encode_index(1234067) == "x001/x234/067"  # the spec's example
    assert encode_index(0) == "000"
    assert encode_index(999) == "999"
    assert encode_index(1000) == "x001/000"
    assert encode_index(1_000_000) == "x001/x000/000"
    assert Tile(0, 1234067).path() == "tile/0/x001/x234/067"
    assert Tile(1, 5, 17).path() == "tile/1/005.p/17"
    assert Tile(0, 3, 255, entries=True).path() == "tile/entries/003.p/255"


def test_paths_parse_back_to_their_tile() -> None:
    for tile in (
        Tile(0, 0),
        Tile(0, 1234067),
        Tile(2, 999, 1),
        Tile(63, 10**15, 255),
        Tile(0, 1000, 256, entries=True),
    ):
        prefix, rest = tile.path().split("/", 1)
        assert prefix == "tile"
        assert parse_tile_path(rest) == tile


@pytest.mark.parametrize(
    "path",
    [
        "",
        "0",
        "0/",
        "00/000",  # leading zero in the level
        "64/000",  # level beyond the spec's 63
        "-1/000",
        "a/000",
        "0/12",  # elements have 3 digits
        "0/0123",
        "0/001/002",  # all but the last element start with x
        "0/x001",  # the last one does not
        "0/x000/001",  # no leading x000
        "0/001.p/0",  # width 1..255
        "0/001.p/256",
        "0/001.p/07",
        "0/001.p/",
        "0/001.p",
        "0/.p/5",
        "0/001.q/5",
        "entries/000/extra",
        "entries/001.p/300",
        "0/" + "x999/" * 20 + "999",  # too long
        "0/x999/x999/x999/x999/x999/x999/x999/999",  # beyond the largest tree
        "0/001\n",
    ],
)
def test_malformed_paths_name_no_tile(path: str) -> None:
    with pytest.raises(NotFound):
        parse_tile_path(path)


def test_tiles_of_a_tree() -> None:
    # 3000 leaves: 11 full level-0 tiles and one of 184; level 1 has 11 subtrees of 256.
    tiles = list(tiles_for_size(3000))
    assert tiles == [*(Tile(0, i) for i in range(11)), Tile(0, 11, 184), Tile(1, 0, 11)]
    # the spec's example: 70,000 leaves are 273 full level-0 tiles and one of 112, one full
    # level-1 tile and one of 17, and a level-2 tile of 1
    big = list(tiles_for_size(70_000))
    assert big[273:] == [Tile(0, 273, 112), Tile(1, 0), Tile(1, 1, 17), Tile(2, 0, 1)]
    assert big[:273] == [Tile(0, i) for i in range(273)]
    assert list(tiles_for_size(0)) == []
    assert list(tiles_for_size(256)) == [Tile(0, 0), Tile(1, 0, 1)]
    assert list(tiles_for_size(65536))[-2:] == [Tile(1, 0), Tile(2, 0, 1)]
    assert [t.width for t in entry_bundles_for_size(3000)] == [256] * 11 + [184]
    assert width_in(Tile(0, 11, 1), 3000) == 184
    assert width_in(Tile(0, 12, 1), 3000) == 0
    assert width_in(Tile(1, 0, 1), 3000) == 11


def _entries(start: int, end: int) -> list[Entry]:
    return [
        Entry(
            EntryKind.CREDENTIAL,
            hashlib.sha256(i.to_bytes(8, "big")).digest(),
            f"did:web:issuer{i % 7}.example",
        )
        for i in range(start, end)
    ]


OLD_SIZE = 300
SIZE = 3000


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    """The service over a socket with checkpoints signed at 300 and at 3000 leaves. The
    batcher anchors (and signs) at once while nothing is anchored; once its first anchor is
    queued it waits an hour and for a billion entries, so it signs nothing during a test."""
    app = create_app(service_config(tmp_path, anchor_interval=3600, anchor_size=10**9))
    client: TestClient = await aiohttp_client(app)
    log = app[MERKLE_LOG]
    await asyncio.to_thread(log.append, _entries(0, OLD_SIZE))
    await asyncio.to_thread(log.checkpoint)
    await asyncio.to_thread(log.append, _entries(OLD_SIZE, SIZE))
    await asyncio.to_thread(log.checkpoint)
    for _ in range(300):
        if (await (await client.get("/v1/anchors")).json())["anchors"]:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the batcher queued no anchor within 15 s")
    return client


async def test_served_tiles_hold_the_tree(client: TestClient) -> None:
    leaves = [merkle.leaf_hash(e.encode()) for e in _entries(0, SIZE)]
    resp = await client.get("/checkpoint")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert "immutable" not in resp.headers["Cache-Control"]
    vkey = (await (await client.get("/v1/log")).json())["verifierKey"]
    cp = open_checkpoint(await resp.text(), NoteVerifier.from_vkey(vkey))
    assert (cp.size, cp.root) == (SIZE, merkle.root(leaves))

    full = await client.get("/tile/0/001")
    assert full.status == 200
    assert full.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert await full.read() == b"".join(leaves[256:512])
    partial = await client.get("/tile/0/011.p/184")
    assert partial.status == 200
    assert "immutable" not in partial.headers["Cache-Control"]
    assert await partial.read() == b"".join(leaves[2816:])
    shorter = await client.get("/tile/0/011.p/5")  # an older tree's partial tile
    assert await shorter.read() == b"".join(leaves[2816:2821])
    level1 = await (await client.get("/tile/1/000.p/11")).read()
    assert level1 == b"".join(merkle.root(leaves[256 * i : 256 * i + 256]) for i in range(11))

    gzipped = await client.get("/tile/entries/011.p/184", headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["Content-Encoding"] == "gzip"
    bundle = await gzipped.read()  # decompressed by the client
    found = []
    while bundle:
        n = int.from_bytes(bundle[:2], "big")
        found.append(bundle[2 : 2 + n])
        bundle = bundle[2 + n :]
    assert found == [e.encode() for e in _entries(2816, SIZE)]


async def test_only_what_is_signed_is_served(client: TestClient) -> None:
    await asyncio.to_thread(client.app[MERKLE_LOG].append, _entries(SIZE, SIZE + 100))
    assert client.app[STORE].size() == SIZE + 100  # stored, but not yet signed
    for path in (
        "/tile/0/011.p/185",
        "/tile/0/011",
        "/tile/0/012.p/1",
        "/tile/entries/011",
        "/tile/1/000.p/12",
        "/tile/2/000.p/1",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert resp.content_type == "application/problem+json"
    for path in ("/tile/0/x000/011", "/tile/0/11", "/tile/00/011", "/tile/entries/011.p/0"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert resp.content_type == "application/problem+json"
    await asyncio.to_thread(client.app[MERKLE_LOG].checkpoint)
    assert (await client.get("/tile/0/011")).status == 200  # signed now


async def test_nothing_is_served_from_a_failed_log(client: TestClient) -> None:
    client.app[MERKLE_LOG].fail(IntegrityFailure("leaf 5: its stored hash is not its entry's"))
    for path in ("/checkpoint", "/tile/0/000", "/tile/entries/000", "/tile/1/000.p/11"):
        resp = await client.get(path)
        assert resp.status == 503, path
        assert (await resp.json())["type"].endswith("/integrity-failure")


async def test_static_export_writes_the_served_tiles(client: TestClient, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # service_config's
    out = tmp_path / "static"
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "anchor",
        "log",
        "export",
        "--data-dir",
        str(data_dir),
        "--tiles",
        "--out",
        str(out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await run.communicate()
    assert run.returncode == 0, stderr.decode()
    assert (out / "checkpoint").read_text() == await (await client.get("/checkpoint")).text()
    for name in ("tile/0/001", "tile/0/011.p/184", "tile/1/000.p/11", "tile/entries/011.p/184"):
        assert (out / name).read_bytes() == await (await client.get("/" + name)).read(), name
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len([n for n in written if n.startswith("tile/0/")]) == 12
    assert len([n for n in written if n.startswith("tile/entries/")]) == 12
    assert "tiles" in stdout.decode()


def _go_program(tmp_path: Path) -> Path:
    """The Go tile client, built offline against Debian's golang.org/x/mod source."""
    go = shutil.which("go")
    if go is None or not Path(GO_PATH, "src/golang.org/x/mod/sumdb/tlog").is_dir():
        missing("Go with golang.org/x/mod (for the Go tlog interop test)", INSTALL)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GO_PATH, "GOFLAGS": ""}
    if "GOCACHE" not in env and "HOME" not in env and "XDG_CACHE_HOME" not in env:
        env["GOCACHE"] = str(tmp_path / "gocache")
    program = tmp_path / "tlog_client"
    build = subprocess.run(
        [go, "build", "-o", str(program), GO_SOURCE.name],
        cwd=GO_SOURCE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return program


async def test_go_tlog_client_verifies_the_tiles(client: TestClient, tmp_path: Path) -> None:
    program = await asyncio.to_thread(_go_program, tmp_path)
    vkey = (await (await client.get("/v1/log")).json())["verifierKey"]
    run = await asyncio.create_subprocess_exec(
        str(program),
        str(client.make_url("")),
        vkey,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(run.communicate(), timeout=120)
    assert run.returncode == 0, stderr.decode()
    assert stdout.decode().startswith(f"ok: tree {SIZE}, "), stdout.decode()
    assert "1 older trees" in stdout.decode()


def test_export_without_a_signed_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "ler-anchor.db")
    Log(store, NoteSigner("tiles.example/log", hashlib.sha256(b"k").digest()))
    store.close()
    out = tmp_path / "out"
    command = ["log", "export", "--tiles", "--data-dir", str(tmp_path), "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "anchor", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 3
    assert run.stderr.strip().splitlines() == [
        "ler-anchor log: Not found: this database has no signed checkpoint yet"
        " (start the service once)"
    ]
    assert not out.exists()


def test_every_tile_of_the_specs_70000_leaf_tree(tmp_path: Path) -> None:
    """Full tiles at levels 0 and 1 and partial ones at levels 0, 1 and 2, read from a real
    store and written by the static export, against hashes computed here from the leaves."""
    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner("tiles.example/log", hashlib.sha256(b"k").digest()))
    entries = _entries(0, 70_000)
    log.append(entries)
    log.checkpoint()
    leaves = [merkle.leaf_hash(e.encode()) for e in entries]
    level1 = [merkle.root(leaves[i : i + 256]) for i in range(0, 69_888, 256)]  # 273 subtrees
    level2 = [merkle.root(leaves[:65_536])]
    expected = {
        Tile(0, 0): b"".join(leaves[:256]),
        Tile(0, 273, 112): b"".join(leaves[69_888:]),
        Tile(1, 0): b"".join(level1[:256]),
        Tile(1, 1, 17): b"".join(level1[256:]),
        Tile(2, 0, 1): level2[0],
        Tile(0, 273, 112, entries=True): b"".join(
            len(e.encode()).to_bytes(2, "big") + e.encode() for e in entries[69_888:]
        ),
    }
    for tile, data in expected.items():
        assert read_tile(store, tile) == data, tile
    size, files = export_tiles(store, tmp_path / "static")
    store.close()
    assert (size, files) == (70_000, 2 * 274 + 3 + 1)  # tiles and bundles, checkpoint
    for tile, data in expected.items():
        assert (tmp_path / "static" / tile.path()).read_bytes() == data, tile


def test_export_refuses_entries_that_do_not_match_their_hashes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner("tiles.example/log", hashlib.sha256(b"k").digest()))
    log.append(_entries(0, 1000))
    log.checkpoint()
    with store.transaction() as conn:  # an insider edits leaf 70's DID in the database file
        blob = bytearray(conn.execute("SELECT entries FROM tiles WHERE tile = 1").fetchone()[0])
        pos = 0
        for _ in range(70 - 64):
            pos += 2 + int.from_bytes(blob[pos : pos + 2], "big")
        blob[pos + 2 + 40] ^= 0x01
        conn.execute("UPDATE tiles SET entries = ? WHERE tile = 1", (bytes(blob),))
    with pytest.raises(IntegrityFailure, match="leaf 70"):
        export_tiles(store, tmp_path / "static")
    store.close()


def test_store_reads_leaf_ranges_across_rows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "log.db")
    entries = _entries(0, 1000)
    store.append(entries)
    leaves = [merkle.leaf_hash(e.encode()) for e in entries]
    for start, end in ((0, 1), (70, 200), (63, 65), (960, 1000), (0, 1000)):
        hashes, bundle = store.tile_rows(start, end)
        assert hashes == b"".join(leaves[start:end]), (start, end)
        framed = [len(e.encode()).to_bytes(2, "big") + e.encode() for e in entries[start:end]]
        assert bundle == b"".join(framed), (start, end)
    with pytest.raises(NotFound):
        store.tile_rows(990, 1001)
    store.close()


@pytest.mark.parametrize(("leaf", "found"), [(70, "does not hash"), (990, "signed root")])
def test_export_refuses_a_leaf_rewritten_with_its_hash(
    tmp_path: Path, leaf: int, found: str
) -> None:
    """An entry edited together with its stored leaf hash: the leaf checks, but its full tile
    no longer hashes to the level above (leaf 70), or the partial tiles no longer hash to the
    signed root (leaf 990)."""
    store = SQLiteStore(tmp_path / "log.db")
    log = Log(store, NoteSigner("tiles.example/log", hashlib.sha256(b"k").digest()))
    entries = _entries(0, 1000)
    log.append(entries)
    log.checkpoint()
    row, first = leaf // 64, leaf // 64 * 64
    forged = Entry(
        EntryKind.CREDENTIAL, hashlib.sha256(b"forged").digest(), entries[leaf].submitter
    )
    with store.transaction() as conn:
        hashes, blob = conn.execute(
            "SELECT hashes, entries FROM tiles WHERE tile = ?", (row,)
        ).fetchone()
        hashes = bytearray(hashes)
        off = 32 * (merkle.stored_index(0, leaf) - merkle.stored_index(0, first))
        hashes[off : off + 32] = merkle.leaf_hash(forged.encode())
        framed = [
            len(e.encode()).to_bytes(2, "big") + e.encode() for e in entries[first : first + 64]
        ]
        framed[leaf - first] = len(forged.encode()).to_bytes(2, "big") + forged.encode()
        assert b"".join(
            len(e.encode()).to_bytes(2, "big") + e.encode() for e in entries[first : first + 64]
        ) == bytes(blob)
        conn.execute(
            "UPDATE tiles SET hashes = ?, entries = ? WHERE tile = ?",
            (bytes(hashes), b"".join(framed), row),
        )
    with pytest.raises(IntegrityFailure, match=found):
        export_tiles(store, tmp_path / "static")
    store.close()
