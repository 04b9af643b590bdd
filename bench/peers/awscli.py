"""AWS CLI (`aws s3 sync`) with credentials from the environment and path-style addressing; as installed,
and with the concurrency its S3 configuration guide offers (`AwsCli(tuned=True)`, the row `aws-tuned`)."""

from __future__ import annotations

from pathlib import Path

from bench.measure import Invocation
from bench.peers import DEFAULTS, TUNED, Peer, PeerContext, Target, first_line, which_or_reason

# https://docs.aws.amazon.com/cli/latest/topic/s3-config.html#max-concurrent-requests (default 10;
# "Increasing this value may improve the time it takes to complete an S3 transfer"). Value from issue 16.
TUNED_CONCURRENCY = 64

_COMMON = (
    "creds in env AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION=us-east-1, a private config "
    "file (AWS_CONFIG_FILE, one per variant) with `s3.addressing_style = path`. `--only-show-errors` only "
    "silences per-file progress lines. Size+mtime comparison; multipart above 8 MiB in 8 MiB parts. "
    "Renames are upload+delete. Restore: `aws s3 sync s3://bucket/prefix DST`."
)


class AwsCli(Peer):
    def __init__(self, *, tuned: bool = False) -> None:
        self.tuned = tuned
        self.name = "aws-tuned" if tuned else "aws"
        self.variant = TUNED if tuned else DEFAULTS
        if tuned:
            self.notes = (
                "`aws s3 sync SRC s3://bucket/prefix --endpoint-url URL --only-show-errors [--delete]` with "
                f"`s3.max_concurrent_requests = {TUNED_CONCURRENCY}` in its config file, " + _COMMON + " "
                "`max_concurrent_requests` is the knob the CLI's S3 configuration guide documents for this "
                "(docs.aws.amazon.com/cli/latest/topic/s3-config.html: default 10, raise it to use more of "
                "the link)."
            )
        else:
            self.notes = (
                "`aws s3 sync SRC s3://bucket/prefix --endpoint-url URL --only-show-errors [--delete]`, "
                + _COMMON
                + " Defaults otherwise: 10 concurrent requests."
            )

    def missing(self) -> str | None:
        return which_or_reason("aws")

    def version(self) -> str:
        return first_line(["aws", "--version"])

    def _env(self, ctx: PeerContext) -> dict[str, str]:
        conf = ctx.workdir / f"{self.name}.conf"
        s3 = "    addressing_style = path\n"
        if self.tuned:
            s3 += f"    max_concurrent_requests = {TUNED_CONCURRENCY}\n"
        conf.write_text("[default]\ns3 =\n" + s3)
        creds = ctx.workdir / "aws.credentials"
        creds.touch()
        return {
            "AWS_ACCESS_KEY_ID": ctx.access_key,
            "AWS_SECRET_ACCESS_KEY": ctx.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(conf),
            "AWS_SHARED_CREDENTIALS_FILE": str(creds),
            "AWS_PAGER": "",
        }

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
        assert encrypt_key is None, "aws s3 sync has no KS3-compatible client-side encryption"
        argv = [
            "aws",
            "s3",
            "sync",
            str(src),
            f"s3://{target.bucket}/{target.prefix}",
            "--endpoint-url",
            ctx.endpoint,
            "--only-show-errors",
        ]
        if delete:
            argv.append("--delete")
        return Invocation(tuple(argv), self._env(ctx))

    def download(
        self, ctx: PeerContext, target: Target, dst: Path, *, state: Path, encrypt_key: Path | None = None
    ) -> Invocation:
        argv = (
            "aws",
            "s3",
            "sync",
            f"s3://{target.bucket}/{target.prefix}",
            str(dst),
            "--endpoint-url",
            ctx.endpoint,
            "--only-show-errors",
        )
        return Invocation(argv, self._env(ctx))
