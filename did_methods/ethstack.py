"""The Ethereum libraries, imported in one place that puts back a sane recursion limit.

``py_ecc`` (imported by ``eth_keys``, hence by ``web3`` and ``eth_account``) raises the
interpreter's recursion limit to 100,000 when imported, and py-evm (``eth``) to at least
12,288. With such a limit, C code that recurses per nesting level (the JSON parser, ``repr``
of deep values) overflows the C stack and the process dies with a segmentation fault instead
of raising :class:`RecursionError`. Importing this module imports those libraries (py-evm
only when installed) and then sets the limit back to :data:`RECURSION_LIMIT`; once they are
imported, importing them again changes nothing. Import it before using the limit-sensitive
code: :mod:`did_methods` does on import, and so does the LER Anchor application.

Not pure: it changes interpreter state once, at import. Cost: the libraries' import time
(about 1.5 s, paid by any user of them anyway).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Final

import eth_keys  # noqa: F401  (imports py_ecc, which raises the limit)
import web3  # noqa: F401

RECURSION_LIMIT: Final = 1000
"""The recursion limit set after the imports: CPython's default."""

if importlib.util.find_spec("eth") is not None:  # py-evm, the embedded chain's EVM
    importlib.import_module("eth")

sys.setrecursionlimit(RECURSION_LIMIT)
