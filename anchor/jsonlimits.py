"""Every JSON document the service or the CLI reads goes through :func:`loads`: a size,
nesting-depth and value-count limit checked before parsing (see
:mod:`did_methods.jsonlimits`, which does the iterative scan), with the project's errors.

Pure: no I/O. Cost: one linear scan of the text before :func:`json.loads`.

Limits (documented constants): :data:`MAX_JSON_DEPTH` nested arrays and objects and
:data:`MAX_JSON_VALUES` arrays, objects and strings in any document; the byte limit is the
caller's (a request body, a status list, a receipt file each have their own).
"""

from __future__ import annotations

from typing import Any, Final

from anchor.errors import InvalidInput, LimitExceeded
from did_methods import jsonlimits
from did_methods.jsonlimits import MAX_JSON_DEPTH, MAX_JSON_VALUES

__all__ = ["MAX_FILE_BYTES", "MAX_JSON_DEPTH", "MAX_JSON_VALUES", "loads"]

MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""Largest JSON file the CLI reads (a receipt, a credential, a status list, a key)."""


def loads(
    data: str | bytes,
    *,
    max_bytes: int,
    max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
    what: str = "JSON document",
) -> Any:
    """Parse ``data`` as JSON within the limits. Raises :class:`LimitExceeded` (413) over a
    limit and :class:`InvalidInput` (400) for text that is not JSON; ``what`` names the
    document in the message."""
    try:
        return jsonlimits.loads(
            data, max_bytes=max_bytes, max_depth=max_depth, max_values=max_values
        )
    except jsonlimits.JsonLimitError as err:
        raise LimitExceeded(
            f"{what}: {err}", hint="send a smaller, flatter document", limit=err.limit
        ) from None
    except jsonlimits.JsonSyntaxError as err:
        raise InvalidInput(f"{what} is not valid JSON: {err}") from None
