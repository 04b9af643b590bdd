"""The service's change queue inside the journal: coalescing per path, claiming, retry and parking.

Rules (each keeps "the remote ends equal to the folder" and per-path order, invariants 2 and 3):
- One *pending* (unclaimed) row per path. A new change replaces it: a later UPSERT replaces an UPSERT,
  DELETE after UPSERT is a DELETE, UPSERT after DELETE is an UPSERT. Replacing resets attempts/parking
  (new content deserves a new chance), keeps the earliest ``observed_ns`` and takes the new ``due_ns``
  (debounce: act once the path has been quiet).
- A MOVE row at ``dst`` owns the deletion of its ``src`` (copy first, delete the source after). So:
  * any change to a path that a pending MOVE reads from turns that MOVE into an UPSERT of its ``dst``
    (the object it would copy is about to change; uploading the file is always correct);
  * a row that replaces a MOVE queues a DELETE of the MOVE's ``src`` unless ``src`` has its own row;
  * MOVE s->d when s has a pending UPSERT (content never uploaded): d UPSERT, s DELETE;
    when s has a pending DELETE: d UPSERT; when s has a pending MOVE t->s: d MOVE t->d and s DELETE
    (a rename back, d == t, arrives here as the UPSERT case: the pending move from d was unpinned);
    a MOVE onto itself is an UPSERT.
- Claims: rows handed out by ``due_changes`` are marked claimed (in flight). A change arriving for a
  claimed path gets a new pending row that is not handed out while any claimed row touches its path or
  source. ``release_claims`` (service start-up) returns claims of a process that died. When a claimed
  row fails or its process died, pending moves that would copy from its path upload instead: the object
  there is not the one they were queued behind.

Written against the raw sqlite3 cursor of the journal's writer connection, inside the caller's
transaction: this is the service's hot path (a burst of 1,000 events is one call), and SQLAlchemy's
statement construction cost ~10x the SQL itself here. Imports: sqlite3 + the journal's types.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ks3sync.journal.types import Change, ChangeKind, QueuedChange

MAX_ERROR_CHARS = 1000

_UPSERT, _DELETE, _MOVE = ChangeKind.UPSERT.value, ChangeKind.DELETE.value, ChangeKind.MOVE.value

_COLUMNS = "id, sync_id, path, kind, src_path, observed_ns, due_ns, attempts, last_error, parked, claimed"


class _Row(NamedTuple):
    id: int
    sync_id: int
    path: str
    kind: str
    src_path: str | None
    observed_ns: int
    due_ns: int
    attempts: int
    last_error: str | None
    parked: int
    claimed: int


def _rows(cur: sqlite3.Cursor) -> list[_Row]:
    return [_Row(*r) for r in cur.fetchall()]


def enqueue(db: sqlite3.Connection, sync_id: int, batch: Iterable[Change]) -> None:
    for change in batch:
        _apply(db, sync_id, change)


def _apply(db: sqlite3.Connection, sync_id: int, ch: Change) -> None:
    path = ch.path
    if ch.kind is ChangeKind.MOVE and ch.src_path != path:
        src = ch.src_path
        assert src is not None
        _unpin_moves_from(db, sync_id, path)  # the object at path is about to be replaced
        _unpin_moves_from(db, sync_id, src)
        srow = _pending(db, sync_id, src)
        if srow is None:
            # The plain rename: copy src -> path server-side, then delete src.
            _put(db, sync_id, path, _MOVE, src, ch)
        elif srow.kind == _UPSERT:
            # src's content never reached the bucket: upload it under its new name, drop the old object.
            _put(db, sync_id, path, _UPSERT, None, ch)
            _put(db, sync_id, src, _DELETE, None, ch)
        elif srow.kind == _DELETE:
            # Nothing trustworthy to copy from: upload; src keeps its pending DELETE.
            _put(db, sync_id, path, _UPSERT, None, ch)
        else:
            # A chain t -> src -> path is one move t -> path; whatever object src held before the first
            # rename is not in the folder any more, so src becomes a DELETE (this row no longer owes
            # t's deletion: the new move does).
            _put(db, sync_id, path, _MOVE, srow.src_path, ch)
            db.execute(
                "UPDATE changes SET kind = 'delete', src_path = NULL, attempts = 0, last_error = NULL,"
                " parked = 0, due_ns = ? WHERE id = ?",
                (ch.due_ns, srow.id),
            )
        return
    # UPSERT, DELETE (and a move onto itself, which is an upsert).
    kind = _DELETE if ch.kind is ChangeKind.DELETE else _UPSERT
    _unpin_moves_from(db, sync_id, path)
    _put(db, sync_id, path, kind, None, ch)


def _pending(db: sqlite3.Connection, sync_id: int, path: str) -> _Row | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM changes WHERE sync_id = ? AND path = ? AND claimed = 0", (sync_id, path)
    ).fetchone()
    return None if row is None else _Row(*row)


def _unpin_moves_from(db: sqlite3.Connection, sync_id: int, src: str) -> None:
    """Pending moves that would copy from ``src`` upload their file instead."""
    db.execute(
        "UPDATE changes SET kind = 'upsert', src_path = NULL"
        " WHERE sync_id = ? AND src_path = ? AND claimed = 0 AND kind = 'move'",
        (sync_id, src),
    )


def _put(db: sqlite3.Connection, sync_id: int, path: str, kind: str, src: str | None, ch: Change) -> None:
    """Make the pending row of ``path`` say (kind, src), replacing whatever was pending."""
    row = _pending(db, sync_id, path)
    if row is None:
        db.execute(
            "INSERT INTO changes (sync_id, path, kind, src_path, observed_ns, due_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (sync_id, path, kind, src, ch.observed_ns, ch.due_ns),
        )
        return
    if row.kind == _MOVE and row.src_path is not None and (kind, src) != (_MOVE, row.src_path):
        # The replaced move would have deleted its source; someone still must.
        _delete_unless_pending(db, sync_id, row.src_path, ch)
    db.execute(
        "UPDATE changes SET kind = ?, src_path = ?, observed_ns = ?, due_ns = ?, attempts = 0,"
        " last_error = NULL, parked = 0 WHERE id = ?",
        (kind, src, min(row.observed_ns, ch.observed_ns), ch.due_ns, row.id),
    )


def _delete_unless_pending(db: sqlite3.Connection, sync_id: int, path: str, ch: Change) -> None:
    # A pending row for the path (an upload of new content, a delete, a move onto it) already decides
    # its final state; otherwise queue the delete.
    if _pending(db, sync_id, path) is None:
        db.execute(
            "INSERT INTO changes (sync_id, path, kind, src_path, observed_ns, due_ns) VALUES (?, ?, 'delete', NULL, ?, ?)",
            (sync_id, path, ch.observed_ns, ch.due_ns),
        )


# Candidates in due order (index ix_changes_due). Claimed rows are few (at most the worker count) and
# found through the partial index ix_changes_claimed; the per-path exclusion is then done in Python.
_DUE = f"""
SELECT {_COLUMNS} FROM changes
WHERE sync_id = ? AND parked = 0 AND due_ns <= ? AND claimed = 0
ORDER BY due_ns, id
"""
_CLAIMED = "SELECT path, src_path FROM changes WHERE sync_id = ? AND claimed = 1"


def due_changes(db: sqlite3.Connection, sync_id: int, now_ns: int, limit: int, *, claim: bool) -> list[QueuedChange]:
    """Pending, unparked rows whose due time has come, earliest due first (then oldest id), whose
    path and source are not touched by any claimed row nor by another row of the same batch."""
    busy: set[str] = set()
    for path, src in db.execute(_CLAIMED, (sync_id,)):
        busy.add(path)
        if src is not None:
            busy.add(src)
    picked: list[QueuedChange] = []
    cur = db.execute(_DUE, (sync_id, now_ns))
    while len(picked) < limit:
        chunk = cur.fetchmany(max(64, limit))
        if not chunk:
            break
        for raw in chunk:
            row = _Row(*raw)
            touched = {row.path} if row.src_path is None else {row.path, row.src_path}
            if touched & busy:
                continue  # in flight, or already in this batch: per-path order first
            busy |= touched
            picked.append(_to_queued(row, claimed=claim))
            if len(picked) >= limit:
                break
    cur.close()
    if claim and picked:
        db.executemany("UPDATE changes SET claimed = 1 WHERE id = ?", [(q.id,) for q in picked])
    return picked


def all_changes(db: sqlite3.Connection, sync_id: int) -> list[QueuedChange]:
    cur = db.execute(f"SELECT {_COLUMNS} FROM changes WHERE sync_id = ? ORDER BY id", (sync_id,))
    return [_to_queued(row, claimed=bool(row.claimed)) for row in _rows(cur)]


def mark_done(db: sqlite3.Connection, change_ids: Sequence[int]) -> None:
    db.executemany("DELETE FROM changes WHERE id = ?", [(i,) for i in change_ids])


def mark_failed(db: sqlite3.Connection, change_id: int, error: str, retry_at_ns: int, park: bool) -> _Row | None:
    """Back to pending with one more attempt, or dropped if a newer change superseded it. Returns the
    row as it was (``None`` if it no longer exists)."""
    found = db.execute(f"SELECT {_COLUMNS} FROM changes WHERE id = ?", (change_id,)).fetchone()
    if found is None:
        return None
    row = _Row(*found)
    error = " ".join(error.split())[:MAX_ERROR_CHARS]
    # Moves queued behind this operation expected its result at row.path: the object there is not
    # what they would copy.
    _unpin_moves_from(db, row.sync_id, row.path)
    if row.claimed and _drop_if_superseded(db, row, retry_at_ns):
        return row
    kind, src = row.kind, row.src_path
    if row.kind == _MOVE and src is not None and _pending(db, row.sync_id, src) is not None:
        # Its source changed while it was in flight: copying now would copy the wrong content.
        kind, src = _UPSERT, None
    db.execute(
        "UPDATE changes SET claimed = 0, attempts = attempts + 1, last_error = ?, due_ns = ?, parked = ?,"
        " kind = ?, src_path = ? WHERE id = ?",
        (error, retry_at_ns, int(park), kind, src, row.id),
    )
    return row


def _drop_if_superseded(db: sqlite3.Connection, row: _Row, due_ns: int) -> bool:
    """A claimed row going back to pending while a newer pending row exists for its path: the newer
    one decides the path's final state, so drop this one (a move still owes its source's deletion)."""
    newer = _pending(db, row.sync_id, row.path)
    if newer is None:
        return False
    db.execute("DELETE FROM changes WHERE id = ?", (row.id,))
    if row.kind == _MOVE and row.src_path is not None and not (
        newer.kind == _MOVE and newer.src_path == row.src_path
    ):
        _delete_unless_pending(db, row.sync_id, row.src_path,
                               Change(row.path, ChangeKind.UPSERT, observed_ns=row.observed_ns, due_ns=due_ns))
    return True


def release_claims(db: sqlite3.Connection, sync_id: int) -> int:
    """Return rows claimed by a process that is gone to the pending state (or drop them when a newer
    pending row for the same path supersedes them)."""
    cur = db.execute(f"SELECT {_COLUMNS} FROM changes WHERE sync_id = ? AND claimed = 1", (sync_id,))
    rows = _rows(cur)
    for row in rows:
        _unpin_moves_from(db, sync_id, row.path)  # the operation may or may not have reached KS3
        if not _drop_if_superseded(db, row, row.due_ns):
            db.execute("UPDATE changes SET claimed = 0 WHERE id = ?", (row.id,))
    return len(rows)


def unpark(db: sqlite3.Connection, sync_id: int, now_ns: int) -> int:
    cur = db.execute(
        "UPDATE changes SET parked = 0, attempts = 0, due_ns = ? WHERE sync_id = ? AND parked = 1",
        (now_ns, sync_id),
    )
    return cur.rowcount


def _to_queued(row: _Row, *, claimed: bool) -> QueuedChange:
    return QueuedChange(
        id=row.id, path=row.path, kind=ChangeKind(row.kind), src_path=row.src_path,
        observed_ns=row.observed_ns, due_ns=row.due_ns, attempts=row.attempts,
        last_error=row.last_error, parked=bool(row.parked), claimed=claimed,
    )
