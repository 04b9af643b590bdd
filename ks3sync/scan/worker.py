"""``scan_tree`` on a second core: a child interpreter walks the tree and streams its results back.

Why: Python runs one thread at a time. A no-change pass over a large tree spends much of its CPU
walking and stat-ing, in the same process (and under the same lock) as the listing's parse and the
journal's rows. Here a child process walks while the parent lists and reads the journal; the parent
only decodes what the child sends, a fraction of the walk's cost. Starting the child has a cost of
its own, so the engine (``ks3sync.engine``) uses this only for trees the journal already knows to be
large (the figures: D5, D20).

The child runs the very same ``scan_tree`` with filters built from the same settings, so the two
ways of scanning cannot disagree on what is synced (``tests/scan/test_worker.py`` compares them).

Wire format, child stdout: frames of a 4-byte little-endian length and a ``marshal`` payload:

- a list of records: ``(path, size, mtime_ns, inode, ctime_ns)`` for a file, ``(path, reason, kind)``
  for a problem, in scan order;
- ``("root-error", errno, message)``: the root cannot be scanned (``ScanRootError`` in the parent);
- ``("failed", message)``: anything else went wrong in the child;
- ``("end", files)``: the scan is complete. A stream that stops without it is a failed scan: a scan
  cut short must never look like files that were deleted.

``marshal`` is the fastest standard codec for tuples of ``str`` and ``int``; it is safe here because
both ends are the same interpreter (``sys.executable``) and the bytes never leave the pipe.

Imports: the standard library, ``ks3sync.model`` and the sibling scan modules.
"""

from __future__ import annotations

import json
import marshal
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ks3sync.model import FileIdentity, LocalEntry
from ks3sync.scan.filters import Filters
from ks3sync.scan.walk import ScanProblem, ScanRootError, ScanWorkerError, scan_tree

BATCH = 1000  # records per frame: one pipe write and one unmarshal per thousand files
_LENGTH = 4
_MAX_FRAME = 1 << 30  # a corrupt length must not become a huge read


def scan_tree_in_worker(
    root: Path,
    *,
    excludes: Sequence[str] = (),
    exclude_from: Sequence[Path] = (),
    state_paths: Sequence[Path] = (),
    reserved: Sequence[str] = (),
    follow_symlinks: bool = False,
    key_prefix: str = "",
    rules: bool = True,
) -> Iterator[LocalEntry | ScanProblem]:
    """What ``scan_tree(root, Filters.build(root, ...), ...)`` yields, walked by a child process
    (``rules=False``: with ``Filters.build(...).without_rules()``).
    Raises :class:`ScanRootError` as ``scan_tree`` does and :class:`ScanWorkerError` if the child
    fails. Closing the iterator early stops the child."""
    spec = {
        "root": os.fsdecode(root),
        "excludes": list(excludes),
        "exclude_from": [os.fsdecode(p) for p in exclude_from],
        "state_paths": [os.fsdecode(p) for p in state_paths],
        "reserved": list(reserved),
        "follow_symlinks": follow_symlinks,
        "key_prefix": key_prefix,
        "rules": rules,
    }
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ks3sync.scan.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_env(),
        )
    except OSError as exc:  # e.g. out of processes or memory: worth another pass later
        raise ScanWorkerError(f"cannot start the scan worker: {exc.strerror or exc}") from exc
    assert proc.stdin is not None and proc.stdout is not None
    try:
        try:
            # surrogateescape'd names survive JSON as \udcXX escapes and come back the same.
            proc.stdin.write(json.dumps(spec).encode("ascii"))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child is gone already: the read below reports it
        while True:
            frame = _read_frame(proc.stdout)
            if frame is None:
                raise ScanWorkerError(f"the scan worker stopped before finishing (exit status {proc.wait()})")
            if type(frame) is list:
                for record in frame:
                    if len(record) == 5:
                        path, size, mtime_ns, inode, ctime_ns = record
                        yield LocalEntry(path, FileIdentity(size, mtime_ns, inode, ctime_ns))
                    else:
                        yield ScanProblem(*record)
                continue
            if frame[0] == "end":
                return
            if frame[0] == "root-error":
                raise ScanRootError(frame[1], frame[2])
            raise ScanWorkerError(f"the scan worker failed: {frame[1]}")
    finally:
        if proc.poll() is None:
            proc.kill()  # stopped early (or failed): the rest of the walk is not wanted
        proc.stdout.close()
        proc.wait()


def _child_env() -> dict[str, str]:
    """The parent's environment, with this ks3sync first on the path: the child must run the same
    code (a checkout the parent imported from the current folder is not on the child's path)."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_LENGTH)
    if len(header) < _LENGTH:
        return None
    length = int.from_bytes(header, "little")
    if length > _MAX_FRAME:
        raise ScanWorkerError(f"the scan worker sent a corrupt frame ({length} bytes)")
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return marshal.loads(payload)


def _write_frame(out: IO[bytes], value: list[tuple[Any, ...]] | tuple[Any, ...]) -> None:
    payload = marshal.dumps(value)
    out.write(len(payload).to_bytes(_LENGTH, "little"))
    out.write(payload)


def _run(spec: dict[str, Any], out: IO[bytes]) -> None:
    root = Path(spec["root"])
    filters = Filters.build(
        root,
        excludes=spec["excludes"],
        exclude_from=[Path(p) for p in spec["exclude_from"]],
        state_paths=[Path(p) for p in spec["state_paths"]],
        reserved=spec["reserved"],
    )
    if not spec.get("rules", True):
        filters = filters.without_rules()
    batch: list[tuple[Any, ...]] = []
    files = 0
    for item in scan_tree(
        root, filters, follow_symlinks=spec["follow_symlinks"], key_prefix=spec["key_prefix"]
    ):
        if type(item) is LocalEntry:
            identity = item.identity
            batch.append((item.path, identity.size, identity.mtime_ns, identity.inode, identity.ctime_ns))
            files += 1
        else:
            assert isinstance(item, ScanProblem)
            batch.append((item.path, item.reason, item.kind))
        if len(batch) >= BATCH:
            _write_frame(out, batch)
            batch = []
    _write_frame(out, batch)
    _write_frame(out, ("end", files))


def main() -> int:
    # Ctrl-C reaches the whole process group: the parent decides, and stops this child itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    try:
        spec = json.loads(sys.stdin.buffer.read())
        try:
            _run(spec, out)
        except ScanRootError as exc:
            _write_frame(out, ("root-error", exc.errno or 0, exc.strerror or str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the pass
            _write_frame(out, ("failed", f"{type(exc).__name__}: {exc}"))
            out.flush()
            return 1
        out.flush()
    except BrokenPipeError:
        return 1  # the parent stopped reading: nothing left to tell it
    return 0


if __name__ == "__main__":
    sys.exit(main())
