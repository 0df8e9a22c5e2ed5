"""The compiled contracts shipped with the package, and a helper to deploy them.

``anchor/artifacts/<Name>.json`` is written by ``scripts/compile_contracts.py`` from
``contracts/<Name>.sol`` with the pinned solc; a test checks that it matches the source.
:func:`load_artifact` reads one through :mod:`importlib.resources` (works from a wheel too);
:func:`deploy` sends its creation transaction signed with a local key (no node-side account
needed, so it works against any JSON-RPC endpoint as well as the embedded chain).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ABI, ChecksumAddress, HexStr
from web3 import Web3
from web3.types import TxParams, TxReceipt

from anchor.errors import ChainError, ConfigError
from did_methods import ethstack  # noqa: F401  (puts back the recursion limit)

LOG_ANCHOR: Final = "LogAnchor"
"""Name of the anchor contract's artifact: version 1, a record per root (kept so that anchors
made with it stay verifiable, and deployable with ``deploy --contract-version 1``)."""

LOG_ANCHOR_V2: Final = "LogAnchorV2"
"""Name of version 2 of the anchor contract: only the latest root, the default."""

LOG_ANCHOR_VERSIONS: Final[Mapping[int, str]] = {1: LOG_ANCHOR, 2: LOG_ANCHOR_V2}
"""Artifact name of each LogAnchor version."""

DEFAULT_LOG_ANCHOR_VERSION: Final = 2

DID_REGISTRY: Final = "EthereumDIDRegistry"
"""Name of the ERC-1056 registry's artifact (did:ethr)."""

ARTIFACT_PACKAGE: Final = "anchor"
ARTIFACT_DIRECTORY: Final = "artifacts"
DEFAULT_RECEIPT_TIMEOUT_SECONDS: Final = 120.0
"""How long :func:`deploy` waits for the creation transaction to be mined."""

_ARTIFACT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RECEIPT_STATUS_SUCCESS: Final = 1


@dataclass(frozen=True)
class Artifact:
    """One compiled contract. Loaded artifacts are shared: treat ``abi`` as read-only."""

    name: str
    abi: ABI
    bytecode: HexStr
    """Creation code, ``0x``-prefixed (constructor arguments are appended at deployment)."""
    deployed_bytecode: HexStr
    """Runtime code, ``0x``-prefixed: what ``eth_getCode`` returns after deployment."""
    compiler_version: str
    compiler_settings: Mapping[str, Any]
    source_sha256: str
    """SHA-256 (hex) of the Solidity source file it was compiled from."""


@dataclass(frozen=True)
class Deployment:
    """Where a contract was deployed, and the receipt of its creation transaction."""

    address: ChecksumAddress
    receipt: TxReceipt


@functools.cache
def load_artifact(name: str) -> Artifact:
    """The artifact of contract ``name`` (e.g. :data:`LOG_ANCHOR`).

    Raises :class:`~anchor.errors.ConfigError` when there is no such artifact or it is
    malformed (a broken installation, not a caller error).
    """
    if not _ARTIFACT_NAME.match(name):
        raise ConfigError(f"{name!r} is not a contract name")
    resource = resources.files(ARTIFACT_PACKAGE).joinpath(ARTIFACT_DIRECTORY, f"{name}.json")
    try:
        document = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no compiled artifact for contract {name!r}",
            hint="run `python scripts/compile_contracts.py` and reinstall the package",
        ) from exc
    try:
        if document["contractName"] != name:
            raise ValueError(f"it describes {document['contractName']!r}")
        return Artifact(
            name=name,
            abi=cast(ABI, document["abi"]),
            bytecode=_hex(document["bytecode"]),
            deployed_bytecode=_hex(document["deployedBytecode"]),
            compiler_version=str(document["compiler"]["version"]),
            compiler_settings=dict(document["compiler"]["settings"]),
            source_sha256=str(document["sourceSha256"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"the artifact of contract {name!r} is malformed: {exc}",
            hint="run `python scripts/compile_contracts.py` and reinstall the package",
        ) from exc


def deploy(
    w3: Web3,
    artifact: Artifact,
    account: LocalAccount,
    *args: Any,
    gas: int | None = None,
    timeout: float = DEFAULT_RECEIPT_TIMEOUT_SECONDS,
) -> Deployment:
    """Deploy ``artifact`` with constructor ``args``, signed by ``account``, and wait for it.

    The gas limit is ``gas`` or the node's estimate; EIP-1559 fees come from the node; the
    nonce is the account's pending transaction count. Raises
    :class:`~anchor.errors.ChainError` if the node refuses the transaction, it is not mined
    within ``timeout`` seconds, or it reverts.
    """
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    params: TxParams = {"from": account.address}
    if gas is not None:
        params["gas"] = gas
    try:
        params["chainId"] = w3.eth.chain_id
        params["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
        transaction = factory.constructor(*args).build_transaction(params)
        signed = account.sign_transaction(cast(dict[str, Any], transaction))
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    except Exception as exc:  # any provider or transport failure is a chain error here
        raise ChainError(
            f"deploying {artifact.name} failed: {exc}",
            hint="check the RPC endpoint, the chain id and the deploying account's balance",
        ) from exc
    address = receipt.get("contractAddress")
    if receipt["status"] != _RECEIPT_STATUS_SUCCESS or address is None:
        raise ChainError(
            f"the creation transaction of {artifact.name} reverted "
            f"(transaction {tx_hash.to_0x_hex()}, block {receipt['blockNumber']})",
            hint="check the constructor arguments and the gas limit",
        )
    return Deployment(address=Web3.to_checksum_address(address), receipt=receipt)


def _hex(value: object) -> HexStr:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"expected 0x-prefixed hex, got {value!r}")
    bytes.fromhex(value[2:])
    return HexStr(value)
