"""`ks3sync status --config FILE [--json]`: is the service running, and is each sync ok?

Per sync, a state: ``ok``; ``failing`` (since when, with the last error: credentials refused, bucket
missing, KS3 unreachable, source folder missing...); ``stopped`` (the service is not running, or it
does not run this sync). Beside it what the service is doing (``activity``: reconciling, watching,
polling, paused, ...), the queue, parked paths, history and recent per-file errors.

Exit status, like ``systemctl is-active`` / LSB ``status``: 0 the service runs and every sync is ok;
1 it runs and a sync is failing; 3 it is not running (stopped, killed, never started, not responding),
or it does not run a configured sync; 2 a configuration or journal problem (one line).

Everything comes from the journal (SQLite in WAL mode: safe while the service writes): the service
row (pid, start, heartbeat, clean stop) and each sync's health row, which the service writes on every
change and with its heartbeat (``daemon/health.py``). Whether the service's process is alive is
probed on the state directory's lock (``daemon/lock.py``): a killed service releases it at once, so a
kill -9 reads ``stopped`` however fresh its last heartbeat. Never creates or changes anything: the
journal is opened read-only (D26), and one at an older schema is refused (exit 2) until the service
upgrades it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ks3sync.cli.check_config import load_config_or_exit

if TYPE_CHECKING:
    from ks3sync.config import SyncConfig
    from ks3sync.journal.types import VerifyState

MAX_PARKED_SHOWN = 50
NOT_RESPONDING_AFTER_S = 60.0  # a running service's heartbeat (every 10 s) older than this: hung

EXIT_OK = 0
EXIT_FAILING = 1
EXIT_STOPPED = 3


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
    """Show whether the service runs and each sync's state (ok, failing, stopped), queue, parked paths
    and last errors. Exit status: 0 all ok; 1 a sync is failing; 3 the service is not running."""
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
    sys.exit(report["exit"])


def collect(config: Any) -> dict[str, Any]:
    from ks3sync.cli.common import die
    from ks3sync.daemon.lock import probe
    from ks3sync.journal import EmptyJournalError, Journal, JournalError

    journal_path = config.journal_path
    journal = None
    if journal_path.exists():
        try:
            # Read-only: a status changes nothing it reports (not even an older journal's schema, which
            # the service still running an older ks3sync may be using: that journal is refused).
            journal = Journal.open(journal_path, read_only=True)
        except EmptyJournalError:
            pass  # a starting service has not created its schema yet: nothing is recorded
        except JournalError as exc:
            die(str(exc).splitlines()[0])
    try:
        record = journal.service() if journal is not None else None
        service = _service_state(record, probe(config.state_dir), time.time())
        records = {r.name: r for r in journal.syncs()} if journal is not None else {}
        health = journal.health() if journal is not None else {}
        syncs = [
            _sync_item(sync, records.get(sync.name), health, service, record, journal)
            for sync in config.syncs
        ]
    except JournalError as exc:
        die(str(exc).splitlines()[0])
    finally:
        if journal is not None:
            journal.close()
    report: dict[str, Any] = {
        "config": str(config.path),
        "journal": str(journal_path),
        "service": service,
        "syncs": syncs,
    }
    report["exit"] = exit_code(report)
    return report


def exit_code(report: dict[str, Any]) -> int:
    states = {s["state"] for s in report["syncs"]}
    if not report["service"]["running"] or "stopped" in states:
        return EXIT_STOPPED
    return EXIT_FAILING if "failing" in states else EXIT_OK


def _service_state(record: Any, lock: Any, now: float) -> dict[str, Any]:
    """running / starting / not responding / stopped / never started, from the journal's service row
    and the lock probe (``lock.held``: True, False, or None when it cannot be told)."""
    base: dict[str, Any] = {
        "state": "never started",
        "running": False,
        "reason": "",
        "pid": None,
        "started_at": None,
        "heartbeat_at": None,
        "stopped_at": None,
    }
    if record is not None:
        base.update(
            pid=record.pid,
            started_at=_seconds(record.started_ns),
            heartbeat_at=_seconds(record.heartbeat_ns),
            stopped_at=_seconds(record.stopped_ns),
        )
    if lock.held and (record is None or lock.pid != record.pid):
        # a service holds the state directory but has not written its row yet: it is starting
        return base | {
            "state": "starting",
            "running": True,
            "pid": lock.pid,
            "started_at": None,
            "heartbeat_at": None,
            "stopped_at": None,
        }
    if record is None:
        return base
    if record.stopped_ns is not None:
        return base | {"state": "stopped"}
    alive = lock.held if lock.held is not None else _alive(record.pid)
    if not alive:
        return base | {"state": "stopped", "reason": "killed or crashed: it did not stop cleanly"}
    if now - record.heartbeat_ns / 1e9 > NOT_RESPONDING_AFTER_S:
        return base | {"state": "not responding"}
    return base | {"state": "running", "running": True}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (the service account)
    return True


def _sync_item(
    sync: Any, record: Any, health: dict[int, Any], service: dict[str, Any], service_record: Any, journal: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": sync.name,
        "source": str(sync.source),
        "target": str(sync.target),
        "state": "stopped",
        "activity": None,
        "reason": "",
        "failing_since": None,
        "error": None,
        "error_at": None,
    }
    row = health.get(record.id) if record is not None else None
    if row is not None:
        item.update(
            failing_since=_seconds(row.failing_since_ns),
            error=row.last_error,
            error_at=_seconds(row.last_error_ns),
        )
    if service["state"] == "starting":
        item.update(state="ok", activity="starting")
    elif service["running"]:
        if row is None or row.updated_ns < service_record.started_ns:  # a row of an earlier run
            item["reason"] = "the running service does not run this sync (configured after it started?)"
        else:
            item.update(
                state="failing" if row.failing_since_ns is not None else "ok",
                activity=row.activity,
                reason=row.reason or "",
            )
    elif not service["running"] and not sync.source.is_dir():
        item["reason"] = "source folder is missing"
    if record is not None:
        stats = journal.stats(record.id)
        item.update(_stats(stats))
        item["verification"] = _verification(sync, journal.verify_state(record.id))
        if stats.parked:
            item["parked_changes"] = [
                {"path": q.path, "kind": q.kind.value, "attempts": q.attempts, "error": q.last_error}
                for q in journal.pending(record.id)
                if q.parked
            ][:MAX_PARKED_SHOWN]
    return item


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


def _verification(sync: SyncConfig, state: VerifyState | None) -> dict[str, Any] | None:
    """Continuous verification (D21): its budget, when everything was last fully verified, and the
    mismatches found; None for a sync that has never been verified and does not ask for it."""
    if sync.verify is None and state is None:
        return None
    budget = None
    if sync.verify is not None:
        budget = (
            {"bytes_per_day": sync.verify.bytes_per_day}
            if sync.verify.bytes_per_day is not None
            else {"objects_per_day": sync.verify.objects_per_day}
        )
    return {
        "budget": budget,
        "last_full": _seconds(state.last_full_ns) if state is not None else None,
        "rounds": state.rounds if state is not None else 0,
        "checked": state.checked if state is not None else 0,
        "mismatches": state.mismatches if state is not None else 0,
        "last_mismatch": _seconds(state.last_mismatch_ns) if state is not None else None,
        "round_at": state.cursor if state is not None else None,
    }


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e9, 3)


# --------------------------------------------------------------------------------------------------
# text


def render(report: dict[str, Any]) -> str:
    now = time.time()
    lines = [_service_line(report["service"], now)]
    for s in report["syncs"]:
        lines.append("")
        lines.extend(_sync_lines(s, now))
    return "\n".join(lines)


def _service_line(svc: dict[str, Any], now: float) -> str:
    state = svc["state"]
    if state == "running":
        up = _ago(now - float(svc["started_at"])).replace(" ago", "")
        return f"service: running (pid {svc['pid']}, up {up})"
    if state == "starting":
        return f"service: starting (pid {svc['pid']})"
    if state == "not responding":
        return (
            f"service: not responding (pid {svc['pid']}, last heartbeat {_when(svc['heartbeat_at'], now)}; "
            "systemd's watchdog restarts a hung service)"
        )
    if state == "stopped" and svc["stopped_at"] is not None:
        return f"service: stopped (at {_when(svc['stopped_at'], now)})"
    if state == "stopped":
        return (
            f"service: stopped (pid {svc['pid']} {svc['reason']}; last heartbeat "
            f"{_when(svc['heartbeat_at'], now)})"
        )
    return "service: never started"


def _sync_lines(s: dict[str, Any], now: float) -> list[str]:
    if s["state"] == "failing":
        head = f"{s['name']}: failing since {_when(s['failing_since'], now)}"
        detail = [f"  error: {s['error']}"] + ([f"  now: {s['activity']}"] if s["activity"] else [])
    elif s["state"] == "ok":
        doing = s["activity"] + (f": {s['reason']}" if s["reason"] else "")
        head, detail = f"{s['name']}: ok ({doing})", []
    else:
        head = f"{s['name']}: stopped" + (f" ({s['reason']})" if s["reason"] else "")
        detail = []
        if s["failing_since"] is not None:
            detail = [f"  was failing since {_when(s['failing_since'], now)}: {s['error']}"]
    lines = [head, *detail, f"  {s['source']} -> {s['target']}"]
    if "queue_depth" not in s:
        return lines
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
    if s.get("verification") is not None:
        lines.append(_verification_line(s["verification"], now))
    if s.get("parked_changes"):
        lines.append("  parked (retried after the next clean rescan, or when the file changes):")
        for p in s["parked_changes"][:10]:
            lines.append(f"    {p['path']}: {p['attempts']} attempts, {p['error']}")
    if s["last_errors"]:
        lines.append("  last errors:")
        for e in s["last_errors"][:5]:
            where = f"{e['path']}: " if e["path"] else ""
            lines.append(f"    {_when(e['at'], now)}  {where}{e['message']}")
    return lines


def _verification_line(v: dict[str, Any], now: float) -> str:
    if v["budget"] is None:
        budget = "off"
    elif "bytes_per_day" in v["budget"]:
        budget = f"{_bytes(v['budget']['bytes_per_day'])} a day"
    else:
        budget = f"{v['budget']['objects_per_day']} objects a day"
    last = "never" if v["last_full"] is None else _when(v["last_full"], now)
    found = v["mismatches"]
    mismatches = f"{found} mismatch{'es' if found != 1 else ''} found"
    if v["last_mismatch"] is not None:
        mismatches += f", the last {_when(v['last_mismatch'], now)}"
    return f"  verification ({budget}): last fully verified {last}; {mismatches}"


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
