"""`ks3sync status --config FILE [--json]`: per sync, what the service is doing and how it went.

Reads only the journal (SQLite in WAL mode: safe while the service writes) and the service's status
file (``<state_dir>/service.json``, which says whether the service runs and each sync's live state).
Never creates anything: without a journal it reports that the service has not run yet.
Exit status 0; 2 with one line for a configuration or journal problem.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from ks3sync.cli.check_config import load_config_or_exit

MAX_PARKED_SHOWN = 50
STALE_AFTER_S = 30  # a status file not refreshed for this long means the service is gone


@click.command("status")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The service's YAML configuration file.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def status(config_path: Path, as_json: bool) -> None:
    """Show per-sync state: queue depth, in flight, parked, last success, last errors, files/bytes done."""
    from ks3sync.cli.output import set_json_errors
    from ks3sync.display import escape_lines, json_text

    set_json_errors(as_json)
    config = load_config_or_exit(config_path, check_sources=False)
    report = collect(config)
    if as_json:
        click.echo(json_text(report, indent=2, sort_keys=False))
    else:
        # Paths and error messages come from the journal, i.e. from keys and file names: escaped.
        click.echo(escape_lines(render(report)))


def collect(config: Any) -> dict[str, Any]:
    from ks3sync.cli.common import die
    from ks3sync.daemon.service import STATUS_FILE, read_status
    from ks3sync.journal import Journal, JournalError

    live = read_status(config.state_dir / STATUS_FILE)
    service = _service_state(live)
    live_syncs: dict[str, Any] = (live or {}).get("syncs", {}) if service["running"] else {}
    syncs: list[dict[str, Any]] = []
    journal_path = config.journal_path
    records: dict[str, Any] = {}
    journal = None
    if journal_path.exists():
        try:
            journal = Journal.open(journal_path)
            records = {r.name: r for r in journal.syncs()}
        except JournalError as exc:
            die(str(exc).splitlines()[0])
    try:
        for sync in config.syncs:
            item: dict[str, Any] = {
                "name": sync.name,
                "source": str(sync.source),
                "target": str(sync.target),
                "state": "never run",
                "reason": "",
            }
            record = records.get(sync.name)
            if record is not None and journal is not None:
                stats = journal.stats(record.id)
                item.update(_stats(stats))
                if stats.parked:
                    item["parked_changes"] = [
                        {"path": q.path, "kind": q.kind.value, "attempts": q.attempts, "error": q.last_error}
                        for q in journal.pending(record.id)
                        if q.parked
                    ][:MAX_PARKED_SHOWN]
                item["state"] = "stopped"
            if sync.name in live_syncs:
                item["state"] = live_syncs[sync.name].get("state", "unknown")
                item["reason"] = live_syncs[sync.name].get("reason", "") or live_syncs[sync.name].get(
                    "error", ""
                )
            elif not sync.source.is_dir():
                item["reason"] = "source folder is missing"
            syncs.append(item)
    finally:
        if journal is not None:
            journal.close()
    return {"config": str(config.path), "journal": str(journal_path), "service": service, "syncs": syncs}


def _service_state(live: dict[str, Any] | None) -> dict[str, Any]:
    if not live:
        return {"running": False, "pid": None, "updated_at": None}
    pid = live.get("pid")
    updated = float(live.get("updated_at") or 0)
    running = (
        bool(live.get("running"))
        and isinstance(pid, int)
        and _alive(pid)
        and (time.time() - updated < STALE_AFTER_S)
    )
    return {
        "running": running,
        "pid": pid if running else None,
        "started_at": live.get("started_at") if running else None,
        "updated_at": updated,
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the service account)
    return True


def _stats(stats: Any) -> dict[str, Any]:
    return {
        "queue_depth": stats.queue_depth,
        "in_flight": stats.in_flight,
        "parked": stats.parked,
        "next_due": _seconds(stats.next_due_ns),
        "files_synced": stats.entries,
        "uploads_in_flight": stats.uploads_in_flight,
        "files_done": stats.files_done,
        "bytes_done": stats.bytes_done,
        "last_success": _seconds(stats.last_success_ns),
        "last_errors": [
            {"at": _seconds(e.at_ns), "path": e.path, "message": e.message} for e in stats.last_errors
        ],
    }


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e9, 3)


# --------------------------------------------------------------------------------------------------
# text


def render(report: dict[str, Any]) -> str:
    svc = report["service"]
    now = time.time()
    if svc["running"]:
        up = _ago(now - float(svc["started_at"] or now)).replace(" ago", "")
        lines = [f"service: running (pid {svc['pid']}, up {up})"]
    else:
        lines = ["service: not running"]
    for s in report["syncs"]:
        head = f"{s['name']}: {s['state']}" + (f" ({s['reason']})" if s.get("reason") else "")
        lines.append("")
        lines.append(head)
        lines.append(f"  {s['source']} -> {s['target']}")
        if "queue_depth" not in s:
            continue
        due = ""
        if s["next_due"] is not None and s["queue_depth"]:
            due = f", next due {_when(s['next_due'], now)}"
        lines.append(f"  queue {s['queue_depth']}, in flight {s['in_flight']}, parked {s['parked']}{due}")
        lines.append(
            f"  {s['files_synced']} files synced; done {s['files_done']} files, {_bytes(s['bytes_done'])}; "
            f"multipart uploads in flight {s['uploads_in_flight']}"
        )
        last = "never" if s["last_success"] is None else _when(s["last_success"], now)
        lines.append(f"  last success: {last}")
        if s.get("parked_changes"):
            lines.append("  parked (retried after the next clean rescan, or when the file changes):")
            for p in s["parked_changes"][:10]:
                lines.append(f"    {p['path']}: {p['attempts']} attempts, {p['error']}")
        if s["last_errors"]:
            lines.append("  last errors:")
            for e in s["last_errors"][:5]:
                where = f"{e['path']}: " if e["path"] else ""
                lines.append(f"    {_when(e['at'], now)}  {where}{e['message']}")
    return "\n".join(lines)


def _when(t: float, now: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    delta = now - t
    return f"{stamp} ({_ago(delta)})" if delta >= 0 else f"{stamp} (in {_ago(-delta).replace(' ago', '')})"


def _ago(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
