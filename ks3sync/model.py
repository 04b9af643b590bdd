"""Values that cross module boundaries: what a scan sees, what a listing sees, what the journal
remembers, and the operations the planner hands to the executor.

Everything here is a frozen dataclass or a Protocol. This module does no I/O and imports nothing else
from ks3sync, so the planner, the journal, the executor and the tests can all share it.

Paths are *relative POSIX paths* under the sync root (``"dir/a b.txt"``), never absolute and never
starting with ``/``; the remote key of a path is ``prefix + path``. Sizes are bytes, times are integer
nanoseconds since the epoch (``st_mtime_ns``), MD5s are lower-case hex strings.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# --------------------------------------------------------------------------------------------------
# What each side looks like


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What a scan can tell about a file without reading it. Two equal identities mean "unchanged"
    (restic's rule: size, mtime, ctime and inode; any change means the content must be re-checked)."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int


@dataclass(frozen=True, slots=True)
class LocalEntry:
    path: str
    identity: FileIdentity
    md5: str | None = None  # known only when hashed (--checksum, or the journal remembered it)

    @property
    def size(self) -> int:
        return self.identity.size


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """An object as a listing shows it, with the key already made relative to the sync prefix."""

    path: str
    size: int
    etag: str  # unquoted; a multipart ETag looks like "<hex>-<parts>" and is never a content MD5
    last_modified_ns: int = 0
    storage_class: str = "STANDARD"

    @property
    def is_multipart_etag(self) -> bool:
        return "-" in self.etag


@dataclass(frozen=True, slots=True)
class SyncedEntry:
    """The journal's record of a path that KS3 confirmed (invariant 1: confirmed before recorded).

    ``remote_etag``/``remote_size`` are what KS3 reported for the object we wrote; a later listing that
    shows the same pair proves the object is still ours, even for multipart or encrypted objects whose
    ETag is not the file's MD5."""

    path: str
    identity: FileIdentity
    md5: str  # MD5 of the local plaintext file
    remote_etag: str
    remote_size: int
    encrypted: bool = False
    synced_at_ns: int = 0


class Exclusion(enum.Enum):
    """What the exclusion rules say about one path (a local file or a remote key relative to the prefix).

    The planner never transfers an excluded path in either direction and never deletes one on the
    destination, unless the sync asks for rsync's ``--delete-excluded``; then ``EXCLUDED`` paths on the
    destination go too (still through every delete guard). ``PROTECTED`` paths are never transferred
    nor deleted, whatever the options: the rules that might exclude them could not be read."""

    INCLUDED = "included"
    EXCLUDED = "excluded"  # by --exclude, --exclude-from or a .ks3ignore
    PROTECTED = "protected"
    # ks3sync's state (the journal and its companions, the state folder), which no rule of the user's
    # excludes: excluded like EXCLUDED, except that a restore reports an object of such a name as
    # failed instead of leaving it out in silence, since it is data that will not be restored (D9).
    OWN = "own"


# --------------------------------------------------------------------------------------------------
# Operations: the plan is data (a list of these); the executor carries them out.


class Direction(enum.Enum):
    UPLOAD = "upload"  # local folder -> KS3
    DOWNLOAD = "download"  # KS3 -> local folder (restore)


@dataclass(frozen=True, slots=True)
class Upload:
    """Send a local file to ``path``'s key. The executor chooses single PUT or multipart by size and
    resumes a multipart upload the journal knows about."""

    path: str
    local: LocalEntry
    reason: str  # "new", "changed", "remote-differs", ... (shown by --dry-run)


@dataclass(frozen=True, slots=True)
class Copy:
    """Create ``path`` by a server-side copy of ``source_path`` (a rename or a duplicate whose content
    is already in the bucket). ``local`` is the file the result must equal."""

    path: str
    source_path: str
    local: LocalEntry
    expected_md5: str
    reason: str = "same-content"


@dataclass(frozen=True, slots=True)
class Adopt:
    """The remote object may already hold this file (journal lost or new, sizes equal): hash the local
    file and record it if the MD5 matches the remote ETag, else upload. Never re-upload blindly
    (invariant 8)."""

    path: str
    local: LocalEntry
    remote: RemoteEntry


@dataclass(frozen=True, slots=True)
class DeleteRemote:
    path: str
    remote: RemoteEntry
    reason: str = "not-in-source"


@dataclass(frozen=True, slots=True)
class Download:
    path: str
    remote: RemoteEntry
    reason: str = "new"


@dataclass(frozen=True, slots=True)
class DeleteLocal:
    path: str
    reason: str = "not-in-source"


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop a journal record whose path exists on neither side (no I/O against KS3)."""

    path: str


Operation = Upload | Copy | Adopt | DeleteRemote | Download | DeleteLocal | Forget


class Action(enum.StrEnum):
    """What the executor did with an entry: the keys of its counts and the ``action`` of a finished
    entry. The values are the words logs and counters use (a ``StrEnum``: a member is its word in text and
    JSON); the CLI says ``recorded`` for ``ADOPTED`` (cli/words.py)."""

    UPLOADED = "uploaded"
    COPIED = "copied"
    ADOPTED = "adopted"  # already in the destination: hashed, recorded, nothing sent
    DOWNLOADED = "downloaded"
    DELETED = "deleted"
    FORGOTTEN = "forgotten"  # a record dropped: the path is gone from both sides


@dataclass(frozen=True, slots=True)
class Plan:
    """Transfers first, then deletes (invariant 4: deletes run last, and only if nothing failed)."""

    transfers: tuple[Operation, ...]
    deletes: tuple[Operation, ...] = ()
    skipped: int = 0  # paths already in sync
    refused_deletes: int = 0  # deletes the max-delete guard held back
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# Resumable multipart state: what transfer/ hands to the journal through the Checkpoint protocol.


@dataclass(frozen=True, slots=True)
class PartRecord:
    part_number: int
    size: int  # bytes on the wire (ciphertext for encrypted uploads)
    md5: str
    etag: str
    crc64: int | None = None
    chain_block: bytes | None = None  # encrypted uploads: last ciphertext block of this part


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """A multipart upload in flight, keyed by (sync, path). The file identity at start lets a resumed
    run know whether the parts already sent still belong to the same file."""

    path: str
    key: str
    upload_id: str
    part_size: int
    identity: FileIdentity
    started_at_ns: int
    iv: bytes | None = None  # encrypted uploads: the object's IV (not secret)
    parts: tuple[PartRecord, ...] = field(default=())


class RegisteredSync(Protocol):
    """A sync a journal knows, as the stale-upload sweep reads it (``journal.SyncRecord`` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def bucket(self) -> str: ...
    @property
    def prefix(self) -> str: ...


class Checkpoint(Protocol):
    """How the executor talks to the journal (and nothing else of it). Implemented by the journal;
    an in-memory version serves the executor's tests. Every method is durable when it returns."""

    def upload_for(self, path: str) -> UploadRecord | None: ...

    def upload_started(self, record: UploadRecord) -> None: ...

    def part_done(self, upload_id: str, part: PartRecord) -> None: ...

    def upload_finished(self, upload_id: str) -> None:
        """Completed or aborted: the upload and its parts are forgotten."""
        ...

    def synced(self, entry: SyncedEntry) -> None: ...

    def removed(self, paths: Sequence[str]) -> None:
        """The remote objects (or local files) for these paths were deleted."""
        ...


# --------------------------------------------------------------------------------------------------
# Pass history: what a mirror pass (or a batch of the service's queued work) hands to the journal so
# that ``status`` can show it. Added by the journal engineer.


@dataclass(frozen=True, slots=True)
class PassSummary:
    started_ns: int
    finished_ns: int
    direction: Direction = Direction.UPLOAD
    uploaded: int = 0
    copied: int = 0
    deleted: int = 0
    downloaded: int = 0
    adopted: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    refused_deletes: int = 0
    error: str | None = None  # why the whole pass stopped (a fatal error), if it did

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.error is None
