"""Allocation planning and batch planning, as pure functions: no HTTP, no database.

:mod:`anchor.status.allocation` decides which positions a request gets;
:func:`anchor.status.model.plan_changes` checks a batch of changes before anything is
applied. The service-level properties (one position per row, concurrent requests) are tested
over HTTP in ``test_status_service.py``; here the draw itself is tested at full scale.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable

import pytest

from anchor.errors import Conflict, InvalidInput, LimitExceeded, NotFound, StoreError
from anchor.status.allocation import (
    AllocationPlan,
    allocation_count,
    hide_credential_id,
    plan_allocation,
    sample_free,
    take_from,
)
from anchor.status.bitstring import MIN_ENTRIES, BitstringBuilder
from anchor.status.model import (
    MAX_ALLOCATION,
    MAX_UPDATES,
    ROLLOVER_FRACTION,
    StatusChange,
    StatusList,
    check_batch_size,
    is_allocated,
    plan_changes,
)

CHI_SQUARE_BUCKETS = 64
CHI_SQUARE_CRITICAL = 113.505
"""Critical value of the chi-square distribution with 63 degrees of freedom at
significance 0.0001 (P[X > 113.505] = 1e-4): a uniform draw fails once in 10,000 runs."""


def bitmap(entries: int, taken: Iterable[int] = ()) -> bytearray:
    out = bytearray((entries + 7) >> 3)
    for index in taken:
        out[index >> 3] |= 0x80 >> (index & 7)
    return out


def marked(allocation: bytes | bytearray, entries: int) -> set[int]:
    return {i for i in range(entries) if is_allocated(bytes(allocation), i)}


def chi_square(indexes: list[int], entries: int) -> float:
    width = entries // CHI_SQUARE_BUCKETS
    observed = Counter(index // width for index in indexes)
    expected = len(indexes) / CHI_SQUARE_BUCKETS
    return sum((observed[b] - expected) ** 2 / expected for b in range(CHI_SQUARE_BUCKETS))


# --- the size of a request ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_members", "count"),
    [
        ({}, 1),
        ({"count": 7}, 7),
        ({"count": 7.0}, 7),
        ({"count": MAX_ALLOCATION}, MAX_ALLOCATION),
        ({"credentialIds": ["a", "b", "a"]}, 3),
    ],
)
def test_allocation_count(request_members: dict[str, object], count: int) -> None:
    assert allocation_count(request_members) == count


@pytest.mark.parametrize(
    ("request_members", "error"),
    [
        ({"count": 0}, InvalidInput),
        ({"count": -1}, InvalidInput),
        ({"count": None}, InvalidInput),
        ({"count": "3"}, InvalidInput),
        ({"count": True}, InvalidInput),
        ({"count": 2.5}, InvalidInput),
        ({"credentialIds": []}, InvalidInput),
        ({"credentialIds": "a"}, InvalidInput),
        ({"credentialIds": ["a"], "count": 1}, InvalidInput),
        ({"count": MAX_ALLOCATION + 1}, LimitExceeded),
        ({"credentialIds": ["x"] * (MAX_ALLOCATION + 1)}, LimitExceeded),
    ],
)
def test_allocation_count_refuses(
    request_members: dict[str, object], error: type[InvalidInput]
) -> None:
    with pytest.raises(InvalidInput) as refused:
        allocation_count(request_members)
    assert type(refused.value) is error
    assert refused.value.status == (413 if error is LimitExceeded else 400)


# --- the plan --------------------------------------------------------------------------------


def test_plan_draws_for_new_ids_and_reuses_known_and_repeated_ones() -> None:
    known = {"k": ("list-a", 5)}
    plan = plan_allocation([None, "a", "b", "a", None, "k", "b"], known)
    assert plan == AllocationPlan(7, (0, 1, 2, 4), {5: ("list-a", 5)}, {3: 1, 6: 2})
    drawn = [("list-b", 10), ("list-b", 11), ("list-b", 12), ("list-c", 0)]
    slots, new = plan.assign(drawn)
    assert slots == [
        ("list-b", 10),
        ("list-b", 11),
        ("list-b", 12),
        ("list-b", 11),  # the first "a"
        ("list-c", 0),
        ("list-a", 5),  # allocated to "k" before
        ("list-b", 12),  # the first "b"
    ]
    assert new == [True, True, True, False, True, False, False]
    with pytest.raises(ValueError, match="3 slots drawn for 4 positions"):
        plan.assign(drawn[:3])


def test_plan_of_known_ids_draws_nothing() -> None:
    plan = plan_allocation(["a", "a"], {"a": ("l", 1)})
    assert plan.draw == ()
    assert plan.assign([]) == ([("l", 1), ("l", 1)], [False, False])


def test_hidden_ids_are_keyed_and_stable() -> None:
    one, two = secrets.token_bytes(32), secrets.token_bytes(32)
    assert hide_credential_id(one, "alice@example.edu") == hide_credential_id(
        one, "alice@example.edu"
    )
    assert hide_credential_id(one, "alice@example.edu") != hide_credential_id(
        two, "alice@example.edu"
    )
    assert "alice" not in hide_credential_id(one, "alice@example.edu")


@pytest.mark.parametrize(
    ("threshold", "allocated", "wanted", "take"),
    [(57, 0, 10, 10), (57, 50, 10, 7), (57, 57, 10, 0), (57, 60, 10, 0), (1, 0, 5, 1)],
)
def test_take_from_stops_at_the_threshold(
    threshold: int, allocated: int, wanted: int, take: int
) -> None:
    assert take_from(threshold, allocated, wanted) == take


# --- the draw --------------------------------------------------------------------------------


def test_sample_free_never_takes_a_taken_position_and_marks_what_it_takes() -> None:
    entries = 1000
    taken = set(range(0, entries, 2)) | {1, 3}
    allocation = bitmap(entries, taken)
    chosen = sample_free(allocation, entries, 100)
    assert len(set(chosen)) == 100
    assert not set(chosen) & taken
    assert marked(allocation, entries) == taken | set(chosen)


def test_sample_free_can_take_every_free_position_and_no_more() -> None:
    entries = 61  # padding bits of the last byte are never drawn
    taken = set(range(0, 50))
    allocation = bitmap(entries, taken)
    assert sorted(sample_free(allocation, entries, 11)) == list(range(50, 61))
    with pytest.raises(StoreError, match="0 free positions, 1 were asked for"):
        sample_free(allocation, entries, 1)


def test_sample_free_with_another_source_is_reproducible() -> None:
    """The source is a parameter (the CSPRNG by default), so the rejection of taken
    positions is checked against a known sequence."""
    sequence = iter([3, 3, 0, 3, 7, 0, 1])
    allocation = bitmap(8, {0})
    assert sample_free(allocation, 8, 3, lambda _n: next(sequence)) == [3, 7, 1]


def test_200k_allocations_over_two_lists_are_unique_and_uniform() -> None:
    """What the service does for 200,000 entries of the default length: fill the first list
    to its threshold, roll over, draw the rest from the second; every position once, spread
    uniformly over each list (chi-square over 64 buckets, p = 1e-4 per list)."""
    entries = MIN_ENTRIES
    threshold = int(entries * ROLLOVER_FRACTION)
    wanted = 200_000
    lists: list[tuple[bytearray, list[int]]] = []
    while wanted:
        allocation, chosen = bitmap(entries), []
        while wanted and (take := take_from(threshold, len(chosen), min(wanted, MAX_ALLOCATION))):
            chosen.extend(sample_free(allocation, entries, take))
            wanted -= take
        lists.append((allocation, chosen))
    assert [len(chosen) for _, chosen in lists] == [threshold, 200_000 - threshold]
    for allocation, chosen in lists:
        assert len(set(chosen)) == len(chosen)
        assert int.from_bytes(allocation, "big").bit_count() == len(chosen)
        assert chi_square(chosen, entries) < CHI_SQUARE_CRITICAL


# --- a batch of changes ----------------------------------------------------------------------


def status_list(purpose: str = "revocation", status_size: int = 1) -> StatusList:
    return StatusList(
        id="0123456789abcdef",
        issuer="did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        purpose=purpose,
        status_size=status_size,
        status_message=(),
        url="https://status.example/v1/status-lists/0123456789abcdef",
        entries=64,
        allocated=3,
        open=True,
        created_ms=0,
        version=1,
    )


def test_plan_changes_records_only_real_changes_and_the_last_value_wins() -> None:
    builder = BitstringBuilder(64, 1, min_entries=0)
    allocation = bytes(bitmap(64, {1, 2, 3}))
    changes = [
        StatusChange(1, 1, "fraud"),
        StatusChange(2, 0),  # already 0
        StatusChange(3, 1),
        StatusChange(3, 1),  # the same again: one record
    ]
    final, records = plan_changes(status_list("suspension"), builder, allocation, changes)
    assert final == {1: 1, 3: 1}
    assert records == [(1, 0, 1, "fraud"), (3, 0, 1, None)]
    builder.set(1, 1)
    final, records = plan_changes(
        status_list("suspension"), builder, allocation, [StatusChange(1, 0), StatusChange(1, 1)]
    )
    assert final == {1: 1}
    assert records == [(1, 1, 0, None), (1, 0, 1, None)]


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        (StatusChange(64, 1), NotFound, "outside the list of 64 entries"),
        (StatusChange(4, 1), NotFound, "was never allocated"),
        (StatusChange(1, 2), Conflict, "does not fit in 1 bit"),
        (StatusChange(2, 0), Conflict, "revocation cannot be undone"),
    ],
)
def test_plan_changes_refuses_the_whole_batch(
    change: StatusChange, error: type[Exception], text: str
) -> None:
    builder = BitstringBuilder(64, 1, min_entries=0)
    builder.set(2, 1)  # revoked
    before = builder.build()
    allocation = bytes(bitmap(64, {1, 2, 3}))
    with pytest.raises(error, match=text):
        plan_changes(status_list(), builder, allocation, [StatusChange(1, 1), change])
    assert builder.build() == before  # planning changes nothing


def test_batch_size_limits() -> None:
    check_batch_size(1)
    check_batch_size(MAX_UPDATES)
    with pytest.raises(InvalidInput, match="no change") as empty:
        check_batch_size(0)
    assert empty.value.status == 400
    with pytest.raises(LimitExceeded) as large:
        check_batch_size(MAX_UPDATES + 1)
    assert large.value.status == 413
