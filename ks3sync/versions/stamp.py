"""Pass stamps (docs/versions.md §2) and the ``--as-of`` times they are compared with.

A stamp is the UTC start of a pass to the millisecond, ``YYYY-MM-DDTHH-MM-SS.mmmZ``: it sorts as text
in time order and is a legal file name everywhere. :class:`StampClock` hands out strictly increasing
stamps for one sync within a process (two passes in the same millisecond, or a clock stepped back, get
the previous stamp plus 1 ms).

Pure: the standard library only (the clock is the caller's).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone

MS = 1_000_000  # nanoseconds per millisecond
_STAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})\.(\d{3})Z", re.ASCII)  # 0-9 only
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_stamp(ns: int) -> str:
    """The stamp of an instant (nanoseconds since the epoch, truncated to the millisecond)."""
    when = _EPOCH + timedelta(microseconds=(ns // MS) * 1000)
    return when.strftime("%Y-%m-%dT%H-%M-%S.") + f"{(ns // MS) % 1000:03d}Z"


def parse_stamp(text: str) -> int:
    """Nanoseconds since the epoch of a stamp; ValueError unless ``text`` is exactly one (hostile input:
    stamps are read back from keys and manifests)."""
    match = _STAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not a pass stamp (YYYY-MM-DDTHH-MM-SS.mmmZ): {text!r}")
    year, month, day, hour, minute, second, millis = (int(g) for g in match.groups())
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"not a pass stamp ({exc}): {text!r}") from None
    return int((when - _EPOCH).total_seconds()) * 1_000_000_000 + millis * MS


def is_stamp(text: str) -> bool:
    try:
        parse_stamp(text)
    except ValueError:
        return False
    return True


class StampClock:
    """Strictly increasing stamps for one sync (thread-safe: the service's batches run side by side)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1

    def next(self, now_ns: int) -> str:
        with self._lock:
            ms = max(now_ns // MS, self._last_ms + 1)
            self._last_ms = ms
        return format_stamp(ms * MS)


_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)


def parse_as_of(text: str, now_ns: int, *, parse_age: object = None) -> int:
    """An ``--as-of`` TIME as nanoseconds since the epoch.

    Accepted: ISO 8601 (date, date + time, optional fraction, ``Z`` or ``±HH[:MM]``; without a zone the
    local time of this machine), a stamp as ``versions`` prints it, ``now``, or an age (``90m``, ``2h``,
    ``3d``: that long before ``now_ns``; ``parse_age`` parses it into seconds, raising ValueError).
    Raises ValueError with a message naming the accepted forms."""
    value = text.strip()
    if value.lower() == "now":
        return now_ns
    if _STAMP.fullmatch(value):
        return parse_stamp(value)
    match = _ISO.fullmatch(value)
    if match is not None:
        return _after_1970(_iso_ns(match, value), text)
    if callable(parse_age) and value[:1].isascii() and value[:1].isdigit():
        try:
            seconds = float(parse_age(value))
        except ValueError:
            pass
        else:
            return _after_1970(now_ns - int(seconds * 1_000_000_000), text)
    raise ValueError(
        f"expected an ISO 8601 time (2026-12-06T18:30[:05][Z|+08:00]), a pass stamp, 'now' or an age "
        f"like 2h or 3d, got {text!r}"
    )


def _after_1970(ns: int, text: str) -> int:
    if ns < 0:
        raise ValueError(f"{text!r} is before 1970-01-01T00:00Z: no pass can be that old")
    return ns


def _iso_ns(match: re.Match[str], text: str) -> int:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        naive = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if zone is None:
        when = naive.astimezone()  # local time of this machine (documented)
    elif zone == "Z":
        when = naive.replace(tzinfo=UTC)
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r}: bad zone offset {zone!r}")
        when = naive.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
    nanos = int((fraction or "").ljust(9, "0")) if fraction else 0
    return int((when - _EPOCH) // timedelta(microseconds=1)) * 1000 + nanos
