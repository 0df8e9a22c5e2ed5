"""``ler-anchor backup`` and ``ler-anchor restore``: the database, copied online and put back
only when it reproduces every anchored root."""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from anchor import config as config_module


def register(sub: Any) -> None:
    backup = sub.add_parser(
        "backup",
        help="copy the service's database while it runs, and check the copy",
        description="An online, consistent copy: the service keeps serving and writing.",
    )
    backup.add_argument("--out", required=True, type=Path, help="backup file to create")
    config_module.add_arguments(backup, only=("data_dir", "db", "database"))
    backup.set_defaults(handler=_backup)

    restore = sub.add_parser(
        "restore",
        help="put a backup in place once it reproduces every anchored root",
        description=(
            "Stop the service first. The backup is checked (SQLite, every log hash), then "
            "every root anchored on the chain (with --rpc-url and --contract) or, without "
            "them, every anchor the backup itself recorded, must be reproduced by its log; "
            "otherwise nothing changes (exit 4, as when --contract is not a LogAnchor or holds "
            "no anchor of a non-empty backup). The replaced database is kept beside it. "
            "With --database (PostgreSQL) the backup is loaded into an empty database."
        ),
    )
    restore.add_argument("backup", type=Path, help="the backup file")
    restore.add_argument(
        "--from-block", type=int, default=0, help="first block to read anchor events from"
    )
    config_module.add_arguments(restore, only=("data_dir", "db", "database", "rpc_url", "contract"))
    restore.set_defaults(handler=_restore)


def _checking() -> tqdm[Any]:
    """A progress bar for the entry-by-entry check (shown on a terminal only)."""
    return tqdm(desc="checking", unit="entry", file=sys.stderr, disable=None, leave=False)


def _backup(args: argparse.Namespace) -> int:
    from anchor.db.backup import backup

    config = config_module.from_environment(args)
    with _checking() as bar:
        if config.database is not None:  # one snapshot of PostgreSQL into a SQLite file
            from anchor.db.pgbackup import backup_postgres

            snapshot = backup_postgres(config.database, args.out, bar.update)
        else:
            snapshot = backup(config.db_path, args.out, bar.update)
    print(
        f"backed up {snapshot.size:,} entries (root {base64.b64encode(snapshot.root).decode()}) "
        f"to {snapshot.path} ({snapshot.bytes:,} bytes, checked)"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from anchor.db.backup import AnchoredRoot, restore

    config = config_module.from_environment(args)
    anchored: list[AnchoredRoot] | None = None
    if config.rpc_url is not None and config.contract is not None:
        from web3 import Web3

        from anchor.verify.audit import read_log_anchor

        w3 = Web3(Web3.HTTPProvider(config.rpc_url, request_kwargs={"timeout": 60}))
        anchored = [
            AnchoredRoot(e.size, e.root, f"block {e.block_number} tx {e.transaction_hash}")
            for e in read_log_anchor(w3, config.contract, args.from_block).events
        ]
    moved: Path | None = None
    with _checking() as bar:
        if config.database is not None:  # into an empty PostgreSQL database
            from anchor.db.pgbackup import restore_postgres

            snapshot, checked = restore_postgres(args.backup, config.database, anchored, bar.update)
        else:
            snapshot, checked, moved = restore(args.backup, config.db_path, anchored, bar.update)
    against = "on the chain" if anchored is not None else "recorded in the backup"
    print(
        f"restored {snapshot.size:,} entries to {config.database_shown}: all {checked} "
        f"anchored root(s) {against} reproduced"
    )
    if anchored is None:
        print("note: give --rpc-url and --contract to check against the chain itself")
    if moved is not None:
        print(f"the replaced database is kept as {moved}")
    if snapshot.checkpoint_size is not None:
        print(
            f"its latest signed checkpoint is of size {snapshot.checkpoint_size:,}: entries "
            "acknowledged after it was taken must be submitted again"
        )
    return 0
