"""Deterministic source data for the workloads: small-file trees, one large file, the W3 mutation.

Owns: what is on disk before a tool runs. Every byte comes from `random.Random(seed)`, so two runs of
the harness (on any machine) upload identical content. Must not import: ks3sync, the peers.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

SMALL_SEED = 7
BIG_SEED = 11
MUTATE_SEED = 13
BLOCK = 1 << 20


@dataclass(frozen=True)
class TreeSpec:
    files: int
    folders: int
    size: int

    def rel_path(self, i: int) -> str:
        return f"d{i % self.folders:03d}/f{i:07d}.bin"


@dataclass(frozen=True)
class Mutation:
    """W3: what changed in the source since the last sync."""

    modified: tuple[str, ...]
    deleted: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]  # (old, new)


def make_tree(root: Path, spec: TreeSpec, seed: int = SMALL_SEED) -> None:
    """Write `spec.files` files of `spec.size` random bytes under `root` (idempotent per spec)."""
    # The stamp sits beside the tree, never inside it: tools sync the tree as it is.
    stamp = root.with_name(root.name + ".complete")
    if stamp.exists() and stamp.read_text() == repr((spec, seed)):
        return
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)
    for folder in range(spec.folders):
        (root / f"d{folder:03d}").mkdir(parents=True)
    for i in range(spec.files):
        (root / spec.rel_path(i)).write_bytes(rng.randbytes(spec.size))
    stamp.write_text(repr((spec, seed)))


def copy_tree(src: Path, dst: Path) -> None:
    """A private copy of a generated tree (mtimes kept), for runs that change the source."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def make_big_file(path: Path, size: int, seed: int = BIG_SEED) -> None:
    # Beside the file's folder, not in it: the folder is what the tools sync.
    stamp = path.parent.with_name(f"{path.parent.name}.{path.name}.complete")
    if path.exists() and stamp.exists() and stamp.read_text() == repr((size, seed)):
        return
    stamp.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(rng.randbytes(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)
    stamp.write_text(repr((size, seed)))


def plan_mutation(
    spec: TreeSpec, modify: int = 50, delete: int = 20, rename: int = 30, seed: int = MUTATE_SEED
) -> Mutation:
    rng = random.Random(seed)
    chosen = rng.sample(range(spec.files), modify + delete + rename)
    paths = [spec.rel_path(i) for i in chosen]
    renamed = []
    for i, old in zip(chosen[modify + delete :], paths[modify + delete :], strict=True):
        # Into the next folder, under a new name: a move, not an in-place change.
        renamed.append((old, f"d{(i + 1) % spec.folders:03d}/renamed-{i:07d}.bin"))
    return Mutation(tuple(paths[:modify]), tuple(paths[modify : modify + delete]), tuple(renamed))


def apply_mutation(root: Path, m: Mutation, size: int, seed: int = MUTATE_SEED) -> None:
    rng = random.Random(seed + 1)
    for rel in m.modified:
        p = root / rel
        st = p.stat()
        # Same size, new bytes: a tool that compares sizes only would miss it.
        p.write_bytes(rng.randbytes(size))
        # Strictly newer mtime (whole seconds later) so mtime-based peers see the change.
        newer = max(st.st_mtime_ns + 2_000_000_000, p.stat().st_mtime_ns)
        os.utime(p, ns=(newer, newer))
    for rel in m.deleted:
        (root / rel).unlink()
    for old, new in m.renamed:
        (root / old).rename(root / new)


def revert_mutation(root: Path, base: Path, m: Mutation) -> None:
    """Undo `apply_mutation` from the pristine tree `base`, so a tool that synced the mutated tree can be
    brought back to the starting state (by a sync, untimed) and W3 measured again without re-seeding.
    Reverted files get a fresh mtime (a little in the future): a tool that compares mtimes with the
    object's upload time (aws s3 sync) must see them as newer than what it uploaded in the last W3."""
    for old, new in m.renamed:
        (root / new).rename(root / old)
    for rel in m.deleted:
        shutil.copy2(base / rel, root / rel)
    fresh = time.time_ns() + 2_000_000_000
    for rel in m.modified:
        shutil.copyfile(base / rel, root / rel)
        os.utime(root / rel, ns=(fresh, fresh))


def tree_digest(root: Path) -> dict[str, tuple[int, str]]:
    """rel path (POSIX) -> (size, md5 hex) of every regular file under root."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = (p.stat().st_size, file_md5(p))
    return out


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(BLOCK):
            h.update(chunk)
    return h.hexdigest()
