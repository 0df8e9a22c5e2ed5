"""The log store on real databases: proofs, idempotency, memory, crashes. Tests taking the
``database`` fixture run on both backends (a SQLite file and a real PostgreSQL server)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor import merkle
from anchor.entry import Entry, EntryKind
from anchor.errors import InvalidInput, NotFound, StoreError
from anchor.store import SCHEMA_VERSION, LogStore, SQLiteStore, connect, open_store

DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
OTHER = "did:web:college.example"


def entry(i: int, submitter: str = DID, kind: EntryKind = EntryKind.CREDENTIAL) -> Entry:
    return Entry(kind, hashlib.sha256(i.to_bytes(8, "big")).digest(), submitter)


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.fixture
def store(database: str) -> Iterator[LogStore]:
    s = open_store(database)
    yield s
    s.close()


def test_python_and_accelerated_append_rows_agree() -> None:
    from anchor import store as store_module

    data = [entry(i).encode() for i in range(300)]
    size, front = 0, b""
    for chunk in (data[:1], data[1:77], data[77:78], data[78:300], []):
        for tile_size in (1, 3, 64):
            got = store_module._append_rows(size, front, list(chunk), tile_size, b"salt")
            want = store_module._append_rows_python(size, front, list(chunk), tile_size, b"salt")
            assert got == want
        size, front = size + len(chunk), got[2]
    assert store_module._append_rows is not store_module._append_rows_python  # C is built


def test_accelerated_append_rows_rejects_bad_input() -> None:
    from anchor import store as store_module

    with pytest.raises(ValueError, match="frontier does not match"):
        store_module._append_rows(3, b"", [bytes(40)], 64, b"s")
    with pytest.raises(ValueError, match="entry length out of range"):
        store_module._append_rows(0, b"", [bytes(35)], 64, b"s")
    with pytest.raises(TypeError, match="entries must be bytes"):
        store_module._append_rows(0, b"", ["text"], 64, b"s")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="tile size must be positive"):
        store_module._append_rows(0, b"", [bytes(40)], 0, b"s")


def test_empty_store(store: LogStore) -> None:
    assert store.size() == 0
    assert store.root() == merkle.EMPTY_ROOT
    assert store.entries(0, 10) == []


def test_append_and_proofs_agree_with_pure_code(store: LogStore) -> None:
    entries = [entry(i) for i in range(137)]
    for start in range(0, 137, 10):  # several batches of uneven size
        store.append(entries[start : start + 10])
    leaves = [merkle.leaf_hash(e.encode()) for e in entries]
    assert store.size() == 137
    for n in range(1, 138):
        root = merkle.root(leaves[:n])
        assert store.root(n) == root
        for m in range(0, n, 7):
            merkle.verify_inclusion(m, n, leaves[m], store.inclusion_proof(m, n), root)
        for m in range(1, n + 1, 5):
            proof = store.consistency_proof(m, n)
            merkle.verify_consistency(m, n, proof, merkle.root(leaves[:m]), root)
    assert store.check_integrity() == 137


def test_append_is_idempotent_per_submitter_and_digest(store: LogStore) -> None:
    first = store.append([entry(1), entry(2)])
    assert first.indexes == (0, 1)
    assert first.new == (True, True)
    again = store.append([entry(2), entry(3), entry(1), entry(3)])
    assert again.indexes == (1, 2, 0, 2)
    assert again.new == (False, True, False, False)
    assert store.size() == 3
    # the same digest from another issuer, or as another kind, is another entry
    other = store.append([entry(1, OTHER), entry(1, kind=EntryKind.STATUS_LIST)])
    assert other.indexes == (3, 4)
    assert [s.index for s in store.find(entry(1).digest)] == [0, 3, 4]
    assert [s.index for s in store.find(entry(1).digest, OTHER)] == [3]
    assert store.find(hashlib.sha256(b"never").digest()) == []


def test_digests_sharing_an_index_key_are_told_apart(store: LogStore) -> None:
    """The digest index keys on 8 bytes; two digests that share them stay distinct."""
    a = b"\x01" * 8 + hashlib.sha256(b"a").digest()[8:]
    b = b"\x01" * 8 + hashlib.sha256(b"b").digest()[8:]
    first = store.append([Entry(EntryKind.CREDENTIAL, a, DID)])
    second = store.append(
        [Entry(EntryKind.CREDENTIAL, b, DID), Entry(EntryKind.CREDENTIAL, a, DID)]
    )
    assert first.indexes == (0,)
    assert second.indexes == (1, 0)
    assert second.new == (True, False)
    assert [e.index for e in store.find(a)] == [0]
    assert [e.index for e in store.find(b)] == [1]
    assert store.check_integrity() == 2


def test_entries_page_round_trips(store: LogStore) -> None:
    entries = [entry(i) for i in range(50)]
    store.append(entries)
    page = store.entries(10, 20)
    assert [p.index for p in page] == list(range(10, 20))
    assert [p.entry for p in page] == entries[10:20]
    assert all(p.leaf_hash == merkle.leaf_hash(p.entry.encode()) for p in page)
    with pytest.raises(InvalidInput, match="bad entry range"):
        store.entries(5, 4)
    with pytest.raises(InvalidInput, match="at most"):
        store.entries(0, 10_001)


def test_out_of_range_requests(store: LogStore) -> None:
    store.append([entry(i) for i in range(5)])
    with pytest.raises(NotFound, match="beyond the log"):
        store.root(6)
    with pytest.raises(NotFound, match="beyond the log"):
        store.inclusion_proof(0, 6)
    with pytest.raises(InvalidInput, match="not below tree size"):
        store.inclusion_proof(5, 5)
    with pytest.raises(InvalidInput, match="0 < size1 <= size2"):
        store.consistency_proof(0, 5)
    with pytest.raises(NotFound):
        store.read_hashes([(3, 0)])  # needs 8 leaves


def test_reopen_sees_same_log_and_continues(database: str) -> None:
    path = database
    s = open_store(path)
    s.append([entry(i) for i in range(21)])
    root21 = s.root()
    s.close()
    s = open_store(path)
    assert s.size() == 21
    assert s.root() == root21
    s.append([entry(i) for i in range(21, 40)])
    leaves = [merkle.leaf_hash(entry(i).encode()) for i in range(40)]
    assert s.root() == merkle.root(leaves)
    assert s.check_integrity() == 40
    s.close()


def test_two_store_objects_on_one_file_stay_consistent(database: str) -> None:
    """A second writer (another process in real life) is noticed before appending."""
    a, b = open_store(database), open_store(database)
    a.append([entry(i) for i in range(10)])
    b.append([entry(i) for i in range(5, 15)])  # 5..9 already there
    a.append([entry(i) for i in range(15, 17)])
    assert a.size() == b.size() == 17
    assert a.check_integrity() == 17
    a.close()
    b.close()


def test_corruption_is_detected(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "log.db")
    s.append([entry(i) for i in range(8)])
    with s.transaction() as conn:
        conn.execute("UPDATE tiles SET hashes = zeroblob(length(hashes)) WHERE tile = 0")
    with pytest.raises(StoreError, match="hashes of leaf block 0 do not match"):
        s.check_integrity()
    s.close()


def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        SQLiteStore(bad)


def test_refuses_another_schema_version(database: str) -> None:
    s = open_store(database)
    s.set_meta("schema_version", "99")
    s.close()
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(database)


def test_wal_and_full_sync(tmp_path: Path) -> None:
    conn = SQLiteStore(tmp_path / "log.db").reader()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.slow
def test_million_entry_log_flat_memory_and_random_proofs(tmp_path: Path) -> None:
    """1,000,000 entries: memory does not grow with the log; random proofs verify."""
    n, batch = 1_000_000, 50_000
    s = SQLiteStore(tmp_path / "big.db")
    rng = random.Random(7)
    peaks = []
    hasher = hashlib.sha256
    for start in range(0, n, batch):
        s.append(
            [
                Entry(EntryKind.CREDENTIAL, hasher(i.to_bytes(8, "big")).digest(), DID)
                for i in range(start, start + batch)
            ]
        )
        peaks.append(rss_bytes())
    # Resident memory stays flat once SQLite's bounded page cache (64 MiB) has filled:
    # the second half of the run adds less than 16 MiB.
    half = len(peaks) // 2
    assert peaks[-1] - peaks[half] < 16 * 2**20, [p // 2**20 for p in peaks]
    assert s.size() == n
    root = s.root()
    for _ in range(200):
        size = rng.randint(1, n)
        index = rng.randrange(size)
        leaf = merkle.leaf_hash(
            Entry(EntryKind.CREDENTIAL, hasher(index.to_bytes(8, "big")).digest(), DID).encode()
        )
        merkle.verify_inclusion(index, size, leaf, s.inclusion_proof(index, size), s.root(size))
        size1 = rng.randint(1, size)
        merkle.verify_consistency(
            size1, size, s.consistency_proof(size1, size), s.root(size1), s.root(size)
        )
    assert s.root(n) == root
    s.close()


CHILD = textwrap.dedent(
    """
    import hashlib, sys
    from anchor.entry import Entry, EntryKind
    from anchor.store import SQLiteStore
    store = SQLiteStore(sys.argv[1])
    batch = int(sys.argv[2])
    i = store.size()
    while True:
        store.append([
            Entry(EntryKind.CREDENTIAL, hashlib.sha256(j.to_bytes(8, "big")).digest(),
                  "did:web:college.example")
            for j in range(i, i + batch)
        ])
        i += batch
        print(i, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_mid_append_leaves_whole_batches(tmp_path: Path) -> None:
    """A real SIGKILL of a process appending batches: on reopen every batch is entirely
    present or entirely absent, every acknowledged batch is there, and the tree checks."""
    path = tmp_path / "crash.db"
    batch = 997  # not a power of two: batches end mid-subtree
    acknowledged = 0
    rng = random.Random(11)
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # at least one batch committed this round
        assert first.strip()
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        printed = [int(x) for x in (first + out).split()]
        acknowledged = max([acknowledged, *printed])
        s = SQLiteStore(path)
        size = s.size()
        assert size % batch == 0, f"partial batch: size {size}"
        assert size >= acknowledged, f"lost acknowledged entries: {size} < {acknowledged}"
        assert s.check_integrity() == size
        leaves = [merkle.leaf_hash(e.entry.encode()) for e in s.entries(0, min(size, 10_000))]
        assert s.root(len(leaves)) == merkle.root(leaves)
        s.close()
    assert acknowledged > 0


def test_taken_index_keys_are_probed_and_found(store: LogStore) -> None:
    """Entries whose index key is taken (simulated by occupying the keys first, as a 64-bit
    collision would) take the next free keys, and every look-up still finds them."""
    from anchor import store as store_module

    first, second, third = entry(1), entry(2), entry(3)
    store.append([first])
    key = store_module._index_key(store._salt, second.digest)
    with store.transaction() as conn:  # other leaves already hold second's key and the next
        conn.execute("INSERT INTO digests (key, idx) VALUES (?, 0), (?, 0)", (key, key + 1))
    result = store.append([second, third])
    assert result.indexes == (1, 2)
    assert result.new == (True, True)
    assert [e.index for e in store.find(second.digest)] == [1]
    assert store.reader().execute("SELECT idx FROM digests WHERE key = ?", (key + 2,)).fetchone()
    assert store.append([second, third]).indexes == (1, 2)  # still idempotent
    assert store.append([second]).new == (False,)


def test_same_digest_from_two_submitters_is_two_entries(store: LogStore) -> None:
    digest = bytes(range(32))
    a = Entry(EntryKind.CREDENTIAL, digest, "did:web:a.example")
    b = Entry(EntryKind.CREDENTIAL, digest, "did:web:b.example")
    c = Entry(EntryKind.STATUS_LIST, digest, "did:web:a.example")
    assert store.append([a, b]).indexes == (0, 1)
    assert store.append([c, b, a]).indexes == (2, 1, 0)
    assert [e.index for e in store.find(digest)] == [0, 1, 2]
    assert [e.index for e in store.find(digest, "did:web:b.example")] == [1]
    assert store.check_integrity() == 3


def test_index_keys_wrap_around_the_key_space(store: LogStore) -> None:
    from anchor import store as store_module

    top, bottom = 2**63 - 1, -(2**63)
    with store.transaction() as conn:
        store_module._insert_probing(conn, "digests", [(top, 10), (top, 11), (top, 12)])
        conn.execute("INSERT INTO digests (key, idx) VALUES (?, 13)", (bottom + 3,))
    rows = store.reader().execute("SELECT key, idx FROM digests ORDER BY key").fetchall()
    assert rows == [(bottom, 11), (bottom + 1, 12), (bottom + 3, 13), (top, 10)]
    # a look-up walks the run across the wrap and stops at the first free key
    assert sorted(store._indexes_by_keys(store.reader(), {top})) == [10, 11, 12]
    assert store._indexes_by_keys(store.reader(), {bottom + 2}) == []


def test_the_digest_index_is_rebuilt_from_the_entries(store: LogStore) -> None:
    entries = [entry(i) for i in range(150)]
    store.append(entries)
    with store.transaction() as conn:  # damage it: a leaf's row is lost
        conn.execute("DELETE FROM digests WHERE idx = 7")
    with pytest.raises(StoreError, match="digest index"):
        store.check_index_rows()
    assert store.rebuild_digest_index() == 150
    assert store.rebuild_digest_index() == 150  # and again (the swapped-in names are reused)
    store.check_index_rows()
    assert [e.index for e in store.find(entries[7].digest)] == [7]
    assert store.append([entries[7], entry(150)]).indexes == (7, 150)
    assert store.check_integrity() == 151


def test_each_database_has_its_own_index_salt(tmp_path: Path) -> None:
    a, b = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    assert a._salt != b._salt
    assert len(a._salt) == 16
    a.close()
    b.close()
    assert SQLiteStore(tmp_path / "a.db")._salt == a._salt  # kept across opens


def test_a_version_2_database_is_migrated_at_open(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    entries = [entry(i) for i in range(150)] + [
        Entry(EntryKind.CREDENTIAL, entry(3).digest, "did:web:other.example")
    ]
    s = SQLiteStore(path)
    s.append(entries)
    root = s.root()
    s.close()
    conn = connect(path)  # rewrite the digest index in the version-2 layout
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DROP TABLE digests")
    conn.execute(
        "CREATE TABLE digests (dkey INTEGER NOT NULL, lkey INTEGER NOT NULL,"
        " idx INTEGER NOT NULL, PRIMARY KEY (dkey, lkey)) WITHOUT ROWID"
    )
    conn.executemany(
        "INSERT INTO digests VALUES (?, ?, ?)",
        [
            (
                int.from_bytes(e.digest[:8], "big", signed=True),
                int.from_bytes(merkle.leaf_hash(e.encode())[:8], "big", signed=True),
                i,
            )
            for i, e in enumerate(entries)
        ],
    )
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.execute("DELETE FROM meta WHERE key = 'index_salt'")
    conn.execute("COMMIT")
    conn.close()

    s = SQLiteStore(path)
    assert s.meta("schema_version") == str(SCHEMA_VERSION)
    assert s.check_integrity() == 151
    assert s.root() == root
    assert [e.index for e in s.find(entries[3].digest)] == [3, 150]
    assert s.append([*entries[:5], entry(999)]).indexes == (0, 1, 2, 3, 4, 151)
    s.close()
