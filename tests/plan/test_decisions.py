"""One test per branch of the decision tables (the property tests cover the combinations)."""

from __future__ import annotations

import pytest

from ks3sync.model import Adopt, Copy, DeleteLocal, DeleteRemote, Download, Forget, Upload
from ks3sync.plan import DeleteGuardError, PlanOptions, plan_download, plan_upload, unsafe_reason

from .helpers import local, md5, record, remote

NO_GUARD = PlanOptions(delete=True, max_delete_percent=None)


def test_in_sync_when_identity_and_object_match_record() -> None:
    loc, obj = local("a", b"x"), remote("a", b"x")
    plan = plan_upload([loc], [obj], {"a": record(loc, b"x", obj)}, PlanOptions())
    assert plan.transfers == () and plan.skipped == 1


def test_changed_identity_uploads() -> None:
    old = local("a", b"x")
    obj = remote("a", b"x")
    now = local("a", b"y", mtime=2)
    plan = plan_upload([now], [obj], {"a": record(old, b"x", obj)}, PlanOptions())
    assert plan.transfers == (Upload("a", now, "changed"),)


def test_touched_file_with_same_hash_is_adopted_not_uploaded() -> None:
    old = local("a", b"x")
    obj = remote("a", b"x")
    now = local("a", b"x", mtime=5, hashed=True)
    plan = plan_upload([now], [obj], {"a": record(old, b"x", obj)}, PlanOptions())
    assert plan.transfers == (Adopt("a", now, obj),)


def test_missing_record_with_equal_sizes_adopts() -> None:
    loc, obj = local("a", b"x"), remote("a", b"y")
    assert plan_upload([loc], [obj], {}, PlanOptions()).transfers == (Adopt("a", loc, obj),)


def test_missing_record_with_different_sizes_uploads() -> None:
    loc, obj = local("a", b"x"), remote("a", b"yy")
    assert plan_upload([loc], [obj], {}, PlanOptions()).transfers == (Upload("a", loc, "size-differs"),)


def test_remote_changed_behind_our_back_is_not_trusted() -> None:
    loc = local("a", b"x")
    mine = remote("a", b"x")
    theirs = remote("a", b"zz")
    plan = plan_upload([loc], [theirs], {"a": record(loc, b"x", mine)}, PlanOptions())
    assert plan.transfers == (Upload("a", loc, "remote-differs"),)


def test_checksum_mode_distrusts_identity() -> None:
    old = local("a", b"x", hashed=True)
    obj = remote("a", b"x")
    rec = record(old, b"x", obj)
    same_identity_other_content = local("a", b"y", hashed=True)  # size/mtime/inode/ctime all equal
    plan = plan_upload([same_identity_other_content], [obj], {"a": rec}, PlanOptions(checksum=True))
    assert plan.transfers == (Upload("a", same_identity_other_content, "checksum-differs"),)
    unhashed = local("a", b"x")
    assert plan_upload([unhashed], [obj], {"a": rec}, PlanOptions(checksum=True)).transfers == (
        Adopt("a", unhashed, obj),
    )


def test_encryption_switch_reuploads() -> None:
    loc, obj = local("a", b"x"), remote("a", b"x")
    plan = plan_upload([loc], [obj], {"a": record(loc, b"x", obj)}, PlanOptions(encrypt=True))
    assert plan.transfers == (Upload("a", loc, "encryption-changed"),)


def test_rename_becomes_copy_from_the_deleted_path() -> None:
    old = local("old", b"content", inode=7, mtime=3, ctime=3)
    obj = remote("old", b"content")
    moved = local("new", b"content", inode=7, mtime=3, ctime=9)  # rename changes ctime only
    plan = plan_upload([moved], [obj], {"old": record(old, b"content", obj)}, NO_GUARD)
    assert plan.transfers == (Copy("new", "old", moved, md5(b"content"), "renamed"),)
    assert plan.deletes == (DeleteRemote("old", obj),)


def test_duplicate_with_known_hash_copies_any_intact_object() -> None:
    obj = remote("x/a", b"same")
    dup = local("y/b", b"same", inode=99, hashed=True)
    keep = local("x/a", b"same")
    plan = plan_upload([keep, dup], [obj], {"x/a": record(keep, b"same", obj)}, PlanOptions())
    assert plan.transfers == (Copy("y/b", "x/a", dup, md5(b"same"), "same-content"),)


def test_copy_never_reads_an_object_this_plan_rewrites() -> None:
    # "a" is being overwritten by new content; a new file with a's old content must not copy from it.
    old_a = local("a", b"old", inode=1)
    obj = remote("a", b"old")
    new_a = local("a", b"new", inode=1, mtime=2)
    b = local("b", b"old", inode=2, hashed=True)
    plan = plan_upload([new_a, b], [obj], {"a": record(old_a, b"old", obj)}, PlanOptions())
    assert plan.transfers == (Upload("a", new_a, "changed"), Upload("b", b, "new"))


def test_journal_only_path_is_forgotten() -> None:
    loc, obj = local("gone", b"x"), remote("gone", b"x")
    plan = plan_upload([], [], {"gone": record(loc, b"x", obj)}, PlanOptions())
    assert plan.transfers == (Forget("gone"),)


def test_no_delete_without_delete_option() -> None:
    plan = plan_upload([local("a", b"1")], [remote("a", b"1"), remote("b", b"2")], {}, PlanOptions())
    assert plan.deletes == () and plan.refused_deletes == 0


def test_empty_source_never_deletes_without_force() -> None:
    objs = [remote(f"f{i}", b"x") for i in range(3)]
    plan = plan_upload([], objs, {}, PlanOptions(delete=True, max_delete_percent=None))
    assert plan.deletes == () and plan.refused_deletes == 3
    assert "source is empty" in plan.warnings[0]
    forced = plan_upload([], objs, {}, PlanOptions(delete=True, force=True))
    assert len(forced.deletes) == 3


def test_percent_and_count_guards() -> None:
    objs = [remote(f"f{i}", b"x") for i in range(10)]
    keep = [local(f"f{i}", b"x") for i in range(5)]
    assert len(plan_upload(keep, objs, {}, PlanOptions(delete=True)).deletes) == 5  # exactly 50%: allowed
    plan = plan_upload(keep[:4], objs, {}, PlanOptions(delete=True))  # 60%
    assert plan.deletes == () and plan.refused_deletes == 6 and "60.0%" in plan.warnings[0]
    plan = plan_upload(keep, objs, {}, PlanOptions(delete=True, max_delete=4, max_delete_percent=None))
    assert plan.refused_deletes == 5 and "--max-delete 4" in plan.warnings[0]


def test_strict_guard_raises_with_numbers() -> None:
    objs = [remote(f"f{i}", b"x") for i in range(4)]
    with pytest.raises(DeleteGuardError) as err:
        plan_upload([local("f0", b"x")], objs, {}, PlanOptions(delete=True, strict_guard=True))
    assert err.value.would_delete == 3 and err.value.destination_count == 4
    assert "\n" not in str(err.value)


def test_nfc_and_nfd_names_are_distinct_paths() -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    plan = plan_upload([local(nfd, b"22"), local(nfc, b"1")], [remote(nfc, b"1")], {}, NO_GUARD)
    assert [op.path for op in plan.transfers] == [nfd, nfc]  # "e" (0x65) sorts before "\u00e9"
    assert isinstance(plan.transfers[0], Upload) and isinstance(plan.transfers[1], Adopt)


def test_transfers_come_out_in_utf8_byte_order() -> None:
    names = ["a/b", "a-b", "a.b", "\u00e9", "z", "A"]
    in_order = sorted(names, key=lambda n: n.encode("utf-8"))
    plan = plan_upload([local(n, b"x") for n in in_order], [], {}, PlanOptions())
    got = [op.path for op in plan.transfers]
    assert got == in_order == ["A", "a-b", "a.b", "a/b", "z", "\u00e9"]


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a//b", "a/../../b", "..", "./a", "a/.", "a\x00b", "d/"])
def test_download_skips_unsafe_keys_with_a_warning(key: str) -> None:
    obj = remote(key, b"data")  # non-empty, so "d/" is not a folder marker
    plan = plan_download([obj], [], {}, PlanOptions())
    assert plan.transfers == ()
    assert len(plan.warnings) == 1 and repr(key) in plan.warnings[0]
    assert unsafe_reason(key) is not None


def test_upload_leaves_objects_named_like_a_folder_alone() -> None:
    """No file can be ``full/``: the upload never compares, replaces or deletes it, even with --delete
    (they were not listed before D9; a restore reports them)."""
    objs = [remote("a", b"1"), remote("full/", b"data"), remote("gone", b"2")]
    plan = plan_upload([local("a", b"1")], objs, {}, NO_GUARD)
    assert [op.path for op in plan.deletes] == ["gone"] and [op.path for op in plan.transfers] == ["a"]


def test_download_ignores_folder_markers_and_keeps_safe_odd_names() -> None:
    odd = sorted(["dir/", "a b+%#?.txt", "..hidden", "x/...", "back\\slash"])
    plan = plan_download([remote(k, b"" if k.endswith("/") else b"1") for k in odd], [], {}, PlanOptions())
    assert [op.path for op in plan.transfers] == sorted(k for k in odd if k != "dir/")
    assert plan.warnings == ()


def test_download_decisions() -> None:
    obj = remote("a", b"x")
    loc = local("a", b"x")
    rec = record(loc, b"x", obj)
    assert plan_download([obj], [loc], {"a": rec}, PlanOptions()).skipped == 1
    edited = local("a", b"y", mtime=9)
    assert plan_download([obj], [edited], {"a": rec}, PlanOptions()).transfers == (
        Download("a", obj, "local-changed"),
    )
    assert plan_download([obj], [loc], {}, PlanOptions()).transfers == (Adopt("a", loc, obj),)
    extra = local("extra", b"e")
    plan = plan_download([obj], [loc, extra], {"a": rec}, NO_GUARD)
    assert plan.deletes == (DeleteLocal("extra"),)
    assert plan_download([obj], [loc, extra], {"a": rec}, PlanOptions()).deletes == ()


def test_download_empty_bucket_never_wipes_the_folder() -> None:
    files = [local(f"f{i}", b"x") for i in range(3)]
    plan = plan_download([], files, {}, PlanOptions(delete=True, max_delete_percent=None))
    assert plan.deletes == () and plan.refused_deletes == 3
