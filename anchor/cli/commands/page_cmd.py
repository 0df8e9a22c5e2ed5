"""``ler-anchor page export``: write the verification page for any static web host.

The files (``index.html`` and ``page/``) are those the service serves at ``/``, with a
``page/config.js`` naming the service the page calls (``--service``) and the block explorer
it links to (``--explorer-url``). The host's Content-Security-Policy must allow
``connect-src`` to the service, and the service must allow the page's origin
(``serve --page-origins``). Cost: a few kilobytes written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from anchor.config import is_web_url
from anchor.errors import InvalidInput
from anchor.http.page import CSP_TEMPLATE, export_page


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "page",
        help="export the credential verification page for a static web host",
        description="Export the verification page (what the service serves at /) to a "
        "directory any web host can serve, calling the service at --service.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="export")
    export = verbs.add_parser("export", help="write the page's files to a directory")
    export.add_argument("--out", type=Path, required=True, help="directory to write")
    export.add_argument(
        "--service", required=True, help="the LER Anchor service URL the page calls"
    )
    export.add_argument("--explorer-url", help="block explorer base URL ({URL}/tx/{hash})")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    service = args.service.rstrip("/")
    if not is_web_url(service):
        raise InvalidInput(
            f"--service {args.service!r} is not an http(s) URL",
            hint="e.g. https://anchor.county.example",
        )
    if args.explorer_url is not None and not is_web_url(args.explorer_url):
        raise InvalidInput(f"--explorer-url {args.explorer_url!r} is not an http(s) URL")
    for path in export_page(args.out, service, args.explorer_url):
        print(path)
    origin = "/".join(service.split("/")[:3])
    print(
        "serve it with the header Content-Security-Policy: "
        + CSP_TEMPLATE.format(connect=f"'self' {origin}")
    )
    return 0
