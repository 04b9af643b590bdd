"""A Hypothesis state machine (vdirsyncer's habit) drives run_mirror against MemoryStore with injected
failures while a real folder changes under it. After every pass, whatever happened:

- recorded implies confirmed (invariant 1): every journal record names an object that exists with the
  recorded ETag and size, holding bytes whose MD5 is the recorded MD5;
- no upload is left half-done in the journal without KS3 knowing it, and vice versa, once a pass ends;
- a pass without faults converges: the bucket equals the folder, and a second clean pass writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ks3sync.engine.mirror import MirrorOptions, run_mirror
from ks3sync.errors import AuthError, IntegrityError, RemoteRejected, TransientError
from ks3sync.model import Direction
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer import TransferOptions
from ks3sync.transfer.checkpoint import MemoryJournal

KIB = 1024
NAMES = ["a", "b", "dir/c", "dir/sub/d", "é", "big"]
CONTENTS = [b"", b"x", b"hello", b"hello!", bytes(range(256)) * 4]
BIG = [os.urandom(250 * KIB), os.urandom(330 * KIB)]
OPS = ["put", "create_upload", "upload_part", "complete_upload", "copy", "delete", "list_parts"]
FAULTS = [TransientError("injected 503"), IntegrityError("injected digest"), RemoteRejected("injected 400")]


class MirrorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="ks3sync-stateful-"))
        self.src = self.base / "src"
        self.src.mkdir()
        self.store = MemoryStore(prefix="s/")
        self.journal = MemoryJournal()
        self.tick = 1_600_000_000_000_000_000
        self.options = MirrorOptions(
            delete=True,
            force=True,
            transfer=TransferOptions(jobs=3, part_size=100 * KIB, multipart_threshold=200 * KIB),
        )

    def teardown(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def _write(self, name: str, data: bytes) -> None:
        path = self.src / name
        if path.parent.exists() and not path.parent.is_dir():
            return  # a file is in the way of this folder: skip the step
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            return
        path.write_bytes(data)
        # Distinct mtimes: a same-size rewrite within one timestamp tick is invisible to any stat-based
        # sync (restic, rsync), which is not what this machine is about.
        self.tick += 1_000_000
        os.utime(path, ns=(self.tick, self.tick))

    @rule(name=st.sampled_from(NAMES[:-1]), data=st.sampled_from(CONTENTS))
    def write_small(self, name: str, data: bytes) -> None:
        self._write(name, data)

    @rule(data=st.sampled_from(BIG))
    def write_big(self, data: bytes) -> None:
        self._write("big", data)

    @rule(name=st.sampled_from(NAMES))
    def delete(self, name: str) -> None:
        path = self.src / name
        if path.is_file():
            path.unlink()

    @rule(old=st.sampled_from(NAMES), new=st.sampled_from(NAMES))
    def rename(self, old: str, new: str) -> None:
        source, target = self.src / old, self.src / new
        if (
            old != new
            and source.is_file()
            and not target.exists()
            and (not target.parent.exists() or target.parent.is_dir())
        ):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)

    @rule(op=st.sampled_from(OPS), exc=st.sampled_from(FAULTS), times=st.integers(1, 3))
    def inject_fault(self, op: str, exc: Exception, times: int) -> None:
        self.store.inject(op, exc, times=times)

    @rule()
    def mirror_with_faults(self) -> None:
        result = run_mirror(self.store, self.journal, 1, self.src, Direction.UPLOAD, self.options)
        assert result.stopped is None or "injected" in result.stopped

    @rule()
    def fatal_error_stops_cleanly(self) -> None:
        self.store.inject("put", AuthError("injected auth"), times=1)
        result = run_mirror(self.store, self.journal, 1, self.src, Direction.UPLOAD, self.options)
        assert result.ok or result.failed or result.stopped
        self.store._faults.clear()

    @rule()
    def clean_mirror_converges(self) -> None:
        self.store._faults.clear()
        result = run_mirror(self.store, self.journal, 1, self.src, Direction.UPLOAD, self.options)
        assert result.ok, result.failed
        assert self.remote_files() == self.local_files()
        self.store.calls.clear()
        again = run_mirror(self.store, self.journal, 1, self.src, Direction.UPLOAD, self.options)
        assert again.ok and self.store.writes() == [], self.store.writes()
        assert not self.store.uploads and not self.journal.cp.uploads

    def local_files(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.src).as_posix(): p.read_bytes() for p in self.src.rglob("*") if p.is_file()
        }

    def remote_files(self) -> dict[str, bytes]:
        return {entry.path: self.store.data(entry.path) for entry in self.store.list()}

    @invariant()
    def recorded_implies_confirmed(self) -> None:
        for path, entry in self.journal.cp.synced_entries.items():
            obj = self.store.objects.get(self.store.key_for(path))
            assert obj is not None, f"{path} recorded but not in the bucket"
            assert (obj.etag, len(obj.data)) == (entry.remote_etag, entry.remote_size), path
            assert hashlib.md5(obj.data).hexdigest() == entry.md5, f"{path} recorded with other bytes"

    @invariant()
    def journal_uploads_exist_remotely(self) -> None:
        for record in self.journal.cp.uploads.values():
            # A recorded upload may only be missing remotely if something outside aborted it; here
            # nothing does, so every recorded upload must still be open on the service.
            assert record.upload_id in self.store.uploads, record


TestMirrorMachine = MirrorMachine.TestCase
TestMirrorMachine.settings = settings(
    max_examples=25, stateful_step_count=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
