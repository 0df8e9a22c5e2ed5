"""``ler-anchor resolve`` end to end (did:key needs no network)."""

from __future__ import annotations

import json

import pytest

from anchor.cli.main import main

DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def test_resolve_prints_document_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", DID]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == DID
    assert main(["resolve", DID, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["didResolutionMetadata"]["contentType"] == "application/did+json"


def test_resolve_errors_exit_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", "did:key:zBAD"]) == 3
    assert "error" in json.loads(capsys.readouterr().out)
    assert main(["resolve", DID, "--version-time", "yesterday"]) == 2
    assert "not ISO 8601" in capsys.readouterr().err
