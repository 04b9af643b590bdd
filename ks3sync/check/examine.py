"""One path on both sides, examined: the I/O each step of ``check.compare`` asks for (a HEAD, a hash of
the local file, a download), run on a worker thread, ending in a :class:`Verdict`.

An entry that cannot be compared is a verdict too (``error``, with the reason), never an exception:
network trouble that outlived the client's retries gets ``ATTEMPTS`` tries in all, then counts as an
error. Only a fatal error (credentials refused, bucket gone) is raised: it would fail every entry.

Must not import: ks3sync.ks3, the journal, the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ks3sync.check.compare import (
    CompareOptions,
    Download,
    Hash,
    Head,
    Status,
    Step,
    Verdict,
    after_head,
    detail_of,
    settle,
)
from ks3sync.check.download import compare_download
from ks3sync.check.local import digest_file
from ks3sync.errors import EntryError, FileChangedError, TransientError, describe
from ks3sync.model import LocalEntry, RemoteEntry, SyncedEntry
from ks3sync.store.base import Store

ATTEMPTS = 3  # tries of one entry when the network fails (the client already retried each request)


@dataclass(frozen=True, slots=True)
class Examination:
    """Everything a worker needs for one path."""

    local: LocalEntry
    remote: RemoteEntry
    record: SyncedEntry | None
    step: Head | Hash | Download


def examine(store: Store, root: str, job: Examination, opts: CompareOptions) -> Verdict:
    path = job.local.path
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _run(store, root, job, opts)
        except (TransientError, FileChangedError) as exc:
            if attempt == ATTEMPTS:
                return Verdict(path, Status.ERROR, detail_of(path, describe(exc)))
        except (EntryError, OSError) as exc:
            return Verdict(path, Status.ERROR, detail_of(path, describe(exc)))
    raise AssertionError("unreachable")


def _run(store: Store, root: str, job: Examination, opts: CompareOptions) -> Verdict:
    step: Step = job.step
    if isinstance(step, Head):
        step = after_head(job.local, job.remote, job.record, store.head(job.local.path), step, opts)
    if isinstance(step, Verdict):
        return step
    if isinstance(step, Download):
        return compare_download(store, root, job.local, opts)
    assert isinstance(step, Hash)
    return settle(
        job.local.path,
        step,
        digest_file(job.local.path, os.path.join(root, job.local.path), step.hashes),
        opts,
    )
