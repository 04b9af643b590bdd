"""The pure planner: (local entries, remote entries, journal records, options) -> ``model.Plan``.

Owns the decision tables of ``plan_upload`` / ``plan_download``, the max-delete guard and the safety
check for keys that become local paths. Must not import: I/O modules, ``ks3sync.journal``,
``ks3sync.store``, ``ks3sync.transfer``, httpx, sqlalchemy, or anything that reads a clock (an
import-linter contract enforces the package part). Everything here is a function of its arguments,
which is what lets the property tests in ``tests/plan`` explore it.
"""

from ks3sync.plan.download import plan_download
from ks3sync.plan.keys import is_directory_marker, unsafe_reason
from ks3sync.plan.options import DeleteGuardError, PlanOptions
from ks3sync.plan.upload import plan_upload

__all__ = [
    "DeleteGuardError",
    "PlanOptions",
    "is_directory_marker",
    "plan_download",
    "plan_upload",
    "unsafe_reason",
]
