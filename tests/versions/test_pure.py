"""The pure parts of versions: stamps and --as-of times, the manifest codec against hostile input,
retention, and the layout's parsing of keys read back from the bucket."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ks3sync.config import parse_duration
from ks3sync.versions.layout import Layout, check_prefix, path_problem
from ks3sync.versions.manifest import (
    MAX_MANIFEST_BYTES,
    After,
    Before,
    Entry,
    Manifest,
    ManifestError,
    decode,
    encode,
)
from ks3sync.versions.retention import Retention, expired, to_cold
from ks3sync.versions.stamp import StampClock, format_stamp, parse_as_of, parse_stamp

S = 1_000_000_000
DAY = 86400 * S
ETAG = "0cc175b9c0f1b6a831c399e269772661"
LAYOUT = Layout(".versions/")


# -- stamps and times --------------------------------------------------------------------------------


def test_a_stamp_names_its_millisecond_and_sorts_as_text_in_time_order() -> None:
    ns = 1_765_045_805_123_456_789
    assert format_stamp(ns) == "2025-12-06T18-30-05.123Z"
    assert parse_stamp(format_stamp(ns)) == ns // 1_000_000 * 1_000_000
    times = [0, 999_999, 1_000_000, 59 * S, 3600 * S, 10 * DAY, ns]
    assert sorted(format_stamp(t) for t in times) == [format_stamp(t) for t in sorted(times)]


@pytest.mark.parametrize(
    "bad",
    [
        "٢٠٢٥-12-06T18-30-05.123Z",
        "2025-12-06T18:30:05.123Z",
        "2025-13-06T18-30-05.123Z",
        "2025-12-06T18-30-05Z",
        " 2025-12-06T18-30-05.123Z",
        "2025-02-30T00-00-00.000Z",
        "x",
    ],
)
def test_anything_but_a_stamp_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="stamp"):
        parse_stamp(bad)


def test_the_stamp_clock_never_repeats_even_in_one_millisecond_or_when_the_clock_steps_back() -> None:
    clock = StampClock()
    now = 1_765_045_805_123_000_000
    stamps = [clock.next(now), clock.next(now), clock.next(now + 100), clock.next(now - 5 * S)]
    assert len(set(stamps)) == 4 and stamps == sorted(stamps)
    assert stamps[1] == format_stamp(now + 1_000_000)


def test_as_of_reads_iso_8601_stamps_now_and_ages() -> None:
    now = time.time_ns()
    utc = int(datetime(2026, 12, 6, 18, 30, 5, tzinfo=UTC).timestamp()) * S

    def parse(text: str) -> int:
        return parse_as_of(text, now, parse_age=parse_duration)

    assert parse("2026-12-06T18:30:05Z") == utc
    assert parse("2026-12-06 18:30:05.25Z") == utc + S // 4
    assert parse("2026-12-06T20:30:05+02:00") == utc
    assert parse("2026-12-06T20:30:05+0200") == utc
    assert parse("2026-12-06T18-30-05.000Z") == utc
    local = int(datetime(2026, 12, 6, 18, 30).astimezone().timestamp()) * S
    assert parse("2026-12-06T18:30") == local  # no zone: this machine's local time
    assert parse("2026-12-06") == int(datetime(2026, 12, 6).astimezone().timestamp()) * S
    assert parse("now") == now
    assert parse("2h") == now - 7200 * S
    assert parse("3d") == now - 3 * DAY
    for bad in (
        "yesterday",
        "2026-12-06T25:00",
        "2026-12-06T18:30+25:00",
        "",
        "-2h",
        "²h",
        "٢٠٢٦-12-06",
        "999999999d",
        "1969-12-31T00:00Z",
    ):
        with pytest.raises(ValueError):
            parse(bad)


# -- layout ------------------------------------------------------------------------------------------


def test_the_layout_parses_only_its_own_keys() -> None:
    stamp = "2026-12-06T18-30-05.123Z"
    assert LAYOUT.version_path(stamp, "a/b.txt") == ".versions/2026-12-06T18-30-05.123Z/a/b.txt"
    assert LAYOUT.parse(LAYOUT.version_path(stamp, "a/b.txt")) == (stamp, "a/b.txt")
    assert LAYOUT.parse(LAYOUT.manifest_path(stamp)) == (stamp, None)
    for foreign in (
        ".versions/notes.txt",
        ".versions/2026-12-06/a",
        f".versions/{stamp}/../x",
        f".versions/{stamp}//x",
        f".versions/{stamp}.json.bak",
        "a.txt",
    ):
        assert LAYOUT.parse(foreign) is None, foreign
    assert check_prefix("hist") == "hist/" and check_prefix("a/b/") == "a/b/"
    for bad in ("/abs/", "a//b/", "../up/", "./x/", ""):
        with pytest.raises(ValueError):
            check_prefix(bad)


# -- the manifest ------------------------------------------------------------------------------------


def _manifest() -> Manifest:
    return Manifest(
        "2026-12-06T18-30-05.123Z",
        "2026-12-06T18-30-09.004Z",
        (
            Entry("b.txt", Before(ETAG, 1, 10, 9, False), After("92eb5ffee6ae2fec3ad71c777531578f", 2)),
            Entry("a/é z.txt", Before(ETAG + "-3", 5, None, None, None), None),
            Entry("new", None, After(ETAG, 7)),
        ),
    )


def test_encode_then_decode_gives_the_manifest_back_in_path_order() -> None:
    manifest = _manifest()
    back = decode(encode(manifest), stamp=manifest.stamp, layout=LAYOUT)
    assert back.entries == tuple(sorted(manifest.entries, key=lambda e: e.path.encode()))
    assert [e.change for e in back.entries] == ["deleted", "overwritten", "created"]


def _doc() -> dict:  # type: ignore[type-arg]
    return json.loads(encode(_manifest()))


def _decode(doc: object) -> Manifest:
    return decode(json.dumps(doc).encode(), stamp="2026-12-06T18-30-05.123Z", layout=LAYOUT)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(ks3sync_manifest=2), "format 2"),
        (lambda d: d.update(ks3sync_manifest=True), "format True"),
        (lambda d: d.update({"pass": "2026-12-06T18-30-05.124Z"}), "its key says"),
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d.update(finished="soon"), "'finished'"),
        (lambda d: d.update(entries={}), "not a list"),
        (lambda d: d["entries"][0].update(path="../../etc/passwd"), "segment"),
        (lambda d: d["entries"][0].update(path="/abs"), "absolute"),
        (lambda d: d["entries"][0].update(path="a\x00b"), "NUL"),
        (lambda d: d["entries"][0].update(path=".versions/x"), "versions area"),
        (lambda d: d["entries"][0].update(path="x" * 1025), "longer"),
        (lambda d: d["entries"][0].update(path=7), "string"),
        (lambda d: d["entries"][0].pop("after"), "missing"),
        (lambda d: d["entries"][0].update(before=None, after=None), "neither"),
        (lambda d: d["entries"][0]["before"].update(etag="ABC"), "ETag"),
        (lambda d: d["entries"][0]["before"].update(size=-1), "size"),
        (lambda d: d["entries"][0]["before"].update(size=True), "size"),
        (lambda d: d["entries"][0]["before"].update(size=1.5), "size"),
        (lambda d: d["entries"][0]["before"].update(encrypted="yes"), "encrypted"),
        (lambda d: d["entries"][0]["before"].update(modified_ns=2**64), "modified_ns"),
        (lambda d: d["entries"][0]["before"].pop("mtime_ns"), "missing"),
        (lambda d: d["entries"].reverse(), "order"),
        (lambda d: d["entries"].append(d["entries"][-1]), "order"),
    ],
)
def test_a_hostile_manifest_is_refused_with_what_is_wrong(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = _doc()
    mutate(doc)
    with pytest.raises(ManifestError, match=message):
        _decode(doc)


def test_size_nesting_and_encoding_bombs_are_manifest_errors() -> None:
    stamp = "2026-12-06T18-30-05.123Z"
    with pytest.raises(ManifestError, match="larger"):
        decode(b" " * (MAX_MANIFEST_BYTES + 1), stamp=stamp, layout=LAYOUT)
    with pytest.raises(ManifestError):
        decode(b"[" * 100_000 + b"]" * 100_000, stamp=stamp, layout=LAYOUT)
    with pytest.raises(ManifestError, match="UTF-8"):
        decode(b'{"a": "\xff"}', stamp=stamp, layout=LAYOUT)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["path", "before", "after", "etag", "size", "entries", "pass", "x"]),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_decode_fails_only_with_a_manifest_error_on_any_input(data: bytes) -> None:
    try:
        decode(data, stamp="2026-12-06T18-30-05.123Z", layout=LAYOUT)
    except ManifestError:
        pass


def test_path_problem_is_the_restore_rule() -> None:
    assert path_problem("a/b c/d.txt") is None
    for bad in ("", "/a", "a/../b", "a//b", "./a", "a/", "a\x00", "\udcff"):
        assert path_problem(bad) is not None, bad


# -- retention ---------------------------------------------------------------------------------------


def _stamps(now: int, ages_days: list[float]) -> list[tuple[str, int]]:
    return [(format_stamp(now - int(age * DAY)), now - int(age * DAY)) for age in ages_days]


def test_keep_deletes_passes_older_than_the_window_and_never_future_ones() -> None:
    now = 1_800_000_000 * S
    stamps = _stamps(now, [40, 31, 29, 1, -2])  # the last one is in the future (a clock that was wrong)
    assert expired(stamps, now, Retention(keep=30 * 86400)) == [stamps[0][0], stamps[1][0]]
    assert expired(stamps, now, Retention()) == []


def test_keep_passes_keeps_the_newest_and_both_rules_keep_the_union() -> None:
    now = 1_800_000_000 * S
    stamps = _stamps(now, [40, 31, 29, 1])
    assert expired(stamps, now, Retention(keep_passes=1)) == [s for s, _ in stamps[:3]]
    assert expired(stamps, now, Retention(keep=30 * 86400, keep_passes=3)) == [stamps[0][0]]
    assert expired(stamps, now, Retention(keep=30 * 86400, keep_passes=1)) == [stamps[0][0], stamps[1][0]]


def test_cold_after_moves_old_passes_that_are_not_expired() -> None:
    now = 1_800_000_000 * S
    stamps = _stamps(now, [40, 20, 8, 1])
    policy = Retention(keep=30 * 86400, cold_after=7 * 86400)
    assert to_cold(stamps, now, policy) == [stamps[1][0], stamps[2][0]]
    assert to_cold(stamps, now, Retention(keep=30 * 86400)) == []
