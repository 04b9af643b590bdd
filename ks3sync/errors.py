"""The application's exception tree, classified by what the caller should do, not by where it came from.

```
Ks3SyncError                      base of everything ks3sync raises on purpose
├── UsageError                    bad command line / configuration: one line, exit 2, nothing attempted
├── FatalError                    stop the whole run cleanly (exit 1): journal unusable, service unusable.
│   │                             Retrying another entry would fail the same way.
│   ├── AuthError                 access key unknown / signature refused / access denied (CLI: exit 2)
│   ├── CertificateRefused        the endpoint's TLS certificate is not trusted (CLI: exit 2, a setup error)
│   └── BucketMissing             the bucket does not exist (CLI: exit 2, it is a usage error)
└── EntryError                    one path failed; the run goes on with the others and reports it
    ├── RetryableError            worth one more attempt later in the same pass
    │   ├── TransientError        network trouble or 5xx that outlived the client's own retries
    │   ├── IntegrityError        KS3 confirmed different bytes than we sent / a download did not verify
    │   └── FileChangedError      the local file changed while it was read (invariant 1: never recorded)
    └── PermanentError            retrying will not help
        ├── RemoteNotFound        the object (or upload) is gone
        ├── UploadGone            the multipart upload id is unknown to KS3 (restart the upload)
        ├── LocalFileError        the local file vanished or cannot be read/written
        ├── UnsafeKeyError        a key that would escape the restore folder (invariant 6)
        ├── EncryptionError       wrong key, missing key, malformed encrypted object
        └── RemoteRejected        a 4xx the service will repeat (invalid key, bad storage class, ...)
```

`StopRequested` stands apart, deliberately not a `Ks3SyncError`: it is control flow (the caller's stop
event was set while the scan or the listing was read), so no handler of errors can take it for a failure.

Lower layers (`ks3sync.ks3`'s KS3Error tree, OSError) are mapped onto this tree at one boundary each:
`ks3sync.store.ks3store` for the client, the transfer tasks for the file system. `classify()` answers
"retry, skip or stop" for any exception so the executor needs no isinstance ladders.

This module imports nothing from the rest of ks3sync (the protocol client must not depend on it).
"""

from __future__ import annotations

import enum


class Ks3SyncError(Exception):
    """Base class. Messages name the file/key/setting and never contain a secret."""


class UsageError(Ks3SyncError):
    """A usage or configuration error: the CLI prints the message on one line and exits 2."""


class FatalError(Ks3SyncError):
    """The run cannot continue (every further request would fail the same way)."""


class AuthError(FatalError):
    pass


class CertificateRefused(FatalError):
    """TLS verification failed (unknown issuer, host-name mismatch, expired): every request would fail
    the same way, so the run stops; the message names the endpoint and what failed."""


class BucketMissing(FatalError):
    """The bucket does not exist. The message says how to create it: ``connect`` holds the options
    that reach the same endpoint (``" --config FILE"``, ``" --endpoint URL"``; empty when
    ``$KS3_ENDPOINT`` already does), added by whoever knows them (the CLI, the service)."""

    def __init__(self, bucket: str, connect: str = "") -> None:
        self.bucket = bucket
        self.connect = connect
        super().__init__(
            f"bucket {bucket!r} does not exist (create it with: ks3sync mb ks3://{bucket}{connect})"
        )


class EntryError(Ks3SyncError):
    """One path failed; others continue."""


class RetryableError(EntryError):
    pass


class TransientError(RetryableError):
    pass


class IntegrityError(RetryableError):
    pass


class FileChangedError(RetryableError):
    pass


class PermanentError(EntryError):
    pass


class RemoteNotFound(PermanentError):
    pass


class UploadGone(PermanentError):
    pass


class LocalFileError(PermanentError):
    pass


class UnsafeKeyError(PermanentError):
    pass


class EncryptionError(PermanentError):
    pass


class RemoteRejected(PermanentError):
    pass


class StopRequested(Exception):
    """The caller's stop event (a daemon's SIGTERM) was set while a stream of the pass (the local scan,
    the remote listing) was being read: the engine ends the pass before it executes anything."""


class Disposition(enum.Enum):
    RETRY = "retry"  # try this entry once more later in the pass
    SKIP = "skip"  # report this entry as failed, go on with the others
    STOP = "stop"  # stop the run: nothing else can succeed


class JournalUnavailable(FatalError):
    """The journal (the Checkpoint) could not record progress: disk full, read-only, damaged. Nothing
    else could be recorded either, so the run stops. The executor raises it for any error a Checkpoint
    method raises (transfer.checkpoint.GuardedCheckpoint); the original is chained as the cause."""


def is_known_error(exc: BaseException) -> bool:
    """True for errors that are expected failure modes (reported as one line, no traceback)."""
    return isinstance(exc, Ks3SyncError | OSError)


def classify(exc: BaseException) -> Disposition:
    """What to do about ``exc`` raised while working on one entry."""
    if isinstance(exc, FatalError):
        return Disposition.STOP
    if isinstance(exc, RetryableError):
        return Disposition.RETRY
    if isinstance(exc, EntryError):
        return Disposition.SKIP
    if isinstance(exc, OSError):
        # A local I/O error on one file (EACCES, EIO, ENOENT after the scan) stays with that file.
        return Disposition.SKIP
    return Disposition.STOP


def describe(exc: BaseException) -> str:
    """One line for stderr/the journal: the message, or the type name if the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
