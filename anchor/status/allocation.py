"""Allocation planning: which status list positions a request gets. Pure: no I/O, no SQL.

* :func:`allocation_count`: the size of a request (``count`` or ``credentialIds``), with
  the limits (400 for a malformed request, 413 past :data:`~anchor.status.model.MAX_ALLOCATION`);
* :func:`hide_credential_id` / :func:`hidden_credential_ids`: credential ids are kept only
  as an HMAC under a per-database key;
* :class:`AllocationPlan` (:func:`plan_allocation`): which positions of the request need a
  new entry, which take the entry an earlier allocation gave the same credential id, and
  which repeat an id of the same request;
* :func:`sample_free`: ``count`` distinct free positions of a list drawn uniformly at
  random with the operating system's CSPRNG (:mod:`secrets`), never one allocated before;
* :func:`take_from`: how many of them one list gives before it is closed (it is closed at
  :data:`~anchor.status.model.ROLLOVER_FRACTION` of its entries, so it never fills and its
  free positions keep the herd large).

Cost: :func:`sample_free` makes about ``count / free_fraction`` draws and one pass over the
bitmap (at most 2 MiB); the rest is linear in the request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from anchor.errors import InvalidInput, LimitExceeded, StoreError
from anchor.status.model import MAX_ALLOCATION, MAX_CREDENTIAL_ID_CHARS

Slot = tuple[str, int]
"""A position of a list: ``(list_id, index)``."""

HIDDEN_ID_PREFIX: Final = "hmac-sha256:"
"""Credential ids are kept only as ``HIDDEN_ID_PREFIX`` + HMAC-SHA256 under a per-database
key: issuers may use meaningful ids (an e-mail address, a student number), and the service
keeps no personal data. Idempotent allocation only needs equality."""


def hide_credential_id(key: bytes, credential_id: str) -> str:
    """The stored form of ``credential_id``."""
    mac = hmac.new(key, credential_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return HIDDEN_ID_PREFIX + mac


def allocation_count(request: Mapping[str, object]) -> int:
    """The number of entries an allocation request (its JSON members) asks for: ``count``
    (1 when absent) or the number of ``credentialIds``, not both. Malformed:
    :class:`InvalidInput` (400); more than :data:`MAX_ALLOCATION`: :class:`LimitExceeded`
    (413)."""
    ids = request.get("credentialIds")
    if ids is not None:
        if "count" in request:
            raise InvalidInput(
                "give either count or credentialIds",
                hint="with credentialIds, the count is their number",
            )
        if not isinstance(ids, list) or not ids:
            raise InvalidInput(f"credentialIds must be an array of 1..{MAX_ALLOCATION} strings")
        count: object = len(ids)
    else:
        count = request.get("count", 1)
    if isinstance(count, float) and count.is_integer():  # JSON's 2.0 is 2
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidInput(f"count must be an integer of 1..{MAX_ALLOCATION}")
    if count > MAX_ALLOCATION:
        raise LimitExceeded(
            f"{count} entries in one allocation; at most {MAX_ALLOCATION}",
            hint="allocate in several requests",
        )
    return count


def hidden_credential_ids(
    credential_ids: Sequence[object] | None, count: int, key: bytes
) -> list[str | None]:
    """The ids checked (one per entry), in their stored (hidden) form; ``count`` Nones
    without ids."""
    if credential_ids is None:
        return [None] * count
    out: list[str | None] = []
    for i, cid in enumerate(credential_ids):
        if not isinstance(cid, str) or not 0 < len(cid) <= MAX_CREDENTIAL_ID_CHARS:
            raise InvalidInput(
                f"credentialIds[{i}] must be a string of 1..{MAX_CREDENTIAL_ID_CHARS} characters"
            )
        out.append(hide_credential_id(key, cid))
    return out


@dataclass(frozen=True, slots=True)
class AllocationPlan:
    """How a request of ``len(ids)`` entries is served: the positions in ``draw`` get a
    newly drawn entry (in request order), those in ``known`` the entry an earlier request
    gave their credential id, those in ``repeats`` the entry of the first position with the
    same id."""

    size: int
    draw: tuple[int, ...]
    known: Mapping[int, Slot]
    repeats: Mapping[int, int]

    def assign(self, drawn: Sequence[Slot]) -> tuple[list[Slot], list[bool]]:
        """Every position's slot (``drawn`` holds one per :attr:`draw`, in order) and
        whether it was drawn now."""
        if len(drawn) != len(self.draw):
            raise ValueError(f"{len(drawn)} slots drawn for {len(self.draw)} positions")
        slots: dict[int, Slot] = dict(self.known)
        slots.update(zip(self.draw, drawn, strict=True))
        for position, first in self.repeats.items():
            slots[position] = slots[first]
        new = [False] * self.size
        for position in self.draw:
            new[position] = True
        return [slots[p] for p in range(self.size)], new


def plan_allocation(ids: Sequence[str | None], known: Mapping[str, Slot]) -> AllocationPlan:
    """The plan for entries with (hidden) credential ids ``ids`` (``None``: no id), given
    the slots ``known`` already held by some of the ids."""
    draw: list[int] = []
    found: dict[int, Slot] = {}
    repeats: dict[int, int] = {}
    first_of: dict[str, int] = {}
    for position, cid in enumerate(ids):
        if cid is None:
            draw.append(position)
        elif cid in known:
            found[position] = known[cid]
        elif cid in first_of:  # a repeated id takes the entry of its first occurrence
            repeats[position] = first_of[cid]
        else:
            first_of[cid] = position
            draw.append(position)
    return AllocationPlan(len(ids), tuple(draw), found, repeats)


def take_from(threshold: int, allocated: int, wanted: int) -> int:
    """How many of ``wanted`` positions a list with ``allocated`` of its ``threshold``
    gives (0 when it is at its threshold)."""
    return max(0, min(threshold - allocated, wanted))


def sample_free(
    allocation: bytearray,
    entries: int,
    count: int,
    randbelow: Callable[[int], int] = secrets.randbelow,
) -> list[int]:
    """``count`` distinct free positions of a list of ``entries`` drawn uniformly at random
    (``randbelow``: the CSPRNG; another source only in tests); marks them in the bitmap
    ``allocation``. :class:`StoreError` when the list has fewer free positions (its counter
    and bitmap disagree)."""
    free = entries - int.from_bytes(allocation, "big").bit_count()
    if count > free:
        raise StoreError(
            f"a status list has {free} free positions, {count} were asked for",
            hint="the list's allocation counter and bitmap disagree; check the database",
        )
    chosen: list[int] = []
    while len(chosen) < count:
        index = randbelow(entries)
        byte = index >> 3
        bit = 0x80 >> (index & 7)
        if not allocation[byte] & bit:
            allocation[byte] |= bit
            chosen.append(index)
    return chosen
