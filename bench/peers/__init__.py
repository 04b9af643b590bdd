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
    endpoint: str            # http://127.0.0.1:PORT
    host: str
    port: int
    access_key: str
    secret_key: str
    workdir: Path            # per-session scratch space for config files


@dataclass(frozen=True)
class Target:
    bucket: str
    prefix: str              # no leading/trailing slash; keys are prefix + "/" + relative path

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel


class Peer(ABC):
    name: str = ""
    encrypts = False         # can it do client-side encryption (W2e)?
    notes = ""               # flags and why, for the report

    def missing(self) -> str | None:
        """None when the tool can run here; else why not (the harness reports it as skipped)."""
        return None

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def upload(self, ctx: PeerContext, src: Path, target: Target, *, delete: bool, state: Path,
               encrypt_key: Path | None = None) -> Invocation: ...

    @abstractmethod
    def download(self, ctx: PeerContext, target: Target, dst: Path, *, state: Path,
                 encrypt_key: Path | None = None) -> Invocation: ...


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

    return [Ks3Sync(), Rclone(), AwsCli(), S3cmd(), Ks3Sdk()]
