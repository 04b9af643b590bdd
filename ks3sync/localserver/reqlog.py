"""The request log: one JSON object per line, flushed per line so tests can read it while we run.

Fields: ts (unix seconds), method, path (raw, as sent), query (raw, with signatures and credentials
replaced by "REDACTED"), status, bytes_in, bytes_out, ms, auth (kss-v2 | kss-presigned | sigv4 |
sigv4-presigned | anonymous | none when authentication failed), op, request_id, and fault ("error" |
"drop") when one was injected. Never secrets or signatures. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

# json.dumps() with non-default options builds a new encoder per call; one shared encoder skips that.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_REDACTED_PARAMS = ("Signature", "X-Amz-Signature", "X-Amz-Security-Token", "x-kss-security-token")


def redact_query(raw_query: str) -> str:
    if not raw_query or not any(name in raw_query for name in _REDACTED_PARAMS):
        return raw_query
    items = []
    for item in raw_query.split("&"):
        name, sep, _ = item.partition("=")
        items.append(f"{name}=REDACTED" if name in _REDACTED_PARAMS and sep else item)
    return "&".join(items)


class RequestLog:
    """Appends each line with one write() to an O_APPEND descriptor: the line is in the file (visible to
    readers) as soon as write() returns, with no text-layer buffering or flush to pay per request."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = (_ENCODER.encode(entry) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise ValueError("write to a closed request log")
            written = os.write(self._fd, line)
            while written < len(line):  # a regular file takes it whole unless the disk is full
                written += os.write(self._fd, line[written:])

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
