"""``ks3sync presign ks3://bucket/key --expires 1h [--put]``: print a presigned URL (KSS V2 query auth).

The signature is computed locally; no request is made. With ``--endpoint local`` the URL points at the
embedded server, which only runs while a ks3sync command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ks3sync.cli.common import (
    ENDPOINT_HELP,
    default_state_dir,
    die,
    handle_errors,
    load_config_file,
    parse_object_url,
    resolve_connection,
)


@click.command("presign", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url")
@click.option(
    "--expires", default="1h", show_default=True, help="How long the URL stays valid (e.g. 15m, 2h, 7d)."
)
@click.option("--put", "for_put", is_flag=True, help="A URL to upload (PUT) instead of download (GET).")
@click.option("--content-type", help="With --put: the Content-Type the uploader must send.")
@click.option("--endpoint", help=ENDPOINT_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="The YAML config file.")
@handle_errors
def presign(
    url: str,
    expires: str,
    for_put: bool,
    content_type: str | None,
    endpoint: str | None,
    config_path: Path | None,
) -> None:
    """Print a presigned GET (or --put) URL for ks3://bucket/key."""
    from ks3sync.config import parse_duration

    bucket, key = parse_object_url(url, what="URL")
    try:
        seconds = int(parse_duration(expires))
    except ValueError as exc:
        die(f"--expires: {exc}")
    if seconds <= 0:
        die(f"--expires: must be positive, got {expires!r}")
    if content_type and not for_put:
        die("--content-type only applies with --put")
    config = load_config_file(config_path)
    state_dir = config.state_dir if config is not None else default_state_dir()
    conn = resolve_connection(endpoint, config, state_dir)
    endpoint_url = conn.endpoint
    if conn.is_local:
        endpoint_url = "http://127.0.0.1:9000"
        from ks3sync.cli.output import warning

        warning(
            "--endpoint local: the embedded server runs only during ks3sync commands; this URL assumes "
            "`ks3sync local-server --port 9000` is running"
        )
    from ks3sync.ks3 import Client, ClientConfig

    headers = {"Content-Type": content_type} if content_type else None
    with Client(
        ClientConfig(endpoint=endpoint_url, access_key=conn.access_key, secret_key=conn.secret_key)
    ) as client:
        click.echo(
            client.presign("PUT" if for_put else "GET", bucket, key, expires_in=seconds, headers=headers)
        )
