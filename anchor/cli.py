"""The ``ler-anchor`` command line: a dispatcher over one module per command group.

Each module in :mod:`anchor.commands` exposes ``register(subparsers)`` adding its commands,
each with a ``handler(args) -> int`` default. Errors of the project's hierarchy print their
one-line :meth:`~anchor.errors.AnchorError.diagnostics` on stderr and exit with the error's
``exit_code``; nothing else is caught here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from anchor import __version__
from anchor.commands import PLANNED, register_all
from anchor.errors import AnchorError

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ler-anchor",
        description=(
            "LER Anchor: anchor credential digests in an append-only Merkle log on an "
            "Ethereum-compatible chain, publish W3C Bitstring Status Lists, resolve issuer DIDs."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ler-anchor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register_all(sub)
    for name, summary in PLANNED.items():
        if name not in sub.choices:
            planned = sub.add_parser(name, help=f"{summary} (not built yet)")
            planned.set_defaults(handler=_not_built(name))
    return parser


def _not_built(name: str) -> Handler:
    def handler(_args: argparse.Namespace) -> int:
        print(f"ler-anchor {name}: not built yet in this version", file=sys.stderr)
        return 2

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
