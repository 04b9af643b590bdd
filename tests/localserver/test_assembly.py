"""Multipart parts written in place (localserver/assembly.py): Complete renames the upload's assembly
file when the parts lie in it in order, and copies otherwise — the object's bytes, ETag and CRC are the
same either way. Checked over real HTTP against real servers, plus unit tests of the placement rules."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ks3sync.localserver import assembly
from ks3sync.localserver.crc64 import crc64
from tests.localserver.ls_wire import request
from tests.localserver.test_multipart import complete, initiate, upload_part
from tests.serverkit import ServerHandle

PART = 100 * 1024


def _assembly_files(root: Path) -> list[Path]:
    return sorted((root / "data").glob(f"*/*{assembly.FILE_SUFFIX}"))


def _bodies(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").glob("*/*") if p.is_file())


def _expected_etag(datas: list[bytes]) -> str:
    return hashlib.md5(b"".join(hashlib.md5(d).digest() for d in datas)).hexdigest() + f"-{len(datas)}"


def _check_object(server: ServerHandle, bucket: str, key: str, datas: list[bytes]) -> None:
    got = request(server, "GET", bucket, key)
    assert got.status_code == 200, got.text
    assert got.content == b"".join(datas)
    assert got.headers["ETag"] == f'"{_expected_etag(datas)}"'
    assert got.headers["x-kss-checksum-crc64ecma"] == str(crc64(b"".join(datas)))
    ranged = request(server, "GET", bucket, key, headers={"Range": f"bytes={PART - 3}-{PART + 2}"})
    assert ranged.content == b"".join(datas)[PART - 3 : PART + 3]


def _make_bucket(server: ServerHandle, name: str) -> str:
    assert request(server, "PUT", name).status_code == 200
    return name


@pytest.mark.parametrize("first_extra", [0, 16])  # 16: an encrypted part 1 carries the IV
def test_parts_become_the_object_without_a_copy(server_factory, first_extra: int) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    bucket = _make_bucket(server, f"assembly-in-place-{first_extra}")
    upload_id = initiate(server, bucket, "big")
    datas = [os.urandom(PART + first_extra), os.urandom(PART), os.urandom(PART), os.urandom(1234)]
    # Out of order after part 1, as concurrent uploaders send them.
    etags = {n: upload_part(server, bucket, "big", upload_id, n, datas[n - 1]) for n in (1, 3, 2, 4)}
    assert [p.name for p in _assembly_files(server.root)] == [assembly.file_name(upload_id)]
    before = _bodies(server.root)
    assert len(before) == 1  # every part lives in the one assembly file
    inode = before[0].stat().st_ino
    response = complete(server, bucket, "big", upload_id, sorted(etags.items()))
    assert response.status_code == 200, response.text
    assert _assembly_files(server.root) == []
    after = _bodies(server.root)
    assert len(after) == 1 and after[0].stat().st_ino == inode  # renamed, not copied
    assert after[0].stat().st_size == sum(map(len, datas))  # cut to the object's size
    _check_object(server, bucket, "big", datas)


def test_a_part_sent_again_lands_in_its_own_file_and_complete_copies(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    bucket = _make_bucket(server, "assembly-resent")
    upload_id = initiate(server, bucket, "obj")
    first = [os.urandom(PART), os.urandom(PART), os.urandom(10)]
    etags = {n: upload_part(server, bucket, "obj", upload_id, n, d) for n, d in enumerate(first, 1)}
    replacement = os.urandom(PART)
    etags[2] = upload_part(server, bucket, "obj", upload_id, 2, replacement)
    assert len(_bodies(server.root)) == 2  # the recorded part's region was not written over
    datas = [first[0], replacement, first[2]]
    assert complete(server, bucket, "obj", upload_id, sorted(etags.items())).status_code == 200
    _check_object(server, bucket, "obj", datas)
    assert _assembly_files(server.root) == []
    assert len(_bodies(server.root)) == 1  # the copied object only: parts and assembly file removed


def test_a_failed_part_leaves_nothing_recorded_and_can_be_sent_again(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    bucket = _make_bucket(server, "assembly-failed")
    upload_id = initiate(server, bucket, "obj")
    datas = [os.urandom(PART), os.urandom(PART)]
    etag1 = upload_part(server, bucket, "obj", upload_id, 1, datas[0])
    wrong_md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="  # MD5 of the empty string
    bad = request(
        server,
        "PUT",
        bucket,
        "obj",
        f"partNumber=2&uploadId={upload_id}",
        content=datas[1],
        headers={"Content-MD5": wrong_md5},
    )
    assert bad.status_code == 400
    listed = request(server, "GET", bucket, "obj", f"uploadId={upload_id}")
    assert "<PartNumber>2</PartNumber>" not in listed.text
    etag2 = upload_part(server, bucket, "obj", upload_id, 2, datas[1])
    assert len(_bodies(server.root)) == 1  # the retry went in place too
    assert complete(server, bucket, "obj", upload_id, [(1, etag1), (2, etag2)]).status_code == 200
    _check_object(server, bucket, "obj", datas)


def test_complete_of_a_subset_cuts_the_file_to_the_chosen_parts(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    bucket = _make_bucket(server, "assembly-subset")
    upload_id = initiate(server, bucket, "obj")
    datas = [os.urandom(PART) for _ in range(3)]
    etags = [upload_part(server, bucket, "obj", upload_id, n, d) for n, d in enumerate(datas, 1)]
    assert complete(server, bucket, "obj", upload_id, [(1, etags[0]), (2, etags[1])]).status_code == 200
    _check_object(server, bucket, "obj", datas[:2])
    assert [p.stat().st_size for p in _bodies(server.root)] == [2 * PART]


def test_abort_removes_the_assembly_file(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    bucket = _make_bucket(server, "assembly-abort")
    upload_id = initiate(server, bucket, "obj")
    upload_part(server, bucket, "obj", upload_id, 1, os.urandom(PART))
    assert len(_assembly_files(server.root)) == 1
    assert request(server, "DELETE", bucket, "obj", f"uploadId={upload_id}").status_code == 204
    assert _bodies(server.root) == []


def test_parts_placed_before_a_restart_survive_it_and_complete_copies_them(  # type: ignore[no-untyped-def]
    server_factory, tmp_path: Path
) -> None:
    root = tmp_path / "restart-root"
    first = server_factory(root=root)
    bucket = _make_bucket(first, "assembly-restart")
    upload_id = initiate(first, bucket, "obj")
    datas = [os.urandom(PART), os.urandom(PART), os.urandom(99)]
    etags = [upload_part(first, bucket, "obj", upload_id, n, d) for n, d in enumerate(datas[:2], 1)]
    first.stop()
    second = server_factory(root=root)  # start-up removes orphans: the assembly file is referenced
    assert len(_assembly_files(root)) == 1
    etags.append(upload_part(second, bucket, "obj", upload_id, 3, datas[2]))
    response = complete(second, bucket, "obj", upload_id, list(enumerate(etags, 1)))
    assert response.status_code == 200, response.text
    _check_object(second, bucket, "obj", datas)
    assert _assembly_files(root) == []


def test_placements_never_overlap_and_a_closed_upload_places_nothing() -> None:
    places = assembly.Placements()
    assert not places.placing("u1")
    assert places.claim("u1", 2, 100) is None  # part 1's size unknown: part 2's offset is too
    assert places.claim("u1", 1, 116) == 0  # part 1 (with an IV prefix) goes first
    assert places.placing("u1")
    assert places.claim("u1", 1, 116) is None  # the same part twice at once
    assert places.claim("u1", 5, 99) is None  # short: taken for the last part, must not fix the stride
    assert places.claim("u1", 3, 100) == 216  # the first full later part fixes the stride
    assert places.claim("u1", 2, 100) == 116
    assert places.claim("u1", 4, 101) is None  # larger than the stride: would run into part 5
    assert places.claim("u1", 4, 7) == 316  # a smaller (last) part fits its region
    assert places.claim("u1", 6, 0) is None
    assert places.close("u1") is False  # parts still being written: Complete must copy
    for number in (1, 2, 3, 4):
        places.release("u1", number)
    assert places.close("u1") is True
    assert places.claim("u1", 5, 100) is None  # closed for Complete
    places.forget("u1")
    assert places.claim("u1", 1, 50) == 0  # forgotten: a fresh state
    places.release("u1", 1)
    assert places.claim("u1", 1, 60) is None  # part 1 failed at 50 bytes: later parts follow that size


def test_in_place_layout_requires_every_placed_part_where_the_object_needs_it() -> None:
    ids = [assembly.part_id("u", 0, 26), assembly.part_id("u", 26, 10), assembly.part_id("u", 36, 3)]
    assert assembly.in_place_layout("u", ids, [26, 10, 3]) == [0, 26, 36]
    assert assembly.in_place_layout("u", [ids[0], "0123abcd", ids[2]], [26, 10, 3]) == [
        0,
        26,
        36,
    ]  # copied in
    assert assembly.in_place_layout("u", ids[1:], [10, 3]) is None  # part 2's bytes would have to move
    assert assembly.in_place_layout("u", [ids[0], ids[2]], [26, 3]) is None  # a gap
    assert assembly.in_place_layout("u", ["0123abcd", "4567ef01"], [10, 10]) is None  # nothing placed
    assert assembly.parse(ids[2]) == ("u", 36, 3)
    assert assembly.parse(assembly.file_id("abc")) == ("abc", 0, 0)


@pytest.mark.parametrize("order", [(2, 1, 3, 4), (1, 4, 2, 3), (4, 3, 2, 1)])
def test_parts_that_cannot_be_placed_are_copied_into_the_assembly_file(server_factory, order) -> None:  # type: ignore[no-untyped-def]
    # Before part 1 no offset is known; a short (last) part must not fix the stride. Such parts get files
    # of their own, and Complete copies just them into place.
    server = server_factory()
    bucket = _make_bucket(server, "assembly-order-" + "".join(map(str, order)))
    upload_id = initiate(server, bucket, "obj")
    datas = [os.urandom(PART), os.urandom(PART), os.urandom(PART), os.urandom(77)]
    etags = {n: upload_part(server, bucket, "obj", upload_id, n, datas[n - 1]) for n in order}
    assert len(_bodies(server.root)) > 1
    response = complete(server, bucket, "obj", upload_id, sorted(etags.items()))
    assert response.status_code == 200, response.text
    _check_object(server, bucket, "obj", datas)
    assert [p.stat().st_size for p in _bodies(server.root)] == [sum(map(len, datas))]


def test_concurrent_completes_of_one_upload_never_fail_with_a_server_error(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    bucket = _make_bucket(server, "assembly-race")
    for attempt in range(5):
        key = f"obj{attempt}"
        upload_id = initiate(server, bucket, key)
        datas = [os.urandom(PART), os.urandom(PART), os.urandom(5)]
        etags = [upload_part(server, bucket, key, upload_id, n, d) for n, d in enumerate(datas, 1)]
        listed = list(enumerate(etags, 1))
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(complete, server, bucket, key, upload_id, listed) for _ in range(3)]
            answers = [future.result() for future in futures]
        codes = sorted(a.status_code for a in answers)
        assert codes[0] == 200 and set(codes) <= {200, 404}, [a.text for a in answers]
        _check_object(server, bucket, key, datas)


@pytest.mark.parametrize("refuse_copy_range", [False, True])
def test_adopt_copies_unplaced_parts_in_and_concatenate_reads_placed_ones(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch, refuse_copy_range: bool
) -> None:
    # In process, on Storage itself: both ways of assembling agree, with and without copy_file_range.
    import errno

    from ks3sync.localserver.storage import Storage

    storage = Storage(tmp_path / "root", fsync=False)
    try:
        upload_id = storage.create_upload("b", "k", "STANDARD", "private", {}).upload_id
        datas = [b"part one, a bit longer", b"part two..", b"part three"]
        ids = []
        for number, data in ((1, datas[0]), (3, datas[2])):
            slot = storage.open_part_slot(upload_id, number, len(data))
            assert slot is not None
            os.write(slot.fd, data)
            storage.discard_slot(slot)  # closes it, like seal_slot without fsync
            storage.placements.release(upload_id, number)
            ids.append(slot.data_id)
        temp = storage.open_temp()
        os.write(temp.fd, datas[1])
        ids.insert(1, storage.seal_temp(temp).data_id)  # part 2 in a file of its own
        if refuse_copy_range:

            def refuse(*_args: object) -> int:
                raise OSError(errno.EXDEV, "cross-device")

            monkeypatch.setattr(os, "copy_file_range", refuse)
        sizes = [len(d) for d in datas]
        target = storage.open_temp()
        storage.concatenate(ids, target)
        assert Path(storage.seal_temp(target).path).read_bytes() == b"".join(datas)
        offsets = assembly.in_place_layout(upload_id, ids, sizes)
        assert offsets == [0, 22, 32]
        adopted = storage.adopt_assembly(upload_id, list(zip(ids, sizes, strict=True)), offsets)
        assert Path(adopted.path).read_bytes() == b"".join(datas)
        assert not Path(storage.assembly_path(upload_id)).exists()
    finally:
        storage.close()
