"""Option groups that ``mirror`` and ``restore`` share, declared once (same names, same help): where the
state and the endpoint are, which paths are left out, the key of an encrypted sync, and how a run is
shown (``run_options``, set up by :func:`start_run`). Imports click and ks3sync.cli.common only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ks3sync.cli.common import ENDPOINT_HELP, die, setup_logging

F = TypeVar("F", bound=Callable[..., Any])


def _group(*options: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


where_options = _group(
    click.option("--endpoint", help=ENDPOINT_HELP),
    click.option(
        "--config", "config_path", type=click.Path(path_type=Path), help="The YAML config the daemon uses."
    ),
    click.option("--state-db", type=click.Path(path_type=Path), help="The journal (default: XDG state dir)."),
)

exclude_options = _group(
    click.option("--exclude", multiple=True, metavar="PATTERN", help="gitignore-style pattern (repeatable)."),
    click.option("--exclude-from", multiple=True, type=click.Path(path_type=Path), help="File of patterns."),
)

key_options = _group(
    click.option(
        "--encrypt-key", type=click.Path(path_type=Path), help="16-byte key file: client-side encryption."
    ),
    click.option(
        "--allow-unencrypted",
        is_flag=True,
        help="With --encrypt-key, restore objects that are not encrypted as plaintext (default: an error).",
    ),
    click.option(
        "--require-integrity",
        is_flag=True,
        help="With --encrypt-key, refuse encrypted objects without ks3sync's integrity tag (SDK-written).",
    ),
)

run_options = _group(
    click.option("-n", "--dry-run", is_flag=True, help="Print the plan, change nothing."),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help='One JSON document on stdout: the summary, or {"error": ..., "exit": N} on a fatal error.',
    ),
    click.option(
        "-v", "--verbose", count=True, help="A line per finished entry, every failed path (-vv: debug)."
    ),
    click.option(
        "-q", "--quiet", is_flag=True, help="Only errors, warnings and failures: no bar, no summary."
    ),
    click.option("--no-progress", is_flag=True, help="No live progress bar, even on a terminal."),
)


def start_run(flags: dict[str, Any]) -> None:
    """What ``run_options`` ask for, before anything else: the JSON error mode, -q against -v, logging."""
    from ks3sync.cli.output import set_json_errors

    set_json_errors(flags["as_json"])
    if flags["quiet"] and flags["verbose"]:
        die("-q and -v cannot be combined")
    setup_logging(flags["verbose"], quiet=flags["quiet"])
