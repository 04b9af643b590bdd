"""Multipart parts written in place, so Complete can rename one file into the object instead of copying
every byte a second time.

An upload's parts go, when they can, into one sparse file per upload (data/<xx>/<upload_id>.parts), at
``(part_number - 1) * stride``: the stride is the size of the first part placed, and a part may be
placed only if it is no larger than the stride, so the regions never overlap. Complete renames that
file into the object when the chosen parts are exactly 1..N of it, all a full stride but the last
(what every uploader sends); any other shape — a part sent twice, a part copy, a part that arrived after
a server restart, parts in flight during Complete — falls back to copying the parts, as before.

Copying a 1 GiB object on Complete cost the server 0.4-2.4 s of CPU here (fresh page-cache pages are
slow to touch in this VM); in place it costs a truncate and a rename.

A part placed in the file has the data id ``u<upload_id>:<offset>:<size>``; ``u<upload_id>`` names the
whole file. Neither is ever an object's data id. Imports nothing else from ks3sync.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "u"  # not a hex digit and not the inline bodies' "i": never mistaken for another body id
FILE_SUFFIX = ".parts"
MAX_END = 1 << 40  # sparse offsets stay far below ext4's 16 TiB file size limit


def is_assembled(data_id: str) -> bool:
    return data_id.startswith(PREFIX)


def part_id(upload_id: str, offset: int, size: int) -> str:
    return f"{PREFIX}{upload_id}:{offset}:{size}"


def file_id(upload_id: str) -> str:
    """The id that stands for the whole assembly file (remove_data removes the file for it)."""
    return PREFIX + upload_id


def parse(data_id: str) -> tuple[str, int, int]:
    """(upload id, offset, size) of a part id; offset and size are 0 for the whole-file id."""
    upload_id, _, rest = data_id[len(PREFIX):].partition(":")
    if not rest:
        return upload_id, 0, 0
    offset, _, size = rest.partition(":")
    return upload_id, int(offset), int(size)


def file_name(upload_id: str) -> str:
    return upload_id + FILE_SUFFIX


@dataclass(slots=True)
class PartSlot:
    """Where one part is being received: an open descriptor positioned at the part's offset."""

    upload_id: str
    part_number: int
    offset: int
    size: int
    fd: int
    path: str
    closed: bool = False

    @property
    def data_id(self) -> str:
        return part_id(self.upload_id, self.offset, self.size)


class Placements:
    """Which regions of which assembly files are taken. Event-loop thread only, so no lock.

    Kept in memory: after a restart no stride is known and later parts of an older upload simply get
    files of their own (Complete then copies). The region of a part that has a row is never written
    again — a re-sent part goes to a file of its own — so a failed re-send cannot damage a recorded part.
    """

    def __init__(self) -> None:
        self._stride: dict[str, int] = {}
        self._writing: dict[str, set[int]] = {}
        self._closed: set[str] = set()

    def claim(self, upload_id: str, part_number: int, size: int) -> int | None:
        """The offset to write part ``part_number`` at, or None when it must go to a file of its own.
        The caller has checked that no row exists for the part; it must ``release`` the claim once the
        part's row is written (or the part failed)."""
        if size <= 0 or upload_id in self._closed:
            return None
        writing = self._writing.setdefault(upload_id, set())
        if part_number in writing:
            return None  # the same part sent twice at once: the second one must not share the region
        stride = self._stride.setdefault(upload_id, size)
        offset = (part_number - 1) * stride
        if size > stride or offset + size > MAX_END:
            return None
        writing.add(part_number)
        return offset

    def placing(self, upload_id: str) -> bool:
        """Whether this process has placed (or refused to place) parts of the upload."""
        return upload_id in self._stride or upload_id in self._closed

    def release(self, upload_id: str, part_number: int) -> None:
        writing = self._writing.get(upload_id)
        if writing is not None:
            writing.discard(part_number)

    def close(self, upload_id: str) -> int | None:
        """Stop placing parts of an upload being completed; returns its stride if the file may be taken
        as the object now (no part is being written into it), else None."""
        self._closed.add(upload_id)
        if self._writing.get(upload_id):
            return None
        return self._stride.get(upload_id)

    def forget(self, upload_id: str) -> None:
        self._stride.pop(upload_id, None)
        self._writing.pop(upload_id, None)
        self._closed.discard(upload_id)


def in_place_size(upload_id: str, stride: int, data_ids: list[str], sizes: list[int]) -> int | None:
    """The object's size if the chosen parts are exactly 1..N of the assembly file, in order, every one
    a full stride but the last; else None."""
    total = 0
    last = len(data_ids) - 1
    for index, (data_id, size) in enumerate(zip(data_ids, sizes, strict=True)):
        if data_id != part_id(upload_id, index * stride, size):
            return None
        if index < last and size != stride:
            return None
        total += size
    return total
