"""Which remote paths may become local paths (invariant 6: restore never escapes the target folder).

The planner refuses unsafe paths up front and the executor checks again before it writes; both use
:func:`unsafe_reason`. Pure: standard library only."""

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


def is_directory_marker(path: str, size: int) -> bool:
    """A zero-byte object whose key ends in ``/`` is a folder placeholder made by consoles and other
    tools, not a file: downloads skip it without a warning."""
    return size == 0 and path.endswith("/") and path.strip("/") != "" and unsafe_reason(path[:-1]) is None
