"""Every JSON document the service or the CLI reads goes through :func:`loads`: a size,
nesting-depth and value-count limit checked before parsing, with the project's errors.

Why: Python's C JSON parser recurses once per nested array or object; a body of 100,000
nested arrays overflowed the C stack (the Ethereum libraries had raised the recursion limit:
see :mod:`did_methods.ethstack`) and killed the process. The text is scanned first,
iteratively (no recursion), and refused before :func:`json.loads` sees it. ``NaN`` and
``Infinity`` are refused too (they are not JSON).

Limits (documented constants): :data:`MAX_JSON_DEPTH` nested arrays and objects and
:data:`MAX_JSON_VALUES` arrays, objects and strings in any document; the byte limit is the
caller's (a request body, a status list, a receipt file each have their own).

:mod:`did_methods.jsonlimits` is the same scan for the DID package, which never imports
``anchor``; this module does not import ``did_methods`` either, so that light CLI commands do
not load the Ethereum libraries (``did_methods`` imports them on import).

Pure: no I/O. Cost: one regular-expression pass over the text, ``O(n)``, with a Python step
per bracket and per string only (cut short at the first exceeded limit), then
:func:`json.loads`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from anchor.errors import InvalidInput, LimitExceeded

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects accepted in any JSON document (a credential or a
DID document needs well under 20)."""

MAX_JSON_VALUES: Final = 200_000
"""Most arrays, objects and strings in one JSON document (10,000 digests in a request body
are about 10,000)."""

MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""Largest JSON file (or answer of a service) the CLI reads: a receipt, a credential, a
status list, a key."""

# The rest of a string after its opening quote (an escape consumes the next character),
# and the characters that matter outside strings.
_STRING_REST: Final = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INTERESTING: Final = re.compile(r'[\[\]{}"]')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_structure(
    text: str, *, max_depth: int = MAX_JSON_DEPTH, max_values: int = MAX_JSON_VALUES
) -> None:
    """Raise :class:`LimitExceeded` if ``text`` nests arrays and objects deeper than
    ``max_depth`` or holds more than ``max_values`` arrays, objects and strings, and
    :class:`InvalidInput` for an unterminated string. Iterative: safe at any depth."""
    opens = text.count("[") + text.count("{")
    if opens <= max_depth and opens + text.count('"') // 2 <= max_values:
        return  # within both limits whatever the structure (counted at C speed)
    depth = 0
    values = 0
    pos = 0
    find = _INTERESTING.search
    string_rest = _STRING_REST.match
    while (found := find(text, pos)) is not None:
        char = found.group()
        pos = found.end()
        if char == '"':
            rest = string_rest(text, pos)
            if rest is None:
                raise InvalidInput(f"unterminated string starting at character {pos - 1}")
            pos = rest.end()
            values += 1
        elif char in "[{":
            depth += 1
            values += 1
            if depth > max_depth:
                raise LimitExceeded(
                    f"JSON nested deeper than {max_depth} arrays and objects", limit="depth"
                )
        else:
            depth -= 1
        if values > max_values:
            raise LimitExceeded(
                f"JSON holds more than {max_values} arrays, objects and strings", limit="values"
            )


def loads(
    data: str | bytes,
    *,
    max_bytes: int,
    max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
    what: str = "JSON document",
) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as JSON within the limits. Raises
    :class:`LimitExceeded` (413) when it is longer than ``max_bytes`` (bytes, or characters
    for text), nested deeper than ``max_depth`` or holds more than ``max_values`` arrays,
    objects and strings, and :class:`InvalidInput` (400) when it is not JSON; ``what``
    names the document in the message."""
    if len(data) > max_bytes:
        raise LimitExceeded(
            f"{what}: {len(data)} bytes; the limit is {max_bytes}",
            hint="send a smaller document",
            limit="bytes",
        )
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        check_structure(text, max_depth=max_depth, max_values=max_values)
        return json.loads(text, parse_constant=_reject_constant)
    except LimitExceeded as err:
        raise LimitExceeded(
            f"{what}: {err.detail}", hint="send a smaller, flatter document", **err.extra
        ) from None
    except (InvalidInput, ValueError) as err:  # UnicodeDecodeError is a ValueError
        reason = err.detail if isinstance(err, InvalidInput) else str(err)
        raise InvalidInput(f"{what} is not valid JSON: {reason}") from None
