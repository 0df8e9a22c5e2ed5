"""The trust file: the logs a verifier trusts, kept between runs (I/O).

The trust roots themselves (:class:`~anchor.core.trust.TrustRoot`,
:class:`~anchor.core.trust.TrustSet`: values and checks, why a receipt never vouches for
itself) are in :mod:`anchor.core.trust`; they are importable from here too.

The trust file (JSON, ``version`` 1)::

    {"version": 1,
     "logs": [{"origin": "...", "verifierKey": "name+id+base64", "chain": "eip155:N",
               "contract": "0x... (checksummed)"}]}

lives at ``$LER_ANCHOR_TRUST_FILE``, else ``$XDG_CONFIG_HOME/ler-anchor/trust.json``, else
``~/.config/ler-anchor/trust.json``; it is written atomically with mode 0600.

:func:`load_trust_file` and :func:`save_trust_file` read or write one small file (at most
:data:`MAX_TRUST_FILE_BYTES`); the rest is pure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from anchor.core.trust import (
    MAX_TRUST_ROOTS,
    TRUST_FILE_VERSION,
    Trust,
    TrustRoot,
    TrustSet,
    normalise_fingerprint,
)
from anchor.errors import ConfigError, InvalidInput
from anchor.keys import write_key_file

__all__ = [
    "MAX_TRUST_FILE_BYTES",
    "MAX_TRUST_ROOTS",
    "NO_TRUST",
    "TRUST_FILE_ENV",
    "TRUST_FILE_VERSION",
    "Trust",
    "TrustRoot",
    "TrustSet",
    "default_trust_path",
    "load_trust_file",
    "normalise_fingerprint",
    "save_trust_file",
]

TRUST_FILE_ENV: Final = "LER_ANCHOR_TRUST_FILE"
"""Environment variable naming the trust file (overrides the default location)."""

NO_TRUST: Final = (
    "no trusted log: run `ler-anchor trust add SERVICE_URL` or pass --log-key and --contract"
)
"""Why a receipt cannot be judged when the verifier trusts no log at all."""

MAX_TRUST_FILE_BYTES: Final = 1024 * 1024
"""Largest trust file read."""


def default_trust_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$LER_ANCHOR_TRUST_FILE``, else ``$XDG_CONFIG_HOME/ler-anchor/trust.json``, else
    ``~/.config/ler-anchor/trust.json``."""
    env = os.environ if environ is None else environ
    named = env.get(TRUST_FILE_ENV)
    if named:
        return Path(named)
    config = env.get("XDG_CONFIG_HOME")
    base = Path(config) if config and Path(config).is_absolute() else Path.home() / ".config"
    return base / "ler-anchor" / "trust.json"


def load_trust_file(path: Path) -> TrustSet:
    """The trust set in ``path`` (empty when the file does not exist)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TRUST_FILE_BYTES + 1)
    except FileNotFoundError:
        return TrustSet()
    except OSError as err:
        raise ConfigError(
            f"cannot read the trust file {path}: {err.strerror}",
            hint="check its permissions, or name another with --trust-file",
        ) from None
    if len(raw) > MAX_TRUST_FILE_BYTES:
        raise ConfigError(f"the trust file {path} is larger than {MAX_TRUST_FILE_BYTES} bytes")
    try:
        return TrustSet.from_json(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"the trust file {path} is not JSON: {err}", hint="fix it or remove it"
        ) from None
    except InvalidInput as err:
        raise ConfigError(
            f"the trust file {path}: {err.detail}", hint="fix it or remove it"
        ) from None


def save_trust_file(path: Path, trust: TrustSet) -> None:
    """Write ``trust`` to ``path`` atomically, mode 0600 (its directory is made 0700)."""
    text = json.dumps(trust.to_json(), indent=2) + "\n"
    try:
        write_key_file(path, text, overwrite=True)
    except OSError as err:
        raise ConfigError(
            f"cannot write the trust file {path}: {err.strerror}",
            hint="check the directory's permissions, or name another with --trust-file",
        ) from None
