"""The pure planner: (local entries, remote entries, journal records, options) -> ``model.Plan``.

The three inputs are path-sorted streams marched side by side (``plan.march``), so a pass holds the
changes, not the files. Owns the decision tables of ``plan_upload`` / ``plan_download`` (and their
phased forms ``march_upload`` ... ``finish_upload``, ``march_download``; the rows for a path on both
sides are one table for both directions, ``plan.compare``), the max-delete guard and the safety
check for keys that become local paths. Must not import: I/O modules, ``ks3sync.journal``,
``ks3sync.store``, ``ks3sync.transfer``, httpx, sqlalchemy, or anything that reads a clock (an
import-linter contract enforces the package part). Everything here is a function of its arguments,
which is what lets the property tests in ``tests/plan`` explore it.
"""

from ks3sync.plan.download import DownloadPlan, march_download, plan_download
from ks3sync.plan.guard import withhold_deletes_under
from ks3sync.plan.keys import is_directory_marker, unsafe_reason
from ks3sync.plan.march import OutOfOrderError
from ks3sync.plan.options import DeleteGuardError, PlanOptions
from ks3sync.plan.upload import (
    NO_SOURCES,
    CopySources,
    UploadMarch,
    collect_copy_sources,
    finish_upload,
    hash_candidates,
    march_upload,
    plan_upload,
)

__all__ = [
    "NO_SOURCES",
    "CopySources",
    "DeleteGuardError",
    "DownloadPlan",
    "OutOfOrderError",
    "PlanOptions",
    "UploadMarch",
    "collect_copy_sources",
    "finish_upload",
    "hash_candidates",
    "is_directory_marker",
    "march_download",
    "march_upload",
    "plan_download",
    "plan_upload",
    "unsafe_reason",
    "withhold_deletes_under",
]
