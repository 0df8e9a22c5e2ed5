"""The log layer: signed checkpoints over the store, and group commit of concurrent appends
(on both backends: the ``database`` fixture)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor import merkle
from anchor.checkpoint import NoteSigner, open_checkpoint
from anchor.entry import Entry, EntryKind
from anchor.errors import StoreError
from anchor.log import GroupCommitter, Log
from anchor.store import open_store

DID = "did:web:college.example"


def entry(i: int) -> Entry:
    return Entry(EntryKind.CREDENTIAL, hashlib.sha256(i.to_bytes(8, "big")).digest(), DID)


@pytest.fixture
def log(database: str) -> Iterator[Log]:
    store = open_store(database)
    yield Log(store, NoteSigner("ler-anchor.test/log", hashlib.sha256(b"k").digest()))
    store.close()


def test_checkpoints_are_signed_once_per_size(log: Log) -> None:
    empty = log.checkpoint()
    assert empty.size == 0
    assert empty.root == merkle.EMPTY_ROOT
    log.append([entry(i) for i in range(10)])
    first = log.checkpoint()
    assert first.size == 10
    assert log.checkpoint() == first  # same size: the stored note, not a new signature
    assert open_checkpoint(first.note, log.verifier).root == log.store.root(10)
    log.append([entry(i) for i in range(10, 13)])
    second = log.checkpoint()
    assert log.latest_checkpoint() == second
    assert log.checkpoint_at(10) == first
    assert log.checkpoint_covering(9) == first
    assert log.checkpoint_covering(10) == second
    assert log.checkpoint_covering(13) is None
    proof = log.store.consistency_proof(10, 13)
    merkle.verify_consistency(10, 13, proof, first.root, second.root)


def test_refuses_to_sign_after_a_rollback(log: Log, tmp_path: Path) -> None:
    log.append([entry(i) for i in range(5)])
    log.checkpoint()
    with log.store.transaction() as conn:
        conn.execute("UPDATE tiles SET count = 3 WHERE tile = 0")  # a rolled-back database
    log.store._size = -1
    with pytest.raises(StoreError, match="checkpoint for 5 was signed"):
        log.checkpoint()


async def test_group_commit_batches_concurrent_appends(log: Log) -> None:
    committer = GroupCommitter(log)
    runner = asyncio.create_task(committer.run())
    results = await asyncio.gather(
        *(committer.append([entry(i), entry(i + 1000)]) for i in range(200))
    )
    await committer.close()
    await runner
    assert log.store.size() == 400
    assert committer.commits < 200  # requests shared transactions
    seen = sorted(i for r in results for i in r.indexes)
    assert seen == list(range(400))
    # every acknowledged index holds that request's entry
    for i, r in enumerate(results):
        stored = log.store.entries(r.indexes[0], r.indexes[0] + 1)[0]
        assert stored.entry == entry(i)


async def test_close_commits_what_is_queued(log: Log) -> None:
    committer = GroupCommitter(log)
    runner = asyncio.create_task(committer.run())
    pending = [asyncio.create_task(committer.append([entry(i)])) for i in range(50)]
    await asyncio.sleep(0)
    await committer.close()
    await runner
    assert len({(await p).indexes[0] for p in pending}) == 50
    assert log.store.size() == 50
    with pytest.raises(StoreError, match="shutting down"):
        await committer.append([entry(99)])
