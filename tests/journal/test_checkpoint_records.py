"""The journal's record paths at their edges (from the mutation run of journal/checkpoint.py,
docs/mutation.md): every 64-bit CRC-64 survives the signed SQLite column unchanged, including 0 and
the values around 2**63; a recorded upload comes back whole, path and parts in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from ks3sync.journal import Journal
from ks3sync.model import FileIdentity, PartRecord, UploadRecord

CRCS = [0, 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, None]


@pytest.fixture
def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    j = Journal.open(tmp_path / "journal.db")
    yield j
    j.close()


def test_recorded_uploads_and_parts_come_back_whole(journal: Journal) -> None:
    cp = journal.checkpoint(journal.register_sync("s", "/src", "b", "p/", "h"))
    record = UploadRecord(
        "dir/big.bin", "p/dir/big.bin", "up-1", 100, FileIdentity(700, 1, 2, 3), 99, iv=b"i" * 16
    )
    cp.upload_started(record)
    for number, crc in reversed(list(enumerate(CRCS, start=1))):  # recorded out of order
        cp.part_done(
            "up-1", PartRecord(number, 100, f"{number:032x}", f"{number:032x}", crc, bytes([number]) * 16)
        )
    got = cp.upload_for("dir/big.bin")
    assert got is not None and got.path == "dir/big.bin" and got.iv == b"i" * 16
    assert [p.part_number for p in got.parts] == list(range(1, len(CRCS) + 1))
    assert [p.crc64 for p in got.parts] == CRCS
    assert [p.chain_block for p in got.parts] == [bytes([n]) * 16 for n in range(1, len(CRCS) + 1)]
    cp.upload_finished("up-1")
    assert cp.upload_for("dir/big.bin") is None
