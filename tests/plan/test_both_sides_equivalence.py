"""The shared both-sides decision (``plan.compare.both_sides``) against the two tables it replaced, over
every combination of small domains: the record (none; the listed object, with the file's identity or
another; an object changed since, by ETag or by size; its MD5 and encryption flag), the file's MD5
(unknown or one of two), the object's ETag (one of two MD5s, plain or multipart) and size, and the
options that the table reads (checksum, encrypt). Each combination must give the same operation and
reason as before, called directly and through ``plan_upload`` / ``plan_download``.

The oracles below are frozen copies of ``_both_sides`` from ``plan/upload.py`` and ``plan/download.py``
as they stood before the merge. This file is the one place the old tables may remain: they are the
reference, not code to maintain; do not edit them to follow a change of the planner's rules (a rule
change is a new test, and then these oracles go).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from ks3sync.model import (
    Adopt,
    Download,
    FileIdentity,
    LocalEntry,
    Operation,
    RemoteEntry,
    SyncedEntry,
    Upload,
)
from ks3sync.plan import PlanOptions, plan_download, plan_upload
from ks3sync.plan.compare import DOWNLOAD_RULES, UPLOAD_RULES, DirectionRules, both_sides

# ------------------------------------------------------------------------- frozen oracles (old code)


def _old_download_both_sides(
    loc: LocalEntry, rem: RemoteEntry, rec: SyncedEntry | None, opts: PlanOptions
) -> Operation | None:
    path = loc.path
    if rec is not None and (rec.remote_size, rec.remote_etag) == (rem.size, rem.etag):
        if rec.identity == loc.identity:
            if not opts.checksum:
                return None
            if loc.md5 is None:
                return Adopt(path, loc, rem)
            return None if loc.md5 == rec.md5 else Download(path, rem, "checksum-differs")
        if loc.md5 is not None and loc.md5 == rec.md5:
            return Adopt(path, loc, rem)
        return Download(path, rem, "local-changed")
    plain_etag = not rem.is_multipart_etag and not opts.encrypt
    if loc.md5 is not None and plain_etag:
        return Adopt(path, loc, rem) if loc.md5 == rem.etag else Download(path, rem, "checksum-differs")
    if rem.size == loc.size or opts.encrypt:
        return Adopt(path, loc, rem)
    return Download(path, rem, "remote-changed" if rec is not None else "size-differs")


def _old_upload_both_sides(
    loc: LocalEntry, rem: RemoteEntry, rec: SyncedEntry | None, opts: PlanOptions
) -> Operation | None:
    path = loc.path
    if rec is not None and (rec.remote_size, rec.remote_etag) == (rem.size, rem.etag):
        if rec.encrypted != opts.encrypt:
            return Upload(path, loc, "encryption-changed")
        if rec.identity == loc.identity:
            if not opts.checksum:
                return None
            if loc.md5 is None:
                return Adopt(path, loc, rem)
            return None if loc.md5 == rec.md5 else Upload(path, loc, "checksum-differs")
        if loc.md5 is not None and loc.md5 == rec.md5:
            return Adopt(path, loc, rem)
        return Upload(path, loc, "changed")
    plain_etag = not rem.is_multipart_etag and not opts.encrypt
    if loc.md5 is not None and plain_etag:
        return Adopt(path, loc, rem) if loc.md5 == rem.etag else Upload(path, loc, "checksum-differs")
    if rem.size == loc.size or opts.encrypt:
        return Adopt(path, loc, rem)
    return Upload(path, loc, "remote-differs" if rec is not None else "size-differs")


# ------------------------------------------------------------------------------- the decision space

MD5_A, MD5_B = "a" * 32, "b" * 32
SIZE = 10
# What the record says about the object: none, the listed one, or one that changed since (other ETag,
# or other size with the same ETag, as a listing could show).
RECORD_OBJECT = ("none", "listed", "other-etag", "other-size")
Case = tuple[LocalEntry, RemoteEntry, SyncedEntry | None, PlanOptions]


def _cases() -> Iterator[Case]:
    for (
        record_object,
        same_identity,
        record_md5,
        record_encrypted,
        local_md5,
        etag_md5,
        multipart,
        same_size,
        checksum,
        encrypt,
    ) in itertools.product(
        RECORD_OBJECT,
        (True, False),  # the file's identity is the recorded one
        (MD5_A, MD5_B),
        (False, True),
        (None, MD5_A, MD5_B),
        (MD5_A, MD5_B),
        (False, True),
        (True, False),  # the object's size is the file's
        (False, True),
        (False, True),
    ):
        if record_object == "none" and not (same_identity and record_md5 == MD5_A and not record_encrypted):
            continue  # the record's own fields do not exist without it: one case, not sixteen copies
        identity = FileIdentity(size=SIZE, mtime_ns=1, inode=7, ctime_ns=1)
        loc = LocalEntry("p", identity, local_md5)
        rem = RemoteEntry("p", SIZE if same_size else SIZE + 5, etag_md5 + "-2" if multipart else etag_md5)
        rec = None
        if record_object != "none":
            rec = SyncedEntry(
                "p",
                identity if same_identity else replace(identity, mtime_ns=2),
                record_md5,
                remote_etag=MD5_B + "-3" if record_object == "other-etag" else rem.etag,
                remote_size=rem.size + 1 if record_object == "other-size" else rem.size,
                encrypted=record_encrypted,
            )
        yield loc, rem, rec, PlanOptions(checksum=checksum, encrypt=encrypt)


CASES = list(_cases())
Old = Callable[[LocalEntry, RemoteEntry, SyncedEntry | None, PlanOptions], Operation | None]


def _outcome(op: Operation | None) -> str:
    if op is None:
        return "in sync"
    return f"{type(op).__name__} {getattr(op, 'reason', '')}".strip()


def test_the_space_is_exhaustive_and_reaches_every_row() -> None:
    # 3 x 2 x 2 x 2 record variants + no record, times 3 x 2 x 2 x 2 x 2 x 2 for the rest.
    assert len(CASES) == (3 * 2 * 2 * 2 + 1) * (3 * 2 * 2 * 2 * 2 * 2)
    up = Counter(_outcome(_old_upload_both_sides(*case)) for case in CASES)
    down = Counter(_outcome(_old_download_both_sides(*case)) for case in CASES)
    assert set(up) == {
        "in sync",
        "Adopt",
        "Upload encryption-changed",
        "Upload checksum-differs",
        "Upload changed",
        "Upload remote-differs",
        "Upload size-differs",
    }
    assert set(down) == {
        "in sync",
        "Adopt",
        "Download checksum-differs",
        "Download local-changed",
        "Download remote-changed",
        "Download size-differs",
    }


@pytest.mark.parametrize(
    ("rules", "old"),
    [(UPLOAD_RULES, _old_upload_both_sides), (DOWNLOAD_RULES, _old_download_both_sides)],
    ids=["upload", "download"],
)
def test_shared_table_decides_every_case_as_the_old_one(rules: DirectionRules, old: Old) -> None:
    differ = [
        (case, got, want) for case in CASES if (got := both_sides(*case, rules)) != (want := old(*case))
    ]
    assert differ == [], f"{len(differ)} of {len(CASES)} cases differ, first: {differ[0]}"


def test_plan_upload_and_plan_download_use_the_shared_table_with_their_own_words() -> None:
    # Through the public entry points: a path on both sides is decided as the old table decided it
    # (``None`` is counted as skipped and plans no transfer).
    for loc, rem, rec, opts in CASES:
        records = [] if rec is None else [rec]
        for plan, want in (
            (plan_upload([loc], [rem], records, opts), _old_upload_both_sides(loc, rem, rec, opts)),
            (plan_download([rem], [loc], records, opts), _old_download_both_sides(loc, rem, rec, opts)),
        ):
            expected = () if want is None else (want,)
            assert (plan.transfers, plan.skipped) == (expected, int(want is None)), (loc, rem, rec, opts)
