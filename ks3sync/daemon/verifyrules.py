"""The continuous verifier's decisions, without I/O or a clock (times are passed in): the budget's
pacing, what is read of each object, how a HEAD is compared with the journal's record, and whether the
local file still is what the record says. ``verify.py`` does the reading and acting (docs/decisions.md
D21).

Pacing is a token bucket filled at ``per_day`` units a day (objects, or bytes of stored data) and capped
at ``BURST_NS`` worth of budget, so a service that was busy or stopped does not catch up in one burst.
An object may be started while the bucket holds anything; its cost is then taken, which can leave the
bucket in debt: one object larger than the cap is still verified, and the average rate holds.

Imports ks3sync.model, the store's metadata type and the crypto envelope (parsing only).
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass

from ks3sync.config import VerifyConfig
from ks3sync.crypto import CryptoError, ObjectEncryption
from ks3sync.model import FileIdentity, SyncedEntry
from ks3sync.store.base import ObjectMeta

SECOND = 1_000_000_000
DAY_NS = 86_400 * SECOND
BURST_NS = 60 * SECOND  # the most budget that accumulates while nothing is verified
WHOLE_READ_MAX = 1024 * 1024  # objects_per_day: an encrypted object up to this size is read whole
TAIL_SAMPLE = 64 * 1024  # objects_per_day: of a larger one, this much plaintext at its end


class Unit(enum.Enum):
    OBJECTS = "objects"
    BYTES = "bytes"


@dataclass(frozen=True, slots=True)
class Budget:
    unit: Unit
    per_day: int

    @classmethod
    def of(cls, config: VerifyConfig) -> Budget:
        if config.bytes_per_day is not None:
            return cls(Unit.BYTES, config.bytes_per_day)
        assert config.objects_per_day is not None
        return cls(Unit.OBJECTS, config.objects_per_day)

    def cost(self, record: SyncedEntry) -> int:
        """What verifying ``record`` takes from the budget: one object, or its stored bytes (an empty
        object still costs one: it still costs a request)."""
        return 1 if self.unit is Unit.OBJECTS else max(1, record.remote_size)


class Pace:
    """The token bucket. Not thread-safe: one owner at a time (the verifier's step, or its running
    chunk, never both)."""

    def __init__(self, budget: Budget, now_ns: int) -> None:
        self.budget = budget
        self._per_ns = budget.per_day / DAY_NS
        self._cap = max(1.0, budget.per_day * BURST_NS / DAY_NS)
        self._tokens = 0.0
        self._at = now_ns

    def _fill(self, now_ns: int) -> None:
        if now_ns > self._at:
            self._tokens = min(self._cap, self._tokens + (now_ns - self._at) * self._per_ns)
            self._at = now_ns

    def ready(self, now_ns: int) -> bool:
        self._fill(now_ns)
        return self._tokens > 0

    def spend(self, cost: int, now_ns: int) -> None:
        self._fill(now_ns)
        self._tokens -= cost

    def next_ready_ns(self, now_ns: int) -> int:
        """When ``ready`` will next be true (``now_ns`` if it is)."""
        if self.ready(now_ns):
            return now_ns
        return now_ns + int(-self._tokens / self._per_ns) + 1


class Reading(enum.Enum):
    """What is read of an object besides its HEAD."""

    NONE = "none"  # plain object, objects_per_day: HEAD only
    WHOLE = "whole"  # the whole object: MD5 of its (decrypted) bytes against the record, the tag if any
    TAIL = "tail"  # the end of an encrypted object: key, pad and length, and bytes against the local file


def reading_for(record: SyncedEntry, unit: Unit) -> Reading:
    if record.remote_size == 0:
        return Reading.NONE  # an empty file is an empty object: its HEAD says everything
    if unit is Unit.BYTES:
        return Reading.WHOLE  # the budget is bytes read back
    if not record.encrypted:
        return Reading.NONE
    return Reading.WHOLE if record.remote_size <= WHOLE_READ_MAX else Reading.TAIL


def tail_start(record: SyncedEntry) -> int:
    """First plaintext byte of the tail sample."""
    return max(0, record.identity.size - TAIL_SAMPLE)


def head_problem(record: SyncedEntry, meta: ObjectMeta | None) -> str | None:
    """How the HEAD of the object differs from what the journal recorded for it, or None. The journal
    records no whole-object CRC-64 (D21), so size and ETag are what KS3's answer is held to; an
    encrypted record's object must carry encryption metadata agreeing with the record."""
    if meta is None:
        return "the object is missing"
    if meta.size != record.remote_size:
        return f"the object has {meta.size} bytes, {record.remote_size} were recorded"
    if meta.etag != record.remote_etag:
        return f"the object's ETag is {meta.etag}, {record.remote_etag} was recorded"
    if not record.encrypted or record.remote_size == 0:
        return None
    try:
        encryption = ObjectEncryption.from_metadata(meta.metadata)
    except CryptoError as exc:
        return f"its encryption metadata is damaged: {exc}"
    if encryption is None:
        return "the object is not client-side encrypted, the record says it was"
    if encryption.plaintext_length is not None and encryption.plaintext_length != record.identity.size:
        return (
            f"its metadata says {encryption.plaintext_length} plaintext bytes, "
            f"{record.identity.size} were recorded"
        )
    if encryption.plaintext_md5 is not None and encryption.plaintext_md5.hex() != record.md5:
        md5 = base64.b64encode(encryption.plaintext_md5).decode("ascii")
        return f"its metadata's plaintext MD5 is {md5}, not the recorded file's"
    return None


def same_size_and_mtime(record: SyncedEntry, identity: FileIdentity | None) -> bool:
    return identity is not None and (identity.size, identity.mtime_ns) == (
        record.identity.size,
        record.identity.mtime_ns,
    )


def local_unchanged(record: SyncedEntry, identity: FileIdentity | None, md5: str | None) -> bool:
    """The local file (``identity`` and ``md5`` from one read it did not change during) still is the
    one recorded: same size, mtime and MD5. The inode and ctime may differ: a restore or a copy-back of
    the same bytes is still the same file to re-upload from."""
    return same_size_and_mtime(record, identity) and md5 == record.md5
