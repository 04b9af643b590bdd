"""`ks3sync local-server`: run the KS3-compatible server in the foreground (see ks3sync.localserver)."""

from __future__ import annotations

from pathlib import Path

import click


def _codes(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        codes = tuple(int(item) for item in value.split(",") if item.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated HTTP statuses, got {value!r}") from exc
    if any(not 400 <= code <= 599 for code in codes):
        raise click.BadParameter(f"fault codes must be 4xx/5xx statuses, got {value!r}")
    return codes


def _tls_pair(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """Both files or neither; a pair that does not load is a usage error before anything is bound."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise click.UsageError("--tls-cert and --tls-key go together")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise click.BadParameter(f"{cert} / {key}: not a PEM certificate and its key ({exc})") from exc
    return cert, key


@click.command("local-server")
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding the buckets (created if missing; survives restarts).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option(
    "--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the port here once the socket accepts connections.",
)
@click.option("--access-key", envvar="KS3_ACCESS_KEY", required=True, help="Access key (env KS3_ACCESS_KEY).")
@click.option("--secret-key", envvar="KS3_SECRET_KEY", required=True, help="Secret key (env KS3_SECRET_KEY).")
@click.option(
    "--request-log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request here.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Fraction of data-plane requests answered with an error from --fault-codes.",
)
@click.option(
    "--fault-codes",
    default="500,503",
    callback=_codes,
    show_default=True,
    help="Comma-separated statuses for injected errors (503 is answered as SlowDown).",
)
@click.option(
    "--latency-ms",
    default=0.0,
    type=click.FloatRange(0),
    help="Added delay per request (a slow link's round trip; every request, control plane included).",
)
@click.option(
    "--max-inflight",
    type=click.IntRange(1),
    default=None,
    help="Answer 503 SlowDown to requests beyond N in flight, as a throttled KS3 does (a request is in "
    "flight from its arrival to the end of its response, --latency-ms included). Default: no limit.",
)
@click.option(
    "--retry-after",
    type=click.IntRange(0),
    default=None,
    help="Add 'Retry-After: SECONDS' to every 503 SlowDown answer (throttled or injected). KS3 sends "
    "none; this is for testing clients that honour it.",
)
@click.option(
    "--drop-rate",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="Fraction of data-plane requests whose connection is closed without a response.",
)
@click.option("--seed", type=int, default=None, help="Seed for fault injection (deterministic runs).")
@click.option("--no-fsync", is_flag=True, help="Skip fsync of object bodies (faster; not crash-safe).")
@click.option(
    "--body-timeout",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Seconds a request body may stall before 400 RequestTimeout (and a response may go unread "
    "before the connection is dropped).",
)
@click.option(
    "--head-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="Seconds from a request's first byte to the end of its head before 400 RequestTimeout.",
)
@click.option(
    "--restore-seconds",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="How long restoring an ARCHIVE object takes.",
)
@click.option(
    "--inline-max",
    type=click.IntRange(0, 1024 * 1024),
    default=None,
    help="Keep bodies up to this many bytes as SQLite rows instead of files "
    "(default: 65536 with --no-fsync, else 0).",
)
@click.option(
    "--virtual-host-domain",
    default="localhost",
    show_default=True,
    help="Host names <bucket>.<domain> address a bucket (virtual-host style); path style always works.",
)
@click.option(
    "--max-buckets",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Buckets allowed before TooManyBuckets (KS3's per-account limit is 100).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve HTTPS with this PEM certificate (chain); needs --tls-key. A self-signed pair: see README.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The PEM private key of --tls-cert.",
)
def local_server(
    root: Path,
    host: str,
    port: int,
    port_file: Path | None,
    access_key: str,
    secret_key: str,
    request_log: Path | None,
    fault_rate: float,
    fault_codes: tuple[int, ...],
    latency_ms: float,
    max_inflight: int | None,
    retry_after: int | None,
    drop_rate: float,
    seed: int | None,
    no_fsync: bool,
    body_timeout: float,
    head_timeout: float,
    restore_seconds: float,
    inline_max: int | None,
    virtual_host_domain: str,
    max_buckets: int,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run a KS3-compatible server on loopback (KSS V2, presigned URLs and S3 SigV4)."""
    from ks3sync.cli.common import EXIT_USAGE, die
    from ks3sync.localserver import RootInUse, ServerConfig, serve_forever

    if fault_rate + drop_rate > 1:
        raise click.BadParameter("--fault-rate plus --drop-rate must not exceed 1")
    tls = _tls_pair(tls_cert, tls_key)
    config = ServerConfig(
        root=root,
        access_key=access_key,
        secret_key=secret_key,
        host=host,
        port=port,
        request_log=request_log,
        fault_rate=fault_rate,
        fault_codes=fault_codes,
        latency_ms=latency_ms,
        max_inflight=max_inflight,
        retry_after=retry_after,
        drop_rate=drop_rate,
        seed=seed,
        fsync=not no_fsync,
        body_timeout=body_timeout,
        head_timeout=head_timeout,
        restore_seconds=restore_seconds,
        inline_max=inline_max,
        max_buckets=max_buckets,
        virtual_host_domain=virtual_host_domain.lower() or None,
    )
    try:
        status = serve_forever(config, port_file, tls)
    except RootInUse as exc:
        die(str(exc), EXIT_USAGE)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port} with root {root}: {exc}") from exc
    raise SystemExit(status)
