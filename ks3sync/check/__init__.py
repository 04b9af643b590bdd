"""``ks3sync check``: compare a local folder with ks3://bucket/prefix without transferring anything.

- ``compare``: the pure core, one path on both sides (local entry, listed object, journal record) → a
  typed ``Verdict`` (equal, differ, missing, extra, error, unverified), or the next step (HEAD, hash,
  download); its decision table is in its docstring, the choices in docs/decisions.md D14.
- ``local``: one read of a local file for MD5, CRC-64 and multipart ETags, with the changed-while-read check.
- ``download``: ``--download``, an object read back (decrypted) and compared byte for byte, streaming.
- ``examine``: the I/O of one path's steps, on a worker thread, ending in a verdict.
- ``run``: the march of the scan, the listing and the journal's records, verdicts in path order
  through a bounded window.

The service's continuous verification can reuse ``compare`` and ``examine`` per journal record.
Must not import: the journal, the protocol client, the CLI, the daemon.
"""

from ks3sync.check.compare import CompareOptions, Method, Status, Verdict
from ks3sync.check.run import CheckOptions, CheckResult, run_check

__all__ = ["CheckOptions", "CheckResult", "CompareOptions", "Method", "Status", "Verdict", "run_check"]
