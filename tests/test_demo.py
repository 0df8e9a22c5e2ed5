"""The end-to-end demo (``scripts/demo.py``) on a small batch: a real anvil node, the real
service and CLI as subprocesses, and every step coming out as the story says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"
DEMO_TIMEOUT_SECONDS = 180  # step 7 (selective disclosure) adds about 30 s
"""The demo's own time limit (it cleans up and exits 1 when it runs out)."""


@pytest.mark.slow
@pytest.mark.anvil
def test_demo_story_comes_out_right(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    done = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--learners",
            "20",
            "--quiet",
            "--workdir",
            str(workdir),
            "--timeout",
            str(DEMO_TIMEOUT_SECONDS),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS + 20,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DEMO OK" in done.stdout
    assert "10. Shutdown" in done.stdout
    assert "7. Selective disclosure" in done.stdout
    shown = json.loads((workdir / "ada-shown.json").read_text())
    assert {"name", "birthDate"}.isdisjoint(shown["credentialSubject"])
    receipts = list((workdir / "credentials" / "college").glob("*.receipt.json"))
    assert len(receipts) == 20
