"""The manifest of a pass (docs/versions.md §4): typed values, ``encode`` and a strict ``decode``.

A manifest comes back from the network, so ``decode`` treats it as hostile: the size is bounded before
parsing, the JSON parser's own failures (including a nesting bomb) become :class:`ManifestError`, and
every field is checked for type, range and form; unknown fields are errors (format 1 is closed). Paths
get the restore's checks (``layout.path_problem``) and may not lie in the versions area.

Pure: the standard library, ``versions.layout`` and ``versions.stamp``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ks3sync.versions.layout import Layout, path_problem
from ks3sync.versions.stamp import is_stamp

FORMAT = 1
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 1_000_000
MAX_OBJECT_SIZE = 50 * 1024**4  # above KS3's largest object (48.8 TiB): any bigger size is a lie
MAX_NS = 2**63 - 1
_ETAG = re.compile(r"[0-9a-f]{32}(?:-[1-9][0-9]{0,4})?")
_TOP = frozenset({"ks3sync_manifest", "pass", "finished", "entries"})
_ENTRY = frozenset({"path", "before", "after"})
_BEFORE = frozenset({"etag", "size", "modified_ns", "mtime_ns", "encrypted"})
_AFTER = frozenset({"etag", "size"})


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names what is wrong (never the whole document)."""


@dataclass(frozen=True, slots=True)
class Before:
    """What the path held when the pass kept its version (at ``<vprefix><pass>/<path>``)."""

    etag: str
    size: int
    modified_ns: int | None = None  # when that content was written (server Last-Modified, or confirmed)
    mtime_ns: int | None = None  # the local file's mtime, when the journal knew it
    encrypted: bool | None = None


@dataclass(frozen=True, slots=True)
class After:
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One path the pass wrote (``after`` set) or deleted (``after`` None); ``before`` None: it was new."""

    path: str
    before: Before | None
    after: After | None

    @property
    def change(self) -> str:
        if self.after is None:
            return "deleted"
        return "created" if self.before is None else "overwritten"


@dataclass(frozen=True, slots=True)
class Manifest:
    stamp: str
    finished: str
    entries: tuple[Entry, ...]


def encode(manifest: Manifest) -> bytes:
    """The manifest as UTF-8 JSON, entries in path order (ValueError if a limit is exceeded)."""
    entries = sorted(manifest.entries, key=lambda e: e.path.encode("utf-8"))
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"a manifest holds at most {MAX_ENTRIES} entries, this pass has {len(entries)}")
    doc = {
        "ks3sync_manifest": FORMAT,
        "pass": manifest.stamp,
        "finished": manifest.finished,
        "entries": [_entry_doc(e) for e in entries],
    }
    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_MANIFEST_BYTES:
        raise ValueError(f"a manifest is at most {MAX_MANIFEST_BYTES} bytes, this one would be {len(data)}")
    return data


def _entry_doc(entry: Entry) -> dict[str, Any]:
    before = entry.before
    after = entry.after
    return {
        "path": entry.path,
        "before": None
        if before is None
        else {
            "etag": before.etag,
            "size": before.size,
            "modified_ns": before.modified_ns,
            "mtime_ns": before.mtime_ns,
            "encrypted": before.encrypted,
        },
        "after": None if after is None else {"etag": after.etag, "size": after.size},
    }


def decode(data: bytes, *, stamp: str, layout: Layout) -> Manifest:
    """Parse and check a manifest read from ``layout.manifest_path(stamp)``."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise ManifestError("nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise ManifestError(f"not JSON: {exc}") from None
    top = _fields(doc, _TOP, "the document")
    if top.get("ks3sync_manifest") != FORMAT or isinstance(top.get("ks3sync_manifest"), bool):
        raise ManifestError(
            f"format {top.get('ks3sync_manifest')!r} is not {FORMAT} (written by a newer ks3sync?)"
        )
    if top.get("pass") != stamp:
        raise ManifestError(f"'pass' is {_short(top.get('pass'))}, its key says {stamp}")
    finished = top.get("finished")
    if not isinstance(finished, str) or not is_stamp(finished):
        raise ManifestError(f"'finished' is not a stamp: {_short(finished)}")
    raw_entries = top.get("entries")
    if not isinstance(raw_entries, list):
        raise ManifestError("'entries' is not a list")
    if len(raw_entries) > MAX_ENTRIES:
        raise ManifestError(f"more than {MAX_ENTRIES} entries")
    entries = tuple(_entry(raw, i, layout) for i, raw in enumerate(raw_entries))
    _check_order(entries)
    return Manifest(stamp, finished, entries)


def _entry(raw: object, i: int, layout: Layout) -> Entry:
    where = f"entries[{i}]"
    fields = _fields(raw, _ENTRY, where)
    for name in ("path", "before", "after"):
        if name not in fields:
            raise ManifestError(f"{where}.{name} is missing")
    path = fields["path"]
    problem = path_problem(path)
    if problem is not None:
        raise ManifestError(f"{where}.path {problem}")
    assert isinstance(path, str)
    if layout.owns(path):
        raise ManifestError(f"{where}.path lies in the versions area")
    before = None if fields["before"] is None else _before(fields["before"], f"{where}.before")
    after = None if fields["after"] is None else _after(fields["after"], f"{where}.after")
    if before is None and after is None:
        raise ManifestError(f"{where}: neither 'before' nor 'after'")
    return Entry(path, before, after)


def _before(raw: object, where: str) -> Before:
    fields = _fields(raw, _BEFORE, where)
    for name in _BEFORE:
        if name not in fields:
            raise ManifestError(f"{where}.{name} is missing")
    encrypted = fields["encrypted"]
    if encrypted is not None and not isinstance(encrypted, bool):
        raise ManifestError(f"{where}.encrypted is not true, false or null")
    return Before(
        etag=_etag(fields["etag"], where),
        size=_int(fields["size"], f"{where}.size", MAX_OBJECT_SIZE),
        modified_ns=_optional_int(fields["modified_ns"], f"{where}.modified_ns"),
        mtime_ns=_optional_int(fields["mtime_ns"], f"{where}.mtime_ns"),
        encrypted=encrypted,
    )


def _after(raw: object, where: str) -> After:
    fields = _fields(raw, _AFTER, where)
    for name in _AFTER:
        if name not in fields:
            raise ManifestError(f"{where}.{name} is missing")
    return After(_etag(fields["etag"], where), _int(fields["size"], f"{where}.size", MAX_OBJECT_SIZE))


def _fields(raw: object, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} is not an object")
    unknown = [name for name in raw if name not in allowed]
    if unknown:
        raise ManifestError(f"{where} has an unknown field {_short(unknown[0])}")
    return raw


def _etag(value: object, where: str) -> str:
    if not isinstance(value, str) or not _ETAG.fullmatch(value):
        raise ManifestError(f"{where}.etag is not an ETag: {_short(value)}")
    return value


def _int(value: object, where: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ManifestError(f"{where} is not an integer in 0..{maximum}: {_short(value)}")
    return value


def _optional_int(value: object, where: str) -> int | None:
    return None if value is None else _int(value, where, MAX_NS)


def _check_order(entries: Iterable[Entry]) -> None:
    previous: bytes | None = None
    for entry in entries:
        current = entry.path.encode("utf-8")
        if previous is not None and not previous < current:
            raise ManifestError(f"entries are not in strictly increasing path order at {_short(entry.path)}")
        previous = current


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
