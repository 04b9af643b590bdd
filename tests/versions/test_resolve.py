"""The point-in-time rule (docs/versions.md §5) against a model of the writer: random passes of
overwrites, deletes, creations and renames, some killed before their manifest (unindexed), some with a
write that failed after its version was kept. At every pass boundary, and after the last pass, the
resolver must give exactly the state the bucket held then."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ks3sync.model import RemoteEntry
from ks3sync.versions.manifest import After, Before, Entry, Manifest
from ks3sync.versions.resolve import Pass, StoredVersion, resolve
from ks3sync.versions.stamp import format_stamp, parse_stamp

S = 1_000_000_000
BASE = 1_800_000_000 * S
NAMES = [f"d{i % 3}/f{i}.txt" for i in range(12)]


def etag(content: int) -> str:
    return hashlib.md5(str(content).encode()).hexdigest()  # noqa: S324


@dataclass
class Obj:
    content: int
    written_ns: int


@dataclass
class Bucket:
    """The writer as docs/versions.md §3 describes it, with time: pass k starts at BASE + k*100 s and
    writes one object per millisecond after its first second."""

    objects: dict[str, Obj] = field(default_factory=dict)
    passes: list[Pass] = field(default_factory=list)
    snapshots: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (time, path -> etag)
    next_content: int = 0

    def state(self) -> dict[str, str]:
        return {path: etag(obj.content) for path, obj in self.objects.items()}

    def run_pass(self, k: int, ops: list[tuple[str, int, int]], *, indexed: bool) -> None:
        start = BASE + k * 100 * S
        stamp = format_stamp(start)
        self.snapshots.append((parse_stamp(stamp), self.state()))
        clock = iter(range(start + S, start + 50 * S, 1_000_000))
        versions: dict[str, StoredVersion] = {}
        entries: dict[str, Entry] = {}
        handled: set[str] = set()  # transfer.keep's once-per-pass rule (context.Once)

        def keep(path: str) -> Before | None:
            if path in handled:
                return None
            handled.add(path)
            obj = self.objects.get(path)
            if obj is None:
                return None
            # The version carries its file's mtime (a little before the upload), as ks3sync's objects do.
            versions[path] = StoredVersion(
                stamp, path, etag(obj.content), 10, next(clock), mtime_ns=obj.written_ns - 1_000_000
            )
            return Before(etag(obj.content), 10, obj.written_ns)

        def write(path: str, content: int) -> None:
            before = keep(path)
            first = entries.get(path)
            self.objects[path] = Obj(content, next(clock))
            entries[path] = Entry(path, first.before if first else before, After(etag(content), 10))

        def delete(path: str) -> None:
            before = keep(path)
            del self.objects[path]
            first = entries.get(path)
            if first is not None and first.before is None:
                del entries[path]  # created and deleted within the pass
            else:
                entries[path] = Entry(path, first.before if first else before, None)

        for kind, a, b in ops:
            src, dst = NAMES[a], NAMES[b]
            self.next_content += 1
            if kind == "write":
                write(dst, self.next_content)
            elif kind == "delete" and src in self.objects:
                delete(src)
            elif kind == "rename" and src in self.objects and src != dst:
                write(dst, self.objects[src].content)
                delete(src)
            elif kind == "failed-write" and dst in self.objects:
                keep(dst)  # kept, then the write failed: the object is unchanged, no entry
        manifest = None
        if versions and indexed:
            manifest = Manifest(stamp, stamp, tuple(sorted(entries.values(), key=lambda e: e.path)))
        self.passes.append(Pass(stamp, parse_stamp(stamp), versions, manifest, manifest is not None))

    def listing(self) -> list[RemoteEntry]:
        return [RemoteEntry(p, 10, etag(o.content), o.written_ns) for p, o in sorted(self.objects.items())]


ops = st.lists(
    st.tuples(
        st.sampled_from(["write", "write", "delete", "rename", "failed-write"]),
        st.integers(0, len(NAMES) - 1),
        st.integers(0, len(NAMES) - 1),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(ops, st.booleans()), min_size=1, max_size=6))
def test_the_resolver_gives_the_state_at_every_pass_boundary(
    passes: list[tuple[list[tuple[str, int, int]], bool]],
) -> None:
    bucket = Bucket()
    for k, (pass_ops, indexed) in enumerate(passes):
        bucket.run_pass(k, pass_ops, indexed=indexed)
    bucket.snapshots.append((BASE + len(passes) * 100 * S, bucket.state()))
    listing = bucket.listing()
    for when, expected in bucket.snapshots:
        resolution = resolve(listing, bucket.passes, when)
        got = {c.path: c.etag for c in resolution}
        assert got == expected, when
        assert resolution.missing == []
        # Between passes (after one's writes, before the next) the state is the same.
        later = {c.path: c.etag for c in resolve(listing, bucket.passes, when + 90 * S)}
        if when + 90 * S < bucket.snapshots[-1][0]:
            following = next(s for t, s in bucket.snapshots if t > when)
            assert later == following


def test_a_version_the_manifest_names_but_the_bucket_lost_is_missing_not_absent() -> None:
    stamp = format_stamp(BASE)
    manifest = Manifest(stamp, stamp, (Entry("a.txt", Before(etag(1), 10, BASE - S), None),))
    resolution = resolve([], [Pass(stamp, BASE, {}, manifest, True)], BASE - S)
    assert list(resolution) == [] and resolution.missing == [
        ("a.txt", f"pass {stamp} kept a version that is no longer in the bucket")
    ]


def test_content_written_after_t_without_an_earlier_version_is_left_out() -> None:
    stamp = format_stamp(BASE)
    versions = {"a.txt": StoredVersion(stamp, "a.txt", etag(1), 10, BASE + S)}
    manifest = Manifest(
        stamp, stamp, (Entry("a.txt", Before(etag(1), 10, BASE - 5 * S), After(etag(2), 10)),)
    )
    current = [RemoteEntry("a.txt", 10, etag(2), BASE + S), RemoteEntry("new.txt", 10, etag(3), BASE - 2 * S)]
    passes = [Pass(stamp, BASE, versions, manifest, True)]
    # At BASE - 10 s, a.txt's old content was not written yet, and neither was new.txt.
    resolution = resolve(current, passes, BASE - 10 * S)
    assert list(resolution) == [] and {p for p, _ in resolution.left_out} == {"a.txt", "new.txt"}
    assert [(c.path, c.etag, c.version is not None) for c in resolve(current, passes, BASE - 3 * S)] == [
        ("a.txt", etag(1), True)
    ]
    assert [c.path for c in resolve(current, passes, BASE - 3 * S, under="new")] == []
    assert [c.path for c in resolve(current, passes, BASE, under="new")] == ["new.txt"]
