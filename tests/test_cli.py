"""The CLI dispatcher: every command listed, only the named command's module imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from anchor.cli import commands
from anchor.cli import main as cli

_IMPORTS_OF = """
import sys
from anchor.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
print("HEAVY:" + " ".join(sorted(m for m in ("web3", "eth_account", "eth_tester", "anchor.http.app")
                      if m in sys.modules)))
"""


def _heavy_modules_after(argv: list[str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS_OF.format(argv=argv)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith("HEAVY:"))[6:]


def test_help_lists_every_command_without_importing_the_chain_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, (_module, summary) in commands.COMMANDS.items():
        assert name in out
        assert summary.split()[0] in out
    assert _heavy_modules_after(["--help"]) == ""
    assert _heavy_modules_after(["submit", "--help"]) == ""
    assert _heavy_modules_after(["audit", "--help"]) != ""  # audit needs web3


def test_every_command_has_its_complete_parser() -> None:
    parser = cli.build_parser()  # all modules
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(commands.COMMANDS)  # type: ignore[arg-type]
    for name in commands.COMMANDS:
        named = cli.build_parser([name])
        action = next(a for a in named._actions if a.dest == "command")
        own = action.choices[name]  # type: ignore[index]
        assert len(own._actions) > 1, name  # more than the summary stub's --help
        stub = action.choices[next(n for n in commands.COMMANDS if n != name)]  # type: ignore[index]
        if commands.COMMANDS[stub.prog.split()[-1]][0] != commands.COMMANDS[name][0]:
            assert len(stub._actions) == 1  # another module's command: a summary only


def test_an_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
