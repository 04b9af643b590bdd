"""ks3sync.display: the escaping rule (docs/decisions.md D12) holds for any text, and can be read back.

Properties over arbitrary text, including lone surrogates (file names that are not UTF-8):
- nothing a terminal acts on survives escape(): no C0/C1 control, DEL, bidirectional control, line or
  paragraph separator, or surrogate;
- the escaping is unambiguous: reading it back (below, by the documented rule) gives the text again;
- json_text gives a document that parses to the same value and holds none of those characters raw.
"""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from ks3sync.display import escape, human_rate, human_size, json_text, mask_url_credentials

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(\\|t|n|r|x[0-9a-f]{2}|u[0-9a-f]{4})")

texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=60) | st.text(
    st.sampled_from(list("a\\\x1b\r\n\t\x07\x7f\x9b\u202e\u2028\u200d\udcff\udc80é中 ")), max_size=30
)


def unescape(shown: str) -> str:
    """The rule read backwards: \\xNN below 0x80 is that ASCII control, from 0x80 the undecodable byte
    (surrogateescape); \\uNNNN a code point."""

    def one(match: re.Match[str]) -> str:
        token = match.group(1)
        if token in ("\\", "t", "n", "r"):
            return {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[token]
        value = int(token[1:], 16)
        if token[0] == "x" and value >= 0x80:
            return chr(0xDC00 + value)
        return chr(value)

    return _ESCAPE.sub(one, shown)


@given(texts)
def test_escape_leaves_nothing_a_terminal_acts_on_and_reads_back(text: str) -> None:
    shown = escape(text)
    assert UNSAFE.search(shown) is None
    assert unescape(shown) == text


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40))
def test_ordinary_text_is_shown_as_it_is(text: str) -> None:
    text = text.replace("\\", "/")
    text = re.sub("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", "", text)
    assert escape(text) == text


@given(st.dictionaries(texts, st.lists(texts, max_size=3), max_size=4))
def test_json_text_parses_to_the_same_value_and_holds_nothing_raw(value: dict[str, list[str]]) -> None:
    document = json_text(value, sort_keys=True)
    assert UNSAFE.search(document) is None
    assert json.loads(document) == value
    document.encode("utf-8")  # writable: no lone surrogate left raw


def test_the_documented_examples() -> None:
    assert escape("a\x1b]0;title\x07b") == "a\\x1b]0;title\\x07b"
    assert escape("line\rforged") == "line\\rforged"
    assert escape("back\\slash") == "back\\\\slash"
    assert escape("\u202egnp.exe") == "\\u202egnp.exe"
    assert escape("bad-\udcff") == "bad-\\xff"
    assert escape("中文 😀\u200d👍") == "中文 😀\u200d👍"  # scripts and emoji sequences stay readable
    assert human_size(0) == "0 B" and human_size(1536) == "1.5 KiB" and human_size(60_000_000) == "57.2 MiB"
    assert human_rate(2 * 1024 * 1024) == "2.0 MiB/s"


def test_mask_url_credentials() -> None:
    assert mask_url_credentials("http://u:p@h:1") == "http://u:****@h:1"
    assert mask_url_credentials("u:p@h") == "u:****@h"
    assert mask_url_credentials("http://h:1") == "http://h:1"
    # The password may hold "://" (the config's own copy of this helper used to show it).
    assert mask_url_credentials("http://u:p://w@h") == "http://u:****@h"
