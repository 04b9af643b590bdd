"""The delete guards (invariant 4). The max-delete guard: an emptied or unmounted source never wipes the
destination, and a pass that would delete "too much" is held back unless forced. And no delete under a
path the scan could not read: an unreadable folder must not look like an empty one.
Pure: standard library + model."""

from __future__ import annotations

from collections.abc import Sequence

from ks3sync.model import Operation
from ks3sync.plan.options import DeleteGuardError, PlanOptions


def guard_deletes(
    deletes: list[Operation], *, source_count: int, destination_count: int, opts: PlanOptions
) -> tuple[tuple[Operation, ...], int, tuple[str, ...]]:
    """Return ``(deletes allowed, deletes refused, warnings)``; raise :class:`DeleteGuardError` instead
    of refusing when ``opts.strict_guard`` is set. All-or-nothing: a tripped guard holds back every
    delete of the pass, because a partial delete of an unmounted source is still data loss."""
    n = len(deletes)
    if n == 0 or opts.force:
        return tuple(deletes), 0, ()
    reason = _trip_reason(n, source_count, destination_count, opts)
    if reason is None:
        return tuple(deletes), 0, ()
    if opts.strict_guard:
        raise DeleteGuardError(reason, would_delete=n, destination_count=destination_count)
    return (), n, (reason,)


def _trip_reason(n: int, source_count: int, destination_count: int, opts: PlanOptions) -> str | None:
    # An empty source next to a non-empty destination is the classic unmounted-disk accident.
    if source_count == 0 and destination_count > 0:
        return (
            f"refusing to delete {n} of {destination_count} destination entries: the source is empty "
            "(unmounted or emptied folder?); use --force to delete anyway"
        )
    # An explicit count bound.
    if opts.max_delete is not None and n > opts.max_delete:
        return (
            f"refusing to delete {n} destination entries: more than --max-delete {opts.max_delete}; "
            "raise --max-delete or use --force"
        )
    # A share of the destination: compared in integers-by-multiplication to avoid rounding at the edge.
    if opts.max_delete_percent is not None and destination_count > 0:
        if n * 100 > opts.max_delete_percent * destination_count:
            share = 100.0 * n / destination_count
            return (
                f"refusing to delete {n} of {destination_count} destination entries ({share:.1f}%): more "
                f"than --max-delete {opts.max_delete_percent:g}%; raise --max-delete or use --force"
            )
    return None


def withhold_deletes_under(
    deletes: tuple[Operation, ...], problem_paths: Sequence[str]
) -> tuple[tuple[Operation, ...], int]:
    """``(deletes kept, how many were withheld)``: a delete at or under a path the scan reported a problem
    for is withheld (a problem at the root, ``""``, withholds every delete)."""
    if not problem_paths or not deletes:
        return deletes, 0
    roots = [path.rstrip("/") for path in problem_paths]
    kept = tuple(
        op for op in deletes if not any(op.path == r or op.path.startswith(r + "/") or not r for r in roots)
    )
    return kept, len(deletes) - len(kept)
