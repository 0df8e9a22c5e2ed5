"""The shape of the code: no import cycles, ``did_methods`` stands alone, modules stay small,
and test modules share helpers through helper modules, never through each other.

The import graph is read from the source with :mod:`ast` (nothing is imported): every
``import`` statement counts, at module level or inside a function, except those under
``if TYPE_CHECKING:``. Pure (reads files); cost: parsing about a hundred modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("anchor", "did_methods")
TESTS = ROOT / "tests"

MAX_LINES = 800
"""A module longer than this is split (unless it is one of :data:`BIG_MODULES`)."""

LAID_OUT = ("anchor/chain/",)
"""Packages already in the design's layout: their modules stay within :data:`LAID_OUT_MAX_LINES`."""
LAID_OUT_MAX_LINES = 700

GROWTH = 50
"""How many lines a listed big module may still grow."""

BIG_MODULES = {
    "anchor/store.py": 1209,
}
"""Today's modules over :data:`MAX_LINES` and their line counts: a ratchet (shrink them,
then lower or drop the number here)."""


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path, ROOT)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under ``node``, at any depth, except under ``if TYPE_CHECKING:``
    (its ``else`` branch still counts)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(other)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (at ``path``) imports, itself aside:
    ``import a.b`` names ``a.b``; ``from a import b`` names ``a.b`` when that is a module,
    else ``a``. Relative imports are resolved against the module's package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    named: list[str] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            named.extend(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parent = package[: len(package) - (node.level - 1)]
            base = ".".join([*parent, base] if base else parent)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            named.append(submodule if submodule in modules else base)
    found = {resolve(imported, modules) for imported in named}
    return {module for module in found if module is not None and module != name}


def resolve(imported: str, modules: dict[str, Path]) -> str | None:
    """The module an imported dotted name refers to (its longest known prefix), or None
    for a name outside the packages."""
    parts = imported.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # depth is bounded by the number of modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(component, graph) for component in components]


def _cycle_in(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle in component {sorted(component)}")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(package_modules())


def test_the_packages_have_no_import_cycles(graph: dict[str, set[str]]) -> None:
    cycles = [" -> ".join(cycle) for cycle in find_cycles(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert sorted(find_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e"]]


def test_function_level_imports_count_and_type_checking_ones_do_not(tmp_path: Path) -> None:
    package = tmp_path / "anchor"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from anchor import three\n"
        "def f():\n    from anchor.two import g\n    return g\n"
    )
    (package / "two.py").write_text("from . import one\ndef g():\n    return one\n")
    (package / "three.py").write_text("import anchor.one\n")
    modules = {module_name(p, tmp_path): p for p in sorted(package.rglob("*.py"))}
    graph = import_graph(modules)
    assert graph["anchor.one"] == {"anchor.two"}
    assert graph["anchor.two"] == {"anchor.one"}
    assert graph["anchor.three"] == {"anchor.one"}
    assert find_cycles(graph) == [["anchor.one", "anchor.two", "anchor.one"]]


def test_layers_cover_packages_by_prefix_only_below_the_top() -> None:
    assert layer_of("anchor") == 0
    assert layer_of("anchor.chain.rpc") == 1
    assert layer_of("did_methods.web") == 1
    assert layer_of("did_methods.ethr.document") == 0
    assert layer_of("did_methods.ethr.driver") == 1
    assert layer_of("anchor.routes.log_routes") == 2
    assert layer_of("anchor.commands.verify_cmd") == 3
    assert layer_of("anchor.something_new") is None


def test_did_methods_never_imports_anchor(graph: dict[str, set[str]]) -> None:
    offending = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if name.split(".")[0] == "did_methods"
        for target in targets
        if target.split(".")[0] == "anchor"
    )
    assert not offending, offending


def test_only_the_app_imports_the_route_modules(graph: dict[str, set[str]]) -> None:
    shared = {"anchor.routes.bodies", "anchor.routes.links", "anchor.routes.params"}
    offending = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if name != "anchor.app"
        for target in targets
        if target.startswith("anchor.routes.") and target not in shared
    )
    assert not offending, offending


LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "pure core",
        frozenset(
            {
                "anchor",
                "anchor.auth",
                "anchor.auth.policy",
                "anchor.auth.signatures",
                "anchor.checkpoint",
                "anchor.credential_summary",
                "anchor.credentials",
                "anchor.data_integrity",
                "anchor.ecdsa_sd",
                "anchor.ecdsa_sd_encoding",
                "anchor.ecdsa_sd_pointers",
                "anchor.entry",
                "anchor.errors",
                "anchor.jsonld_contexts",
                "anchor.jsonlimits",
                "anchor.merkle",
                "anchor.tiles",
                "anchor.sd_kind",
                "anchor.status",
                "anchor.status.allocation",
                "anchor.status.bitstring",
                "anchor.status.credential",
                "anchor.status.model",
                "did_methods.ethr.abi",
                "did_methods.ethr.document",
                "did_methods.ethr.events",
                "did_methods.ethr.identifier",
                "did_methods.jsonlimits",
                "did_methods.keys",
                "did_methods.multikey",
                "did_methods.syntax",
            }
        ),
    ),
    (
        "I/O",
        frozenset(
            {
                "anchor.audit",
                "anchor.auth.issuers",
                "anchor.auth.nonces",
                "anchor.backup",
                "anchor.pgbackup",
                "anchor.chain.*",
                "anchor.client",
                "anchor.config",
                "anchor.contracts",
                "anchor.db.*",
                "anchor.dbfiles",
                "anchor.grouping",
                "anchor.identity",
                "anchor.keys",
                "anchor.leadership",
                "anchor.log",
                "anchor.logfiles",
                "anchor.metrics",
                "anchor.outbound",
                "anchor.receipts",
                "anchor.signing_client",
                "anchor.status.authorisation",
                "anchor.status.check",
                "anchor.status.custody",
                "anchor.status.publisher",
                "anchor.status.repository",
                "anchor.store",
                "anchor.tables",
                "anchor.taskhealth",
                "anchor.trust",
                "anchor.verify",
                "did_methods.*",
            }
        ),
    ),
    (
        "service",
        frozenset(
            {
                "anchor.app",
                "anchor.appkeys",
                "anchor.auth.middleware",
                "anchor.openapi",
                "anchor.page",
                "anchor.ratelimit",
                "anchor.routes.*",
                "anchor.selfcheck",
            }
        ),
    ),
    ("CLI", frozenset({"anchor.__main__", "anchor.cli", "anchor.commands.*"})),
)
"""The layers of ARCHITECTURE.md, top first: a module belongs to the layer listing it, or
``pkg.*`` for its package (``anchor.chain.*`` covers ``anchor.chain`` and ``anchor.chain.rpc``)."""


def layer_of(module: str) -> int | None:
    """The rank in :data:`LAYERS` of the entry naming ``module``, or ``pkg.*`` for the
    package ``pkg`` it is in or is."""
    parts = module.split(".")
    names = {module} | {".".join(parts[:n]) + ".*" for n in range(1, len(parts) + 1)}
    for rank, (_, members) in enumerate(LAYERS):
        if names & members:
            return rank
    return None


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    missing = sorted(name for name in graph if layer_of(name) is None)
    assert not missing, f"add these modules to LAYERS here and to ARCHITECTURE.md: {missing}"


IO_LIBRARIES = (
    "aiohttp",
    "asyncio",
    "http",
    "socket",
    "sqlite3",
    "subprocess",
    "urllib.request",
    "web3",
)
"""Libraries that do I/O (or, for ``web3``, pull in its providers): a pure-core module imports
none of them (type-only imports under ``if TYPE_CHECKING:`` aside)."""


def io_imports(path: Path) -> list[str]:
    """The imports of :data:`IO_LIBRARIES` (or their modules) in the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    named: list[str] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            named.extend(alias.name for alias in node.names)
        elif node.level == 0 and node.module:
            named.append(node.module)
    return sorted(
        name
        for name in named
        if any(name == lib or name.startswith(lib + ".") for lib in IO_LIBRARIES)
    )


def test_pure_core_modules_import_no_io_library() -> None:
    offending = sorted(
        f"{name} imports {', '.join(found)}"
        for name, path in package_modules().items()
        if layer_of(name) == 0 and (found := io_imports(path))
    )
    assert not offending, "\n".join(offending)


def test_an_io_import_is_found(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import asyncio.locks\nimport httpx\nfrom typing import TYPE_CHECKING\n"
        "from web3.types import TxParams\nif TYPE_CHECKING:\n    import aiohttp\n"
    )
    assert io_imports(module) == ["asyncio.locks", "web3.types"]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a module of a lower layer (further down :data:`LAYERS`), named."""
    return sorted(
        f"{name} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})"
        for name, targets in graph.items()
        if (here := layer_of(name)) is not None
        for target in targets
        if (there := layer_of(target)) is not None and there > here
    )


def test_imports_go_to_the_same_layer_or_the_ones_above(graph: dict[str, set[str]]) -> None:
    upward = upward_imports(graph)
    assert not upward, "\n".join(upward)


def test_an_upward_import_is_named() -> None:
    graph = {"anchor.merkle": {"anchor.store", "anchor.entry"}, "anchor.app": {"anchor.log"}}
    assert upward_imports(graph) == ["anchor.merkle (pure core) imports anchor.store (I/O)"]


def test_modules_stay_small() -> None:
    problems = []
    for path in package_modules().values():
        relative = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        allowed = BIG_MODULES[relative] + GROWTH if relative in BIG_MODULES else MAX_LINES
        if relative.startswith(LAID_OUT):
            allowed = min(allowed, LAID_OUT_MAX_LINES)
        if lines > allowed:
            problems.append(f"{relative}: {lines} lines (at most {allowed}): split it")
    assert not problems, "\n".join(problems)
    for relative in BIG_MODULES:  # a listed module that went away is dropped from the list
        assert (ROOT / relative).is_file(), f"{relative} is gone: drop it from BIG_MODULES"


def test_test_modules_do_not_import_each_other() -> None:
    offending = []
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:  # ``from tests import test_x`` and ``from . import test_x`` name it too
                names = [node.module or "", *(alias.name for alias in node.names)]
                if node.module not in (None, "tests"):
                    names = names[:1]
            for imported in names:
                parts = imported.split(".")  # test_x, tests.test_x, tests.did_methods.test_y
                if parts[0].startswith("test_") or (
                    parts[0] == "tests" and any(p.startswith("test_") for p in parts)
                ):
                    offending.append(f"{path.relative_to(ROOT).as_posix()} imports {imported}")
    assert not offending, "put shared helpers in a helper module:\n" + "\n".join(offending)
