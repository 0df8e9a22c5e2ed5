"""C2SP tlog-tiles coordinates: which tiles a tree has, their paths, and what they hold (pure).

The log is also published as tiles (c2sp.org/tlog-tiles): a tile at level ``L`` with index
``N`` lists the hashes of the complete subtrees of height ``8·L`` with indexes
``256·N .. 256·N + W - 1`` (level 0: leaf hashes), concatenated, 32 bytes each. A *full* tile
has ``W = 256`` hashes and never changes; a *partial* tile (``W < 256``) is the prefix a tree
of a given size has so far, served at ``tile/<L>/<N>.p/<W>``. Entry bundles
``tile/entries/<N>[.p/<W>]`` hold the entries of the leaves of level-0 tile ``N``, each as a
big-endian ``uint16`` length and the entry bytes, which is exactly how the store keeps them.

``N`` is written in 3-digit path elements, all but the last prefixed with ``x``: index
1234067 is ``x001/x234/067``. Parsing is strict (no other spelling of a tile is accepted),
so every tile has one URL and caches never hold two copies.

Everything here is arithmetic on integers and strings, ``O(1)`` per tile except
:func:`tiles_for_size` (one value per tile of the tree) and :func:`tile_nodes` (one node per
hash). The hashes themselves are read from the store by :mod:`anchor.http.routes.tile_routes` and
``ler-anchor log export --tiles``: the store keeps every complete subtree hash, so tiles are
built on the fly from stored hashes (``scripts/bench.py tiles`` measures it; see the README,
"Tiles").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from anchor.core.merkle import MAX_TREE_SIZE
from anchor.errors import NotFound

TILE_HEIGHT: Final = 8
"""Levels of the tree one tile spans (the spec's fixed height)."""

TILE_WIDTH: Final = 1 << TILE_HEIGHT
"""Hashes (or entries) in a full tile: 256."""

HASH_SIZE: Final = 32

MAX_LEVEL: Final = 63
"""Highest tile level the spec allows in a path (the tree's height bounds the real ones)."""

MAX_PATH_LENGTH: Final = 64
"""Longest tile path accepted after ``tile/`` (the longest valid one is about 40 bytes)."""

_ELEMENT = re.compile(r"[0-9]{3}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")


@dataclass(frozen=True, slots=True)
class Tile:
    """A tile: ``level`` (0 for leaf hashes), ``index`` within the level, ``width`` (number of
    hashes or entries, 1..256; 256 is a full tile) and whether it is an entry bundle (entry
    bundles share level 0's coordinates)."""

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL or (self.entries and self.level != 0):
            raise ValueError(f"bad tile level {self.level}")
        if self.index < 0 or self.index >= MAX_TREE_SIZE:
            raise ValueError(f"bad tile index {self.index}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise ValueError(f"bad tile width {self.width}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def node_level(self) -> int:
        """The height of the subtrees whose hashes the tile lists (``8·level``)."""
        return TILE_HEIGHT * self.level

    @property
    def first(self) -> int:
        """Index (at :attr:`node_level`) of the tile's first hash; for an entry bundle, of its
        first leaf."""
        return self.index * TILE_WIDTH

    def path(self) -> str:
        """The tile's path below the log's prefix, e.g. ``tile/1/x001/067.p/5``."""
        kind = "entries" if self.entries else str(self.level)
        tail = "" if self.full else f".p/{self.width}"
        return f"tile/{kind}/{encode_index(self.index)}{tail}"


def encode_index(n: int) -> str:
    """``n`` in 3-digit path elements, all but the last prefixed with ``x``."""
    if n < 0:
        raise ValueError(f"negative tile index {n}")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def parse_tile_path(path: str) -> Tile:
    """The tile named by ``path`` (what follows ``tile/``: ``<L>/<N>[.p/<W>]`` or
    ``entries/<N>[.p/<W>]``). Any other spelling (leading zeros in ``L`` or ``W``, a first
    element ``x000``, a width of 256 or 0, extra elements) raises
    :class:`~anchor.errors.NotFound`: such a URL names no tile."""
    if len(path) > MAX_PATH_LENGTH:
        raise NotFound("no such tile: the path is too long")
    parts = path.split("/")
    width = TILE_WIDTH
    if len(parts) >= 3 and parts[-2].endswith(".p"):
        if not _WIDTH.fullmatch(parts[-1]) or int(parts[-1]) >= TILE_WIDTH:
            raise NotFound(f"no such tile: bad partial width {parts[-1]!r} (1 to 255)")
        width = int(parts[-1])
        parts = [*parts[:-2], parts[-2][:-2]]
    if len(parts) < 2:
        raise NotFound("no such tile: give tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    kind, elements = parts[0], parts[1:]
    entries = kind == "entries"
    if not entries and not _LEVEL.fullmatch(kind):
        raise NotFound(f"no such tile: bad level {kind!r}")
    index = 0
    for i, element in enumerate(elements):
        last = i == len(elements) - 1
        digits = element if last else element[1:]
        if (not last and not element.startswith("x")) or not _ELEMENT.fullmatch(digits):
            raise NotFound(f"no such tile: bad index element {element!r}")
        index = index * 1000 + int(digits)
    if len(elements) > 1 and elements[0] == "x000":
        raise NotFound("no such tile: the index has a leading x000 element")
    try:
        return Tile(0 if entries else int(kind), index, width, entries)
    except ValueError as err:
        raise NotFound(f"no such tile: {err}") from None


def hashes_at(level: int, size: int) -> int:
    """How many complete subtrees of height ``8·level`` a tree of ``size`` leaves has (the
    number of hashes that level's tiles list)."""
    return size >> (TILE_HEIGHT * level)


def width_in(tile: Tile, size: int) -> int:
    """How many of ``tile``'s hashes (or entries) a tree of ``size`` leaves has: 0 when the
    tile starts beyond it, at most 256."""
    have = hashes_at(tile.level, size) - tile.first
    return max(0, min(TILE_WIDTH, have))


def check_covered(tile: Tile, size: int) -> None:
    """Raise :class:`~anchor.errors.NotFound` unless a tree of ``size`` leaves has all of
    ``tile`` (a partial tile is served for any width the tree has reached)."""
    if width_in(tile, size) < tile.width:
        raise NotFound(
            f"{tile.path()} is not covered by the latest signed checkpoint (tree size {size})",
            hint="fetch /checkpoint and ask for the tiles its tree size implies",
        )


def tile_nodes(tile: Tile) -> list[tuple[int, int]]:
    """The stored subtrees ``(level, index)`` whose hashes make up ``tile``, in order."""
    return [(tile.node_level, tile.first + i) for i in range(tile.width)]


def tiles_for_size(size: int) -> Iterator[Tile]:
    """Every hash tile of a tree of ``size`` leaves, level by level: the full tiles and, where
    a level's last tile is incomplete, that partial tile."""
    level = 0
    while level <= MAX_LEVEL and hashes_at(level, size) > 0:
        count = hashes_at(level, size)
        for index in range(count // TILE_WIDTH):
            yield Tile(level, index)
        if count % TILE_WIDTH:
            yield Tile(level, count // TILE_WIDTH, count % TILE_WIDTH)
        level += 1


def entry_bundles_for_size(size: int) -> Iterator[Tile]:
    """Every entry bundle of a tree of ``size`` leaves (full ones, then the partial one)."""
    for tile in tiles_for_size(size):
        if tile.level != 0:
            return
        yield Tile(0, tile.index, tile.width, entries=True)
