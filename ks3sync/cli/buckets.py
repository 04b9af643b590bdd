"""Buckets: ``ks3sync mb ks3://bucket`` (make), ``ks3sync rb ks3://bucket`` (remove, only when empty),
and the bucket listing that ``ks3sync ls`` prints without an argument (or with ``ks3://``).

Each takes the endpoint, credential and network options ``ls`` takes (``--endpoint``, ``--config``,
``$KS3_ENDPOINT``, ``$KS3_ACCESS_KEY``/``$KS3_SECRET_KEY``, ``--proxy``/``--no-proxy``, ``--ca-bundle``). Exit status: 0 done; 1 KS3 refused for a
reason of state (the name is taken, the bucket is not empty, too many buckets); 2 usage error (a bad
name or option, a missing bucket, credentials refused), one line each.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ks3sync.cli.common import (
    ENDPOINT_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    open_client,
    parse_target,
    resolve_connection,
)
from ks3sync.cli.network import network_options, network_settings
from ks3sync.cli.output import line

BUCKET_ACLS = ("private", "public-read", "public-read-write")  # KS3's canned ACLs for a bucket
# A LocationConstraint as KS3 spells them (BEIJING, SHANGHAI, HONGKONG, JR_BEIJING, ...): checked for
# shape only, KS3 itself says which regions exist.
_REGION = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _endpoint_options(func: Any) -> Any:
    func = network_options(func)
    func = click.option(
        "--config", "config_path", type=click.Path(path_type=Path), help="The YAML config file."
    )(func)
    return click.option("--endpoint", help=ENDPOINT_HELP)(func)


def _bucket_of(url: str) -> str:
    """``ks3://bucket`` (a trailing ``/`` is fine) -> the bucket; a key prefix is refused."""
    target = parse_target(url, what="BUCKET")
    if target.prefix:
        die(f"BUCKET: expected ks3://bucket without a key prefix, got {url!r}")
    return target.bucket


def _client(endpoint: str | None, config_path: Path | None, network: dict[str, Any]) -> Any:
    """``network``: the ``--proxy`` / ``--no-proxy`` / ``--ca-bundle`` values (cli/network.py)."""
    config = load_config_file(config_path)
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(endpoint, config, state_dir)
    return open_client(conn, state_dir, network=network_settings(config, **network))


@click.command("mb", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url", metavar="ks3://BUCKET")
@click.option(
    "--region",
    metavar="REGION",
    help="Where to create it (KS3's LocationConstraint, e.g. BEIJING); default: the endpoint's region.",
)
@click.option("--acl", type=click.Choice(BUCKET_ACLS), help="Canned ACL of the bucket (default: private).")
@_endpoint_options
@handle_errors
def mb(
    url: str,
    region: str | None,
    acl: str | None,
    endpoint: str | None,
    config_path: Path | None,
    **network: Any,
) -> None:
    """Make a bucket."""
    from ks3sync.ks3 import BucketAlreadyExists, KS3AuthError, KS3ServiceError

    bucket = _bucket_of(url)
    if region is not None and not _REGION.fullmatch(region):
        die(
            f"--region: expected a KS3 region name such as BEIJING (letters, digits, '_', '-'), got {region!r}"
        )
    with _client(endpoint, config_path, network) as client:
        try:
            client.create_bucket(bucket, acl=acl, region=region)
        except BucketAlreadyExists:
            # KS3 answers 409 both for a bucket of ours and for a name another account holds.
            try:
                ours = client.head_bucket(bucket)
            except KS3AuthError:
                ours = False
            if ours:
                die(f"bucket {bucket!r} already exists (it is yours)", EXIT_FAILED)
            die(f"bucket name {bucket!r} is taken by another account (bucket names are global)", EXIT_FAILED)
        except KS3ServiceError as exc:
            if exc.code in (
                "InvalidBucketName",
                "InvalidLocationConstraint",
                "IllegalLocationConstraintException",
            ):
                die(f"{url}: KS3 refused it: {exc.code}: {exc.message}", EXIT_USAGE)
            if exc.code == "TooManyBuckets":
                die(
                    f"{url}: KS3 refused it: the account has as many buckets as it may ({exc.message})",
                    EXIT_FAILED,
                )
            raise
    line(f"made bucket ks3://{bucket}" + (f" in {region}" if region else ""))


@click.command("rb", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url", metavar="ks3://BUCKET")
@_endpoint_options
@handle_errors
def rb(url: str, endpoint: str | None, config_path: Path | None, **network: Any) -> None:
    """Remove an empty bucket (a bucket with objects or unfinished uploads is refused)."""
    from ks3sync.errors import BucketMissing
    from ks3sync.ks3 import BucketNotEmpty, NoSuchBucket

    bucket = _bucket_of(url)
    with _client(endpoint, config_path, network) as client:
        try:
            client.delete_bucket(bucket)
        except NoSuchBucket:
            raise BucketMissing(bucket) from None
        except BucketNotEmpty:
            die(_not_empty(client, bucket), EXIT_FAILED)
    line(f"removed bucket ks3://{bucket}")


def _not_empty(client: Any, bucket: str) -> str:
    """Why KS3 refused: objects, or (KS3 counts them too) multipart uploads nobody finished."""
    page = client.list_objects(bucket, max_keys=1)
    if page.objects:
        return (
            f"bucket {bucket!r} is not empty (it holds objects, e.g. {page.objects[0].key!r}); "
            "delete them first, then remove the bucket"
        )
    return (
        f"bucket {bucket!r} holds no objects but unfinished multipart uploads, which KS3 counts; "
        "abort them first (e.g. aws s3api abort-multipart-upload), then remove the bucket"
    )


def list_buckets(endpoint: str | None, config_path: Path | None, **network: Any) -> None:
    """``ks3sync ls`` without a bucket: one line per bucket, creation date, region, name."""
    with _client(endpoint, config_path, network) as client:
        buckets = client.list_buckets()
    for b in sorted(buckets, key=lambda b: b.name):
        # names and regions come from the endpoint: escaped like every key (ks3sync.display)
        line(f"{_when(b.creation_date)}  {b.region or '-':<12}  {b.name}")


def _when(value: datetime | None) -> str:
    # UTC, as KS3 gives it and as `ls` shows objects' dates
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else " " * 19
