"""``ks3sync ls ks3://bucket[/prefix]``: list objects in long format (date, storage class, size, key).
Keys are shown escaped (ks3sync.display); sizes with -H in binary units.
Without an argument (or ``ks3://``): the buckets (``cli/buckets.py``).

Without ``--recursive`` one level is shown, sub-"folders" as ``PRE name/`` lines (like ``aws s3 ls``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ks3sync.cli.common import (
    ENDPOINT_HELP,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    open_client,
    resolve_connection,
)
from ks3sync.cli.network import network_options, network_settings
from ks3sync.cli.output import line
from ks3sync.display import human_size


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else " " * 19


@click.command("ls", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url", required=False)
@click.option("--endpoint", help=ENDPOINT_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="The YAML config file.")
@click.option("-r", "--recursive", is_flag=True, help="List every object under the prefix.")
@click.option("-H", "--human-readable", is_flag=True, help="Sizes in KiB/MiB/GiB.")
@network_options
@handle_errors
def ls(
    url: str | None,
    endpoint: str | None,
    config_path: Path | None,
    recursive: bool,
    human_readable: bool,
    proxy: str | None,
    no_proxy: bool,
    ca_bundle: Path | None,
) -> None:
    """List objects under ks3://bucket/prefix: date, storage class, size, key. Without a URL (or with
    ks3://): list the buckets: creation date, region, name."""
    from ks3sync.errors import BucketMissing
    from ks3sync.ks3 import KS3Error, NoSuchBucket
    from ks3sync.store.ks3store import mapped

    if url in (None, "ks3://", "ks3:"):
        from ks3sync.cli.buckets import list_buckets

        list_buckets(endpoint, config_path, proxy=proxy, no_proxy=no_proxy, ca_bundle=ca_bundle)
        return
    assert url is not None
    if not url.startswith("ks3://"):
        die(f"URL: expected ks3://bucket[/prefix], got {url!r}")
    bucket, _, prefix = url[len("ks3://") :].partition("/")
    if not bucket:
        die(f"URL: expected ks3://bucket[/prefix], got {url!r}")
    config = load_config_file(config_path)
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(endpoint, config, state_dir)
    network = network_settings(config, proxy=proxy, no_proxy=no_proxy, ca_bundle=ca_bundle)
    count = 0
    total = 0
    with open_client(conn, state_dir, network=network) as client:
        items: Any = client.iter_objects(bucket, prefix=prefix, delimiter=None if recursive else "/")
        try:
            for item in items:
                # Keys are escaped (ks3sync.display): one holding ESC or CR cannot rewrite the terminal.
                if isinstance(item, str):
                    line(f"{'':19}  {'':11}  {'PRE':>12}  {item}")
                    continue
                size = human_size(item.size) if human_readable else str(item.size)
                line(f"{_when(item.last_modified)}  {item.storage_class:<11}  {size:>12}  {item.key}")
                count += 1
                total += item.size
        except NoSuchBucket as exc:
            raise BucketMissing(bucket) from exc
        except KS3Error as exc:
            raise mapped(exc, bucket) from exc
    if recursive:
        shown = human_size(total) if human_readable else f"{total} bytes"
        line(f"{count} objects, {shown}", err=True)
