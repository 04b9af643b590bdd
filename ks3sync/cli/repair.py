"""``ks3sync repair``: rebuild the journal's records for one sync from a scan plus a listing (the rules
are in ks3sync.engine.repair). Two ways to name the sync, matching how it was created:

- ``ks3sync repair SRC DST [--endpoint ...] [--state-db ...] [--encrypt-key ...]``: the pair that
  ``ks3sync mirror SRC DST`` uses (same sync name and options hash, so mirror finds the records);
- ``ks3sync repair --config FILE --sync NAME``: a sync of the service (``ks3sync run``), with its source,
  target, excludes and key from the config, in the config's journal.

A journal that cannot be opened or fails its integrity check is moved aside (never deleted) and a
fresh one is built. Nothing is uploaded or deleted; multipart uploads under the prefix that the new
journal cannot resume are aborted unless --keep-uploads. Stop the service before repairing its journal.
Exit 0 rebuilt; 1 the run stopped; 2 usage or configuration error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ks3sync.cli.common import (
    ENDPOINT_HELP,
    EXIT_OK,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    load_encryption_key,
    mirror_former_name,
    mirror_options_hash,
    mirror_sync_name,
    open_client,
    parse_target,
    resolve_connection,
    setup_logging,
    split_mirror_args,
)
from ks3sync.cli.network import network_options, network_settings

if TYPE_CHECKING:
    from ks3sync.config import Config
    from ks3sync.engine.repair import RepairResult


@dataclass(frozen=True, slots=True)
class _Target:
    """Everything that identifies one sync in the journal, and what its scan needs."""

    name: str
    local_root: Path
    bucket: str
    prefix: str
    options_hash: str
    state_db: Path
    key_file: Path | None
    excludes: tuple[str, ...]
    exclude_from: tuple[Path, ...]
    follow_symlinks: bool
    formerly: str | None = None  # how an older ks3sync began this sync's name (Journal.register_sync)


@click.command(
    "repair",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Rebuild a lost or corrupted journal from a scan of the folder and a listing of the bucket, for "
    "the mirror pair SRC DST or for the service's sync --config FILE --sync NAME. A path is recorded as "
    "synced only when the object provably holds the file (MD5 = ETag; multipart: CRC-64; encrypted: key "
    "fingerprint + plaintext MD5), so the next pass sends only what really differs. A damaged journal is "
    "renamed to <file>.corrupt-<time>, never deleted.",
)
@click.argument("paths", nargs=-1, metavar="[SRC DST]")
@click.option("--endpoint", help=ENDPOINT_HELP)
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="The YAML config the service uses."
)
@click.option(
    "--sync", "sync_name", metavar="NAME", help="Repair this sync of --config (instead of SRC DST)."
)
@click.option("--state-db", type=click.Path(path_type=Path), help="The journal (default: XDG state dir).")
@click.option("--encrypt-key", type=click.Path(path_type=Path), help="Key file of an encrypted sync.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="gitignore-style pattern (repeatable).")
@click.option("--exclude-from", multiple=True, type=click.Path(path_type=Path), help="File of patterns.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links, as the mirror does with it.")
@click.option("--jobs", type=click.IntRange(1, 256), default=8, show_default=True, help="Parallel hashing.")
@click.option(
    "--keep-uploads", is_flag=True, help="Do not abort multipart uploads the new journal cannot resume."
)
@click.option("--dry-run", is_flag=True, help="Report what would be recorded; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="A machine-readable summary on stdout.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv: debug).")
@network_options
@handle_errors
def repair(paths: tuple[str, ...], **flags: Any) -> None:
    from ks3sync.cli.output import set_json_errors, warning

    set_json_errors(flags["as_json"])
    setup_logging(flags["verbose"])
    config = load_config_file(flags["config_path"])
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(flags["endpoint"], config, state_dir)
    network = network_settings(
        config, proxy=flags["proxy"], no_proxy=flags["no_proxy"], ca_bundle=flags["ca_bundle"]
    )
    if flags["sync_name"] is not None:
        if paths:
            die("give either SRC DST or --config FILE --sync NAME, not both")
        target = _service_target(config, flags["sync_name"], flags)
    elif len(paths) == 2:
        target = _mirror_target(paths[0], paths[1], state_dir, flags)
    else:
        die("expected SRC DST (a folder and ks3://bucket/prefix), or --config FILE --sync NAME")
    if not target.local_root.is_dir():
        what = "not a folder" if target.local_root.exists() else "no such folder"
        die(f"{target.local_root}: {what}")
    key = load_encryption_key(target.key_file) if target.key_file is not None else None

    from ks3sync.engine.repair import RepairOptions, open_or_replace_journal, rebuild
    from ks3sync.store.ks3store import KS3Store

    opts = RepairOptions(
        excludes=target.excludes,
        exclude_from=target.exclude_from,
        follow_symlinks=target.follow_symlinks,
        jobs=flags["jobs"],
        encryption_key=key,
        abort_unknown_uploads=not flags["keep_uploads"],
        dry_run=flags["dry_run"],
    )
    journal, moved = open_or_replace_journal(target.state_db)
    if moved is not None:
        warning(f"journal {target.state_db} was damaged; moved to {moved}")
    try:
        sync_id = journal.register_sync(
            target.name,
            str(target.local_root),
            target.bucket,
            target.prefix,
            target.options_hash,
            formerly=target.formerly,
        )
        with open_client(conn, state_dir, jobs=opts.jobs, network=network) as client:
            result = rebuild(
                KS3Store(client, target.bucket, target.prefix),
                journal,
                sync_id,
                target.local_root,
                opts,
                moved_aside=moved,
            )
    finally:
        journal.close()
    _report(result, as_json=flags["as_json"], verbose=flags["verbose"] > 0)
    sys.exit(EXIT_OK)


def _mirror_target(src: str, dst: str, state_dir: Path, flags: dict[str, Any]) -> _Target:
    local_arg, target_arg, upload = split_mirror_args(src, dst)
    remote = parse_target(target_arg, what="DST" if upload else "SRC")
    local_root = Path(local_arg).expanduser().absolute()
    # The same name and options hash `ks3sync mirror` registers for this pair, so mirror finds the records.
    return _Target(
        name=mirror_sync_name(local_root, remote),
        formerly=mirror_former_name(local_root, remote),
        local_root=local_root,
        bucket=remote.bucket,
        prefix=remote.prefix,
        options_hash=mirror_options_hash(flags["encrypt_key"] is not None),
        state_db=Path(flags["state_db"] or state_dir / "journal.db"),
        key_file=flags["encrypt_key"],
        excludes=tuple(flags["exclude"]),
        exclude_from=tuple(flags["exclude_from"]),
        follow_symlinks=flags["follow_symlinks"],
    )


def _service_target(config: Config | None, name: str, flags: dict[str, Any]) -> _Target:
    from ks3sync.daemon.worker import options_hash

    if config is None:
        die("--sync needs --config FILE")
    try:
        sync = config.sync(name)
    except KeyError:
        die(
            f"{config.path}: no sync named {name!r} (have: {', '.join(s.name for s in config.syncs) or 'none'})"
        )
    return _Target(
        name=sync.name,
        local_root=sync.source,
        bucket=sync.bucket,
        prefix=sync.prefix,
        options_hash=options_hash(sync),
        state_db=Path(flags["state_db"] or config.journal_path),
        key_file=flags["encrypt_key"] or sync.encrypt_key_file,
        excludes=sync.excludes + tuple(flags["exclude"]),
        exclude_from=sync.exclude_from + tuple(flags["exclude_from"]),
        follow_symlinks=sync.follow_symlinks or flags["follow_symlinks"],
    )


def _report(result: RepairResult, *, as_json: bool, verbose: bool) -> None:
    from ks3sync.cli.output import line
    from ks3sync.cli.report import say_groups
    from ks3sync.display import json_text

    if as_json:
        click.echo(json_text(result.summary(), sort_keys=True))
    say_groups("skipped", result.problems, verbose=verbose)
    say_groups("not verified", result.unverified, verbose=verbose)
    verb = "would record" if result.dry_run else "recorded"
    line(
        f"repair: {verb} {result.recorded} in sync, {len(result.differ)} differ, {result.local_only} only local, "
        f"{result.remote_only} only remote, {len(result.unverified)} not verified, aborted "
        f"{result.aborted_uploads} unknown uploads in {result.seconds:.1f} s",
        err=True,
    )
