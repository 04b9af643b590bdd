"""The mtime metadata: written as rclone writes it (seconds with nine decimals), read in both that and
the integer nanoseconds older ks3sync wrote; anything else from the network is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.store.base import format_mtime, parse_mtime


def test_the_format_is_seconds_with_nine_decimals() -> None:
    assert format_mtime(1_700_000_000_123_456_789) == "1700000000.123456789"
    assert format_mtime(1_700_000_000_000_000_001) == "1700000000.000000001"
    assert format_mtime(0) == "0.000000000"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1700000000.123456789", 1_700_000_000_123_456_789),  # rclone, ks3sync now
        ("1700000000.5", 1_700_000_000_500_000_000),  # fewer decimals
        ("1700000000123456789", 1_700_000_000_123_456_789),  # older ks3sync: integer nanoseconds
        (" 1700000000.25\r\n", 1_700_000_000_250_000_000),
    ],
)
def test_both_formats_are_read(text: str, ns: int) -> None:
    assert parse_mtime(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        ".",
        "1.",
        ".5",
        "1.2.3",
        "-1.5",
        "+1.5",
        "1.1234567890",
        "²",
        "1.²",
        "1e9",
        "0x10",
        "99999999999999999999999999",
        "9000000001.0",
        "1 .5",
        "١٢٣",
    ],
)
def test_anything_else_is_not_a_time(text: str | None) -> None:
    assert parse_mtime(text) is None


@given(st.integers(min_value=0, max_value=9_000_000_000 * 10**9))
def test_a_written_time_reads_back(ns: int) -> None:
    assert parse_mtime(format_mtime(ns)) == ns


def test_a_time_before_1970_is_written_as_before_and_restored_with_the_object_time() -> None:
    # Negative times were never read back (the restore uses Last-Modified); that does not change.
    assert format_mtime(-1_500_000_000) == "-1500000000"
    assert parse_mtime("-1500000000") is None
