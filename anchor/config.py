"""Service configuration: one frozen value, built once by the CLI from flags and
``LER_ANCHOR_*`` environment variables (handlers never read the environment).

Every setting has a flag ``--name`` and a variable ``LER_ANCHOR_NAME`` (upper case, ``-`` as
``_``); a flag wins over the variable, the variable over the default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from anchor.errors import ConfigError
from anchor.outbound import POLICIES as OUTBOUND_POLICIES
from anchor.status.bitstring import MAX_ENTRIES as STATUS_MAX_ENTRIES
from anchor.status.bitstring import MIN_ENTRIES as STATUS_MIN_ENTRIES

ENV_PREFIX = "LER_ANCHOR_"

DEFAULT_DATA_DIR = Path("data")
DEFAULT_PORT = 8080
DEFAULT_ORIGIN = "ler-anchor.localhost/log"
MAX_REORG_DEPTH = 100_000
"""Largest ``--reorg-depth`` (as :data:`anchor.chain.MAX_REORG_DEPTH`)."""
DEFAULT_STATUS_TTL_MS = 300_000
"""Default ``ttl`` of published status lists: five minutes."""


@dataclass(frozen=True)
class Config:
    """Everything the service needs to start. Paths are relative to the working directory."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=DEFAULT_PORT, metadata={"help": "TCP port"})
    data_dir: Path = field(
        default=DEFAULT_DATA_DIR, metadata={"help": "where the database and keys live"}
    )
    db: Path | None = field(
        default=None, metadata={"help": "SQLite database (default DATA_DIR/ler-anchor.db)"}
    )
    database: str | None = field(
        default=None,
        repr=False,  # the URL may hold a password
        metadata={
            "help": "the service's database on PostgreSQL (postgresql://...), for serve (one "
            "or several replicas) and the commands that open it; prefer the env variable if "
            "it holds a password (default: the SQLite file)"
        },
    )
    origin: str = field(
        default=DEFAULT_ORIGIN, metadata={"help": "the log's origin line and checkpoint key name"}
    )
    log_key_file: Path | None = field(
        default=None,
        metadata={"help": "Ed25519 checkpoint key, JWK (default DATA_DIR/log-key.jwk)"},
    )
    status_key_dir: Path | None = field(
        default=None,
        metadata={
            "help": "the issuers' status list signing keys (default DATA_DIR/status-keys); "
            "replicas on one PostgreSQL database must share one, on shared storage"
        },
    )
    rpc_url: str | None = field(
        default=None, metadata={"help": "chain JSON-RPC URL (default: the embedded chain)"}
    )
    contract: str | None = field(
        default=None, metadata={"help": "LogAnchor contract address (required with --rpc-url)"}
    )
    chain_key_file: Path | None = field(
        default=None,
        metadata={"help": "secp256k1 anchoring account key (default DATA_DIR/chain-key.hex)"},
    )
    anchor_interval: float = field(
        default=10.0, metadata={"help": "seconds between anchors when the log grew"}
    )
    anchor_size: int = field(
        default=10_000, metadata={"help": "anchor early after this many new entries"}
    )
    confirmations: int | None = field(
        default=None, metadata={"help": "blocks until an anchor is final (1 embedded, 12 RPC)"}
    )
    reorg_depth: int = field(
        default=64,
        metadata={
            "help": "blocks below the head within which final anchors are re-checked every "
            "round for deep reorganisations (0: only at start)"
        },
    )
    operator_token: str | None = field(
        default=None,
        metadata={"help": "admin API bearer token; prefer the env variable (none: admin API off)"},
    )
    public_url: str | None = field(
        default=None,
        metadata={"help": "public base URL, e.g. https://anchor.example (signature targets)"},
    )
    ethr_registry: str | None = field(
        default=None,
        metadata={
            "help": "ERC-1056 registry on the anchoring chain for did:ethr (embedded: deployed)"
        },
    )
    ethr_network: str = field(
        default="anchor", metadata={"help": "did:ethr network name of the anchoring chain"}
    )
    ca_file: Path | None = field(
        default=None, metadata={"help": "CA bundle for did:web (default: the system's)"}
    )
    outbound_networks: str = field(
        default="public",
        metadata={
            "help": "where the service may fetch status lists and did:web documents: "
            "public (globally routable addresses and its own port) or any"
        },
    )
    fetch_rate: int = field(
        default=600,
        metadata={
            "help": "requests per minute per client address to POST /v1/verify and DID "
            "resolution (0: no limit, e.g. behind a proxy that limits)"
        },
    )
    explorer_url: str | None = field(
        default=None,
        metadata={"help": "block explorer base URL; the verification page links {URL}/tx/{hash}"},
    )
    page_origins: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated origins (or *) of exported verification pages allowed "
            "to call the public API from a browser (CORS; none: same origin only)"
        },
    )
    integrity_rate: int = field(
        default=10_000,
        metadata={
            "help": "leaves per second the background integrity check reads and rehashes "
            "(0: no background check)"
        },
    )
    integrity_pause: float = field(
        default=600.0,
        metadata={"help": "seconds between two complete background integrity passes"},
    )
    status_url: str | None = field(
        default=None,
        metadata={
            "help": "base URL where status lists are published, e.g. a CDN serving "
            "`status export` (default: PUBLIC_URL, else the request's)"
        },
    )
    status_list_entries: int = field(
        default=STATUS_MIN_ENTRIES,
        metadata={"help": "entries in each new status list (the spec's minimum: 131072)"},
    )
    status_ttl_ms: int = field(
        default=DEFAULT_STATUS_TTL_MS,
        metadata={"help": "status list ttl in milliseconds (also the HTTP cache lifetime)"},
    )
    status_valid_days: float | None = field(
        default=None,
        metadata={"help": "days each published status list is valid (validUntil; none: open)"},
    )

    @property
    def db_path(self) -> Path:
        return self.db if self.db is not None else self.data_dir / "ler-anchor.db"

    @property
    def store_target(self) -> str | Path:
        """The service's database: the ``--database`` URL (``LER_ANCHOR_DATABASE``), else the
        SQLite file."""
        return self.database if self.database is not None else self.db_path

    @property
    def database_shown(self) -> str:
        """The service's database as it may be printed: the SQLite file, or the URL without
        its password."""
        if self.database is None:
            return str(self.db_path)
        from anchor.db.postgres import redact  # psycopg loads only on PostgreSQL

        return redact(self.database)

    @property
    def log_key_path(self) -> Path:
        return self.log_key_file if self.log_key_file is not None else self.data_dir / "log-key.jwk"

    @property
    def status_key_path(self) -> Path:
        """The directory of the issuers' status keys."""
        if self.status_key_dir is not None:
            return self.status_key_dir
        return self.data_dir / "status-keys"  # anchor.status.custody.STATUS_KEY_DIR

    @property
    def chain_key_path(self) -> Path:
        if self.chain_key_file is not None:
            return self.chain_key_file
        return self.data_dir / "chain-key.hex"

    @property
    def page_origin_list(self) -> tuple[str, ...]:
        """The origins of ``page_origins`` (empty: none)."""
        raw = self.page_origins or ""
        return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())

    @property
    def embedded_chain(self) -> bool:
        return self.rpc_url is None

    @property
    def confirmation_depth(self) -> int:
        if self.confirmations is not None:
            return self.confirmations
        return 1 if self.embedded_chain else 12

    def check(self) -> Config:
        if self.database is not None and not self.database.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ConfigError(
                "--database takes a PostgreSQL URL (postgresql://user@host/dbname)",
                hint="leave it out to use the SQLite file (--db, default DATA_DIR/ler-anchor.db)",
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is not a TCP port")
        if self.anchor_interval <= 0:
            raise ConfigError("anchor interval must be positive")
        if self.anchor_size < 1:
            raise ConfigError("anchor size must be at least 1")
        if self.confirmations is not None and self.confirmations < 0:
            raise ConfigError("confirmations cannot be negative")
        if not 0 <= self.reorg_depth <= MAX_REORG_DEPTH:
            raise ConfigError(
                f"reorg depth must be between 0 and {MAX_REORG_DEPTH} blocks",
                hint="64 covers post-merge Ethereum finality; 0 checks only at start",
            )
        if not 8 <= self.status_list_entries <= STATUS_MAX_ENTRIES:
            raise ConfigError(
                f"status list entries must be between 8 and {STATUS_MAX_ENTRIES}",
                hint=f"the spec's minimum for herd privacy is {STATUS_MIN_ENTRIES}",
            )
        if self.status_ttl_ms < 0:
            raise ConfigError("status list ttl cannot be negative")
        if self.status_valid_days is not None and self.status_valid_days <= 0:
            raise ConfigError("status list validity must be a positive number of days")
        if self.integrity_rate < 0 or self.integrity_pause < 0:
            raise ConfigError(
                "integrity rate and pause cannot be negative", hint="rate 0 turns the check off"
            )
        if self.fetch_rate < 0:
            raise ConfigError("fetch rate cannot be negative", hint="0 turns the limit off")
        if self.outbound_networks not in OUTBOUND_POLICIES:
            raise ConfigError(
                f"outbound networks must be one of {', '.join(OUTBOUND_POLICIES)}",
                hint="any lets callers of /v1/verify make the service fetch private addresses",
            )
        if self.explorer_url is not None and not is_web_url(self.explorer_url):
            raise ConfigError(
                "explorer URL must be an http(s) URL", hint="e.g. https://etherscan.io"
            )
        if self.page_origins is not None and not all(
            o == "*" or (is_web_url(o) and o.count("/") == 2) for o in self.page_origin_list
        ):
            raise ConfigError(
                "page origins must be * or origins like https://verify.county.example",
                hint="scheme and host (and port), no path",
            )
        if self.rpc_url is not None and self.contract is None:
            raise ConfigError(
                "--rpc-url needs --contract",
                hint="deploy the contract with `ler-anchor deploy --rpc-url URL` first",
            )
        return self


def is_web_url(value: str) -> bool:
    """An absolute http(s) URL with a host and nothing a page could misread (quotes, spaces,
    angle brackets, a query or fragment)."""
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest or rest.startswith("/"):
        return False
    return not any(c in value for c in "\"'<>` \\?#") and value.isprintable()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(
    parser: argparse.ArgumentParser,
    only: tuple[str, ...] | None = None,
    *,
    default: Any = None,
) -> None:
    """Add a flag for every setting (or those in ``only``); defaults come later. A verb's
    parser passes ``default=argparse.SUPPRESS`` so the flag may also follow the verb."""
    for f in fields(Config):
        if only is not None and f.name not in only:
            continue
        env = ENV_PREFIX + f.name.upper()
        parser.add_argument(
            _flag(f.name),
            dest=f.name,
            default=default,
            metavar=f.name.upper(),
            help=f"{f.metadata.get('help', '')} (env {env})",
        )


def _convert(name: str, kind: Any, raw: str) -> Any:
    text = str(kind)
    try:
        if "Path" in text:
            return Path(raw)
        if "int" in text and "float" not in text:
            return int(raw)
        if "float" in text:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    return raw


def from_sources(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The configuration from parsed flags, then ``environ``, then defaults."""
    values: dict[str, Any] = {}
    for f in fields(Config):
        raw = getattr(args, f.name, None)
        if raw is None:
            raw = environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = _convert(f.name, f.type, str(raw))
    return Config(**values).check()


def from_environment(args: argparse.Namespace) -> Config:
    """:func:`from_sources` with the process environment (for the CLI only)."""
    return from_sources(args, os.environ)
