"""The planner's exclusion branches (``plan.exclude``), one test each; the property test in
tests/mirror/test_exclude_properties.py covers the combinations through the real engine."""

from __future__ import annotations

from ks3sync.model import DeleteLocal, DeleteRemote, Download, Exclusion, Forget
from ks3sync.plan import PlanOptions, march_download, plan_download, plan_upload

from .helpers import local, record, remote

DELETE = PlanOptions(delete=True, max_delete_percent=None)
DELETE_EXCLUDED = PlanOptions(delete=True, delete_excluded=True, max_delete_percent=None)


def judge(excluded: set[str] = frozenset(), protected: set[str] = frozenset()):  # type: ignore[assignment]
    """``protected``: paths whose rules could not be read."""

    def exclusion(path: str) -> Exclusion:
        if path in protected:
            return Exclusion.PROTECTED
        return Exclusion.EXCLUDED if path in excluded else Exclusion.INCLUDED

    return exclusion


def test_upload_keeps_excluded_objects_and_their_records() -> None:
    kept = local("keep.txt", b"k")
    log, unsure, gone = remote("app.log", b"l"), remote("sub/x", b"j"), remote("gone.txt", b"g")
    synced = {"app.log": record(local("app.log", b"l"), b"l", log)}  # synced before it was excluded
    plan = plan_upload(
        [kept], [log, gone, remote("keep.txt", b"k"), unsure], synced, DELETE, judge({"app.log"}, {"sub/x"})
    )
    assert plan.deletes == (DeleteRemote("gone.txt", gone),)
    assert not any(isinstance(op, Forget) for op in plan.transfers)  # the record stays with its object


def test_upload_with_delete_excluded_deletes_them_but_never_protected_ones() -> None:
    log, unsure = remote("app.log", b"l"), remote("sub/x", b"j")
    plan = plan_upload(
        [local("keep.txt", b"k")],
        [log, remote("keep.txt", b"k"), unsure],
        {},
        DELETE_EXCLUDED,
        judge({"app.log"}, {"sub/x"}),
    )
    assert plan.deletes == (DeleteRemote("app.log", log, "excluded"),)


def test_delete_excluded_goes_through_the_guards() -> None:
    objects = [remote(f"{i}.log", b"l") for i in range(3)]
    guarded = PlanOptions(delete=True, delete_excluded=True, max_delete=2)
    plan = plan_upload([local("keep.txt", b"k")], objects, {}, guarded, judge({o.path for o in objects}))
    assert plan.deletes == () and plan.refused_deletes == 3 and "--max-delete 2" in plan.warnings[0]
    # every local file excluded: the source looks emptied, nothing is deleted without --force
    plan = plan_upload([], objects, {}, DELETE_EXCLUDED, judge({o.path for o in objects}))
    assert plan.deletes == () and plan.refused_deletes == 3 and "source is empty" in plan.warnings[0]


def test_restore_never_fetches_an_excluded_key() -> None:
    # The local app.log is excluded, so the scan left it out: the object of that name is not fetched
    # over it, and --delete leaves it alone.
    log, txt = remote("app.log", b"remote"), remote("a.txt", b"a")
    plan = plan_download([txt, log], [], {}, DELETE, judge({"app.log"}))
    assert plan.transfers == (Download("a.txt", txt),) and plan.deletes == ()


def test_restore_with_delete_excluded_deletes_excluded_local_files() -> None:
    # With --delete-excluded the walk shows excluded files too, and the planner judges each one.
    log, txt, unsure = local("app.log", b"mine"), local("a.txt", b"a"), local("sub/x", b"j")
    obj = remote("a.txt", b"a")
    synced = {"a.txt": record(txt, b"a", obj)}
    plan = plan_download(
        [obj, remote("app.log", b"theirs")],
        [txt, log, unsure],
        synced,
        DELETE_EXCLUDED,
        judge({"app.log"}, {"sub/x"}),
    )
    assert plan.transfers == () and plan.deletes == (DeleteLocal("app.log", "excluded"),)


def test_restore_drops_the_record_of_an_excluded_path_whose_object_is_gone() -> None:
    log = local("app.log", b"l")
    synced = {"app.log": record(log, b"l", remote("app.log", b"l"))}
    plan = plan_download([remote("a.txt", b"a")], [], synced, DELETE, judge({"app.log"}))
    assert Forget("app.log") in plan.transfers and plan.deletes == ()
    # its object still there: the record stays (the path may be included again later)
    plan = plan_download(
        [remote("a.txt", b"a"), remote("app.log", b"l")], [], synced, DELETE, judge({"app.log"})
    )
    assert Forget("app.log") not in plan.transfers


def test_restore_counts_listed_objects_and_excluded_unsafe_keys_are_not_refused() -> None:
    objects = [remote("../up.log", b"x"), remote("dir/", b""), remote("../up.txt", b"y")]
    result = march_download(objects, [], [], DELETE, judge({"../up.log"}))
    assert result.listed == 3
    assert [obj.path for obj, _ in result.refused] == ["../up.txt"]
    assert march_download([], [], [], DELETE).listed == 0


def own(*paths: str):  # type: ignore[no-untyped-def]
    """ks3sync's own files (the journal, its companions, the state folder) as Filters.exclusion says."""

    def exclusion(path: str) -> Exclusion:
        return Exclusion.OWN if path in paths else Exclusion.INCLUDED

    return exclusion


def test_restore_reports_an_object_named_like_ks3syncs_own_state_as_refused() -> None:
    """Not fetched (the journal is never written over) and, unlike a key the user excluded, reported:
    it is data that will not be restored (D9). The guard does not count it as part of the source."""
    journal, txt = remote("journal.db", b"planted"), remote("a.txt", b"a")
    got = march_download([txt, journal], [local("old", b"o")], {}, DELETE, own("journal.db"))
    assert got.plan.transfers == (Download("a.txt", txt),)
    assert [(obj.path, "ks3sync's own state" in why) for obj, why in got.refused] == [("journal.db", True)]
    assert got.plan.deletes == (DeleteLocal("old"),)


def test_upload_treats_objects_named_like_ks3syncs_own_state_as_excluded() -> None:
    """D8: kept, and deleted only with --delete-excluded."""
    journal = remote("journal.db", b"j")
    assert plan_upload([local("a", b"a")], [journal], {}, DELETE, own("journal.db")).deletes == ()
    plan = plan_upload([local("a", b"a")], [journal], {}, DELETE_EXCLUDED, own("journal.db"))
    assert plan.deletes == (DeleteRemote("journal.db", journal, "excluded"),)
