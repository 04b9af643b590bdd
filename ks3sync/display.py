"""How text that came from outside (keys, paths, error messages that quote them) is shown to a person,
and how sizes are written. The one place for both, used by the CLI, the progress display and the
service's log formatters (docs/decisions.md D12).

The escaping rule (:func:`escape`): a key may hold any Unicode, and a file name any bytes, so before
either reaches a terminal or a log line every character that could move the cursor, rewrite the
title, forge a line or reorder what is shown is written as a visible escape, Python-style:

- ``\\`` becomes ``\\\\`` (so every escape below is unambiguous: a real backslash never starts one);
- TAB, LF, CR become ``\\t``, ``\\n``, ``\\r``; any other C0 control and DEL become ``\\xNN`` (ESC is
  ``\\x1b``);
- a byte that is not UTF-8 (a file name decoded with ``surrogateescape``, U+DC80-U+DCFF) becomes
  ``\\xNN`` with NN >= 80: ``\\xNN`` always names one byte;
- C1 controls (U+0080-U+009F), bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
  U+2066-U+2069), the line and paragraph separators (U+2028, U+2029) and any other lone surrogate
  become ``\\uNNNN``: ``\\u`` always names a code point.

Everything else (letters of any script, emoji and their joiners, spaces) is shown as it is. Reversed
by reading it as a Python string literal. Text is escaped once, where it is written out, never where
a message is built, so nothing is escaped twice.

:func:`json_text` is ``json.dumps`` with the same characters written as ``\\uNNNN`` (JSON already
escapes C0, ``"`` and ``\\``; with ``ensure_ascii=False`` it would pass C1, bidirectional controls and
separators through raw, and a lone surrogate would make the write fail). The document parses to the
same value.

A URL that may carry credentials (a proxy's ``user:password@``) is shown by :func:`mask_url_credentials`
with the password as ``****``: the config's proxy key, ``check-config`` and the protocol client's proxy
errors all go through it.

Sizes are binary everywhere ks3sync prints them (the bar, rates, summaries, ``ls -H``): 1 KiB = 1024 B,
with the IEC names, as rclone and ``ls -h`` count.

Imports nothing from ks3sync: the protocol client, the daemon and the CLI can all use it.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Code points shown as an escape (see the module docstring). The backslash is listed first.
_UNSAFE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
# What json.dumps(ensure_ascii=False) leaves raw but a terminal would act on.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def needs_escape(text: str) -> bool:
    """True when :func:`escape` would change ``text``."""
    return _UNSAFE.search(text) is not None


def escape(text: str) -> str:
    """``text`` with control, bidirectional and undecodable characters and the backslash escaped."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape_one, text)


def escape_lines(text: str) -> str:
    """A block of lines (a table, a rendered report): each line escaped, the line breaks kept."""
    return "\n".join(escape(line) for line in text.split("\n"))


def json_text(value: Any, **dumps_kwargs: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)`` whose text is safe to show on a terminal."""
    dumps_kwargs.setdefault("ensure_ascii", False)
    text = json.dumps(value, **dumps_kwargs)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; whole bytes below 1 KiB (``"512 B"``)."""
    size = float(n)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_rate(bytes_per_second: float) -> str:
    return f"{human_size(bytes_per_second)}/s"


def mask_url_credentials(text: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:****@host``; anything else unchanged. For showing
    a proxy URL (or a bad one) in a message."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return text
    user, colon, _secret = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':****' if colon else ''}@{hostpart}"
