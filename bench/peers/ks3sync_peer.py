"""ks3sync itself: `ks3sync mirror` through its console script, journal in the run's state folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench.measure import Invocation
from bench.peers import SUBJECT, Peer, PeerContext, Target, first_line


def ks3sync_argv0() -> list[str]:
    """The installed console script next to this Python (what a user runs), else `python -m ks3sync`."""
    script = Path(sys.executable).with_name("ks3sync")
    if script.exists():
        return [str(script)]
    found = shutil.which("ks3sync")
    return [found] if found else [sys.executable, "-m", "ks3sync"]


def command_missing(name: str) -> str | None:
    """Why `ks3sync NAME` cannot run here (its module is absent), or None. Asks the CLI's own table."""
    from ks3sync.cli.main import COMMANDS, _module_exists

    mod = COMMANDS[name][0]
    return None if _module_exists(mod) else f"`ks3sync {name}` is not implemented yet ({mod} missing)"


class Ks3Sync(Peer):
    variant = SUBJECT
    name = "ks3sync"
    encrypts = True
    notes = (
        "`ks3sync mirror SRC ks3://bucket/prefix --endpoint URL --state-db STATE/journal.db [--delete] "
        "[--encrypt-key KEYFILE]`, creds in env KS3_ACCESS_KEY/KS3_SECRET_KEY, all other settings "
        "default. The journal of the seeding run is kept for W3/W4 (that is how ks3sync is used). "
        "Restore: `ks3sync mirror ks3://bucket/prefix DST --endpoint URL`."
    )

    def missing(self) -> str | None:
        return command_missing("mirror")

    def version(self) -> str:
        version = first_line([*ks3sync_argv0(), "--version"])
        repo = Path(__file__).resolve().parents[2]
        commit = first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
        dirty = first_line(["git", "-C", str(repo), "status", "--porcelain", "--", "ks3sync"])
        # Others commit to the same tree while benchmarks run: say which code was measured.
        return f"{version} (git {commit}{', with uncommitted changes under ks3sync/' if dirty != 'unknown' else ''})"

    def _env(self, ctx: PeerContext) -> dict[str, str]:
        return {"KS3_ACCESS_KEY": ctx.access_key, "KS3_SECRET_KEY": ctx.secret_key}

    def upload(
        self,
        ctx: PeerContext,
        src: Path,
        target: Target,
        *,
        delete: bool,
        state: Path,
        encrypt_key: Path | None = None,
    ) -> Invocation:
        argv = [
            *ks3sync_argv0(),
            "mirror",
            str(src),
            f"ks3://{target.bucket}/{target.prefix}",
            "--endpoint",
            ctx.endpoint,
            "--state-db",
            str(state / "journal.db"),
        ]
        if delete:
            argv.append("--delete")
        if encrypt_key is not None:
            argv += ["--encrypt-key", str(encrypt_key)]
        return Invocation(tuple(argv), self._env(ctx))

    def download(
        self, ctx: PeerContext, target: Target, dst: Path, *, state: Path, encrypt_key: Path | None = None
    ) -> Invocation:
        argv = [
            *ks3sync_argv0(),
            "mirror",
            f"ks3://{target.bucket}/{target.prefix}",
            str(dst),
            "--endpoint",
            ctx.endpoint,
            "--state-db",
            str(state / "journal.db"),
        ]
        if encrypt_key is not None:
            argv += ["--encrypt-key", str(encrypt_key)]
        return Invocation(tuple(argv), self._env(ctx))
