"""``ks3sync restore SRC DST --as-of TIME``: a folder, a sub-folder or one file as it was at TIME, from
the current objects and the versions a sync kept (docs/versions.md §5-6).

SRC is ``ks3://bucket/prefix[/path]``: the sync's target is the nearest of SRC and its parents that has
a versions area. A folder is restored by ``mirror``'s restore machinery over a point-in-time view of the
bucket (same planner, verification, temp file + rename, traversal guard, ``--delete`` guard, journal
records as ``mirror ks3://… DST`` keeps them); one file is fetched the same way into DST (or into the
folder DST). Exit 0 all restored, 1 some entries failed (a version the history names is missing, a
verification failed), 2 usage error or no history found, 130 interrupted.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
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
    open_client,
    parse_target,
    register_mirror_pair,
    resolve_connection,
)
from ks3sync.cli.network import network_options, network_settings
from ks3sync.cli.options import exclude_options, key_options, run_options, start_run, where_options

if TYPE_CHECKING:
    from ks3sync.config import Config, SyncConfig
    from ks3sync.engine.mirror import MirrorOptions

# mirror's flags that restore does not offer, at their defaults (restore reuses mirror's settings).
_MIRROR_DEFAULTS: dict[str, Any] = {
    "backup_prefix": None,
    "keep_versions": None,
    "keep": None,
    "checksum": False,
    "storage_class": None,
    "acl": None,
    "part_size": None,
    "multipart_threshold": None,
    "bwlimit": None,
    "abort_stale_after": "24h",
    "follow_symlinks": False,
    "delete_excluded": False,
}


@click.command(
    "restore",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Restore ks3://bucket/prefix (or a sub-folder, or one file under it) into DST as it was at TIME, "
    "from the current objects and the versions the sync kept. TIME: ISO 8601 (local time without a zone), "
    "a pass stamp as 'ks3sync versions' prints it, 'now', or an age like 2h or 3d. Exit status: 0 restored; "
    "1 some entries failed; 2 usage error or no versions found; 130 interrupted.",
)
@click.argument("src")
@click.argument("dst")
@click.option("--as-of", "as_of", required=True, metavar="TIME", help="The moment to restore.")
@click.option(
    "--versions-prefix",
    metavar="PREFIX",
    help="Where the sync keeps versions, relative to its "
    "target (default .versions/, or the --config sync's).",
)
@where_options
@click.option("--delete", is_flag=True, help="Remove local files the folder did not have at TIME.")
@click.option("--max-delete", metavar="N|P%", help="Refuse a restore that would delete more (default 50%).")
@click.option("--force", is_flag=True, help="Override the max-delete guard.")
@exclude_options
@key_options
@click.option("--jobs", type=click.IntRange(1, 256), help="Parallel transfers (default 8).")
@run_options
@network_options
@click.pass_context
@handle_errors
def restore(ctx: click.Context, src: str, dst: str, **flags: Any) -> None:
    from ks3sync.cli.output import warning
    from ks3sync.config import parse_duration
    from ks3sync.versions.stamp import format_stamp, parse_as_of

    start_run(flags)
    if not src.startswith("ks3://") or dst.startswith("ks3://"):
        die("SRC must be ks3://bucket[/prefix[/path]] and DST a local folder or file")
    bucket, _, key = src[len("ks3://") :].partition("/")
    parse_target(f"ks3://{bucket}", what="SRC")  # the bucket name's checks
    try:
        as_of_ns = parse_as_of(flags["as_of"], time.time_ns(), parse_age=parse_duration)
    except ValueError as exc:
        die(f"--as-of: {exc}")
    config = load_config_file(flags["config_path"])
    for message in config.warnings if config is not None else ():
        warning(message)
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(flags["endpoint"], config, state_dir)
    local = Path(dst).expanduser().absolute()
    from ks3sync.cli.versioning import find_target, versions_prefix
    from ks3sync.store.ks3store import KS3Store

    network = network_settings(
        config, proxy=flags["proxy"], no_proxy=flags["no_proxy"], ca_bundle=flags["ca_bundle"]
    )
    with open_client(conn, state_dir, jobs=flags["jobs"] or 8, network=network) as client:
        prefix = _prefix(flags["versions_prefix"], config, bucket, key)
        found = find_target(client, bucket, key, prefix)
        if found is None:
            die(
                f"no versions found at ks3://{bucket}/{key} or any parent (looked for '{prefix}'): give the sync's "
                f"target, or --versions-prefix if it keeps them elsewhere; 'mirror' restores the current state"
            )
        root, sub = found
        target = Target(bucket, root)
        sync = _matching_sync(config, target)
        if flags["versions_prefix"] is None and sync is not None and sync.versions is not None:
            prefix = versions_prefix(sync.versions.prefix, "versions.prefix")
        opts = _options(ctx, flags, config, sync, prefix)
        store = KS3Store(client, bucket, root)
        state = _state_at(store, prefix, as_of_ns, sub, opts.reserved, opts.transfer.jobs)
        when = format_stamp(as_of_ns)
        if state.file is not None:
            state_db = Path(flags["state_db"] or state_dir / "journal.db").absolute()
            code = _restore_file(store, state, local, opts, flags, when, (state_db, state_dir.absolute()))
        else:
            code = _restore_folder(store, state, local, target, state_dir, opts, flags, when)
    sys.exit(code)


def _prefix(flag: str | None, config: Config | None, bucket: str, key: str) -> str:
    from ks3sync.cli.versioning import versions_prefix
    from ks3sync.versions.layout import DEFAULT_PREFIX

    if flag is not None:
        return versions_prefix(flag, "--versions-prefix")
    # A configured sync whose target holds SRC names its own prefix.
    for sync in config.syncs if config is not None else ():
        if sync.bucket == bucket and key.startswith(sync.prefix) and sync.versions is not None:
            return sync.versions.prefix
    return DEFAULT_PREFIX


def _matching_sync(config: Config | None, target: Target) -> SyncConfig | None:
    for sync in config.syncs if config is not None else ():
        if (sync.bucket, sync.prefix) == (target.bucket, target.prefix):
            return sync
    return None


def _options(
    ctx: click.Context, flags: dict[str, Any], config: Config | None, sync: SyncConfig | None, prefix: str
) -> MirrorOptions:
    """mirror's options (the same settings code, restore's flags plus mirror's defaults), with the
    versions prefix reserved so the history itself is never restored as files."""
    from ks3sync.cli.mirror import _Settings
    from ks3sync.config import VersionsConfig

    merged = {**_MIRROR_DEFAULTS, **flags}
    opts = _Settings(ctx, merged, config, sync).mirror_options()
    # Only the prefix matters here: it is reserved (never restored, never deleted locally).
    return replace(opts, versions=VersionsConfig(prefix=prefix))


@dataclass(frozen=True, slots=True)
class _State:
    """The state at T: the choices (path order), what was left out or is missing, and which of the two
    modes SRC asked for (``file``: the one choice; ``under``: the folder's path prefix)."""

    layout: Any
    choices: list[Any]
    resolution: Any
    problems: list[tuple[str, str]]
    under: str
    file: Any
    asked: str = ""  # the path under the target that SRC named


def _state_at(
    store: Any, prefix: str, as_of_ns: int, sub: str, reserved: tuple[str, ...], jobs: int
) -> _State:
    from ks3sync.versions.area import list_area, load_passes, stamps_from
    from ks3sync.versions.hide import without_areas
    from ks3sync.versions.layout import Layout
    from ks3sync.versions.resolve import resolve

    layout = Layout(prefix)
    area = list_area(store, layout)
    passes, problems = load_passes(store, area, stamps_from(area, as_of_ns), jobs=jobs)
    resolution = resolve(without_areas(store, reserved), passes, as_of_ns, under=sub)
    choices = list(resolution)
    if sub and not sub.endswith("/"):
        exact = next((c for c in choices if c.path == sub), None)
        if exact is not None:
            return _State(layout, choices, resolution, problems, sub, exact, sub)
    asked = sub
    if sub and not sub.endswith("/"):
        sub += "/"  # not a file then: a folder (or nothing at all)
    under = [c for c in choices if c.path.startswith(sub)]
    return _State(layout, under, resolution, problems, sub, None, asked)


def _restore_folder(
    store: Any,
    state: _State,
    local: Path,
    target: Target,
    state_dir: Path,
    opts: Any,
    flags: dict[str, Any],
    when: str,
) -> int:
    from ks3sync.cli.interrupt import EXIT_INTERRUPTED, GracefulStop, add_freezer
    from ks3sync.cli.mirror import _display
    from ks3sync.cli.progress import abandon_message
    from ks3sync.cli.report import report, say_groups
    from ks3sync.engine.mirror import NothingToRestore, run_mirror
    from ks3sync.journal import Journal
    from ks3sync.model import Direction
    from ks3sync.versions.view import PointInTimeView

    if local.exists() and not local.is_dir():
        die(f"DST: {local}: exists and is not a folder")
    sub_target = Target(target.bucket, target.prefix + state.under)
    missing = state.resolution.missing
    if not state.choices:
        if missing:
            say_groups("failed", missing, verbose=flags["verbose"] > 0)
        asked = f"ks3://{target.bucket}/{target.prefix}{state.asked}"
        die(f"nothing to restore: {asked} held no object at {when}", EXIT_FAILED if missing else 2)
    view = PointInTimeView(store, state.layout, state.choices, under=state.under)
    state_db = Path(flags["state_db"] or state_dir / "journal.db").absolute()
    opts = replace(opts, state_paths=(state_db, state_dir.absolute()))
    display = _display(flags, upload=False)
    remove_freezer = add_freezer(display.freeze)
    try:
        with GracefulStop(display.stopping, lambda: abandon_message(display.in_flight)) as stop:
            journal = Journal.open(state_db)
            try:
                # The records of `mirror ks3://… DST`: a later plain restore of the same pair reuses them.
                sync_id = register_mirror_pair(
                    journal, local, sub_target, encrypted=opts.transfer.encryption_key is not None
                )
                try:
                    result = run_mirror(
                        view,
                        journal,
                        sync_id,
                        local,
                        Direction.DOWNLOAD,
                        opts,
                        progress=display,
                        stop=stop.event,
                    )
                except NothingToRestore:
                    die(f"nothing to restore: {sub_target} held no objects at {when}", 2)
            finally:
                display.close()
                journal.close()
    finally:
        remove_freezer()
    interrupted = stop.requested and result.stopped is not None
    extra = _extra(state, when)
    report(
        result,
        upload=False,
        as_json=flags["as_json"],
        verbose=flags["verbose"] > 0,
        quiet=flags["quiet"],
        interrupted=interrupted,
        delete=opts.delete,
        extra=extra,
    )
    _say_state(state, flags, when)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok and not result.refused_deletes and not missing else EXIT_FAILED


def _restore_file(
    store: Any,
    state: _State,
    local: Path,
    opts: Any,
    flags: dict[str, Any],
    when: str,
    state_paths: tuple[Path, ...],
) -> int:
    from ks3sync.cli import output
    from ks3sync.display import json_text
    from ks3sync.errors import describe
    from ks3sync.model import Action, Direction, Download
    from ks3sync.scan.filters import state_files
    from ks3sync.transfer.checkpoint import MemoryCheckpoint
    from ks3sync.transfer.executor import Executor
    from ks3sync.versions.view import PointInTimeView

    choice = state.file
    name = choice.path.rpartition("/")[2]
    dest = local / name if local.is_dir() else local
    source = f"pass {choice.version.stamp}" if choice.version is not None else "the current object"
    if flags["dry_run"]:
        doc = {"path": choice.path, "to": str(dest), "from": source, "as_of": when, "dry_run": True}
        if flags["as_json"]:
            click.echo(json_text(doc, sort_keys=True))
        else:
            output.line(f"download {choice.path} -> {dest} ({source}); dry run: nothing changed", err=True)
        return EXIT_OK
    dest.parent.mkdir(parents=True, exist_ok=True)
    view = PointInTimeView(store, state.layout, [], rename=(dest.name, choice))
    # Never over ks3sync's own state (D9), even when DST names the journal.
    transfer = replace(opts.transfer, direction=Direction.DOWNLOAD, protected_paths=state_files(state_paths))
    with Executor(view, MemoryCheckpoint(), dest.parent, transfer) as executor:
        run = executor.run([Download(dest.name, choice.as_remote(dest.name), "as-of")])
    failed = [(choice.path, message) for _, message in run.failed]
    if run.stopped is not None and not failed:
        failed = [(choice.path, describe(Exception(run.stopped)))]
    doc = {
        "path": choice.path,
        "to": str(dest),
        "from": source,
        "as_of": when,
        "downloaded": run.counts[Action.DOWNLOADED],
        "bytes_received": run.bytes_received,
        "failed": [{"path": p, "error": m} for p, m in failed],
    }
    if flags["as_json"]:
        click.echo(json_text(doc, sort_keys=True))
    for path, message in failed:
        output.note(f"failed: {path}: {message}" if not message.startswith(path) else f"failed: {message}")
    if not failed and not flags["quiet"] and not flags["as_json"]:
        output.line(f"restored {choice.path} as of {when} ({source}) -> {dest}", err=True)
    return EXIT_FAILED if failed else EXIT_OK


def _extra(state: _State, when: str) -> dict[str, Any]:
    resolution = state.resolution
    return {
        "as_of": when,
        "from_versions": sum(1 for c in state.choices if c.version is not None),
        "left_out": len(resolution.left_out),
        "missing_versions": [{"path": p, "error": m} for p, m in resolution.missing],
        "history_problems": [{"key": k, "error": m} for k, m in state.problems],
    }


def _say_state(state: _State, flags: dict[str, Any], when: str) -> None:
    from ks3sync.cli import output
    from ks3sync.cli.report import say_groups

    if flags["as_json"]:
        return
    for key, why in state.problems:
        output.warning(f"{key}: {why} (its pass is read from its version objects)")
    say_groups("failed", state.resolution.missing, verbose=flags["verbose"] > 0)
    if flags["quiet"]:
        return
    from_versions = sum(1 for c in state.choices if c.version is not None)
    left = len(state.resolution.left_out)
    tail = f", left out {left} (no known content then)" if left else ""
    output.line(
        f"as of {when}: {len(state.choices)} paths, {from_versions} of them from versions{tail}", err=True
    )
