"""Reading a running `ks3sync run`'s state the way `ks3sync status` does (in-process, from the journal
and the state directory's lock), for tests that wait for a service to reach a state.

`report(config, environ)` is the status document, or None while the journal cannot be read yet (the
service is still creating it); `activity(config, environ, sync, pid)` is what the sync is doing
(watching, reconciling, unavailable, ...) if the service with that pid runs it, else None.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ks3sync.cli.status import collect
from ks3sync.config import load_config


def report(config: Path, environ: Mapping[str, str]) -> dict[str, Any] | None:
    try:
        return collect(load_config(config, environ=environ, check_sources=False))
    except SystemExit:  # collect's one-line error: the journal is not readable (yet)
        return None


def activity(config: Path, environ: Mapping[str, str], sync: str, pid: int | None) -> str | None:
    doc = report(config, environ)
    if doc is None or not doc["service"]["running"] or (pid is not None and doc["service"]["pid"] != pid):
        return None
    return next((s["activity"] for s in doc["syncs"] if s["name"] == sync), None)
