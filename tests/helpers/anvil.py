"""Start and drive real ``anvil`` nodes for tests.

The binary comes from the npm package ``@foundry-rs/anvil`` pinned in ``contracts/package.json``
(``npm ci --prefix contracts``). :func:`start_anvil` runs one on a free 127.0.0.1 port with
``--silent``, waits until it answers ``eth_chainId`` and returns an :class:`AnvilNode`, which
knows its RPC URL, chain id and the funded accounts of anvil's default mnemonic, and wraps the
test-only JSON-RPC methods (snapshots, mining control, reorgs, dropping transactions). Stop it
with :meth:`AnvilNode.stop` or use :func:`running_anvil` as a context manager.

Pytest fixtures built on this live in ``tests/conftest.py``: ``anvil`` (one node per session)
and ``anvil_factory`` (nodes with extra flags, stopped after the test).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import platform
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "contracts" / "node_modules"
ANVIL_WRAPPER = NODE_MODULES / ".bin" / "anvil"
INSTALL_HINT = "run `npm ci --prefix contracts` (Node.js >= 20) to install the pinned anvil"

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
"""anvil's default mnemonic; its accounts are funded with 10,000 ETH each."""
ANVIL_DERIVATION_PATH = "m/44'/60'/0'/0/{index}"
DEFAULT_ACCOUNT_COUNT = 10
HOST = "127.0.0.1"

STARTUP_TIMEOUT_SECONDS = 30.0
STARTUP_POLL_SECONDS = 0.05
RPC_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
PORT_ATTEMPTS = 5
"""Another process may take the free port between probing and binding: retry that often."""

# Platform package of @foundry-rs/anvil holding the native binary, by (system, machine).
_NATIVE_PACKAGES = {
    ("linux", "x86_64"): "anvil-linux-amd64",
    ("linux", "amd64"): "anvil-linux-amd64",
    ("linux", "aarch64"): "anvil-linux-arm64",
    ("linux", "arm64"): "anvil-linux-arm64",
    ("darwin", "x86_64"): "anvil-darwin-amd64",
    ("darwin", "arm64"): "anvil-darwin-arm64",
    ("windows", "amd64"): "anvil-win32-amd64",
}


class AnvilError(RuntimeError):
    """anvil is missing, did not start, or answered a JSON-RPC call with an error."""


def find_anvil() -> Path:
    """The anvil executable from ``contracts/node_modules``.

    Prefers the native binary of the platform package (signals reach anvil itself, startup
    skips node); falls back to the ``.bin/anvil`` node wrapper.
    """
    if not ANVIL_WRAPPER.exists():
        raise AnvilError(f"anvil is not installed at {ANVIL_WRAPPER}: {INSTALL_HINT}")
    package = _NATIVE_PACKAGES.get((platform.system().lower(), platform.machine().lower()))
    if package is not None:
        binary = "anvil.exe" if os.name == "nt" else "anvil"
        native = NODE_MODULES / "@foundry-rs" / package / "bin" / binary
        if native.is_file():
            return native
    return ANVIL_WRAPPER


@functools.cache
def default_accounts(count: int = DEFAULT_ACCOUNT_COUNT) -> tuple[LocalAccount, ...]:
    """The first ``count`` accounts of anvil's default mnemonic (derived once, then cached)."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(
            ANVIL_MNEMONIC, account_path=ANVIL_DERIVATION_PATH.format(index=index)
        )
        for index in range(count)
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class AnvilNode:
    """A running anvil process and JSON-RPC helpers for it."""

    process: subprocess.Popen[bytes]
    port: int
    chain_id: int
    accounts: tuple[LocalAccount, ...]
    stderr_path: Path
    _request_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def private_keys(self) -> list[str]:
        """The funded accounts' private keys, ``0x``-prefixed hex."""
        return ["0x" + bytes(account.key).hex() for account in self.accounts]

    def web3(self) -> Web3:
        """A new synchronous web3 client for this node."""
        return Web3(
            Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_SECONDS})
        )

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Call ``method`` and return its ``result``; raise :class:`AnvilError` on an error."""
        return _json_rpc(self.rpc_url, method, params, next(self._request_ids))

    # -- test-only methods -------------------------------------------------------------

    def snapshot(self) -> str:
        """``evm_snapshot``: an id to :meth:`revert` to (each id can be used once)."""
        snapshot_id: str = self.rpc("evm_snapshot")
        return snapshot_id

    def revert(self, snapshot_id: str) -> None:
        """``evm_revert`` to a snapshot taken by :meth:`snapshot`."""
        if self.rpc("evm_revert", [snapshot_id]) is not True:
            raise AnvilError(f"evm_revert to snapshot {snapshot_id} failed")

    def mine(self, blocks: int = 1) -> None:
        """``evm_mine`` ``blocks`` blocks (includes pending transactions when mining is manual)."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def set_automine(self, enabled: bool) -> None:
        """``anvil_setAutomine``: mine each transaction on arrival (True) or only on demand."""
        self.rpc("anvil_setAutomine", [enabled])

    def drop_transaction(self, tx_hash: str) -> None:
        """``anvil_dropTransaction``: forget a pending transaction."""
        self.rpc("anvil_dropTransaction", [tx_hash])

    def drop_all_transactions(self) -> None:
        """``anvil_dropAllTransactions``: empty the pool (as a node that restarts or evicts)."""
        self.rpc("anvil_dropAllTransactions")

    def reorg(self, depth: int, transactions: Sequence[tuple[str, int]] = ()) -> None:
        """``anvil_reorg``: replace the last ``depth`` blocks by as many new ones.

        ``transactions`` are (raw signed transaction hex, block offset in the new blocks) to
        include in the new branch; transactions of the dropped blocks are not re-included.
        """
        self.rpc("anvil_reorg", [depth, [[raw, offset] for raw, offset in transactions]])

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Terminate the process (and a node wrapper's child), then kill it if it lingers."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL if os.name != "nt" else signal.SIGTERM)
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        with contextlib.suppress(OSError):
            self.stderr_path.unlink()


def start_anvil(
    *extra_args: str,
    accounts: int = DEFAULT_ACCOUNT_COUNT,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> AnvilNode:
    """Start anvil with ``extra_args`` (e.g. ``"--no-mining"``, ``"--block-time", "2"``).

    The node listens on a free 127.0.0.1 port, uses the default mnemonic with ``accounts``
    funded accounts and is ready (answers ``eth_chainId``) when this returns.
    """
    executable = find_anvil()
    last_error: AnvilError | None = None
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        command = [
            str(executable),
            "--host",
            HOST,
            "--port",
            str(port),
            "--accounts",
            str(accounts),
            "--mnemonic",
            ANVIL_MNEMONIC,
            "--silent",
            *extra_args,
        ]
        with tempfile.NamedTemporaryFile(prefix="anvil-", suffix=".log", delete=False) as log:
            stderr_path = Path(log.name)
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        try:
            chain_id = _wait_until_ready(process, port, stderr_path, timeout)
        except AnvilError as exc:
            _stop_process(process)
            with contextlib.suppress(OSError):
                stderr_path.unlink()
            last_error = exc
            continue
        return AnvilNode(
            process=process,
            port=port,
            chain_id=chain_id,
            accounts=default_accounts(accounts),
            stderr_path=stderr_path,
        )
    raise AnvilError(f"anvil did not start after {PORT_ATTEMPTS} attempts: {last_error}")


@contextlib.contextmanager
def running_anvil(*extra_args: str, accounts: int = DEFAULT_ACCOUNT_COUNT) -> Iterator[AnvilNode]:
    """:func:`start_anvil` as a context manager that stops the node on exit."""
    node = start_anvil(*extra_args, accounts=accounts)
    try:
        yield node
    finally:
        node.stop()


@dataclass(frozen=True)
class EvmChain:
    """A chain under test: the embedded py-evm chain or an anvil node.

    ``accounts`` are funded and signable locally; ``anvil`` is the node (None when embedded).
    """

    name: str
    w3: Web3
    accounts: tuple[LocalAccount, ...]
    anvil: AnvilNode | None = None


def _wait_until_ready(
    process: subprocess.Popen[bytes], port: int, stderr_path: Path, timeout: float
) -> int:
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            output = stderr_path.read_text(encoding="utf-8", errors="replace").strip()
            raise AnvilError(f"anvil exited with status {process.returncode}: {output or '-'}")
        try:
            return int(_json_rpc(url, "eth_chainId", (), 0), 16)
        except (OSError, AnvilError):
            if time.monotonic() > deadline:
                raise AnvilError(f"anvil did not answer on {url} within {timeout:.0f}s") from None
            time.sleep(STARTUP_POLL_SECONDS)


def _json_rpc(url: str, method: str, params: Sequence[Any], request_id: int) -> Any:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
    ).encode("utf-8")
    request = urllib.request.Request(  # the URL is always http://127.0.0.1:<port>
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=RPC_TIMEOUT_SECONDS) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise AnvilError(f"{method} failed: {reply['error']}")
    return reply.get("result")


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the process group this module created for ``process`` (falls back to it alone)."""
    if os.name == "nt":
        process.terminate()
        return
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(signum)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        _signal_group(process, signal.SIGKILL if os.name != "nt" else signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
