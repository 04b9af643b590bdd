"""The tools under comparison, each reduced to "the command that mirrors up" and "... down".

Owns: how each tool is invoked (argv, environment, config files it needs) and the flags we chose,
with the reason for each (`notes`, printed into docs/benchmarks.md). Must not import: ks3sync.

Every peer runs as its own process against the same local-server; the harness measures the process.
"""

from __future__ import annotations

import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Invocation


@dataclass(frozen=True)
class PeerContext:
    endpoint: str  # http://127.0.0.1:PORT
    host: str
    port: int
    access_key: str
    secret_key: str
    workdir: Path  # per-session scratch space for config files


@dataclass(frozen=True)
class Target:
    bucket: str
    prefix: str  # no leading/trailing slash; keys are prefix + "/" + relative path

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel


# How a tool is configured in a row of the table. Goals compare ks3sync with peers "as a user would tune
# them" (issue 16: TUNED and ONLY) or "out of the box" (issue 7: DEFAULTS and ONLY).
SUBJECT = "subject"  # ks3sync itself, always with its defaults
DEFAULTS = "defaults"  # a peer as installed
TUNED = "tuned"  # the same peer with its documented small-file tuning
ONLY = "only"  # a peer with nothing to tune (s3cmd is serial; the SDK script is as written)


class Peer(ABC):
    name: str = ""
    variant = DEFAULTS
    encrypts = False  # can it do client-side encryption (W2e)?
    notes = ""  # flags and why, for the report

    @property
    def compared_as_tuned(self) -> bool:
        return self.variant in (TUNED, ONLY)

    @property
    def compared_as_default(self) -> bool:
        return self.variant in (DEFAULTS, ONLY)

    def missing(self) -> str | None:
        """None when the tool can run here; else why not (the harness reports it as skipped)."""
        return None

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def upload(
        self,
        ctx: PeerContext,
        src: Path,
        target: Target,
        *,
        delete: bool,
        state: Path,
        encrypt_key: Path | None = None,
    ) -> Invocation: ...

    @abstractmethod
    def download(
        self, ctx: PeerContext, target: Target, dst: Path, *, state: Path, encrypt_key: Path | None = None
    ) -> Invocation: ...


def first_line(argv: list[str]) -> str:
    """First line of a version command, or why it could not run."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def which_or_reason(cmd: str) -> str | None:
    return None if shutil.which(cmd) else f"{cmd} not found on PATH"


def all_peers() -> list[Peer]:
    from bench.peers.awscli import AwsCli
    from bench.peers.ks3sdk_peer import Ks3Sdk
    from bench.peers.ks3sync_peer import Ks3Sync
    from bench.peers.rclone import Rclone
    from bench.peers.s3cmd import S3cmd

    return [Ks3Sync(), Rclone(), Rclone(tuned=True), AwsCli(), AwsCli(tuned=True), S3cmd(), Ks3Sdk()]


def variants(peers: list[Peer]) -> dict[str, str]:
    """tool name -> variant, for the report and the JSON results."""
    return {p.name: p.variant for p in peers}
