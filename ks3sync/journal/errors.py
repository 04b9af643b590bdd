"""The journal's exceptions. Messages are one line and name the database file; they never contain
secrets (the journal stores none)."""

from __future__ import annotations


class JournalError(Exception):
    """The journal cannot be opened or used: not a SQLite file, corrupted, from a newer ks3sync,
    unreadable, or a caller asked for something that does not exist."""


class EmptyJournalError(JournalError):
    """A read-only open found the file but no journal in it yet (version 0, no tables): the process that
    creates it has not committed its schema. Nothing is recorded in it."""


class UnknownUploadError(JournalError, KeyError):
    """``part_done`` / lookups for a multipart upload id the journal does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown upload"
