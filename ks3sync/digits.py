"""The one parser for decimal numbers that arrive from outside: HTTP header values (Content-Length, the
total of a Content-Range, the CRC-64 header), the numeric fields of XML answers (listing sizes, part
numbers) and ``x-kss-meta-*`` metadata (a file's mtime, an encrypted object's plaintext length).

Such text is hostile input, and ``int()`` is too lenient for it: it accepts ``"+1"``, ``" 1_0"`` and
other scripts' digits (``"١"``), raises ``ValueError`` on a digit that is not decimal (``"²"``, which
``str.isdigit()`` lets through) and on more than 4,300 digits, and returns numbers of any size (an
mtime of ``99999999999999999999999999`` ns overflows every time type it meets later). Here a number
is 1 to 20 ASCII digits, optionally between ASCII blanks (space, tab, CR, LF), and at most ``limit``; anything else is
``None`` and the caller says what that means for its field.

Imports nothing of ks3sync, so the protocol client (a leaf) may use it as well.
"""

from __future__ import annotations

INT64_MAX = (1 << 63) - 1  # the default bound: sizes, lengths, times in ns
UINT64_MAX = (1 << 64) - 1  # a CRC-64
_MAX_DIGITS = len(str(UINT64_MAX))  # 20: no bound here needs more


def parse_decimal(text: str | None, limit: int = INT64_MAX) -> int | None:
    """``text`` as a non-negative integer if it is a plain ASCII decimal no greater than ``limit``,
    else ``None``."""
    if text is None:
        return None
    text = text.strip(" \t\r\n")
    # isascii() and isdigit() together mean exactly 0-9; the length check keeps int() cheap and finite.
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= limit else None
