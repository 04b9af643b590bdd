"""The `ks3sync` command group.

Sub-commands are registered by name -> "module:attribute" and imported lazily: start-up time counts
in the benchmarks (a re-run with nothing to do must not pay for importing the server or the crypto).
Each command module defines a click.Command; usage errors exit 2 with one line, as click does.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util

import click

from ks3sync import __version__

# name -> (module, attribute, one-line help shown by `ks3sync --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "local-server": ("ks3sync.cli.local_server", "local_server", "Run a KS3-compatible server on loopback."),
    "mirror": ("ks3sync.cli.mirror", "mirror", "Mirror a folder to ks3://bucket/prefix, or back."),
    "ls": ("ks3sync.cli.ls", "ls", "List objects under ks3://bucket/prefix."),
    "presign": ("ks3sync.cli.presign", "presign", "Print a presigned GET or PUT URL."),
    "keygen": ("ks3sync.cli.keygen", "keygen", "Write a new 16-byte encryption key file (mode 0600)."),
    "run": ("ks3sync.cli.run", "run", "Run the sync service in the foreground."),
    "status": ("ks3sync.cli.status", "status", "Show per-sync state from the journal."),
    "check-config": ("ks3sync.cli.check_config", "check_config", "Validate and print a configuration."),
    "repair": ("ks3sync.cli.repair", "repair", "Rebuild a lost or corrupted journal from a scan and a listing."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (mod, _, _) in COMMANDS.items() if _module_exists(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None or not _module_exists(spec[0]):
            return None
        module = importlib.import_module(spec[0])
        command = getattr(module, spec[1])
        assert isinstance(command, click.Command), spec
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ks3sync")
def cli() -> None:
    """rsync-style synchronisation between local folders and KS3 object storage."""


# Young-generation collections every 50,000 net allocations instead of 700. A pass builds a few hundred
# thousand long-lived objects (journal map, listing, scan), and at 700 the collector keeps re-walking
# them: W4 at 100,000 files spent ~1.5 of ~5.8 s CPU in the GC (measured, docs/decisions.md D-entry on
# mirror performance). Cycles are still collected, just in larger, rarer batches.
GC_THRESHOLDS = (50_000, 20, 20)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        cli(prog_name="ks3sync")
    finally:
        # Interpreter shutdown runs full collections over everything still alive (every imported module,
        # the pass's objects): ~15-20 ms CPU of a ~0.2 s no-change mirror, measured. Frozen objects are
        # skipped. Nothing is lost: atexit handlers and std-stream flushes still run, and the journal and
        # clients are closed explicitly before we get here; only cyclic garbage left at exit is not
        # finalised, which the OS reclaims with the process.
        gc.freeze()
