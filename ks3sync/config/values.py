"""One value of the configuration, from text to a typed value and back: durations, sizes, part sizes,
rates, the delete guard, ``ks3://`` URLs and the words YAML-from-the-environment spells booleans with.

The parsers are pure and shared with the command line (``mirror --part-size 8MiB``). Each raises
``ValueError`` with a message that reads well after ``<file>: <key>: `` and after ``--flag: `` alike; the
loader and the CLI add the where. The formatters write a value back the way ``check-config`` shows it.

Units: a bare ``K/M/G/T`` or ``KiB/MiB/...`` is binary (1024-based, as rclone and rsync read them);
``KB/MB/GB/TB`` are decimal (1000-based). Durations accept ``ns, us, ms, s, m, h, d`` and sums such
as ``1h30m``; a bare number means seconds.

Must not import: anything of ks3sync but the leaf ``digits``; this module is on every command's start-up
path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ks3sync.digits import parse_decimal

MIN_PART_SIZE = 100 * 1024  # KS3's smallest part (except the last)
MAX_PART_SIZE = 5 * 1024**3
MAX_SINGLE_PUT = 5 * 1024**3  # KS3 refuses a larger PUT (EntityTooLarge): files below the threshold go in one

# --------------------------------------------------------------------------------------------------
# Durations

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h|d)")
_DURATION_EXPECTED = "expected a duration like '2s', '500ms' or '1h'"


def parse_duration(value: object) -> float:
    """Seconds from ``2s``, ``500ms``, ``1h30m``, ``1.5`` (a bare number is seconds). Never negative."""
    if isinstance(value, bool):
        raise ValueError(f"{_DURATION_EXPECTED}, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration_text_seconds(value)
    else:
        raise ValueError(f"{_DURATION_EXPECTED}, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{_DURATION_EXPECTED}, got {value!r}")
    return seconds


def _duration_text_seconds(value: str) -> float:
    """A bare number, or a run of ``<number><unit>`` parts with nothing but blanks between them."""
    text = value.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    parsed_up_to, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != parsed_up_to and text[parsed_up_to : match.start()].strip():
            raise ValueError(f"{_DURATION_EXPECTED}, got {value!r}")
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        parsed_up_to = match.end()
    if parsed_up_to == 0 or text[parsed_up_to:].strip():
        raise ValueError(f"{_DURATION_EXPECTED}, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: ``1h``, ``90s``, ``250ms``."""
    for unit, unit_seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= unit_seconds and seconds % unit_seconds == 0:
            return f"{int(seconds // unit_seconds)}{unit}"
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.10g}s"
    return f"{seconds * 1000:.10g}ms"


# --------------------------------------------------------------------------------------------------
# Sizes and rates

_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)(b?)")
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_SIZE_EXPECTED = "expected a size like '8MiB', '64M' or '1048576'"


def parse_size(value: object) -> int:
    """Bytes from ``8MiB``, ``64M`` (binary), ``64MB`` (decimal), ``1.5G`` or a bare integer."""
    if isinstance(value, bool):
        raise ValueError(f"{_SIZE_EXPECTED}, got {value!r}")
    if isinstance(value, int):
        size = float(value)
    elif isinstance(value, float) and value.is_integer():
        size = value
    elif isinstance(value, str):
        size = _size_text_bytes(value)
    else:
        raise ValueError(f"{_SIZE_EXPECTED}, got {type(value).__name__}")
    if not math.isfinite(size) or size < 0 or size != int(size):
        raise ValueError(f"{_SIZE_EXPECTED}, got {value!r}")
    return int(size)


def _size_text_bytes(value: str) -> float:
    match = _SIZE.fullmatch(value.strip().lower())
    if match is None:
        raise ValueError(f"{_SIZE_EXPECTED}, got {value!r}")
    number, unit, binary_mark, byte_mark = match.groups()
    if binary_mark and not unit:
        raise ValueError(f"{_SIZE_EXPECTED}, got {value!r}")
    # "M" and "MiB" are binary; "MB" (a unit followed by B but no i) is decimal.
    base = 1000 if (unit and byte_mark and not binary_mark) else 1024
    multiplier: int = base ** _POWERS[unit]
    return float(number) * multiplier


def parse_part_size(value: object) -> int:
    """A multipart part size within KS3's limits; outside them is an error, never silently adjusted."""
    size = parse_size(value)
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise ValueError(f"must be between 100KiB and 5GiB (KS3's part size limits), got {_shown_size(size)}")
    return size


def parse_multipart_threshold(value: object) -> int:
    """The size from which files go in parts. Every smaller file is one PUT, which KS3 takes up to 5 GiB,
    so the threshold may not be larger; a threshold below the part size is allowed (such files go as
    one part)."""
    size = parse_size(value)
    if not MIN_PART_SIZE <= size <= MAX_SINGLE_PUT:
        raise ValueError(
            f"must be between 100KiB and 5GiB (the largest single PUT KS3 takes), got {_shown_size(size)}"
        )
    return size


def _shown_size(size: int) -> str:
    shown = format_size(size)
    return shown if not shown.isdigit() else f"{shown} bytes"


def format_size(size: int) -> str:
    """The largest binary unit that divides ``size`` exactly (``8MiB``), else plain bytes (``1000``)."""
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if size >= 1024**power and size % 1024**power == 0:
            return f"{size // 1024**power}{unit}"
    return str(size)


def parse_rate(value: object) -> int | None:
    """Bytes per second from ``10MB/s``, ``10M`` (per second implied); ``0``/``off``/``none`` → no limit."""
    if value is None or value is False:  # YAML 1.1 reads a bare `off` as false
        return None
    if isinstance(value, str) and value.strip().lower() in ("off", "none", ""):
        return None
    size_text = value.strip() if isinstance(value, str) else value
    if isinstance(size_text, str) and size_text.lower().endswith("/s"):
        size_text = size_text[:-2]
    try:
        rate = parse_size(size_text)
    except ValueError:
        raise ValueError(f"expected a rate like '10MB/s', '512KiB/s' or 'off', got {value!r}") from None
    return rate or None


# --------------------------------------------------------------------------------------------------
# The delete guard


@dataclass(frozen=True, slots=True)
class MaxDelete:
    """The delete guard: refuse a pass's deletes beyond ``count`` objects or ``percent`` of the remote."""

    count: int | None = None
    percent: float | None = 50.0


def parse_max_delete(value: object) -> MaxDelete:
    """``100`` (objects) or ``"10%"`` (of the remote objects in the pass)."""
    expected = "expected a count like 100 or a percentage like '10%'"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return MaxDelete(count=value, percent=None)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                raise ValueError(f"{expected}, got {value!r}") from None
            if 0 <= percent <= 100:
                return MaxDelete(count=None, percent=percent)
        elif (count := parse_decimal(text)) is not None:
            return MaxDelete(count=count, percent=None)
    raise ValueError(f"{expected}, got {value!r}")


def format_max_delete(guard: MaxDelete) -> int | str | None:
    """As written in the file: a count, or ``"10%"``."""
    if guard.count is None and guard.percent is not None:
        return f"{guard.percent:g}%"
    return guard.count


# --------------------------------------------------------------------------------------------------
# ks3:// URLs

_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Ks3Url:
    """``ks3://bucket/prefix``. ``prefix`` is empty or ends with ``/``, so ``key = prefix + path``."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"ks3://{self.bucket}/{self.prefix}"


def parse_ks3_url(value: object) -> Ks3Url:
    """Parse ``ks3://bucket`` or ``ks3://bucket/some/prefix`` (a trailing ``/`` is added to the prefix).

    Bucket names follow KS3's rules (3-63 of ``a-z0-9-``, not starting with ``kss``); the prefix may
    not contain empty, ``.`` or ``..`` segments, which would make keys that no folder maps back to."""
    if not isinstance(value, str):
        raise ValueError(f"expected a URL like 'ks3://bucket/prefix', got {type(value).__name__}")
    if not value.startswith("ks3://"):
        raise ValueError(f"expected a URL like 'ks3://bucket/prefix', got {value!r}")
    bucket, _, prefix = value[len("ks3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket) or bucket.startswith("kss"):
        raise ValueError(
            f"bucket name must be 3-63 characters of a-z, 0-9 and '-' (not starting with 'kss'), "
            f"got {bucket!r} in {value!r}"
        )
    prefix = prefix.rstrip("/")
    if prefix:
        if has_bad_segment(prefix):
            raise ValueError(f"prefix must not contain empty, '.' or '..' segments, got {value!r}")
        prefix += "/"
    return Ks3Url(bucket=bucket, prefix=prefix)


def has_bad_segment(key_prefix: str) -> bool:
    """True if a ``/``-separated prefix (without its trailing ``/``) has an empty, ``.`` or ``..`` part."""
    return any(segment in ("", ".", "..") for segment in key_prefix.split("/"))


def check_versions_prefix(value: str) -> str:
    """A versions prefix, relative to the sync's target, normalised to end in ``/`` (ValueError if not
    plain: no leading '/', no empty, '.' or '..' segment). ``ks3sync.versions.layout`` uses the same rule."""
    if value.startswith("/"):
        raise ValueError(f"must be relative to the sync's target (no leading '/'), got {value!r}")
    normal = value if value.endswith("/") else value + "/"
    if has_bad_segment(normal[:-1]) or "\x00" in normal:
        raise ValueError(f"must not contain empty, '.' or '..' segments, got {value!r}")
    return normal


# --------------------------------------------------------------------------------------------------
# Booleans written as text (a ``${VAR}`` always expands to text)

_TRUE_WORDS = ("true", "yes", "1")
_FALSE_WORDS = ("false", "no", "0")


def boolean_from_text(text: str) -> bool | None:
    """``true/yes/1`` or ``false/no/0`` in any case; anything else is ``None``."""
    word = text.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None
