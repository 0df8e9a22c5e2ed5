"""The ``ler-anchor`` command line: a dispatcher over one module per command group.

Each module in :mod:`anchor.cli.commands` exposes ``register(subparsers)`` adding its commands,
each with a ``handler(args) -> int`` default. Errors of the project's hierarchy print their
one-line :meth:`~anchor.errors.AnchorError.diagnostics` on stderr and exit with the error's
``exit_code``; nothing else is caught here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from anchor import __version__
from anchor.cli import commands
from anchor.errors import AnchorError

Handler = Callable[[argparse.Namespace], int]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: complete for the command it names (the first argument that
    is a command), summaries only for the others. Without ``argv``, complete for all."""
    parser = argparse.ArgumentParser(
        prog="ler-anchor",
        description=(
            "LER Anchor: anchor credential digests in an append-only Merkle log on an "
            "Ethereum-compatible chain, publish W3C Bitstring Status Lists, resolve issuer DIDs."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ler-anchor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if argv is None:
        commands.register_all(sub)
    else:
        named = next((a for a in argv if a in commands.COMMANDS), None)
        commands.register(sub, named)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except AnchorError as err:
        print(f"ler-anchor {args.command}: {err.diagnostics()}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"ler-anchor {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
