"""The ListObjects algorithm: prefix, delimiter roll-up, marker and page size over a sorted key index.

Works on UTF-8 key bytes through a `scan` callable (the SQLite index in the server, a sorted list in
tests), so each roll-up costs one indexed seek: when a key rolls up into a common prefix P, the next
scan starts at the first byte string after every key that starts with P, instead of walking them.
Imports nothing else from ks3sync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class HasKey(Protocol):
    @property
    def key(self) -> str: ...


T = TypeVar("T", bound=HasKey)

# scan(after, inclusive, below, limit) -> entries in byte order with after < key (<= if inclusive) < below
Scan = Callable[[bytes, bool, "bytes | None", int], Sequence[T]]

# Rows fetched per scan: small right after a roll-up (the next key often rolls up too, and its scan
# would be wasted), growing while keys keep coming without roll-ups.
_FIRST_BATCH = 256
_AFTER_JUMP = 8
_MAX_BATCH = 1024


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True, slots=True)
class ListPage(Generic[T]):
    contents: list[T]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None  # the last key or prefix returned, when truncated


def list_page(scan: Scan[T], prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage[T]:
    prefix_b = prefix.encode("utf-8")
    delimiter_b = delimiter.encode("utf-8")
    below = prefix_successor(prefix_b) if prefix_b else None

    # Where to start: after the marker, or at the prefix, whichever is later.
    start, inclusive = prefix_b, True
    marker_b = marker.encode("utf-8")
    if marker_b and marker_b >= prefix_b:
        start, inclusive = marker_b, False
        if delimiter_b and marker_b.startswith(prefix_b):
            # A marker inside a rolled-up prefix means that whole prefix was already returned.
            cut = marker_b.find(delimiter_b, len(prefix_b))
            if cut != -1:
                rolled = marker_b[: cut + len(delimiter_b)]
                successor = prefix_successor(rolled)
                if successor is None:
                    return ListPage([], [], False, None)
                start, inclusive = successor, True

    contents: list[T] = []
    prefixes: list[str] = []
    last_item: str | None = None
    if max_keys <= 0:
        return ListPage([], [], False, None)

    batch_size = min(_FIRST_BATCH, max_keys + 1)
    while True:
        batch = scan(start, inclusive, below, batch_size)
        if not batch:
            return ListPage(contents, prefixes, False, None)
        jumped = False
        for entry in batch:
            key_b = entry.key.encode("utf-8")
            cut = key_b.find(delimiter_b, len(prefix_b)) if delimiter_b else -1
            if len(contents) + len(prefixes) >= max_keys:
                return ListPage(contents, prefixes, True, last_item)
            if cut == -1:
                contents.append(entry)
                last_item = entry.key
                start, inclusive = key_b, False
                continue
            rolled = key_b[: cut + len(delimiter_b)]
            rolled_str = rolled.decode("utf-8")
            prefixes.append(rolled_str)
            last_item = rolled_str
            successor = prefix_successor(rolled)
            if successor is None:
                return ListPage(contents, prefixes, False, None)
            start, inclusive = successor, True
            jumped = True
            break
        if jumped:
            batch_size = _AFTER_JUMP
        elif len(batch) < batch_size:
            return ListPage(contents, prefixes, False, None)
        else:
            batch_size = min(batch_size * 4, _MAX_BATCH)
