"""The official SDK peer: runs `bench/peers/ks3sdk_sync.py` (a guide-style script) as a child process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from bench.measure import Invocation
from bench.peers import ONLY, Peer, PeerContext, Target

SCRIPT = Path(__file__).with_name("ks3sdk_sync.py")


class Ks3Sdk(Peer):
    variant = ONLY
    name = "ks3sdk"
    encrypts = True
    notes = (
        "`python bench/peers/ks3sdk_sync.py up|down ...`: a sync script written the way the official guide "
        "shows (serial `set_contents_from_filename` per file; files >= 100 MiB via the guide's threaded "
        "multipart example, 5 threads x 100 MiB parts; encrypted (`local_encrypt=True`) large files via "
        "the guide's serial example, 50 MiB parts; skip when size and ETag == local MD5 match; "
        "`--delete` = `delete_key` per extraneous key; restore = `get_contents_to_filename` per key). Run as "
        "written, once: it stands as its own tuned variant."
    )

    def missing(self) -> str | None:
        return None if importlib.util.find_spec("ks3") else "ks3sdk is not installed in this Python"

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"ks3sdk {version('ks3sdk')}"
        except PackageNotFoundError:
            return "ks3sdk (not installed)"

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
            sys.executable,
            str(SCRIPT),
            "up",
            str(src),
            target.bucket,
            target.prefix,
            "--endpoint",
            ctx.endpoint,
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
            sys.executable,
            str(SCRIPT),
            "down",
            target.bucket,
            target.prefix,
            str(dst),
            "--endpoint",
            ctx.endpoint,
        ]
        if encrypt_key is not None:
            argv += ["--encrypt-key", str(encrypt_key)]
        return Invocation(tuple(argv), self._env(ctx))
