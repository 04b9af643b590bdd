"""ks3sync.digits: the one parser of decimal numbers from headers, XML and metadata."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.digits import INT64_MAX, UINT64_MAX, parse_decimal


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("0042", 42), (" 7\t", 7), ("\r\n12\n", 12), (str(INT64_MAX), INT64_MAX)]
)
def test_plain_ascii_decimals(text: str, value: int) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        " ",
        "\u00b2",
        "\u0661",
        "\uff11",
        "1_0",
        "+1",
        "-1",
        "1.5",
        "1e3",
        "0x10",
        "1 2",
        "\u00a01",
        str(INT64_MAX + 1),
        "9" * 21,
        "9" * 5000,
    ],
)
def test_anything_else_is_none(text: str | None) -> None:
    assert parse_decimal(text) is None


def test_the_bound_is_the_callers() -> None:
    assert parse_decimal(str(UINT64_MAX), UINT64_MAX) == UINT64_MAX
    assert parse_decimal(str(UINT64_MAX + 1), UINT64_MAX) is None
    assert parse_decimal("1000", 999) is None and parse_decimal("999", 999) == 999


@given(st.text())
def test_never_raises_and_accepts_exactly_bounded_ascii_digits(text: str) -> None:
    value = parse_decimal(text)
    stripped = text.strip(" \t\r\n")
    plain = stripped != "" and all(c in "0123456789" for c in stripped)
    assert (value is not None) == (plain and len(stripped) <= 20 and int(stripped) <= INT64_MAX)
    if value is not None:
        assert value == int(stripped)
