"""s3cmd (`s3cmd sync`) with a private config file (SigV4, plain http, path style)."""

from __future__ import annotations

from pathlib import Path

from bench.measure import Invocation
from bench.peers import ONLY, Peer, PeerContext, Target, first_line, which_or_reason


class S3cmd(Peer):
    variant = ONLY
    name = "s3cmd"
    notes = (
        "`s3cmd -c CFG sync --no-progress SRC/ s3://bucket/prefix/ [--delete-removed]`; CFG sets "
        "host_base = host_bucket = 127.0.0.1:PORT (path style), use_https False, signature_v2 False, "
        "bucket_location us-east-1. Defaults otherwise: size+MD5 comparison, one transfer at a time "
        "(s3cmd has no concurrency setting: it runs once and stands as its own tuned variant), "
        "multipart in 15 MiB chunks, renames become server-side copies. Restore: "
        "`s3cmd -c CFG sync --no-progress s3://bucket/prefix/ DST/`."
    )

    def missing(self) -> str | None:
        return which_or_reason("s3cmd")

    def version(self) -> str:
        return first_line(["s3cmd", "--version"])

    def _config(self, ctx: PeerContext) -> str:
        conf = ctx.workdir / "s3cmd.cfg"
        hostport = f"{ctx.host}:{ctx.port}"
        conf.write_text(
            "[default]\n"
            f"access_key = {ctx.access_key}\n"
            f"secret_key = {ctx.secret_key}\n"
            f"host_base = {hostport}\n"
            f"host_bucket = {hostport}\n"
            "use_https = False\n"
            "signature_v2 = False\n"
            "bucket_location = us-east-1\n"
            "check_ssl_certificate = False\n"
        )
        conf.chmod(0o600)
        return str(conf)

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
        assert encrypt_key is None, "s3cmd's GPG encryption is not KS3-SDK compatible"
        argv = [
            "s3cmd",
            "-c",
            self._config(ctx),
            "sync",
            "--no-progress",
            f"{src}/",
            f"s3://{target.bucket}/{target.prefix}/",
        ]
        if delete:
            argv.append("--delete-removed")
        return Invocation(tuple(argv), {})

    def download(
        self, ctx: PeerContext, target: Target, dst: Path, *, state: Path, encrypt_key: Path | None = None
    ) -> Invocation:
        dst.mkdir(parents=True, exist_ok=True)
        argv = (
            "s3cmd",
            "-c",
            self._config(ctx),
            "sync",
            "--no-progress",
            f"s3://{target.bucket}/{target.prefix}/",
            f"{dst}/",
        )
        return Invocation(argv, {})
