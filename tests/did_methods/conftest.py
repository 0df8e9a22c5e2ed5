"""Make ``import did_methods`` find the package, not this test directory.

``tests/`` is on ``sys.path`` (``tests/conftest.py`` imports helper modules from it), so
``tests/did_methods``, a directory without ``__init__.py``, looks like a namespace package
named ``did_methods``. The editable install provides the real package through an import
hook that runs only after the path search, so the namespace would win. With the repository
root on ``sys.path`` the path search itself finds the real, regular package, which beats
any namespace portion. (``pythonpath = ["."]`` in the pytest configuration does the same.)
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

_loaded = sys.modules.get("did_methods")
if _loaded is not None and getattr(_loaded, "__file__", None) is None:
    # A namespace package imported before this file ran: forget it.
    for _name in [n for n in sys.modules if n == "did_methods" or n.startswith("did_methods.")]:
        del sys.modules[_name]
