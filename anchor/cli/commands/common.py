"""What several command modules share: the exit codes of the checking commands and the
bounded reader of a JSON file named on the command line (so that no command module imports
another).

Pure except for reading the one file; cost: that file, at most :data:`MAX_JSON_FILE_BYTES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from anchor.core import jsonlimits
from anchor.errors import InvalidInput

MAX_JSON_FILE_BYTES: Final = 16 * 1024 * 1024
"""Largest credential or entry file read."""

EXIT_VALID: Final = 0
EXIT_NOT_VALID: Final = 1
EXIT_UNKNOWN: Final = 3


def read_json_file(path: Path, what: str) -> Any:
    """The JSON document in ``path`` (``what`` names it in errors); InvalidInput when the file
    cannot be read, is too large or is not bounded JSON."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_FILE_BYTES:
            raise InvalidInput(f"{path} is larger than {MAX_JSON_FILE_BYTES} bytes")
        return jsonlimits.loads(
            path.read_bytes(), max_bytes=MAX_JSON_FILE_BYTES, what=f"the {what} {path}"
        )
    except OSError as err:
        raise InvalidInput(f"cannot read the {what} {path}: {err.strerror}") from None
