"""The end of a ``mirror`` pass as a person or a script reads it (docs/decisions.md D12).

Text (stderr, the plan of ``--dry-run`` on stdout):

- each problem and each failure is named once, grouped by cause: one line per cause with the count and
  up to ``EXAMPLES`` paths; with ``-v`` every path, one per line under its cause. A failure's message
  usually starts with its path (``a.txt: object is encrypted; …``); the cause is the message without it,
  so 172 objects that fail for the same reason make one line;
- files the scan could not read count as failed (the pass did not sync them);
- one summary line in the words of ks3sync.cli.words; ``recorded`` entries (hashed, found already in
  the destination, nothing sent) are not counted as transfers; zero counts other than the main verb,
  ``unchanged``, ``failed`` and (with ``--delete``) ``deleted`` are left out.

``--json``: one document on stdout, ``MirrorResult.summary()`` (plus ``plan`` for a dry run), also when
entries failed or the pass stopped; a fatal error before that prints ``{"error": …, "exit": N}`` instead
(ks3sync.cli.output).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from ks3sync.cli import output
from ks3sync.cli.words import Planned, PlanRow, plan_line, plan_row, where_it_is
from ks3sync.display import human_size, json_text

if TYPE_CHECKING:
    from ks3sync.engine.mirror import MirrorResult
    from ks3sync.model import Operation

EXAMPLES = 3  # paths shown per cause without -v


@dataclass(frozen=True, slots=True)
class Group:
    cause: str
    paths: tuple[str, ...]


def cause_of(path: str, message: str) -> str:
    """``message`` without the path it names, so that the same failure of many paths reads the same:
    a leading ``a.txt: `` or ``'a.txt': `` is dropped, and the key elsewhere in it (``PUT bkt/p/a.txt:
    HTTP 403 …``, ``refusing key 'a/../b': …``) becomes ``<key>``."""
    for shown in (path, repr(path)):
        if shown and message.startswith(shown + ": "):
            return message[len(shown) + 2 :]
    if not path:
        return message
    quoted = repr(path)
    if quoted in message:  # "refusing key 'a/../b': …" -> "refusing key: …"
        return message.replace(" " + quoted, "").replace(quoted, "")
    # A whole word that is the path, or ends in "/" + the path (a bucket/prefix/key target).
    return re.sub(rf"(?<!\S)(?:\S*/)?{re.escape(path)}(?=[:\s]|$)", "<key>", message)


_REQUEST_ID = re.compile(r"\s*\(request id [^)]*\)")


def group_by_cause(items: Iterable[tuple[str, str]]) -> list[Group]:
    """(path, message) pairs grouped by cause, in order of first appearance; each path once per cause,
    sorted (workers finish in any order). Causes that differ only in the service's request id are one
    cause; the first one's id is kept for the line shown."""
    groups: dict[str, tuple[str, set[str]]] = {}
    for path, message in items:
        cause = cause_of(path, message)
        groups.setdefault(_REQUEST_ID.sub("", cause), (cause, set()))[1].add(path)
    return [Group(cause, tuple(sorted(paths))) for cause, paths in groups.values()]


def group_lines(label: str, groups: Sequence[Group], *, verbose: bool) -> list[str]:
    """``failed: a.txt: cause`` for one path; ``failed 172 files: cause (a, b, c and 169 more; -v lists
    them all)`` for more; with ``verbose``, the header and then every path on its own line, indented.
    Headers are notes (``ks3sync: `` is put in front by :func:`say_groups`), path lines start with spaces."""
    lines: list[str] = []
    for group in groups:
        paths = group.paths
        if len(paths) == 1:
            lines.append(f"{label}: {paths[0]}: {group.cause}")
            continue
        header = f"{label} {len(paths)} files: {group.cause}"
        if verbose:
            lines.append(header)
            lines.extend(f"  {path}" for path in paths)
            continue
        shown = ", ".join(paths[:EXAMPLES])
        more = f" and {len(paths) - EXAMPLES} more; -v lists them all" if len(paths) > EXAMPLES else ""
        lines.append(f"{header} ({shown}{more})")
    return lines


def say_groups(label: str, items: Iterable[tuple[str, str]], *, verbose: bool) -> None:
    """(path, message) pairs on stderr, grouped by cause (:func:`group_lines`)."""
    for text in group_lines(label, group_by_cause(items), verbose=verbose):
        if text.startswith("  "):
            output.line(text, err=True)
        else:
            output.note(text)


def plan_rows(result: MirrorResult, *, upload: bool) -> list[PlanRow]:
    if result.plan is None:
        return []
    ops: Iterable[Operation] = (*result.plan.transfers, *result.plan.deletes)
    deleted = {op.path for op in result.plan.deletes}
    return [row for row in (plan_row(op, upload=upload, deleted=deleted) for op in ops) if row is not None]


def summary_line(
    result: MirrorResult, *, upload: bool, rows: Sequence[PlanRow] = (), delete: bool = False
) -> str:
    """One line; a dry run says what it would do, from the plan's rows. The deletes are counted when
    there are some or when they were asked for (``--delete``: "deleted 0" is an answer)."""
    refused = [f"deletes refused {result.refused_deletes}"] if result.refused_deletes else []
    if result.dry_run:
        counts = Counter(row.action for row in rows)
        main = Planned.UPLOAD if upload else Planned.DOWNLOAD
        words = [f"{main} {counts[main]}"]
        words += [f"copy {counts[Planned.COPY]}"] if counts[Planned.COPY] else []
        words += [f"delete {counts[Planned.DELETE]}"] if counts[Planned.DELETE] or delete else []
        if counts[Planned.RECORD]:
            words.append(f"record {counts[Planned.RECORD]} ({where_it_is(upload)})")
        tail = [f"unchanged {result.skipped}", *refused]
        return f"dry run: would {', '.join(words)}; {', '.join(tail)}; nothing changed"
    words = [f"uploaded {result.uploaded}" if upload else f"downloaded {result.downloaded}"]
    words += [f"copied {result.copied}"] if result.copied else []
    words += [f"deleted {result.deleted}"] if result.deleted or delete else []
    if result.adopted:
        words.append(f"recorded {result.adopted} ({where_it_is(upload)})")
    words += [f"unchanged {result.skipped}", f"failed {len(result.failures)}", *refused]
    if result.deletes_skipped:
        words.append(f"deletes not run {result.deletes_skipped}")
    moved = (
        f"sent {human_size(result.bytes_sent)}" if upload else f"received {human_size(result.bytes_received)}"
    )
    return f"{', '.join(words)}; {moved} in {result.seconds:.2f} s"


def report(
    result: MirrorResult,
    *,
    upload: bool,
    as_json: bool,
    verbose: bool,
    quiet: bool,
    interrupted: bool,
    delete: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """``extra``: more fields for the JSON document (what a command did after the pass)."""
    rows = plan_rows(result, upload=upload) if result.dry_run else []
    if as_json:
        summary: dict[str, Any] = {**result.summary(), **(extra or {})}
        if result.dry_run:
            summary["plan"] = [{k: v for k, v in row._asdict().items() if v is not None} for row in rows]
        summary["interrupted"] = interrupted
        click.echo(json_text(summary, sort_keys=True))
    else:
        for row in rows:
            output.line(plan_line(row))
    failing = {path for path, _ in result.unsynced}
    if not quiet:  # what was not data (a FIFO, an unfollowed link): information, not a failure
        say_groups(
            "skipped",
            [(path, reason) for path, reason in result.problems if path not in failing],
            verbose=verbose,
        )
    for warning in result.warnings:
        output.warning(warning)
    say_groups("failed", result.failures, verbose=verbose)
    if result.stopped is not None:
        output.note(
            "interrupted: the pass stopped early; a re-run continues where it stopped"
            if interrupted
            else f"stopped: {result.stopped}"
        )
    if not as_json and not quiet:
        output.line(summary_line(result, upload=upload, rows=rows, delete=delete), err=True)
