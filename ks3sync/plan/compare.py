"""The decision for a path present on both sides (a local file and an object at its key), shared by
upload and restore: leave it (``None``: in sync), ``Adopt`` it (hash the local file; record it if it
equals the object, else transfer) or transfer it, with the reason ``--dry-run`` shows.

The table is the same in both directions; what differs is described by a :class:`DirectionRules`
(``UPLOAD_RULES``, ``DOWNLOAD_RULES``): the transfer operation the direction builds (``Upload`` or
``Download``), its words for two of the reasons, and whether a record made with the other encryption
setting is out of date (upload: the stored form is wrong; a restore writes plaintext either way). The
rows, first match first:

- the object is the recorded one (:func:`is_intact`):
  - made with the other encryption setting: upload "encryption-changed" (a restore goes on);
  - the local file's identity is the recorded one: in sync; with ``--checksum``, ``Adopt`` if the scan
    did not hash, else in sync or transfer "checksum-differs" as the MD5 says;
  - otherwise ``Adopt`` if the file's MD5 is the recorded one, else transfer, ``local_changed``
    (upload "changed", restore "local-changed");
- no record, or the object changed since its record (never transfer blindly, invariant 8):
  - the file's MD5 is known and the ETag is a plain MD5: ``Adopt`` if equal, else "checksum-differs";
  - the sizes are equal, or the object is encrypted: ``Adopt`` (hash before transferring);
  - otherwise transfer, "size-differs" without a record, ``remote_changed`` with one (upload
    "remote-differs", restore "remote-changed").

Pure: no I/O, no clock; imports only ``ks3sync.model`` and ``plan.options``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ks3sync.model import Adopt, Download, LocalEntry, Operation, RemoteEntry, SyncedEntry, Upload
from ks3sync.plan.options import PlanOptions

CHECKSUM_DIFFERS = "checksum-differs"  # both hashes known, and they differ
SIZE_DIFFERS = "size-differs"  # no record, and the sizes differ

Transfer = Callable[[LocalEntry, RemoteEntry, str], Operation]
"""Builds a direction's transfer of the path from (local file, object, reason)."""


@dataclass(frozen=True, slots=True)
class DirectionRules:
    """What the both-sides table needs to know about one direction."""

    transfer: Transfer
    local_changed: str  # the object is the recorded one, the local file changed since
    remote_changed: str  # the object changed since its record, and the sizes differ
    # The reason to transfer when the record was made with the other encryption setting; ``None``
    # where the stored form does not matter to the direction.
    encryption_changed: str | None = None


def _send(loc: LocalEntry, rem: RemoteEntry, reason: str) -> Operation:
    return Upload(loc.path, loc, reason)


def _fetch(loc: LocalEntry, rem: RemoteEntry, reason: str) -> Operation:
    return Download(loc.path, rem, reason)


# Upload: the local folder is the source. A changed file is sent again, and so is one whose object was
# stored with the other encryption setting (its stored form is wrong for this sync).
UPLOAD_RULES = DirectionRules(
    _send, local_changed="changed", remote_changed="remote-differs", encryption_changed="encryption-changed"
)
# Restore: the bucket is the source, so a changed local file or object means fetching the object again.
# The local file is plaintext whatever the sync's encryption: a record's encryption flag does not matter.
DOWNLOAD_RULES = DirectionRules(_fetch, local_changed="local-changed", remote_changed="remote-changed")


def is_intact(rec: SyncedEntry, rem: RemoteEntry) -> bool:
    """Whether the listed object is still the one ``rec`` recorded: KS3 reported this size and ETag for
    the object ks3sync confirmed, which proves it even for multipart and encrypted objects."""
    return (rec.remote_size, rec.remote_etag) == (rem.size, rem.etag)


def both_sides(
    loc: LocalEntry, rem: RemoteEntry, rec: SyncedEntry | None, opts: PlanOptions, rules: DirectionRules
) -> Operation | None:
    """The operation for a path with a local file ``loc`` and an object ``rem`` (``rec``: the journal's
    record of it, if any). ``None`` means in sync."""
    path = loc.path
    if rec is not None and is_intact(rec, rem):
        # The object is still the one recorded; the question is whether the local file moved on.
        if rules.encryption_changed is not None and rec.encrypted != opts.encrypt:
            # Encryption switched on or off for this sync: the stored form is wrong.
            return rules.transfer(loc, rem, rules.encryption_changed)
        if rec.identity == loc.identity:
            if not opts.checksum:
                # Same size, mtime, inode and ctime as when confirmed: in sync (restic's rule).
                return None
            if loc.md5 is None:
                # --checksum, but the scan did not hash: Adopt re-hashes and transfers on mismatch.
                return Adopt(path, loc, rem)
            # --checksum with a known hash: content decides, identity is not trusted.
            return None if loc.md5 == rec.md5 else rules.transfer(loc, rem, CHECKSUM_DIFFERS)
        if loc.md5 is not None and loc.md5 == rec.md5:
            # Touched (mtime/ctime/inode changed) but the content is proven the same: just re-record.
            return Adopt(path, loc, rem)
        # The local file changed since it was confirmed: an upload sends it, a restore fetches the
        # object again (the bucket is the source).
        return rules.transfer(loc, rem, rules.local_changed)

    # No record, or the object was changed behind our back: never transfer blindly what may already be
    # the same bytes (invariant 8: a lost journal is rebuilt from a scan plus a listing).
    plain_etag = not rem.is_multipart_etag and not opts.encrypt
    if loc.md5 is not None and plain_etag:
        # A plain ETag is the object's MD5: compare directly.
        return Adopt(path, loc, rem) if loc.md5 == rem.etag else rules.transfer(loc, rem, CHECKSUM_DIFFERS)
    if rem.size == loc.size or opts.encrypt:
        # Sizes match (maybe the same bytes already) or the object is ciphertext, whose size the planner
        # does not model: Adopt hashes the file and compares with the ETag / ks3sync's metadata,
        # transferring only on mismatch.
        return Adopt(path, loc, rem)
    # Different sizes: the two certainly differ.
    return rules.transfer(loc, rem, rules.remote_changed if rec is not None else SIZE_DIFFERS)
