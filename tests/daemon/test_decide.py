"""The decision table for one queued change (pure), one test per row, plus the guard and backoff."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.daemon import logs
from ks3sync.daemon.backoff import SECOND, Backoff
from ks3sync.daemon.decide import Outcome, decide
from ks3sync.daemon.guard import DeleteBudget, probe_source
from ks3sync.model import Copy, DeleteRemote, FileIdentity, LocalEntry, SyncedEntry, Upload

NOW = 1_000_000 * SECOND
DEBOUNCE = 2 * SECOND


def local(path: str, size: int = 10, mtime: int = NOW - 60 * SECOND, inode: int = 7) -> LocalEntry:
    return LocalEntry(path, FileIdentity(size, mtime, inode, mtime))


def record(path: str, size: int = 10, mtime: int = NOW - 60 * SECOND, inode: int = 7) -> SyncedEntry:
    return SyncedEntry(
        path, FileIdentity(size, mtime, inode, mtime), md5="ab" * 16, remote_etag="ab" * 16, remote_size=size
    )


def run(
    path: str,
    src: str | None,
    here: LocalEntry | None,
    src_exists: bool = False,
    synced: dict[str, SyncedEntry] | None = None,
    delete: bool = True,
    **kw: object,
):
    return decide(
        path, src, here, src_exists, synced or {}, delete=delete, debounce_ns=DEBOUNCE, now_ns=NOW, **kw
    )  # type: ignore[arg-type]


def test_new_file_is_uploaded() -> None:
    d = run("a", None, local("a"))
    assert d.outcome is Outcome.SEND and d.transfers == (Upload("a", local("a"), "new"),) and d.deletes == ()


def test_changed_file_is_uploaded() -> None:
    d = run("a", None, local("a", size=11), synced={"a": record("a")})
    assert d.transfers == (Upload("a", local("a", size=11), "changed"),)


def test_unchanged_file_is_in_sync() -> None:
    assert run("a", None, local("a"), synced={"a": record("a")}).outcome is Outcome.IN_SYNC


def test_file_written_within_the_debounce_is_deferred_until_quiet() -> None:
    d = run("a", None, local("a", mtime=NOW - SECOND))
    assert d.outcome is Outcome.DEFER and d.defer_until_ns == NOW + SECOND


def test_future_mtime_is_not_deferred_forever() -> None:
    assert run("a", None, local("a", mtime=NOW + 3600 * SECOND)).outcome is Outcome.SEND


def test_rename_copies_and_then_deletes_the_old_name() -> None:
    d = run("b", "a", local("b"), src_exists=False, synced={"a": record("a")})
    assert d.transfers == (Copy("b", "a", local("b"), expected_md5="ab" * 16, reason="renamed"),)
    assert [op.path for op in d.deletes] == ["a"] and d.deletes[0].reason == "renamed"


def test_rename_keeps_a_recreated_source() -> None:
    d = run("b", "a", local("b"), src_exists=True, synced={"a": record("a")})
    assert isinstance(d.transfers[0], Copy) and d.deletes == ()


def test_rename_with_delete_off_copies_but_keeps_the_old_object() -> None:
    d = run("b", "a", local("b"), synced={"a": record("a")}, delete=False)
    assert isinstance(d.transfers[0], Copy) and d.deletes == ()


def test_rename_of_a_different_size_uploads() -> None:
    d = run("b", "a", local("b", size=99), synced={"a": record("a")})
    assert isinstance(d.transfers[0], Upload) and [op.path for op in d.deletes] == ["a"]


def test_rename_of_a_never_synced_file_uploads() -> None:
    d = run("b", "a", local("b"))
    assert isinstance(d.transfers[0], Upload) and d.deletes == ()


def test_missing_recorded_file_is_deleted() -> None:
    d = run("a", None, None, synced={"a": record("a")})
    assert d.outcome is Outcome.SEND and d.deletes == (DeleteRemote("a", d.deletes[0].remote, "deleted"),)
    assert (d.deletes[0].remote.size, d.deletes[0].remote.etag) == (10, "ab" * 16)


def test_missing_with_delete_off_keeps_the_object() -> None:
    assert run("a", None, None, synced={"a": record("a")}, delete=False).outcome is Outcome.NOTHING


def test_missing_never_synced_file_needs_nothing() -> None:
    assert run("tmp~", None, None).outcome is Outcome.NOTHING


def test_renamed_then_gone_deletes_both_names() -> None:
    d = run("b", "a", None, synced={"a": record("a"), "b": record("b")})
    assert sorted(op.path for op in d.deletes) == ["a", "b"] and d.transfers == ()


def test_excluded_path_is_never_sent_nor_deleted() -> None:
    excluded = {"x.tmp"}.__contains__
    assert run("x.tmp", None, local("x.tmp"), excluded=excluded).outcome is Outcome.NOTHING
    assert (
        run("x.tmp", None, None, synced={"x.tmp": record("x.tmp")}, excluded=excluded).outcome
        is Outcome.NOTHING
    )
    # renamed into an excluded name: the old object is the rename's to delete
    d = run("x.tmp", "a", local("x.tmp"), synced={"a": record("a")}, excluded=excluded)
    assert d.transfers == () and [op.path for op in d.deletes] == ["a"]


def test_a_moved_source_that_became_excluded_keeps_its_object() -> None:
    # x.tmp was synced before *.tmp was excluded; renaming it must not delete its object
    excluded = {"x.tmp"}.__contains__
    d = run("y.txt", "x.tmp", local("y.txt"), synced={"x.tmp": record("x.tmp")}, excluded=excluded)
    assert d.deletes == () and [type(op) for op in d.transfers] == [Copy]
    d = run(
        "y.tmp", "x.tmp", None, synced={"x.tmp": record("x.tmp")}, excluded={"x.tmp", "y.tmp"}.__contains__
    )
    assert d.outcome is Outcome.NOTHING


@given(
    here=st.one_of(
        st.none(),
        st.builds(local, st.just("p"), st.integers(0, 20), st.integers(0, 2 * NOW), st.integers(1, 3)),
    ),
    own=st.booleans(),
    src=st.booleans(),
    src_exists=st.booleans(),
    delete=st.booleans(),
)
def test_never_deletes_when_delete_is_off_and_never_sends_a_missing_file(
    here, own, src, src_exists, delete
) -> None:
    synced = {}
    if own:
        synced["p"] = record("p")
    if src:
        synced["s"] = record("s")
    d = run("p", "s" if src else None, here, src_exists, synced, delete=delete)
    if not delete:
        assert d.deletes == ()
    if here is None:
        assert d.transfers == ()
    assert all(op.path != "s" for op in d.deletes) or not src_exists


# -- guard ------------------------------------------------------------------------------------------


def test_probe_source(tmp_path: Path) -> None:
    assert probe_source(tmp_path / "nope", None, False).reason == "source folder is missing"
    (tmp_path / "file").write_text("x")
    assert not probe_source(tmp_path / "file", None, False).healthy
    empty = tmp_path / "empty"
    empty.mkdir()
    assert probe_source(empty, None, has_entries=False).healthy
    assert "empty" in probe_source(empty, None, has_entries=True).reason
    state = probe_source(tmp_path, None, True)
    assert state.healthy and state.device is not None
    assert "another device" in probe_source(tmp_path, state.device + 1, True).reason


def test_delete_budget_counts_percent_and_window() -> None:
    budget = DeleteBudget(count=None, percent=50.0, window_ns=100)
    assert budget.limit(10) == 5
    assert budget.allow(3, recorded=10, now_ns=0) == 3
    assert budget.allow(3, recorded=10, now_ns=10) == 2  # 5 in the window
    assert budget.allow(1, recorded=10, now_ns=50) == 0
    assert budget.allow(4, recorded=10, now_ns=110) == 4  # everything before t=10 left the window
    budget.refund(2)  # two of those were not used after all
    assert budget.allow(5, recorded=10, now_ns=111) == 3
    assert DeleteBudget(count=3, percent=50.0, window_ns=1).limit(100) == 3
    assert DeleteBudget(count=None, percent=10.0, window_ns=1).limit(1) == 1  # a lone file may go
    assert DeleteBudget(count=None, percent=None, window_ns=1).allow(10**6, 1, 0) == 10**6


def test_backoff_doubles_caps_and_parks() -> None:
    b = Backoff(base_ns=SECOND, cap_ns=10 * SECOND, park_after=4, jitter=0.0)
    assert [b.delay_ns(a) // SECOND for a in range(6)] == [1, 2, 4, 8, 10, 10]
    assert [b.should_park(a) for a in range(5)] == [False, False, False, True, True]
    assert b.delay_ns(10_000) == 10 * SECOND


def test_backoff_jitter_spreads_delays_below_the_exponential_one() -> None:
    draws = iter([0.0, 0.5, 0.999])
    b = Backoff(base_ns=SECOND, cap_ns=10 * SECOND, jitter=0.5, draw=lambda: next(draws))
    assert [b.delay_ns(3) for _ in range(3)] == [
        8 * SECOND,
        6 * SECOND,
        8 * SECOND - int(8 * SECOND * 0.5 * 0.999),
    ]
    default = Backoff()  # the service's: jittered with a real random draw, within [d/2, d]
    delays = {default.delay_ns(2) for _ in range(50)}
    assert len(delays) > 1 and all(2 * SECOND <= d <= 4 * SECOND for d in delays)
    assert max(Backoff().delay_ns(40) for _ in range(20)) <= Backoff().cap_ns
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


# -- logs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_structured_lines_and_secret_scrubbing(fmt: str) -> None:
    stream = io.StringIO()
    handler = logs.configure("info", fmt, secrets=["s3cr3t"], stream=stream)
    try:
        logger = logging.getLogger("ks3sync.daemon")
        logs.event(logger, logging.INFO, "op", sync="docs", action="uploaded", path="a b.txt")
        logs.event(logger, logging.WARNING, "op_failed", sync="docs", error="signature for s3cr3t refused")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "s3cr3t" not in stream.getvalue()
    if fmt == "json":
        first = json.loads(lines[0])
        assert first["event"] == "op" and first["path"] == "a b.txt" and first["level"] == "info"
        assert json.loads(lines[1])["error"] == "signature for *** refused"
    else:
        assert lines[0].split(" ", 2)[2] == 'event=op sync=docs action=uploaded path="a b.txt"'
        assert lines[1].endswith('error="signature for *** refused"')
