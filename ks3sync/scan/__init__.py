"""The local side: walking a sync root into ``LocalEntry`` values (UTF-8 byte order), exclusion rules
(``--exclude``, ``--exclude-from``, ``.ks3ignore``) and file identity checks.

Must not import: the journal, the store, the transfer engine, the planner, the CLI, httpx.
"""

from ks3sync.scan.filters import IGNORE_FILE, TMP_PREFIX, Filters, FiltersError
from ks3sync.scan.identity import changed_since, identity_of_fd, stat_identity
from ks3sync.scan.walk import KINDS, MAX_KEY_BYTES, ScanProblem, ScanRootError, ScanWorkerError, scan_tree

__all__ = [
    "IGNORE_FILE",
    "KINDS",
    "MAX_KEY_BYTES",
    "TMP_PREFIX",
    "Filters",
    "FiltersError",
    "ScanProblem",
    "ScanRootError",
    "ScanWorkerError",
    "changed_since",
    "identity_of_fd",
    "scan_tree",
    "stat_identity",
]
