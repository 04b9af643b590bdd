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

The service's hot path (a burst of 1,000 events is one call, several statements per change): Core
statements over ``schema.changes``, compiled once and run on the writer's DBAPI connection inside the
caller's transaction (``sql.Prepared``: SQLAlchemy's own execute costs several times the SQL itself; D16).
Imports: SQLAlchemy, sqlite3, the journal's schema, statements and types.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import bindparam, delete, false, insert, literal_column, null, select, true, update

from ks3sync.journal.schema import changes
from ks3sync.journal.sql import Prepared
from ks3sync.journal.types import Change, ChangeKind, QueuedChange

MAX_ERROR_CHARS = 1000

_UPSERT, _DELETE, _MOVE = ChangeKind.UPSERT.value, ChangeKind.DELETE.value, ChangeKind.MOVE.value


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


c = changes.c
_ROWS = select(
    c.id,
    c.sync_id,
    c.path,
    c.kind,
    c.src_path,
    c.observed_ns,
    c.due_ns,
    c.attempts,
    c.last_error,
    c.parked,
    c.claimed,
)
assert tuple(col.name for col in _ROWS.selected_columns) == _Row._fields
_PENDING = Prepared(
    _ROWS.where(c.sync_id == bindparam("sync"), c.path == bindparam("path"), c.claimed == false()),
    "sync",
    "path",
)
_UNPIN = Prepared(
    update(changes)
    .where(
        c.sync_id == bindparam("sync"),
        c.src_path == bindparam("src"),
        c.claimed == false(),
        c.kind == bindparam("move"),
    )
    .values(kind=bindparam("upsert"), src_path=null()),
    "upsert",
    "sync",
    "src",
    "move",
)
_INSERT = Prepared(
    insert(changes).values(
        sync_id=bindparam("i_sync"),
        path=bindparam("i_path"),
        kind=bindparam("i_kind"),
        src_path=bindparam("i_src"),
        observed_ns=bindparam("i_observed"),
        due_ns=bindparam("i_due"),
    ),
    "i_sync",
    "i_path",
    "i_kind",
    "i_src",
    "i_observed",
    "i_due",
)
# A fresh start for a replaced row (new content deserves a new chance). SET renders in column order.
_REPLACE = Prepared(
    update(changes)
    .where(c.id == bindparam("row"))
    .values(
        kind=bindparam("r_kind"),
        src_path=bindparam("r_src"),
        observed_ns=bindparam("r_observed"),
        due_ns=bindparam("r_due"),
        attempts=literal_column("0"),
        last_error=null(),
        parked=false(),
    ),
    "r_kind",
    "r_src",
    "r_observed",
    "r_due",
    "row",
)
_BECOME_DELETE = Prepared(
    update(changes)
    .where(c.id == bindparam("row"))
    .values(
        kind=bindparam("delete"),
        src_path=null(),
        due_ns=bindparam("r_due"),
        attempts=literal_column("0"),
        last_error=null(),
        parked=false(),
    ),
    "delete",
    "r_due",
    "row",
)
# Candidates in due order (index ix_changes_due). Claimed rows are few (at most the worker count) and
# found through the partial index ix_changes_claimed; the per-path exclusion is then done in Python.
_DUE = Prepared(
    _ROWS.where(
        c.sync_id == bindparam("sync"),
        c.parked == false(),
        c.due_ns <= bindparam("now"),
        c.claimed == false(),
    ).order_by(c.due_ns, c.id),
    "sync",
    "now",
)
_CLAIMED = Prepared(
    select(c.path, c.src_path).where(c.sync_id == bindparam("sync"), c.claimed == true()), "sync"
)
_CLAIM = Prepared(update(changes).where(c.id == bindparam("row")).values(claimed=true()), "row")
_ALL = Prepared(_ROWS.where(c.sync_id == bindparam("sync")).order_by(c.id), "sync")
_ROW = Prepared(_ROWS.where(c.id == bindparam("row")), "row")
_CLAIMED_ROWS = Prepared(_ROWS.where(c.sync_id == bindparam("sync"), c.claimed == true()), "sync")
_DELETE_ROW = Prepared(delete(changes).where(c.id == bindparam("row")), "row")
_RETRY = Prepared(
    update(changes)
    .where(c.id == bindparam("row"))
    .values(
        claimed=false(),
        attempts=c.attempts + literal_column("1"),
        last_error=bindparam("f_error"),
        due_ns=bindparam("f_due"),
        parked=bindparam("f_parked"),
        kind=bindparam("f_kind"),
        src_path=bindparam("f_src"),
    ),
    "f_kind",
    "f_src",
    "f_due",
    "f_error",
    "f_parked",
    "row",
)
_UNCLAIM = Prepared(update(changes).where(c.id == bindparam("row")).values(claimed=false()), "row")
_UNPARK = Prepared(
    update(changes)
    .where(c.sync_id == bindparam("sync"), c.parked == true())
    .values(parked=false(), attempts=literal_column("0"), due_ns=bindparam("u_due")),
    "u_due",
    "sync",
)
del c


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
            _BECOME_DELETE.run(db, (_DELETE, ch.due_ns, srow.id))
        return
    # UPSERT, DELETE (and a move onto itself, which is an upsert).
    kind = _DELETE if ch.kind is ChangeKind.DELETE else _UPSERT
    _unpin_moves_from(db, sync_id, path)
    _put(db, sync_id, path, kind, None, ch)


def _pending(db: sqlite3.Connection, sync_id: int, path: str) -> _Row | None:
    row = _PENDING.one(db, (sync_id, path))
    return None if row is None else _Row(*row)


def _unpin_moves_from(db: sqlite3.Connection, sync_id: int, src: str) -> None:
    """Pending moves that would copy from ``src`` upload their file instead."""
    _UNPIN.run(db, (_UPSERT, sync_id, src, _MOVE))


def _put(db: sqlite3.Connection, sync_id: int, path: str, kind: str, src: str | None, ch: Change) -> None:
    """Make the pending row of ``path`` say (kind, src), replacing whatever was pending."""
    row = _pending(db, sync_id, path)
    if row is None:
        _INSERT.run(db, (sync_id, path, kind, src, ch.observed_ns, ch.due_ns))
        return
    if row.kind == _MOVE and row.src_path is not None and (kind, src) != (_MOVE, row.src_path):
        # The replaced move would have deleted its source; someone still must.
        _delete_unless_pending(db, sync_id, row.src_path, ch)
    _REPLACE.run(db, (kind, src, min(row.observed_ns, ch.observed_ns), ch.due_ns, row.id))


def _delete_unless_pending(db: sqlite3.Connection, sync_id: int, path: str, ch: Change) -> None:
    # A pending row for the path (an upload of new content, a delete, a move onto it) already decides
    # its final state; otherwise queue the delete.
    if _pending(db, sync_id, path) is None:
        _INSERT.run(db, (sync_id, path, _DELETE, None, ch.observed_ns, ch.due_ns))


def due_changes(
    db: sqlite3.Connection, sync_id: int, now_ns: int, limit: int, *, claim: bool
) -> list[QueuedChange]:
    """Pending, unparked rows whose due time has come, earliest due first (then oldest id), whose
    path and source are not touched by any claimed row nor by another row of the same batch."""
    busy: set[str] = set()
    for path, src in _CLAIMED.run(db, (sync_id,)):
        busy.add(path)
        if src is not None:
            busy.add(src)
    picked: list[QueuedChange] = []
    cur = _DUE.run(db, (sync_id, now_ns))
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
        _CLAIM.run_many(db, [(q.id,) for q in picked])
    return picked


def all_changes(db: sqlite3.Connection, sync_id: int) -> list[QueuedChange]:
    return [_to_queued(row, claimed=bool(row.claimed)) for row in _rows(_ALL.run(db, (sync_id,)))]


def mark_done(db: sqlite3.Connection, change_ids: Sequence[int]) -> None:
    _DELETE_ROW.run_many(db, [(i,) for i in change_ids])


def mark_failed(
    db: sqlite3.Connection, change_id: int, error: str, retry_at_ns: int, park: bool
) -> _Row | None:
    """Back to pending with one more attempt, or dropped if a newer change superseded it. Returns the
    row as it was (``None`` if it no longer exists)."""
    found = _ROW.one(db, (change_id,))
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
    _RETRY.run(db, (kind, src, retry_at_ns, error, int(park), row.id))
    return row


def _drop_if_superseded(db: sqlite3.Connection, row: _Row, due_ns: int) -> bool:
    """A claimed row going back to pending while a newer pending row exists for its path: the newer
    one decides the path's final state, so drop this one (a move still owes its source's deletion)."""
    newer = _pending(db, row.sync_id, row.path)
    if newer is None:
        return False
    _DELETE_ROW.run(db, (row.id,))
    if (
        row.kind == _MOVE
        and row.src_path is not None
        and not (newer.kind == _MOVE and newer.src_path == row.src_path)
    ):
        _delete_unless_pending(
            db,
            row.sync_id,
            row.src_path,
            Change(row.path, ChangeKind.UPSERT, observed_ns=row.observed_ns, due_ns=due_ns),
        )
    return True


def release_claims(db: sqlite3.Connection, sync_id: int) -> int:
    """Return rows claimed by a process that is gone to the pending state (or drop them when a newer
    pending row for the same path supersedes them)."""
    rows = _rows(_CLAIMED_ROWS.run(db, (sync_id,)))
    for row in rows:
        _unpin_moves_from(db, sync_id, row.path)  # the operation may or may not have reached KS3
        if not _drop_if_superseded(db, row, row.due_ns):
            _UNCLAIM.run(db, (row.id,))
    return len(rows)


def unpark(db: sqlite3.Connection, sync_id: int, now_ns: int) -> int:
    return _UNPARK.run(db, (now_ns, sync_id)).rowcount


def _to_queued(row: _Row, *, claimed: bool) -> QueuedChange:
    return QueuedChange(
        id=row.id,
        path=row.path,
        kind=ChangeKind(row.kind),
        src_path=row.src_path,
        observed_ns=row.observed_ns,
        due_ns=row.due_ns,
        attempts=row.attempts,
        last_error=row.last_error,
        parked=bool(row.parked),
        claimed=claimed,
    )
