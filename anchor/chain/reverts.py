"""Revert reasons of :mod:`anchor.chain`: :class:`RevertDecoder` (custom errors of an ABI,
``Error(string)`` and ``Panic(uint256)``), and the ABI and hint helpers the client uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_typing import ABI
from eth_utils.crypto import keccak

from anchor.chain.values import (
    ERROR_STRING_SELECTOR,
    PANIC_SELECTOR,
    RevertReason,
)
from anchor.errors import ConfigError

# ---- revert reasons -------------------------------------------------------------------------


class RevertDecoder:
    """Decodes revert data with the custom errors of an ABI (plus ``Error`` / ``Panic``)."""

    def __init__(self, abi: ABI) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {
            ERROR_STRING_SELECTOR: ("Error", ["string"]),
            PANIC_SELECTOR: ("Panic", ["uint256"]),
        }
        for item in abi:
            if item.get("type") != "error":
                continue
            name = str(item.get("name"))
            types = [str(i["type"]) for i in _abi_inputs(item)]
            selector = keccak(text=f"{name}({','.join(types)})")[:4]
            self._errors[selector] = (name, types)

    def decode(self, data: bytes) -> RevertReason:
        if not data:
            return RevertReason("Reverted", (), data)
        known = self._errors.get(data[:4])
        if known is None:
            return RevertReason("UnknownError", ("0x" + data.hex(),), data)
        name, types = known
        try:
            args = abi_decode(types, data[4:])
        except DecodingError:
            return RevertReason(name, ("<undecodable>",), data)
        return RevertReason(name, tuple(args), data)


def _abi_inputs(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    inputs = item.get("inputs", [])
    return list(inputs) if isinstance(inputs, list) else []


def _function_selector(abi: ABI, name: str) -> bytes:
    for item in abi:
        if item.get("type") == "function" and item.get("name") == name:
            types = ",".join(str(i["type"]) for i in _abi_inputs(item))
            return keccak(text=f"{name}({types})")[:4]
    raise ConfigError(f"the LogAnchor ABI has no function {name!r}")


def _revert_hint(reason: RevertReason) -> str | None:
    hints = {
        "NotAuthorised": "authorise the anchoring account with the contract owner's key",
        "TreeSizeNotIncreasing": (
            "the contract already anchors a larger tree: another log writes to this contract, "
            "or this database is older than the chain (restore the latest backup); anchoring "
            "resumes once the log is larger"
        ),
        "RootAlreadyAnchored": "this root is already anchored; nothing to do",
        "ZeroRoot": "the zero root cannot be anchored",
    }
    return hints.get(reason.name)
