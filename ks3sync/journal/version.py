"""The journal's schema version and the refusal of files this ks3sync must not touch.

Separate from ``migrations.py`` so that opening an up-to-date journal does not load the migrations.
Imports: the journal's errors only.
"""

from __future__ import annotations

from pathlib import Path

from ks3sync.journal.errors import JournalError

# Bump together with a new step in migrations.STEPS and schema.py (a test checks they agree).
SCHEMA_VERSION = 4


def refuse_unknown(path: Path, version: int, objects: int) -> None:
    """Raise for a journal from a newer ks3sync, or an SQLite file of someone else (version 0 with
    tables in it). ``objects`` is the number of non-internal entries in ``sqlite_master``."""
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path}: journal schema version {version} is newer than this ks3sync supports "
            f"({SCHEMA_VERSION}); upgrade ks3sync"
        )
    if version == 0 and objects:
        raise JournalError(f"{path}: not a ks3sync journal (an SQLite database with other tables)")


def refuse_older(path: Path, version: int) -> None:
    """Raise for a journal a read-only reader cannot read: not yet at ``SCHEMA_VERSION`` (only a writer
    migrates it, and this ks3sync's statements assume the current schema)."""
    if version < SCHEMA_VERSION:
        raise JournalError(
            f"{path}: journal schema {version} is older than this ks3sync's {SCHEMA_VERSION}; "
            "start the service (or run a mirror) once to upgrade it"
        )
