"""The request log: one JSON object per line, flushed per line so tests can read it while we run.

Fields: ts (unix seconds), method, path (raw, as sent), query (raw, with signatures and credentials
replaced by "REDACTED"), status, bytes_in, bytes_out, ms, auth (kss-v2 | kss-presigned | sigv4 |
sigv4-presigned | anonymous | none when authentication failed), op, request_id, and fault ("error" |
"drop") when one was injected. Never secrets or signatures. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

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
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the server
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
