"""JSON parsing with limits on size, nesting depth and value count, checked before parsing.

Python's C JSON parser recurses once per nested array or object. With a raised interpreter
recursion limit (the Ethereum libraries raise it to 100,000: see :mod:`did_methods.ethstack`)
a document of 100,000 nested arrays overflows the C stack and kills the process; with the
default limit it raises :class:`RecursionError`. :func:`loads` therefore scans the text
first, iteratively (no recursion), and refuses a document that is too large, nested too
deeply or holds too many values, before :func:`json.loads` sees it. ``NaN`` and
``Infinity`` are refused too (they are not JSON).

Pure: no I/O, no state. Cost: one regular-expression pass over the text, ``O(n)``, with a
Python step per bracket and per string only (cut short at the first exceeded limit), then
:func:`json.loads`. This package never imports ``anchor``; :mod:`anchor.core.jsonlimits` is the
same scan with LER Anchor's errors (and without importing this package, which loads the
Ethereum libraries).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects accepted in any JSON document (a DID document or a
credential needs well under 20)."""

MAX_JSON_VALUES: Final = 200_000
"""Most arrays, objects and strings in one JSON document (a DID document holds a few dozen)."""

# A string, matched from its opening quote to its closing one (escapes consume the next
# character); or one structural bracket or quote to look at.
_STRING_REST: Final = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INTERESTING: Final = re.compile(r'[\[\]{}"]')


class JsonLimitError(ValueError):
    """A JSON document over one of the limits; ``limit`` names which (``bytes``,
    ``depth``, ``values``) and ``maximum`` gives its value."""

    def __init__(self, message: str, *, limit: str, maximum: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum


class JsonSyntaxError(ValueError):
    """Text that is not JSON (or not UTF-8)."""


def _reject_constant(name: str) -> Any:
    raise JsonSyntaxError(f"{name} is not JSON")


def check_structure(text: str, *, max_depth: int = MAX_JSON_DEPTH, max_values: int) -> None:
    """Raise :class:`JsonLimitError` if ``text`` nests arrays and objects deeper than
    ``max_depth`` or holds more than ``max_values`` arrays, objects and strings; raise
    :class:`JsonSyntaxError` for an unterminated string. Iterative: safe at any depth."""
    opens = text.count("[") + text.count("{")
    if opens <= max_depth and opens + text.count('"') // 2 <= max_values:
        return  # within both limits whatever the structure (counted at C speed)
    depth = 0
    values = 0
    pos = 0
    find = _INTERESTING.search
    string_rest = _STRING_REST.match
    while True:
        found = find(text, pos)
        if found is None:
            return
        char = found.group()
        pos = found.end()
        if char == '"':
            rest = string_rest(text, pos)
            if rest is None:
                raise JsonSyntaxError(f"unterminated string starting at character {pos - 1}")
            pos = rest.end()
            values += 1
        elif char in "[{":
            depth += 1
            values += 1
            if depth > max_depth:
                raise JsonLimitError(
                    f"JSON nested deeper than {max_depth} arrays and objects",
                    limit="depth",
                    maximum=max_depth,
                )
        else:
            depth -= 1
        if values > max_values:
            raise JsonLimitError(
                f"JSON holds more than {max_values} arrays, objects and strings",
                limit="values",
                maximum=max_values,
            )


def loads(
    data: str | bytes,
    *,
    max_bytes: int,
    max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as JSON within the limits.

    Raises :class:`JsonLimitError` when ``data`` is longer than ``max_bytes`` (bytes, or
    characters for text), nested deeper than ``max_depth`` or holds more than ``max_values``
    arrays, objects and strings, and :class:`JsonSyntaxError` when it is not JSON."""
    if len(data) > max_bytes:
        raise JsonLimitError(
            f"JSON document of {len(data)} bytes; the limit is {max_bytes}",
            limit="bytes",
            maximum=max_bytes,
        )
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise JsonSyntaxError(f"not UTF-8: {err}") from None
    else:
        text = data
    check_structure(text, max_depth=max_depth, max_values=max_values)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except JsonSyntaxError:
        raise
    except (ValueError, RecursionError) as err:
        raise JsonSyntaxError(str(err)) from None
