"""AWS CLI (`aws s3 sync`) with credentials from the environment and path-style addressing."""

from __future__ import annotations

from pathlib import Path

from bench.measure import Invocation
from bench.peers import Peer, PeerContext, Target, first_line, which_or_reason


class AwsCli(Peer):
    name = "aws"
    notes = (
        "`aws s3 sync SRC s3://bucket/prefix --endpoint-url URL --only-show-errors [--delete]`, creds in "
        "env AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION=us-east-1, a private config file "
        "with `s3.addressing_style = path`. Defaults otherwise: size+mtime comparison, 10 concurrent "
        "requests, multipart above 8 MiB in 8 MiB parts. `--only-show-errors` only silences per-file "
        "progress lines. Renames are upload+delete. Restore: `aws s3 sync s3://bucket/prefix DST`."
    )

    def missing(self) -> str | None:
        return which_or_reason("aws")

    def version(self) -> str:
        return first_line(["aws", "--version"])

    def _env(self, ctx: PeerContext) -> dict[str, str]:
        conf = ctx.workdir / "aws.conf"
        conf.write_text("[default]\ns3 =\n    addressing_style = path\n")
        creds = ctx.workdir / "aws.credentials"
        creds.touch()
        return {
            "AWS_ACCESS_KEY_ID": ctx.access_key, "AWS_SECRET_ACCESS_KEY": ctx.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(conf),
            "AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PAGER": "",
        }

    def upload(self, ctx: PeerContext, src: Path, target: Target, *, delete: bool, state: Path,
               encrypt_key: Path | None = None) -> Invocation:
        assert encrypt_key is None, "aws s3 sync has no KS3-compatible client-side encryption"
        argv = ["aws", "s3", "sync", str(src), f"s3://{target.bucket}/{target.prefix}",
                "--endpoint-url", ctx.endpoint, "--only-show-errors"]
        if delete:
            argv.append("--delete")
        return Invocation(tuple(argv), self._env(ctx))

    def download(self, ctx: PeerContext, target: Target, dst: Path, *, state: Path,
                 encrypt_key: Path | None = None) -> Invocation:
        argv = ("aws", "s3", "sync", f"s3://{target.bucket}/{target.prefix}", str(dst),
                "--endpoint-url", ctx.endpoint, "--only-show-errors")
        return Invocation(argv, self._env(ctx))
