"""How every command speaks to a person: one style, every line escaped where it is written.

- ``ks3sync: error: <what>`` on stderr, then the exit status (2 usage/configuration, 1 the run failed,
  130 interrupted); nothing else on the line, no traceback for a known failure;
- ``ks3sync: warning: <what>`` for something the user should know that did not stop the command;
- ``ks3sync: <what>`` for notes (``stopping: …``, ``interrupted``);
- with ``--json``, a command that fails before it has its normal document still prints one on stdout:
  ``{"error": "<what>", "exit": N}`` (the error line goes to stderr as well).

Keys, paths and messages that quote them go through :func:`ks3sync.display.escape` here, once: callers
pass raw text. Imports click and ks3sync.display only.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from ks3sync.display import escape, json_text

PREFIX = "ks3sync: "

_META_KEY = "ks3sync.json_errors"
# The process-wide answer, for when no click context is at hand: ``main()`` sets it from the arguments
# before click parses them, and a thread that quits the process (Ctrl-C) has no context of its own.
_process = {"json": False}


def set_json_errors(enabled: bool) -> None:
    """Whether a fatal error also prints ``{"error": …, "exit": N}`` on stdout (the command's --json).
    Kept on the invocation's root click context, so it ends with the invocation (tests run many in one
    process); outside a command, process-wide."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        _process["json"] = enabled
    else:
        ctx.find_root().meta[_META_KEY] = enabled


def json_errors() -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        meta = ctx.find_root().meta
        if _META_KEY in meta:
            return bool(meta[_META_KEY])
    return _process["json"]


def error_line(message: str) -> str:
    return f"{PREFIX}error: {escape(message)}"


def error_document(message: str, code: int) -> str:
    return json_text({"error": message, "exit": code}, sort_keys=True)


def fail(message: str, code: int) -> NoReturn:
    """The one way a command ends on an error: the line, the JSON document if asked for, the status."""
    click.echo(error_line(message), err=True)
    if json_errors():
        click.echo(error_document(message, code))
    sys.exit(code)


def warning(message: str) -> None:
    click.echo(f"{PREFIX}warning: {escape(message)}", err=True)


def note(message: str) -> None:
    click.echo(f"{PREFIX}{escape(message)}", err=True)


def line(text: str, *, err: bool = False) -> None:
    """Any other line shown to a person (a listing row, a plan row): escaped."""
    click.echo(escape(text), err=err)
