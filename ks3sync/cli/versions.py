"""``ks3sync versions ks3://bucket/prefix [PATH]``: a sync's passes (what each kept), or every version
of one path (docs/versions.md). Read-only: one listing of the versions area, plus the manifests of the
passes that kept a version of PATH. Keys are shown escaped (ks3sync.display); ``--json`` for scripts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ks3sync.cli.common import (
    ENDPOINT_HELP,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    open_client,
    parse_target,
    resolve_connection,
)
from ks3sync.cli.network import network_options, network_settings


def _when(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


@click.command("versions", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target")
@click.argument("path", required=False)
@click.option(
    "--versions-prefix", metavar="PREFIX", help="Where the sync keeps versions (default .versions/)."
)
@click.option("--endpoint", help=ENDPOINT_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="The YAML config file.")
@click.option("-H", "--human-readable", is_flag=True, help="Sizes in KiB/MiB/GiB.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@network_options
@handle_errors
def versions(
    target: str,
    path: str | None,
    versions_prefix: str | None,
    endpoint: str | None,
    config_path: Path | None,
    human_readable: bool,
    as_json: bool,
    **network: Any,
) -> None:
    """List the passes of ks3://bucket/prefix that kept versions (times are local), or with PATH the
    versions of that path, oldest first, and its current object."""
    from ks3sync.cli.output import set_json_errors
    from ks3sync.cli.versioning import versions_prefix as checked_prefix
    from ks3sync.store.ks3store import KS3Store
    from ks3sync.versions.area import list_area
    from ks3sync.versions.layout import DEFAULT_PREFIX, Layout, path_problem

    set_json_errors(as_json)
    where = parse_target(target, what="TARGET")
    if path is not None and path_problem(path) is not None:
        die(f"PATH: {path!r} {path_problem(path)}")
    config = load_config_file(config_path)
    prefix = DEFAULT_PREFIX
    for sync in config.syncs if config is not None else ():
        if (sync.bucket, sync.prefix) == (where.bucket, where.prefix) and sync.versions is not None:
            prefix = sync.versions.prefix
    if versions_prefix is not None:
        prefix = checked_prefix(versions_prefix, "--versions-prefix")
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(endpoint, config, state_dir)
    layout = Layout(prefix)
    with open_client(conn, state_dir, network=network_settings(config, **network)) as client:
        store = KS3Store(client, where.bucket, where.prefix)
        area = list_area(store, layout)
        if path is None:
            _passes(area, as_json, human_readable)
        else:
            _path(store, area, path, as_json, human_readable)


def _size(n: int, human: bool) -> str:
    from ks3sync.display import human_size

    return human_size(n) if human else str(n)


def _passes(area: Any, as_json: bool, human: bool) -> None:
    from ks3sync.cli.output import line
    from ks3sync.display import json_text

    rows = []
    for group in area.ordered():
        classes = sorted({v.storage_class for v in group.versions.values()})
        rows.append(
            {
                "pass": group.stamp,
                "versions": len(group.versions),
                "bytes": group.version_bytes,
                "manifest": group.manifest is not None,
                "storage_classes": classes,
            }
        )
    if as_json:
        click.echo(json_text({"passes": rows}, sort_keys=True))
        return
    for row in rows:
        state = "" if row["manifest"] else "  (no manifest: interrupted)"
        line(
            f"{row['pass']}  {row['versions']:>7} versions  {_size(row['bytes'], human):>12}  "
            f"{','.join(row['storage_classes']) or '-'}{state}"
        )
    line(f"{len(rows)} passes, {sum(r['versions'] for r in rows)} versions", err=True)


def _path(store: Any, area: Any, path: str, as_json: bool, human: bool) -> None:
    from ks3sync.cli.output import line, warning
    from ks3sync.display import json_text
    from ks3sync.versions.area import load_passes

    stamps = [g.stamp for g in area.ordered() if path in g.versions]
    passes, problems = load_passes(store, area, stamps)
    rows: list[dict[str, Any]] = []
    for p in passes:
        version = p.versions.get(path)
        entry = (
            next((e for e in p.manifest.entries if e.path == path), None) if p.manifest is not None else None
        )
        if version is None and entry is None:
            continue
        before = entry.before if entry is not None else None
        rows.append(
            {
                "pass": p.stamp,
                "change": entry.change if entry is not None else "replaced (no manifest)",
                "size": version.size if version is not None else None,
                "etag": version.etag if version is not None else None,
                "written_ns": before.modified_ns if before is not None else None,
                "mtime_ns": before.mtime_ns if before is not None else None,
                "key": store.key_for(area.layout.version_path(p.stamp, path))
                if version is not None
                else None,
                "storage_class": version.storage_class if version is not None else None,
            }
        )
    current = store.head(path)
    doc = {
        "path": path,
        "versions": rows,
        "current": None
        if current is None
        else {
            "size": current.size,
            "etag": current.etag,
            "written_ns": current.last_modified_ns,
            "key": store.key_for(path),
        },
    }
    if as_json:
        click.echo(json_text(doc, sort_keys=True))
        return
    for key, why in problems:
        warning(f"{key}: {why}")
    for row in rows:
        line(
            f"{row['pass']}  {row['change']:<11}  {_size(row['size'] or 0, human):>12}  written "
            f"{_when(row['written_ns'])}  {row['key']}"
        )
    if current is not None:
        line(
            f"{'current':<24}  {'':<11}  {_size(current.size, human):>12}  written "
            f"{_when(current.last_modified_ns)}  {store.key_for(path)}"
        )
    else:
        line(f"{'current':<24}  (no object)")
    if rows:
        line(
            f"restore one with: ks3sync restore ks3://{store.bucket}/{store.prefix}{path} OUT --as-of <pass>",
            err=True,
        )
