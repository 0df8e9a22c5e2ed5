"""Shared helpers for tests of the running service (imported by test modules)."""

from __future__ import annotations

from pathlib import Path

from anchor.config import Config


def service_config(tmp_path: Path, **overrides: object) -> Config:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "port": 8080,
        "operator_token": "operator-secret-token",
        "anchor_interval": 0.2,
        "anchor_size": 100,
    }
    values.update(overrides)
    return Config(**values).check()  # type: ignore[arg-type]
