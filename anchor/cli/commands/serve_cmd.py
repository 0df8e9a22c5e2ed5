"""``ler-anchor serve``: run the HTTP service, the database's one service writer (it holds
the lock of :mod:`anchor.db.dbfiles` before it opens anything, and creates the database if there
is none)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import Any

from anchor import config as config_module
from anchor.db import dbfiles


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the service. With no flags: the embedded chain and ./data/.",
    )
    config_module.add_arguments(parser)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = config_module.from_environment(args)
    with dbfiles.service_writer(config.db_path, "ler-anchor serve"):  # before anything else
        from anchor.http.app import serve  # about a second of imports: only once the lock is ours

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(config))
    return 0
