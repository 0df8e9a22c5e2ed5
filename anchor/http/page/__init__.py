"""The verification page's files (HTML, CSS, JavaScript) shipped in the package, and the
page's configuration script; pure reads of package data plus :func:`export_page`, which
writes a copy for a static web host (cost: a few kilobytes read once)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final

from anchor.errors import InvalidInput

ASSETS: Final = {"page.css": "text/css", "page.js": "text/javascript"}
"""The static assets under ``/page/`` and their media types (``config.js`` is generated)."""

CONNECT_SELF: Final = "'self'"
CSP_TEMPLATE: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect}; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CSP: Final = CSP_TEMPLATE.format(connect=CONNECT_SELF)
"""The page's Content-Security-Policy when the service serves it (API on the same origin)."""

PAGE_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def asset(name: str) -> bytes:
    return resources.files("anchor.http.page").joinpath(name).read_bytes()


def config_js(service: str, explorer: str | None) -> str:
    """The page's ``config.js``: where the service is ("" for the page's own origin) and the
    block explorer base URL (or null). JSON, with ``<`` escaped so it cannot end a script."""
    doc = json.dumps({"service": service.rstrip("/"), "explorer": explorer})
    return "window.LER_ANCHOR_PAGE = " + doc.replace("<", "\\u003c") + ";\n"


def export_page(out: Path, service: str, explorer: str | None) -> list[Path]:
    """Write the page for a static host: ``index.html`` and ``page/`` (its assets and a
    ``config.js`` naming ``service``). Returns the files written."""
    written = []
    try:
        (out / "page").mkdir(parents=True, exist_ok=True)
        files = {"index.html": asset("index.html")}
        files.update({f"page/{name}": asset(name) for name in ASSETS})
        files["page/config.js"] = config_js(service, explorer).encode("utf-8")
        for relative, body in files.items():
            path = out / relative
            path.write_bytes(body)
            written.append(path)
    except OSError as err:
        raise InvalidInput(f"cannot write the page to {out}: {err.strerror}") from None
    return written
