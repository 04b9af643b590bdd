"""The `ks3sync` command group.

Sub-commands are registered by name -> "module:attribute" and imported lazily: start-up time counts
in the benchmarks (a re-run with nothing to do must not pay for importing the server or the crypto).
Each command module defines a click.Command. click's own errors (an unknown option, a bad value) are
shown in ks3sync's one style, ``ks3sync: error: <what> (see 'ks3sync CMD --help')``, exit 2, and with
``--json`` also as ``{"error": …, "exit": 2}`` on stdout (ks3sync.cli.output). SIGINT goes through
ks3sync.cli.interrupt: a second Ctrl-C always quits at once, quietly, with status 130.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys

import click

from ks3sync import __version__

# name -> (module, attribute, one-line help shown by `ks3sync --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "local-server": ("ks3sync.cli.local_server", "local_server", "Run a KS3-compatible server on loopback."),
    "mirror": ("ks3sync.cli.mirror", "mirror", "Mirror a folder to ks3://bucket/prefix, or back."),
    "check": ("ks3sync.cli.check", "check", "Compare a folder and ks3://bucket/prefix without transferring."),
    "ls": ("ks3sync.cli.ls", "ls", "List objects under ks3://bucket/prefix, or the buckets."),
    "mb": ("ks3sync.cli.buckets", "mb", "Make a bucket."),
    "rb": ("ks3sync.cli.buckets", "rb", "Remove an empty bucket."),
    "presign": ("ks3sync.cli.presign", "presign", "Print a presigned GET or PUT URL."),
    "keygen": ("ks3sync.cli.keygen", "keygen", "Write a new 16-byte encryption key file (mode 0600)."),
    "run": ("ks3sync.cli.run", "run", "Run the sync service in the foreground."),
    "status": ("ks3sync.cli.status", "status", "Show per-sync state from the journal."),
    "check-config": ("ks3sync.cli.check_config", "check_config", "Validate and print a configuration."),
    "repair": (
        "ks3sync.cli.repair",
        "repair",
        "Rebuild a lost or corrupted journal from a scan and a listing.",
    ),
    "restore": ("ks3sync.cli.restore", "restore", "Restore a folder or a file as it was at a point in time."),
    "versions": ("ks3sync.cli.versions", "versions", "List a sync's passes, or the versions of one path."),
    "prune": ("ks3sync.cli.prune", "prune", "Delete expired versions (and move old ones to cold storage)."),
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
# them (D20). Cycles are still collected, just in larger, rarer batches.
GC_THRESHOLDS = (50_000, 20, 20)


def main() -> None:
    from ks3sync.cli import interrupt, output

    gc.set_threshold(*GC_THRESHOLDS)
    args = sys.argv[1:]
    # A usage error is found before the command runs: whether it must also be a JSON document is read
    # from the arguments themselves (everything after "--" is an argument, not an option).
    output.set_json_errors("--json" in (args[: args.index("--")] if "--" in args else args))
    interrupt.install()
    try:
        status = cli.main(args=args, prog_name="ks3sync", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `ks3sync` alone: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        output.fail(f"{_our_style(exc.format_message())}{where}", exc.exit_code)
    except click.ClickException as exc:
        output.fail(_our_style(exc.format_message()), exc.exit_code)
    except click.Abort:  # click's translation of a KeyboardInterrupt outside a command's own handling
        output.note("interrupted")
        if output.json_errors():
            click.echo(output.error_document("interrupted", interrupt.EXIT_INTERRUPTED))
        sys.exit(interrupt.EXIT_INTERRUPTED)
    finally:
        # Interpreter shutdown runs full collections over everything still alive (every imported module,
        # the pass's objects), a visible share of a no-change mirror (D20). Frozen objects are skipped. Nothing is lost: atexit handlers and std-stream flushes still run, and the journal and
        # clients are closed explicitly before we get here; only cyclic garbage left at exit is not
        # finalised, which the OS reclaims with the process.
        gc.freeze()
    sys.exit(status if isinstance(status, int) else 0)


def _our_style(message: str) -> str:
    """click's "Missing argument 'SRC'." in ks3sync's style: lower-case start, no final full stop."""
    message = message.strip().removesuffix(".")
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    return message
