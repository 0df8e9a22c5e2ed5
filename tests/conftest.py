"""Shared pytest fixtures: chains to test against.

* ``anvil`` (session): one real anvil node (see ``tests/anvil.py``), stopped at the end.
* ``anvil_factory``: ``anvil_factory("--no-mining")`` starts an extra node with those flags,
  stopped after the test (for reorgs, unmined transactions, block times).
* ``embedded_w3``: a fresh ``Web3(EthereumTesterProvider())``, the in-process py-evm chain.
* ``private_trust_file`` (autouse): ``LER_ANCHOR_TRUST_FILE`` names a fresh path per test.
* ``evm_chain``: parametrized over both, ``embedded`` and ``anvil``, as an ``EvmChain`` with
  funded local accounts; the anvil state is reverted (``evm_revert``) after each test.
* ``chain``: parametrized likewise, a ``chain_helpers.Chain`` (LogAnchor deployed) for the
  chain client, batcher and recovery tests.
* ``postgres`` (session): a real PostgreSQL server (``service_helpers.PostgresServer``);
  ``pg_url``: a fresh database on it per test; ``database``: parametrized ``sqlite`` /
  ``postgresql``, the target to open a store on.

The terminal summary ends with the session's wall time (the suite's budget is 15 minutes on
two cores).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from anvil import AnvilNode, EvmChain, start_anvil
from chain_helpers import CHAINS, Chain, open_chain
from eth_account import Account
from service_helpers import POSTGRES_INSTALL_HINT, PostgresServer, start_postgres
from web3 import EthereumTesterProvider, Web3

EMBEDDED = "embedded"
ANVIL = "anvil"


_SESSION_START = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report the wall time of the whole session, collection and start-up included."""
    elapsed = time.monotonic() - _SESSION_START
    terminalreporter.write_line(f"session wall time: {elapsed:.1f} s")


@pytest.fixture(autouse=True)
def private_trust_file(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own (absent) trust file: none reads or writes the user's."""
    path = tmp_path_factory.mktemp("trust") / "trust.json"
    monkeypatch.setenv("LER_ANCHOR_TRUST_FILE", str(path))
    return path


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """A real anvil node shared by the session (rpc_url, chain_id, private_keys, helpers)."""
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def anvil_factory() -> Iterator[Callable[..., AnvilNode]]:
    """Start extra anvil nodes with given flags; all are stopped after the test."""
    nodes: list[AnvilNode] = []

    def start(*extra_args: str) -> AnvilNode:
        node = start_anvil(*extra_args)
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def embedded_w3() -> Web3:
    """A fresh embedded chain (py-evm through eth-tester) with funded unlocked accounts."""
    return Web3(EthereumTesterProvider())


def embedded_chain(w3: Web3) -> EvmChain:
    """``w3`` (an embedded chain) with its funded accounts as local signers."""
    provider = w3.provider
    assert isinstance(provider, EthereumTesterProvider)
    tester = provider.ethereum_tester
    assert tester is not None
    keys = tester.backend.account_keys
    return EvmChain(
        name=EMBEDDED, w3=w3, accounts=tuple(Account.from_key(key.to_bytes()) for key in keys)
    )


@pytest.fixture(params=[EMBEDDED, pytest.param(ANVIL, marks=pytest.mark.anvil)])
def evm_chain(request: pytest.FixtureRequest) -> Iterator[EvmChain]:
    """Each test runs once on the embedded chain and once on the session's anvil."""
    if request.param == EMBEDDED:
        yield embedded_chain(request.getfixturevalue("embedded_w3"))
        return
    node: AnvilNode = request.getfixturevalue("anvil")
    snapshot = node.snapshot()
    try:
        yield EvmChain(name=ANVIL, w3=node.web3(), accounts=node.accounts, anvil=node)
    finally:
        node.revert(snapshot)


@pytest.fixture(params=CHAINS)
async def chain(
    request: pytest.FixtureRequest, anvil_factory: Callable[..., AnvilNode]
) -> AsyncIterator[Chain]:
    """A chain client's chain, once on the embedded chain and once on a fresh anvil node
    (the LogAnchor deployed), closed after the test."""
    opened = await open_chain(request.param, anvil_factory)
    try:
        yield opened
    finally:
        await opened.close()


# -- databases ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (``initdb`` + ``pg_ctl`` in a temporary
    folder), stopped at the end. Without PostgreSQL the test is skipped (failed under
    ``CI=true``)."""
    server = start_postgres()
    if server is None:
        message = f"initdb is missing: {POSTGRES_INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


_PG_DATABASES = itertools.count()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test: its URL."""
    name = f"t{os.getpid()}_{next(_PG_DATABASES)}"
    url = postgres.create_database(name)
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's database lives, once per backend: a SQLite file path, or the URL of
    a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.db")
    return str(request.getfixturevalue("pg_url"))
