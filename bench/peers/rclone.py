"""rclone (`rclone sync`) through an S3 remote defined purely by environment variables."""

from __future__ import annotations

from pathlib import Path

from bench.measure import Invocation
from bench.peers import Peer, PeerContext, Target, first_line, which_or_reason

REMOTE = "BENCH"
# rclone's AWS SDK fails outright ("unsupported transport") when AWS_CA_BUNDLE is set, even over plain
# http where no certificate is involved; the variable is hidden from rclone only.
UNSET = ("AWS_CA_BUNDLE",)


class Rclone(Peer):
    name = "rclone"
    notes = (
        "`rclone sync SRC BENCH:bucket/prefix` with the remote from env `RCLONE_CONFIG_BENCH_*` (type s3, "
        "provider Other, force_path_style true, region us-east-1), an empty `--config` file and AWS_CA_BUNDLE unset (plain http; rclone refuses to start with it). rclone's "
        "defaults otherwise: size+modtime comparison (mtime kept in X-Amz-Meta-Mtime), --transfers 4, "
        "--checkers 8, multipart above 200 MiB with 5 MiB chunks x4. `sync` deletes extraneous "
        "destination files by itself (its --delete semantics); renames are upload+delete (no "
        "--track-renames, which is not a default). Restore: `rclone sync BENCH:bucket/prefix DST`."
    )

    def missing(self) -> str | None:
        return which_or_reason("rclone")

    def version(self) -> str:
        return first_line(["rclone", "version"])

    def _env(self, ctx: PeerContext) -> dict[str, str]:
        p = f"RCLONE_CONFIG_{REMOTE}_"
        return {
            p + "TYPE": "s3", p + "PROVIDER": "Other", p + "ENDPOINT": ctx.endpoint,
            p + "ACCESS_KEY_ID": ctx.access_key, p + "SECRET_ACCESS_KEY": ctx.secret_key,
            p + "FORCE_PATH_STYLE": "true", p + "REGION": "us-east-1",
        }

    def _config(self, ctx: PeerContext) -> str:
        conf = ctx.workdir / "rclone.conf"
        conf.touch()
        return str(conf)

    def upload(self, ctx: PeerContext, src: Path, target: Target, *, delete: bool, state: Path,
               encrypt_key: Path | None = None) -> Invocation:
        assert encrypt_key is None, "rclone has no KS3-compatible client-side encryption"
        # `sync` always deletes; without delete semantics the equivalent is `copy`.
        verb = "sync" if delete else "copy"
        argv = ("rclone", verb, "--config", self._config(ctx), str(src), f"{REMOTE}:{target.bucket}/{target.prefix}")
        return Invocation(argv, self._env(ctx), unset=UNSET)

    def download(self, ctx: PeerContext, target: Target, dst: Path, *, state: Path,
                 encrypt_key: Path | None = None) -> Invocation:
        argv = ("rclone", "sync", "--config", self._config(ctx), f"{REMOTE}:{target.bucket}/{target.prefix}", str(dst))
        return Invocation(argv, self._env(ctx), unset=UNSET)
