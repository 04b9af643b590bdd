"""rclone (`rclone sync`) through an S3 remote defined purely by environment variables; as installed, and
with the small-file tuning rclone's own S3 docs give (`Rclone(tuned=True)`, the row `rclone-tuned`)."""

from __future__ import annotations

from pathlib import Path

from bench.measure import Invocation
from bench.peers import DEFAULTS, TUNED, Peer, PeerContext, Target, first_line, which_or_reason

REMOTE = "BENCH"
# rclone's AWS SDK fails outright ("unsupported transport") when AWS_CA_BUNDLE is set, even over plain
# http where no certificate is involved; the variable is hidden from rclone only.
UNSET = ("AWS_CA_BUNDLE",)
# https://rclone.org/s3/#increasing-the-rate-of-api-requests (raise --transfers and --checkers),
# https://rclone.org/s3/#avoiding-head-requests-to-read-the-modification-time (--checksum),
# https://rclone.org/s3/#avoiding-head-requests-after-put (--s3-no-head). Values from issue 16.
TUNING = ("--transfers", "32", "--checkers", "32", "--checksum", "--s3-no-head")

_COMMON = (
    "with the remote from env `RCLONE_CONFIG_BENCH_*` (type s3, provider Other, force_path_style true, region "
    "us-east-1), an empty `--config` file and AWS_CA_BUNDLE unset (plain http; rclone refuses to start with "
    "it). `sync` deletes extraneous destination files by itself (its --delete semantics); renames are "
    "upload+delete (no --track-renames, which is not a default)."
)


class Rclone(Peer):
    def __init__(self, *, tuned: bool = False) -> None:
        self.tuned = tuned
        self.name = "rclone-tuned" if tuned else "rclone"
        self.variant = TUNED if tuned else DEFAULTS
        if tuned:
            self.notes = (
                f"`rclone sync {' '.join(TUNING)} SRC BENCH:bucket/prefix` (and the same flags to restore), "
                + _COMMON
                + " The flags are the small-file tuning of rclone's S3 docs: more transfers and "
                'checkers raise the rate of API requests (rclone.org/s3, "Increasing the rate of API '
                'requests"; defaults 4 and 8 are called "very conservative"); `--checksum` compares size + '
                "MD5 (the ETag from the listing) instead of the modification time, which costs a HEAD per "
                'object ("Avoiding HEAD requests to read the modification time"); `--s3-no-head` skips the '
                'HEAD after each upload ("Avoiding HEAD requests after PUT").'
            )
        else:
            self.notes = (
                "`rclone sync SRC BENCH:bucket/prefix` " + _COMMON + " rclone's defaults otherwise: "
                "size+modtime comparison (mtime kept in X-Amz-Meta-Mtime, read by a HEAD per object), "
                "--transfers 4, --checkers 8, a HEAD after each upload, multipart above 200 MiB with 5 MiB "
                "chunks x4. Restore: `rclone sync BENCH:bucket/prefix DST`."
            )

    def missing(self) -> str | None:
        return which_or_reason("rclone")

    def version(self) -> str:
        return first_line(["rclone", "version"])

    def _env(self, ctx: PeerContext) -> dict[str, str]:
        p = f"RCLONE_CONFIG_{REMOTE}_"
        return {
            p + "TYPE": "s3",
            p + "PROVIDER": "Other",
            p + "ENDPOINT": ctx.endpoint,
            p + "ACCESS_KEY_ID": ctx.access_key,
            p + "SECRET_ACCESS_KEY": ctx.secret_key,
            p + "FORCE_PATH_STYLE": "true",
            p + "REGION": "us-east-1",
        }

    def _config(self, ctx: PeerContext) -> str:
        conf = ctx.workdir / "rclone.conf"
        conf.touch()
        return str(conf)

    def _flags(self) -> tuple[str, ...]:
        return TUNING if self.tuned else ()

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
        assert encrypt_key is None, "rclone has no KS3-compatible client-side encryption"
        # `sync` always deletes; without delete semantics the equivalent is `copy`.
        verb = "sync" if delete else "copy"
        argv = (
            "rclone",
            verb,
            "--config",
            self._config(ctx),
            *self._flags(),
            str(src),
            f"{REMOTE}:{target.bucket}/{target.prefix}",
        )
        return Invocation(argv, self._env(ctx), unset=UNSET)

    def download(
        self, ctx: PeerContext, target: Target, dst: Path, *, state: Path, encrypt_key: Path | None = None
    ) -> Invocation:
        argv = (
            "rclone",
            "sync",
            "--config",
            self._config(ctx),
            *self._flags(),
            f"{REMOTE}:{target.bucket}/{target.prefix}",
            str(dst),
        )
        return Invocation(argv, self._env(ctx), unset=UNSET)
