"""Planner options and the delete-guard error. Pure values: imports only the standard library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What a pass is allowed to do.

    ``max_delete`` (a count) and ``max_delete_percent`` (of the objects on the destination side) bound
    the deletes of one pass; ``None`` switches that bound off. ``force`` lifts every guard, including
    the empty-source one. ``strict_guard`` chooses how a tripped guard is reported: ``False`` (default)
    returns a plan whose deletes are withheld (``Plan.refused_deletes`` + a warning) so the transfers
    still happen; ``True`` raises :class:`DeleteGuardError` so the caller can refuse the whole pass. ``encrypt`` says whether
    the sync stores (upload) or reads (download) client-side encrypted objects: a journal record made
    with the other setting is out of date, and ciphertext sizes are not compared with plaintext ones.
    ``delete_excluded`` (with ``delete``) also deletes destination entries that the exclusion rules
    exclude (see ``plan.exclude``)."""

    delete: bool = False
    delete_excluded: bool = False
    checksum: bool = False
    max_delete: int | None = None
    max_delete_percent: float | None = 50.0
    force: bool = False
    strict_guard: bool = False
    encrypt: bool = False  # this sync stores client-side encrypted objects (records must agree)


class DeleteGuardError(Exception):
    """The pass would delete more than the guard allows (or the source side looks empty).

    The message is one line that names the numbers and the way out (``--max-delete`` / ``--force``)."""

    def __init__(self, message: str, *, would_delete: int, destination_count: int) -> None:
        super().__init__(message)
        self.would_delete = would_delete
        self.destination_count = destination_count
