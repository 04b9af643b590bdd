"""Multipart parts written in place, so Complete can rename one file into the object instead of copying
every byte a second time.

An upload's parts go, when they can, into one sparse file per upload (data/<xx>/<upload_id>.parts), where
they will be in the object: part 1 at 0, part n > 1 at ``first + (n - 2) * stride``, where ``first`` is
part 1's size (an encrypted part 1 carries the IV: 16 bytes more than the others) and ``stride`` the size
of the first later part placed that is at least ``first - 16`` (a shorter one is taken to be the last
part, which must not fix the regions). A part may be placed only if it is no larger than its region, so regions
never overlap; a part that starts before part 1 (its offset is not known yet), a part sent again, or a
part larger than the stride gets a file of its own. Complete copies those few into their place in the
assembly file and renames the file into the object. When a placed part is not where the chosen list puts
it (an odd layout, a part 1 replaced by one of another size) or parts are in flight, Complete copies
every part into a new body, as before.

Copying a 1 GiB object on Complete cost the server 0.4-2.4 s of CPU here (fresh page-cache pages are
slow to touch in this VM); in place it costs a truncate and a rename.

A part placed in the file has the data id ``u<upload_id>:<offset>:<size>``; ``u<upload_id>`` names the
whole file. Neither is ever an object's data id. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

IV_PREFIX = 16  # an encrypted upload's part 1 (KS3 SDK format) is this much longer than the others
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
    upload_id, _, rest = data_id[len(PREFIX) :].partition(":")
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
        self._first: dict[str, int] = {}  # upload -> part 1's size
        self._stride: dict[str, int] = {}  # upload -> size of the later parts' regions
        self._writing: dict[str, set[int]] = {}
        self._closed: set[str] = set()
        self._completing: dict[str, asyncio.Lock] = {}

    def completing(self, upload_id: str) -> asyncio.Lock:
        """The lock that lets one Complete of an upload run at a time."""
        return self._completing.setdefault(upload_id, asyncio.Lock())

    def claim(self, upload_id: str, part_number: int, size: int) -> int | None:
        """The offset to write part ``part_number`` at, or None when it must go to a file of its own.
        The caller has checked that no row exists for the part; it must ``release`` the claim once the
        part's row is written (or the part failed)."""
        if size <= 0 or upload_id in self._closed:
            return None
        writing = self._writing.setdefault(upload_id, set())
        if part_number in writing:
            return None  # the same part sent twice at once: the second one must not share the region
        if part_number == 1:
            if self._first.setdefault(upload_id, size) != size:
                return None  # part 1 failed earlier with another size: later parts sit after that one
            offset = 0
        else:
            first = self._first.get(upload_id)
            if first is None:
                return None  # where part 2 starts is not known before part 1 is
            stride = self._stride.get(upload_id)
            if stride is None:
                if size < first - IV_PREFIX:
                    return None  # most likely the (short) last part: let a full part set the regions
                stride = self._stride[upload_id] = size
            offset = first + (part_number - 2) * stride
            if size > stride or offset + size > MAX_END:
                return None
        writing.add(part_number)
        return offset

    def placing(self, upload_id: str) -> bool:
        """Whether this process has placed (or refused to place) parts of the upload."""
        return upload_id in self._first or upload_id in self._closed

    def release(self, upload_id: str, part_number: int) -> None:
        writing = self._writing.get(upload_id)
        if writing is not None:
            writing.discard(part_number)

    def close(self, upload_id: str) -> bool:
        """Stop placing parts of an upload being completed; True if no part is being written into its
        file (so the file may become the object now)."""
        self._closed.add(upload_id)
        return not self._writing.get(upload_id)

    def forget(self, upload_id: str) -> None:
        self._completing.pop(upload_id, None)  # a Complete waiting on it then finds the upload gone
        self._first.pop(upload_id, None)
        self._stride.pop(upload_id, None)
        self._writing.pop(upload_id, None)
        self._closed.discard(upload_id)


def in_place_layout(upload_id: str, data_ids: list[str], sizes: list[int]) -> list[int] | None:
    """Each chosen part's offset in the object, if every one of them that lies in the assembly file lies
    exactly there (the others are copied into place); None if none or not all do."""
    offsets = []
    position = 0
    placed = False
    for data_id, size in zip(data_ids, sizes, strict=True):
        if is_assembled(data_id):
            if data_id != part_id(upload_id, position, size):
                return None  # copying others into place could overwrite it
            placed = True
        offsets.append(position)
        position += size
    return offsets if placed else None
