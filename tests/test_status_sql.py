"""The status package's SQL stays portable (SQLite today, PostgreSQL next): no ``lastrowid``,
no ``INSERT OR IGNORE/REPLACE``, ``rowid`` only where documented, and every ``CREATE`` in the
repository's :data:`~anchor.status.repository.SCHEMA` (or the ``seq`` migration step). Reads
the source; no database."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from anchor.status import repository

PACKAGE = Path(repository.__file__).resolve().parent


def string_constants(path: Path) -> list[tuple[str, str]]:
    """Every string literal of the module (f-string parts included) but docstrings, with the
    name of the function or assignment it is in."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
                continue  # a docstring
            here = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                here = child.name
            elif isinstance(child, ast.Assign | ast.AnnAssign) and where == "":
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                here = ",".join(t.id for t in targets if isinstance(t, ast.Name))
            if isinstance(child, ast.Constant) and isinstance(child.value, str):
                found.append((here, child.value))
            visit(child, here)

    visit(tree, "")
    return found


def sql_of(path: Path) -> list[tuple[str, str]]:
    keywords = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|FROM|WHERE|rowid)\b")
    return [(where, text) for where, text in string_constants(path) if keywords.search(text)]


def test_status_sql_is_portable() -> None:
    problems = []
    for path in sorted(PACKAGE.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "lastrowid" in source:
            problems.append(f"{path.name}: lastrowid (use RETURNING)")
        for where, text in sql_of(path):
            if re.search(r"\b(INSERT\s+OR|REPLACE\s+INTO)\b", text, re.IGNORECASE):
                problems.append(f"{path.name} {where}: {text!r} (use ON CONFLICT)")
            if re.search(r"\browid\b", text) and (path.name, where) != (
                "repository.py",
                "add_version_seq",
            ):
                problems.append(f"{path.name} {where}: {text!r} (use the declared key)")
            if re.search(r"\bCREATE\b", text) and (path.name, where) not in (
                ("repository.py", "SCHEMA"),
                ("repository.py", "add_version_seq"),  # the migration step's index
            ):
                problems.append(f"{path.name} {where}: {text!r} (DDL belongs in SCHEMA)")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_sql_where_it_is() -> None:
    found = sql_of(PACKAGE / "repository.py")
    assert any(where == "SCHEMA" and "CREATE TABLE" in text for where, text in found)
    assert any(where == "add_version_seq" and "rowid" in text for where, text in found)
    assert any(where == "all_versions" and "seq" in text for where, text in found)
    assert any(
        where == "_publish" and "INSERT INTO status_versions" in text for where, text in found
    )
    assert len(repository.SCHEMA) == sum(
        1 for where, text in found if where == "SCHEMA" and text.startswith("CREATE")
    )
