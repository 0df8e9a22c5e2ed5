"""What the tests do when a system program they need is not installed.

A test that needs Chromium, Go, PostgreSQL or the C accelerator skips with a message saying
what to install; under ``CI=true`` (where ``.ci/run`` installs them) the same message fails the
test instead, so a missing program can never pass CI silently. Pure (reads the environment).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str, install: str) -> NoReturn:
    """Skip the test (fail it under ``CI=true``): ``what`` is missing, ``install`` says how to
    get it."""
    message = f"{what} is missing: {install}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
