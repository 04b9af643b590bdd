"""The service's per-change decision at its edges, with exact operations: the debounce window's two
boundaries and the exact objects a delete names (written from the mutation run of daemon/decide.py,
docs/mutation.md: the boundaries and the deletes' remote entries changed without a test noticing)."""

from __future__ import annotations

from ks3sync.daemon.backoff import SECOND
from ks3sync.daemon.decide import Outcome, decide
from ks3sync.model import DeleteRemote, FileIdentity, LocalEntry, RemoteEntry, SyncedEntry

NOW = 1_000_000 * SECOND
DEBOUNCE = 2 * SECOND


def local(path: str, mtime: int) -> LocalEntry:
    return LocalEntry(path, FileIdentity(10, mtime, 7, mtime))


def record(path: str, size: int = 10, etag: str = "ab" * 16) -> SyncedEntry:
    ident = FileIdentity(size, NOW - 60 * SECOND, 7, NOW - 60 * SECOND)
    return SyncedEntry(path, ident, md5=etag, remote_etag=etag, remote_size=size)


def test_the_debounce_window_is_zero_inclusive_and_debounce_exclusive() -> None:
    def outcome(age: int) -> Outcome:
        return decide(
            "a", None, local("a", NOW - age), False, {}, delete=True, debounce_ns=DEBOUNCE, now_ns=NOW
        ).outcome

    assert outcome(0) is Outcome.DEFER  # written this very nanosecond: still being written
    assert outcome(1) is Outcome.DEFER
    assert outcome(DEBOUNCE - 1) is Outcome.DEFER
    assert outcome(DEBOUNCE) is Outcome.SEND  # quiet for exactly the debounce: send
    assert outcome(-1) is Outcome.SEND  # an mtime in the future (clock skew) never defers forever


def test_deletes_name_the_recorded_objects_exactly() -> None:
    old, gone = record("old", 5, "11" * 16), record("gone", 7, "22" * 16)
    renamed = decide("new", "old", None, False, {"old": old}, delete=True, debounce_ns=DEBOUNCE, now_ns=NOW)
    assert renamed.deletes == (DeleteRemote("old", RemoteEntry("old", 5, "11" * 16), reason="renamed"),)
    deleted = decide("gone", None, None, False, {"gone": gone}, delete=True, debounce_ns=DEBOUNCE, now_ns=NOW)
    assert deleted.outcome is Outcome.SEND
    assert deleted.deletes == (DeleteRemote("gone", RemoteEntry("gone", 7, "22" * 16), reason="deleted"),)
