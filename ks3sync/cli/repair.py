"""``ks3sync repair SRC DST``: rebuild the journal's records for one mirror pair from a scan plus a
listing (see ks3sync.repair for the rules). Takes the same SRC/DST, --endpoint, --config, --state-db,
--encrypt-key and --exclude options as ``mirror`` so it repairs exactly the sync that mirror uses.

A journal that cannot be opened or fails its integrity check is moved aside (never deleted) and a
fresh one is built. Nothing is uploaded or deleted; multipart uploads under the prefix that the new
journal cannot resume are aborted unless --keep-uploads. Exit 0 rebuilt; 1 the run stopped; 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ks3sync.cli.common import (
    EXIT_OK,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    open_client,
    parse_target,
    resolve_connection,
    setup_logging,
)


@click.command(
    "repair",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Rebuild a lost or corrupted journal for the mirror pair SRC DST from a scan of the folder and a "
    "listing of ks3://bucket/prefix. A path is recorded as synced only when the object provably holds the "
    "file (MD5 = ETag; multipart: CRC-64; encrypted: key fingerprint + plaintext MD5), so the next mirror "
    "sends only what really differs. A damaged journal is renamed to <file>.corrupt-<time>, never deleted.",
)
@click.argument("src")
@click.argument("dst")
@click.option("--endpoint", help="http(s)://host[:port] of KS3, or 'local' for the embedded local-server.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="The YAML config the daemon uses.")
@click.option("--state-db", type=click.Path(path_type=Path), help="The journal (default: XDG state dir).")
@click.option("--encrypt-key", type=click.Path(path_type=Path), help="Key file of an encrypted sync.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="gitignore-style pattern (repeatable).")
@click.option("--exclude-from", multiple=True, type=click.Path(path_type=Path), help="File of patterns.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links, as the mirror does with it.")
@click.option("--jobs", type=click.IntRange(1, 256), default=8, show_default=True, help="Parallel hashing.")
@click.option("--keep-uploads", is_flag=True, help="Do not abort multipart uploads the new journal cannot resume.")
@click.option("--dry-run", is_flag=True, help="Report what would be recorded; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="A machine-readable summary on stdout.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv: debug).")
@handle_errors
def repair(src: str, dst: str, **flags: Any) -> None:
    from ks3sync.cli.mirror import _direction, _load_key, _options_hash

    setup_logging(flags["verbose"])
    local_arg, target_arg, upload = _direction(src, dst)
    target = parse_target(target_arg, what="DST" if upload else "SRC")
    config = load_config_file(flags["config_path"])
    local_root = Path(local_arg).expanduser().absolute()
    if not local_root.is_dir():
        die(f"{local_arg}: not a folder" if local_root.exists() else f"{local_arg}: no such folder")
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(flags["endpoint"], config, state_dir)
    key = _load_key(flags["encrypt_key"]) if flags["encrypt_key"] is not None else None

    from ks3sync.repair import RepairOptions, open_or_replace_journal, rebuild
    from ks3sync.store.ks3store import KS3Store

    opts = RepairOptions(
        excludes=tuple(flags["exclude"]), exclude_from=tuple(flags["exclude_from"]),
        follow_symlinks=flags["follow_symlinks"], jobs=flags["jobs"], encryption_key=key,
        abort_unknown_uploads=not flags["keep_uploads"], dry_run=flags["dry_run"],
    )
    state_db = Path(flags["state_db"] or state_dir / "journal.db")
    journal, moved = open_or_replace_journal(state_db)
    if moved is not None:
        click.echo(f"ks3sync: warning: journal {state_db} was damaged; moved to {moved}", err=True)
    try:
        # The same name and options hash as `ks3sync mirror` uses for this pair, so mirror finds them.
        sync_id = journal.register_sync(
            f"mirror {local_root} {target} @ {conn.endpoint}", str(local_root), target.bucket, target.prefix,
            _options_hash(conn.endpoint, key is not None),
        )
        with open_client(conn, state_dir, jobs=opts.jobs) as client:
            result = rebuild(KS3Store(client, target.bucket, target.prefix), journal, sync_id, local_root, opts,
                             moved_aside=moved)
    finally:
        journal.close()
    if flags["as_json"]:
        click.echo(json.dumps(result.summary(), ensure_ascii=False, sort_keys=True))
    for path, reason in result.problems:
        click.echo(f"ks3sync: skipped {path}: {reason}", err=True)
    for path, reason in result.unverified:
        click.echo(f"ks3sync: not verified: {path}: {reason}", err=True)
    verb = "would record" if result.dry_run else "recorded"
    click.echo(
        f"repair: {verb} {result.recorded} in sync, {len(result.differ)} differ, {result.local_only} only local, "
        f"{result.remote_only} only remote, {len(result.unverified)} not verified, aborted "
        f"{result.aborted_uploads} unknown uploads in {result.seconds:.1f} s",
        err=True,
    )
    sys.exit(EXIT_OK)
