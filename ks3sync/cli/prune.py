"""``ks3sync prune ks3://bucket/prefix --keep 30d [--keep-passes N] [--cold-after 7d]``: delete a sync's
expired versions, each pass's versions first and its manifest last, and move older ones to
STANDARD_IA (docs/versions.md §7). The delete guard applies (``--max-delete``, ``--force``);
``--dry-run`` shows what would go. A ``--config`` sync with this target lends its ``versions:``
settings. Exit 0 done (or nothing to do), 1 refused by the guard or some deletes failed, 2 usage error.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ks3sync.cli.common import (
    ENDPOINT_HELP,
    EXIT_FAILED,
    EXIT_OK,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    open_client,
    parse_target,
    resolve_connection,
)
from ks3sync.cli.network import network_options, network_settings


@click.command("prune", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target")
@click.option("--keep", metavar="DURATION", help="Keep passes of the last DURATION (e.g. 30d).")
@click.option("--keep-passes", type=click.IntRange(1), metavar="N", help="Keep the newest N passes.")
@click.option("--cold-after", metavar="DURATION", help="Move versions older than this to STANDARD_IA.")
@click.option(
    "--versions-prefix", metavar="PREFIX", help="Where the sync keeps versions (default .versions/)."
)
@click.option("--max-delete", metavar="N|P%", help="Refuse to delete more objects than this (default 50%).")
@click.option("--force", is_flag=True, help="Override the max-delete guard.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be deleted or moved, change nothing.")
@click.option("--endpoint", help=ENDPOINT_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="The YAML config file.")
@click.option("--jobs", type=click.IntRange(1, 256), default=8, show_default=True, help="Parallel copies.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Every failed key.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings.")
@network_options
@handle_errors
def prune(target: str, **flags: Any) -> None:
    """Delete the versions of ks3://bucket/prefix that the retention expires (at least one of --keep and
    --keep-passes, or a --config sync's versions: settings)."""
    from ks3sync.cli.output import set_json_errors
    from ks3sync.cli.versioning import duration, prune_now, say_prune, versions_prefix
    from ks3sync.config import VersionsConfig, parse_max_delete
    from ks3sync.display import json_text
    from ks3sync.store.ks3store import KS3Store

    set_json_errors(flags["as_json"])
    where = parse_target(target, what="TARGET")
    config = load_config_file(flags["config_path"])
    settings = VersionsConfig()
    max_count: int | None = None
    max_percent: float | None = 50.0
    for sync in config.syncs if config is not None else ():
        if (sync.bucket, sync.prefix) == (where.bucket, where.prefix):
            settings = sync.versions or settings
            max_count, max_percent = sync.max_delete.count, sync.max_delete.percent
    if flags["versions_prefix"] is not None:
        settings = replace(settings, prefix=versions_prefix(flags["versions_prefix"], "--versions-prefix"))
    if flags["keep"] is not None:
        settings = replace(settings, keep=duration(flags["keep"], "--keep"))
    if flags["keep_passes"] is not None:
        settings = replace(settings, keep_passes=flags["keep_passes"])
    if flags["cold_after"] is not None:
        settings = replace(settings, cold_after=duration(flags["cold_after"], "--cold-after"))
    if settings.keep is None and settings.keep_passes is None and settings.cold_after is None:
        die(
            "nothing to do: give --keep DURATION, --keep-passes N or --cold-after DURATION (or a --config "
            "sync with versions: keep)"
        )
    if flags["max_delete"] is not None:
        try:
            limit = parse_max_delete(flags["max_delete"])
        except ValueError as exc:
            die(f"--max-delete: {exc}")
        max_count, max_percent = limit.count, limit.percent
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(flags["endpoint"], config, state_dir)
    network = network_settings(
        config, proxy=flags["proxy"], no_proxy=flags["no_proxy"], ca_bundle=flags["ca_bundle"]
    )
    with open_client(conn, state_dir, jobs=flags["jobs"], network=network) as client:
        store = KS3Store(client, where.bucket, where.prefix)
        report = prune_now(
            store,
            settings,
            max_delete=max_count,
            max_delete_percent=max_percent,
            force=flags["force"],
            dry_run=flags["dry_run"],
            jobs=flags["jobs"],
        )
    if flags["as_json"]:
        click.echo(json_text(report.summary(), sort_keys=True))
    else:
        say_prune(report, quiet=flags["quiet"], verbose=flags["verbose"])
        if not flags["quiet"] and not (report.to_delete or report.cold or report.dry_run):
            click.echo(f"versions: nothing expired ({report.passes} passes kept)", err=True)
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)
