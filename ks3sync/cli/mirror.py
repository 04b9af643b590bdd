"""``ks3sync mirror SRC DST``: one pass from a local folder to ks3://bucket/prefix, or back (restore).

Wires the concrete parts together (config, journal, client, KS3Store, run_mirror) and presents the
result: a live bar or ``-v`` lines while it runs (ks3sync.cli.progress), the plan with --dry-run, a
summary (or --json) with the failures grouped by cause (ks3sync.cli.report); Ctrl-C stops the pass
cleanly (ks3sync.cli.interrupt). Exit 0 all in sync, 1 some entries failed, 2 usage/configuration error,
130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ks3sync.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Target,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    load_encryption_key,
    open_client,
    parse_target,
    register_mirror_pair,
    resolve_connection,
    split_mirror_args,
)
from ks3sync.cli.network import network_options, network_settings
from ks3sync.cli.options import exclude_options, key_options, run_options, start_run, where_options

if TYPE_CHECKING:
    from ks3sync.cli.progress import LineDisplay
    from ks3sync.config import Config, SyncConfig
    from ks3sync.engine.mirror import MirrorOptions, MirrorResult
    from ks3sync.store.base import Store
    from ks3sync.versions.prune import PruneReport


def _size(value: str | None, flag: str, parse: Callable[[str], int]) -> int | None:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        die(f"{flag}: {exc}")


@click.command(
    "mirror",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Mirror SRC to DST: a local folder to ks3://bucket/prefix (upload) or ks3://bucket/prefix to a "
    "local folder (restore). Only DST is changed. Exit status: 0 all in sync; 1 some entries failed (each "
    "named on stderr) or the delete guard refused deletes; 2 usage or configuration error; 130 interrupted "
    "(Ctrl-C: the first one stops cleanly within a few seconds, a second one quits at once).",
)
@click.argument("src")
@click.argument("dst")
@where_options
@click.option("--delete", is_flag=True, help="Remove destination entries that are not in the source.")
@click.option(
    "--delete-excluded",
    is_flag=True,
    help="Also remove excluded destination entries (implies --delete; excluded ones are kept otherwise).",
)
@click.option("--max-delete", metavar="N|P%", help="Refuse a pass that would delete more (default 50%).")
@click.option("--force", is_flag=True, help="Override the max-delete and empty-source guards.")
@click.option(
    "--backup-prefix", metavar="PREFIX", help="Copy overwritten/deleted objects under this key prefix first."
)
@click.option(
    "--keep-versions",
    metavar="PREFIX",
    help="Keep a version of every overwritten/deleted object under PREFIX inside the target "
    "(e.g. .versions/), per pass, with a manifest (docs/versions.md).",
)
@click.option(
    "--keep",
    metavar="DURATION",
    help="With --keep-versions: delete versions older than this after the pass (e.g. 30d).",
)
@click.option("--checksum", is_flag=True, help="Compare by content (MD5), not size + mtime.")
@exclude_options
@key_options
@click.option("--storage-class", help="STANDARD, STANDARD_IA, ARCHIVE, ...")
@click.option("--acl", help="Canned ACL for new objects: private or public-read.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 256),
    help="Most requests in flight (default 64); fewer while KS3 answers 503 SlowDown.",
)
@click.option(
    "--part-size", metavar="SIZE", help="Multipart part size (default 8MiB; grown to fit 10,000 parts)."
)
@click.option("--multipart-threshold", metavar="SIZE", help="Use multipart from this size (default 16MiB).")
@click.option("--bwlimit", metavar="RATE", help="Bandwidth limit shared by all transfers, e.g. 10MB/s.")
@click.option(
    "--abort-stale-after",
    metavar="DURATION",
    default="24h",
    show_default=True,
    help="Abort unknown multipart uploads under the prefix older than this.",
)
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links (with loop detection).")
@run_options
@network_options
@click.pass_context
@handle_errors
def mirror(ctx: click.Context, src: str, dst: str, **flags: Any) -> None:
    from ks3sync.cli.output import warning

    start_run(flags)
    local_arg, target_arg, upload = split_mirror_args(src, dst)
    target = parse_target(target_arg, what="DST" if upload else "SRC")
    config = load_config_file(flags["config_path"])
    for message in config.warnings if config is not None else ():
        warning(message)
    local_root = Path(local_arg).expanduser().absolute()
    if upload and not local_root.is_dir():
        die(f"SRC: {local_arg}: not a folder" if local_root.exists() else f"SRC: {local_arg}: no such folder")
    if not upload and local_root.exists() and not local_root.is_dir():
        die(f"DST: {local_arg}: exists and is not a folder")
    if not upload and (flags["keep_versions"] or flags["keep"]):
        die(
            "--keep-versions/--keep: versions are kept when uploading; a restore as of a time is "
            "'ks3sync restore SRC DST --as-of TIME'"
        )
    sync_cfg = _matching_sync(config, local_root, target)
    settings = _Settings(ctx, flags, config, sync_cfg)
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(flags["endpoint"], config, state_dir)
    network = network_settings(
        config, proxy=flags["proxy"], no_proxy=flags["no_proxy"], ca_bundle=flags["ca_bundle"]
    )
    opts = settings.mirror_options()

    from ks3sync.cli.interrupt import EXIT_INTERRUPTED, GracefulStop, add_freezer
    from ks3sync.cli.progress import abandon_message
    from ks3sync.cli.report import report
    from ks3sync.engine.ahead import RemoteAhead
    from ks3sync.model import Direction
    from ks3sync.store.ks3store import KS3Store

    state_db = Path(flags["state_db"] or state_dir / "journal.db").absolute()
    # The journal and the state dir are never mirrored, even when they live inside the folder.
    opts = replace(opts, state_paths=(state_db, state_dir.absolute()))
    direction = Direction.UPLOAD if upload else Direction.DOWNLOAD
    display = _display(flags, upload)
    remove_freezer = add_freezer(display.freeze)
    try:
        with GracefulStop(display.stopping, lambda: abandon_message(display.in_flight)) as stop:
            try:
                # The embedded server creates the bucket on first upload; a restore from a missing bucket is an error.
                ensure = target.bucket if upload else None
                with open_client(
                    conn,
                    state_dir,
                    jobs=opts.transfer.jobs,
                    ensure_bucket=ensure,
                    network=network,
                    bwlimit=opts.transfer.bwlimit,
                ) as client:
                    store = KS3Store(client, target.bucket, target.prefix)
                    # The pass's first round trips go out before the rest of the engine and the journal
                    # are loaded and opened (SQLAlchemy's import is most of the start-up): they overlap.
                    with RemoteAhead(store, opts, direction, stop.event) as ahead:
                        from ks3sync.engine.mirror import run_mirror
                        from ks3sync.journal import Journal

                        journal = Journal.open(state_db)
                        try:
                            sync_id = register_mirror_pair(
                                journal,
                                local_root,
                                target,
                                encrypted=opts.transfer.encryption_key is not None,
                            )
                            result = run_mirror(
                                store,
                                journal,
                                sync_id,
                                local_root,
                                direction,
                                opts,
                                progress=display,
                                stop=stop.event,
                                ahead=ahead,
                            )
                        finally:
                            journal.close()
                    pruned = _prune_after(store, opts, result, upload)
            finally:
                display.close()
    finally:
        remove_freezer()
    interrupted = stop.requested and result.stopped is not None
    report(
        result,
        upload=upload,
        as_json=flags["as_json"],
        verbose=flags["verbose"] > 0,
        quiet=flags["quiet"],
        interrupted=interrupted,
        delete=opts.delete,
        extra={"versions_pruned": pruned.summary()} if pruned is not None else None,
    )
    if opts.versions is not None and upload and not flags["as_json"]:
        from ks3sync.cli.versioning import say_versions

        say_versions(result, pruned, quiet=flags["quiet"], verbose=flags["verbose"] > 0)
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    # A pass whose deletes the guard refused did not reach "in sync": say so in the exit status.
    pruned_ok = pruned is None or pruned.ok
    sys.exit(EXIT_OK if result.ok and not result.refused_deletes and pruned_ok else EXIT_FAILED)


def _prune_after(store: Store, opts: MirrorOptions, result: MirrorResult, upload: bool) -> PruneReport | None:
    """With versions and a retention, a clean upload pass ends by pruning expired passes (guarded)."""
    versions = opts.versions
    if not upload or versions is None or opts.dry_run or result.stopped is not None:
        return None
    if versions.keep is None and versions.keep_passes is None and versions.cold_after is None:
        return None
    from ks3sync.cli.versioning import prune_now

    return prune_now(
        store,
        versions,
        max_delete=opts.max_delete,
        max_delete_percent=opts.max_delete_percent,
        force=opts.force,
        jobs=opts.transfer.jobs,
    )


def _display(flags: dict[str, Any], upload: bool) -> LineDisplay:
    """The live bar on a terminal, else plain -v lines (or nothing)."""
    from ks3sync.cli.progress import BarDisplay, LineDisplay

    verbose = flags["verbose"] > 0
    quiet_run = flags["as_json"] or flags["dry_run"] or flags["quiet"] or flags["no_progress"]
    if not quiet_run and sys.stderr.isatty():
        return BarDisplay(sys.stderr, verbose=verbose, upload=upload)
    return LineDisplay(verbose=verbose, upload=upload)


def _matching_sync(config: Config | None, local_root: Path, target: Target) -> SyncConfig | None:
    """A configured sync between the same folder and target lends its settings as defaults."""
    if config is None:
        return None
    for sync in config.syncs:
        if sync.source == local_root and (sync.target.bucket, sync.target.prefix) == (
            target.bucket,
            target.prefix,
        ):
            return sync
    return None


class _Settings:
    """Command-line flags, then the matching sync of --config, then the config's transfer section."""

    def __init__(
        self, ctx: click.Context, flags: dict[str, Any], config: Config | None, sync: SyncConfig | None
    ) -> None:
        self._ctx = ctx
        self.flags = flags
        self.config = config
        self.sync = sync

    def _given(self, name: str) -> bool:
        source = self._ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    def _sync_value(self, flag: str, attribute: str, default: Any) -> Any:
        if self._given(flag) or self.sync is None:
            value = self.flags[flag]
            return default if value is None or value == () else value
        return getattr(self.sync, attribute)

    def mirror_options(self) -> MirrorOptions:
        from ks3sync.config import (
            parse_duration,
            parse_max_delete,
            parse_multipart_threshold,
            parse_part_size,
            parse_rate,
        )
        from ks3sync.engine.mirror import MirrorOptions
        from ks3sync.store.base import WriteOptions
        from ks3sync.transfer.context import TransferOptions
        from ks3sync.transfer.sizing import DEFAULT_JOBS, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE

        flags = self.flags
        transfer_cfg = self.config.transfer if self.config is not None else None
        max_count: int | None = None
        max_percent: float | None = 50.0
        if flags["max_delete"] is not None:
            try:
                limit = parse_max_delete(flags["max_delete"])
            except ValueError as exc:
                die(f"--max-delete: {exc}")
            max_count, max_percent = limit.count, limit.percent
        elif self.sync is not None:
            max_count, max_percent = self.sync.max_delete.count, self.sync.max_delete.percent
        bwlimit: float | None = None
        if flags["bwlimit"] is not None:
            try:
                bwlimit = parse_rate(flags["bwlimit"])
            except ValueError as exc:
                die(f"--bwlimit: {exc}")
        elif transfer_cfg is not None:
            bwlimit = transfer_cfg.bwlimit
        try:
            grace_s = parse_duration(flags["abort_stale_after"])
        except ValueError as exc:
            die(f"--abort-stale-after: {exc}")
        key_file = flags["encrypt_key"] or (self.sync.encrypt_key_file if self.sync is not None else None)
        storage_class = self._sync_value("storage_class", "storage_class", None)
        acl = self._sync_value("acl", "acl", None)
        if storage_class is not None:
            storage_class = storage_class.upper()
            from ks3sync.config import STORAGE_CLASSES

            if storage_class not in STORAGE_CLASSES:
                die(f"--storage-class: expected one of {', '.join(STORAGE_CLASSES)}, got {storage_class!r}")
        if acl is not None and acl not in ("private", "public-read"):
            die(f"--acl: expected private or public-read, got {acl!r}")
        jobs = flags["jobs"] or (transfer_cfg.jobs if transfer_cfg is not None else DEFAULT_JOBS)
        # Outside KS3's limits is refused (exit 2), never silently raised or capped.
        part_size = _size(flags["part_size"], "--part-size", parse_part_size)
        if part_size is None:
            part_size = transfer_cfg.part_size if transfer_cfg is not None else DEFAULT_PART_SIZE
        threshold = _size(flags["multipart_threshold"], "--multipart-threshold", parse_multipart_threshold)
        if threshold is None:
            threshold = (
                transfer_cfg.multipart_threshold if transfer_cfg is not None else DEFAULT_MULTIPART_THRESHOLD
            )
        backup = self._sync_value("backup_prefix", "backup_prefix", None)
        from ks3sync.cli.versioning import mirror_versions

        versions = mirror_versions(flags.get("keep_versions"), flags.get("keep"), self.sync)
        if versions is not None and backup is not None:
            die(
                "--keep-versions cannot be combined with --backup-prefix (versions keep every generation the "
                "backup would)"
            )
        allow_unencrypted = bool(self._sync_value("allow_unencrypted", "allow_unencrypted", False))
        require_integrity = bool(self._sync_value("require_integrity", "require_integrity", False))
        if key_file is None and (allow_unencrypted or require_integrity):
            flag = "--allow-unencrypted" if allow_unencrypted else "--require-integrity"
            die(f"{flag}: only means something with --encrypt-key (or a sync's encrypt_key_file)")
        transfer = TransferOptions(
            jobs=jobs,
            part_size=part_size,
            multipart_threshold=threshold,
            write=WriteOptions(storage_class=storage_class, acl=acl),
            encryption_key=load_encryption_key(key_file) if key_file is not None else None,
            allow_unencrypted=allow_unencrypted,
            require_integrity=require_integrity,
            backup_prefix=backup,
            bwlimit=float(bwlimit) if bwlimit else None,
        )
        # rsync's --delete-excluded implies --delete; a config's delete_excluded requires delete: true.
        delete_excluded = bool(self._sync_value("delete_excluded", "delete_excluded", False))
        return MirrorOptions(
            delete=bool(self._sync_value("delete", "delete", False)) or delete_excluded,
            delete_excluded=delete_excluded,
            checksum=bool(flags["checksum"]),
            max_delete=max_count,
            max_delete_percent=max_percent,
            force=bool(flags["force"]),
            excludes=tuple(self._sync_value("exclude", "excludes", ())),
            exclude_from=tuple(Path(p) for p in self._sync_value("exclude_from", "exclude_from", ())),
            follow_symlinks=bool(self._sync_value("follow_symlinks", "follow_symlinks", False)),
            dry_run=bool(flags["dry_run"]),
            transfer=transfer,
            stale_grace_ns=int(grace_s * 1_000_000_000),
            versions=versions,
        )
