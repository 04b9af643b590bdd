"""Which remote paths may become local paths (invariant 6: restore never escapes the target folder).

The planner refuses unsafe paths up front and the executor checks again before it writes; both use
:func:`unsafe_reason`. A restore also refuses a non-empty object whose key ends in ``/``
(:func:`restore_refusal`); an empty one is a folder marker and is skipped. Pure: standard library only."""

from __future__ import annotations


def unsafe_reason(path: str) -> str | None:
    """Why ``path`` (a key relative to the sync prefix) must not become a local file, or ``None``.

    Refused: empty paths, absolute paths, empty segments (``a//b``, a trailing ``/``), ``.`` and ``..``
    segments, NUL bytes (no POSIX file name can hold one). Backslashes are ordinary characters on
    POSIX and are allowed."""
    if not path:
        return "empty key"
    if path.startswith("/"):
        return "absolute path"
    if "\x00" in path:
        return "NUL character in key"
    for segment in path.split("/"):
        if segment == "":
            return "empty path segment"
        if segment in (".", ".."):
            return f"'{segment}' path segment"
    return None


# Why a restore does not fetch an object named like one of ks3sync's own files (Exclusion.OWN, D9).
OWN_STATE = (
    "it is named like ks3sync's own state (the journal, its companion files, the state folder), "
    "which a restore never writes over; restore it elsewhere, or exclude it"
)


def restore_refusal(path: str, size: int) -> str | None:
    """Why the object at ``path`` (``size`` bytes) cannot become a local file, as a complete clause for
    a message, or ``None``. Folder markers (:func:`is_directory_marker`) are skipped before this."""
    if path.endswith("/") and path.strip("/") != "" and unsafe_reason(path[:-1]) is None:
        return f"the key ends in '/' (a folder's name) but the object holds {size} bytes: no file can have that name"
    why = unsafe_reason(path)
    return None if why is None else f"{why}; it would not stay inside the target folder"


def is_directory_marker(path: str, size: int) -> bool:
    """A zero-byte object whose key ends in ``/`` is a folder placeholder made by consoles and other
    tools, not a file: downloads skip it without a warning."""
    return size == 0 and path.endswith("/") and path.strip("/") != "" and unsafe_reason(path[:-1]) is None
