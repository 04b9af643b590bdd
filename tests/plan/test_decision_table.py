"""Every row of the planner's "both sides" decision tables (upload and restore), each with the exact
operation and reason it must yield, and the exact reasons a key is refused. Written from the mutation
run of plan/ (docs/mutation.md): these rows were executed by the property tests, but no assertion
noticed when a condition or an argument in them was changed.
"""

from __future__ import annotations

import pytest

from ks3sync.model import Adopt, Copy, DeleteLocal, Download, Forget, Upload
from ks3sync.plan import DeleteGuardError, PlanOptions, plan_download, plan_upload, unsafe_reason
from ks3sync.plan.keys import is_directory_marker

from .helpers import local, md5, record, remote

DEFAULT = PlanOptions()
CHECKSUM = PlanOptions(checksum=True)
ENCRYPTED = PlanOptions(encrypt=True)


# ------------------------------------------------------------------------------------------ restore


def _down(loc, obj, rec, opts: PlanOptions = DEFAULT):  # type: ignore[no-untyped-def]
    plan = plan_download([obj], [loc], {} if rec is None else {loc.path: rec}, opts)
    return plan.transfers[0] if plan.transfers else None


def test_restore_recorded_and_unchanged_is_in_sync() -> None:
    loc, obj = local("a", b"x"), remote("a", b"x")
    assert _down(loc, obj, record(loc, b"x", obj)) is None


def test_restore_checksum_without_a_scan_hash_adopts_to_rehash() -> None:
    loc, obj = local("a", b"x"), remote("a", b"x")
    assert _down(loc, obj, record(loc, b"x", obj), CHECKSUM) == Adopt("a", loc, obj)


def test_restore_checksum_with_a_hash_trusts_content_not_identity() -> None:
    obj = remote("a", b"x")
    same = local("a", b"x", hashed=True)
    assert _down(same, obj, record(same, b"x", obj), CHECKSUM) is None
    # Same size, mtime, inode and ctime as recorded, yet other bytes (bit rot, a tool that restores
    # times): --checksum must fetch the object again.
    rotten = local("a", b"y", hashed=True)
    assert _down(rotten, obj, record(rotten, b"x", obj), CHECKSUM) == Download("a", obj, "checksum-differs")


def test_restore_touched_file_with_the_recorded_content_is_re_recorded() -> None:
    obj = remote("a", b"x")
    old = local("a", b"x")
    touched = local("a", b"x", mtime=5, hashed=True)
    assert _down(touched, obj, record(old, b"x", obj)) == Adopt("a", touched, obj)


def test_restore_locally_edited_file_is_fetched_again() -> None:
    obj = remote("a", b"x")
    old = local("a", b"x")
    for edited in (local("a", b"y", mtime=5), local("a", b"y", mtime=5, hashed=True)):
        assert _down(edited, obj, record(old, b"x", obj)) == Download("a", obj, "local-changed")


def test_restore_without_record_compares_a_plain_etag_directly() -> None:
    obj = remote("a", b"x")
    same, other = local("a", b"x", hashed=True), local("a", b"z", hashed=True)
    assert _down(same, obj, None) == Adopt("a", same, obj)
    assert _down(other, obj, None) == Download("a", obj, "checksum-differs")


def test_restore_without_record_and_no_usable_etag_hashes_first() -> None:
    multipart = remote("a", b"x", multipart=True)
    hashed = local("a", b"x", hashed=True)
    assert _down(hashed, multipart, None) == Adopt("a", hashed, multipart)  # same size: maybe the same bytes
    plain = remote("a", b"x")
    assert _down(hashed, plain, None, ENCRYPTED) == Adopt("a", hashed, plain)  # ciphertext: no plain MD5
    other_size = local("a", b"xyz", hashed=True)
    assert _down(other_size, multipart, None) == Download("a", multipart, "size-differs")
    assert _down(other_size, plain, None, ENCRYPTED) == Adopt("a", other_size, plain)  # sizes not comparable


def test_restore_object_changed_since_its_record_is_fetched() -> None:
    loc = local("a", b"x")
    old_obj, new_obj = remote("a", b"x"), remote("a", b"new bytes")
    assert _down(loc, new_obj, record(loc, b"x", old_obj)) == Download("a", new_obj, "remote-changed")
    same_size = remote("a", b"y")
    assert _down(loc, same_size, record(loc, b"x", old_obj)) == Adopt("a", loc, same_size)


def test_restore_new_object_and_stale_record() -> None:
    obj = remote("n", b"new")
    gone = local("g", b"g")
    plan = plan_download([obj], [], {"g": record(gone, b"g", remote("g", b"g"))}, PlanOptions())
    assert plan.transfers == (Download("n", obj, "new"), Forget("g"))


def test_restore_delete_guard_counts_objects_and_local_files() -> None:
    objects = [remote(f"o{i}", b"o") for i in range(4)]
    locals_ = [local(f"o{i}", b"o") for i in range(4)] + [local("x1", b"x"), local("x2", b"x")]
    records = {e.path: record(e, b"o", remote(e.path, b"o")) for e in locals_[:4]}
    # 2 of 6 local files go: 33% passes a 34% guard and trips a 33% one.
    allowed = plan_download(objects, locals_, records, PlanOptions(delete=True, max_delete_percent=34))
    assert allowed.deletes == (DeleteLocal("x1"), DeleteLocal("x2")) and allowed.refused_deletes == 0
    tripped = plan_download(objects, locals_, records, PlanOptions(delete=True, max_delete_percent=33))
    assert tripped.deletes == () and tripped.refused_deletes == 2
    # An empty bucket against local files is the emptied-source guard; an empty folder deletes nothing.
    assert (
        plan_download([], locals_[:1], {}, PlanOptions(delete=True, max_delete_percent=None)).refused_deletes
        == 1
    )
    assert plan_download([], [], {}, PlanOptions(delete=True, max_delete_percent=None)).warnings == ()


# ------------------------------------------------------------------------------------------ upload


def _up(loc, obj, rec, opts: PlanOptions = DEFAULT):  # type: ignore[no-untyped-def]
    plan = plan_upload([loc], [obj], {} if rec is None else {loc.path: rec}, opts)
    return plan.transfers[0] if plan.transfers else None


def test_upload_checksum_with_a_hash_trusts_content_not_identity() -> None:
    obj = remote("a", b"x")
    same = local("a", b"x", hashed=True)
    assert _up(same, obj, record(same, b"x", obj), CHECKSUM) is None
    rotten = local("a", b"y", hashed=True)
    assert _up(rotten, obj, record(rotten, b"x", obj), CHECKSUM) == Upload("a", rotten, "checksum-differs")


def test_upload_touched_file_only_re_records_when_its_hash_is_the_recorded_one() -> None:
    obj = remote("a", b"x")
    old = local("a", b"x")
    assert _up(local("a", b"x", mtime=5, hashed=True), obj, record(old, b"x", obj)) == Adopt(
        "a", local("a", b"x", mtime=5, hashed=True), obj
    )
    unhashed = local("a", b"y", mtime=5)  # no hash: the change cannot be ruled out
    assert _up(unhashed, obj, record(old, b"x", obj)) == Upload("a", unhashed, "changed")


def test_upload_without_record_compares_a_plain_etag_directly() -> None:
    obj = remote("a", b"x")
    same, other = local("a", b"x", hashed=True), local("a", b"z", hashed=True)
    assert _up(same, obj, None) == Adopt("a", same, obj)
    assert _up(other, obj, None) == Upload("a", other, "checksum-differs")
    multipart = remote("a", b"x", multipart=True)
    assert _up(other, multipart, None) == Adopt("a", other, multipart)  # same size, no MD5 to compare
    assert _up(other, obj, None, ENCRYPTED) == Adopt("a", other, obj)  # ciphertext ETag: hash decides
    longer = local("a", b"longer", hashed=True)
    assert _up(longer, multipart, None) == Upload("a", longer, "size-differs")


def test_upload_local_only_reasons_and_copy_sources() -> None:
    kept = local("kept", b"content", hashed=True)
    obj = remote("kept", b"content")
    dup = local("dup", b"content", hashed=True)
    lost = local("lost", b"lost")
    records = {"kept": record(kept, b"content", obj), "lost": record(lost, b"lost", remote("lost", b"lost"))}
    plan = plan_upload([dup, kept, lost], [obj], records, PlanOptions())
    assert plan.transfers == (
        Copy("dup", "kept", dup, md5(b"content"), "same-content"),
        Upload("lost", lost, "remote-missing"),
    )


def test_an_encrypted_record_is_no_copy_source_for_a_plain_sync() -> None:
    # The encrypted record comes first in path order, so a 'break' instead of 'continue' there would
    # also lose the plain source after it.
    src = local("a-src", b"content")
    obj = remote("a-src", b"content")
    enc = record(src, b"content", obj, encrypted=True)
    plain = record(local("z-other", b"content"), b"content", remote("z-other", b"content"))
    dup = local("dup", b"content", hashed=True)
    plan = plan_upload(
        [dup],
        [obj, remote("z-other", b"content")],
        {"a-src": enc, "z-other": plain},
        PlanOptions(max_delete_percent=None),
    )
    copies = [op for op in plan.transfers if isinstance(op, Copy)]
    assert copies == [Copy("dup", "z-other", dup, md5(b"content"), "same-content")]


# ------------------------------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty key"),
        ("/etc/passwd", "absolute path"),
        ("a\x00b", "NUL character in key"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("a/../b", "'..' path segment"),
        ("./a", "'.' path segment"),
        ("a/b.txt", None),
        ("..a/b..", None),
    ],
)
def test_unsafe_reasons_are_exact(key: str, reason: str | None) -> None:
    assert unsafe_reason(key) == reason


@pytest.mark.parametrize(
    ("key", "size", "marker"),
    [
        ("dir/", 0, True),
        ("a/b/", 0, True),
        ("dir/", 1, False),
        ("dir", 0, False),
        ("/", 0, False),
        ("//", 0, False),
        ("../", 0, False),
        ("a//", 0, False),
        ("./x/", 0, False),
    ],
)
def test_folder_markers(key: str, size: int, marker: bool) -> None:
    assert is_directory_marker(key, size) is marker


def test_a_hashed_file_whose_content_changed_is_sent_not_adopted() -> None:
    obj = remote("a", b"x")
    old = local("a", b"x")
    changed = local("a", b"y", mtime=5, hashed=True)
    assert _up(changed, obj, record(old, b"x", obj)) == Upload("a", changed, "changed")
    assert _down(changed, obj, record(old, b"x", obj)) == Download("a", obj, "local-changed")


# ------------------------------------------------------------------------------------------ guard


def test_max_delete_allows_exactly_n_and_refuses_n_plus_one() -> None:
    objs = [remote(f"f{i}", b"x") for i in range(6)]
    keep = [local("f0", b"x")]
    two = plan_upload(
        keep + [local(f"f{i}", b"x") for i in range(1, 4)],
        objs,
        {},
        PlanOptions(delete=True, max_delete=2, max_delete_percent=None),
    )
    assert len(two.deletes) == 2 and two.refused_deletes == 0
    three = plan_upload(
        keep + [local(f"f{i}", b"x") for i in range(1, 3)],
        objs,
        {},
        PlanOptions(delete=True, max_delete=2, max_delete_percent=None),
    )
    assert three.deletes == () and three.refused_deletes == 3
    assert (
        "more than --max-delete 2" in three.warnings[0]
        and "raise --max-delete or use --force" in three.warnings[0]
    )


def test_the_percent_guard_holds_with_a_single_destination_entry() -> None:
    # One local file the bucket lacks, one object: deleting it is 100% of the folder's entries.
    plan = plan_download(
        [remote("o", b"o")],
        [local("o", b"o"), local("x", b"x")][1:],
        {},
        PlanOptions(delete=True, max_delete_percent=50),
    )
    assert plan.deletes == () and plan.refused_deletes == 1 and "100.0%" in plan.warnings[0]


def test_guard_messages_name_the_way_out() -> None:
    empty = plan_download([], [local("x", b"x")], {}, PlanOptions(delete=True, max_delete_percent=None))
    assert "the source is empty" in empty.warnings[0] and "use --force to delete anyway" in empty.warnings[0]
    with pytest.raises(DeleteGuardError) as err:
        plan_download([], [local("x", b"x")], {}, PlanOptions(delete=True, strict_guard=True))
    assert str(err.value) == empty.warnings[0]
