"""The words a person reads for each kind of work (docs/decisions.md D12): the plan of ``--dry-run``,
the per-file lines of ``-v`` and the summary say the same thing the same way.

| operation | planned (``--dry-run``) | done (``-v``) |
|---|---|---|
| Upload | ``upload`` | ``uploaded`` |
| Copy | ``copy`` (renamed from … when the plan deletes the source, else same content as …) | ``copied`` |
| Adopt | ``record`` (already in the bucket / folder, if the content matches) | ``recorded`` |
| Download | ``download`` | ``downloaded`` |
| DeleteRemote, DeleteLocal | ``delete`` | ``deleted`` |
| Forget | not shown: it drops a journal record of a path gone from both sides, nothing is transferred |

``record`` is not a transfer: the file is hashed and, when the destination already holds it, only the
journal is written. Reasons are the planner's codes said in words. Pure: imports the model only.
"""

from __future__ import annotations

import enum
from collections.abc import Container
from typing import NamedTuple

from ks3sync.model import Action, Adopt, Copy, DeleteLocal, DeleteRemote, Download, Forget, Operation, Upload

# The planner's reason codes (plan/upload.py, plan/download.py, the service's decisions) in words.
REASONS = {
    "new": "new",
    "changed": "changed",
    "local-changed": "changed locally",
    "remote-changed": "changed in the bucket",
    "remote-differs": "differs from the bucket",
    "remote-missing": "missing from the bucket",
    "size-differs": "size differs",
    "checksum-differs": "content differs",
    "encryption-changed": "encryption setting changed",
    "renamed": "renamed",
}

# What the executor did -> the past-tense word shown; None: not shown.
DONE: dict[str, str | None] = {
    Action.UPLOADED: "uploaded",
    Action.COPIED: "copied",
    Action.ADOPTED: "recorded",
    Action.DOWNLOADED: "downloaded",
    Action.DELETED: "deleted",
    Action.FORGOTTEN: None,
}


class Planned(enum.StrEnum):
    """What ``--dry-run`` says it would do with an entry (the word shown and the JSON plan's ``action``)."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    COPY = "copy"
    RECORD = "record"
    DELETE = "delete"


class PlanRow(NamedTuple):
    action: Planned
    path: str
    reason: str  # in words
    source: str | None = None  # a copy's source path


def reason_words(code: str) -> str:
    return REASONS.get(code, code.replace("-", " "))


def where_it_is(upload: bool) -> str:
    return "already in the bucket" if upload else "already in the folder"


def plan_row(op: Operation, *, upload: bool, deleted: Container[str] = ()) -> PlanRow | None:
    """How ``--dry-run`` shows one planned operation (None: nothing to show). ``deleted``: the paths the
    plan deletes; a copy from one of them is a rename."""
    if isinstance(op, Upload):
        return PlanRow(Planned.UPLOAD, op.path, reason_words(op.reason))
    if isinstance(op, Copy):
        renamed = op.reason == "renamed" or op.source_path in deleted
        how = "renamed from" if renamed else "same content as"
        return PlanRow(Planned.COPY, op.path, f"{how} {op.source_path}", op.source_path)
    if isinstance(op, Adopt):
        return PlanRow(Planned.RECORD, op.path, f"{where_it_is(upload)}, if the content matches")
    if isinstance(op, Download):
        return PlanRow(Planned.DOWNLOAD, op.path, reason_words(op.reason))
    if isinstance(op, DeleteRemote):
        return PlanRow(
            Planned.DELETE,
            op.path,
            "not in the source" if op.reason == "not-in-source" else reason_words(op.reason),
        )
    if isinstance(op, DeleteLocal):
        return PlanRow(
            Planned.DELETE,
            op.path,
            "not in the bucket" if op.reason == "not-in-source" else reason_words(op.reason),
        )
    if isinstance(op, Forget):
        return None
    raise TypeError(f"unknown operation {op!r}")


def plan_line(row: PlanRow) -> str:
    return f"{row.action:<8} {row.path} ({row.reason})"


def done_line(path: str, action: str, op: Operation | None, *, upload: bool) -> str | None:
    """The ``-v`` line for an entry that succeeded (None: not shown)."""
    word = DONE.get(action, action)
    if word is None:
        return None
    if action == Action.COPIED and isinstance(op, Copy):
        how = "renamed from" if op.reason == "renamed" else "server-side, from"
        return f"{word} {path} ({how} {op.source_path})"
    if action == Action.ADOPTED:
        return f"{word} {path} ({where_it_is(upload)})"
    return f"{word} {path}"
