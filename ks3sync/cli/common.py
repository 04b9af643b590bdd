"""Shared CLI plumbing: where the state lives (XDG), which endpoint and credentials to use (flags, env,
config file, or ``--endpoint local``: an embedded local-server under the state dir with credentials
generated once and remembered in a 0600 file), opening a client/store, and mapping errors to exit codes.

Exit codes: 0 all done; 1 some entries failed or the run stopped; 2 usage or configuration error
(one line, no traceback). Secrets never reach a message.

Imports stay inside functions: `ks3sync --help` must not pay for the local server, yaml or SQLAlchemy,
nor a no-op mirror for the local server or yaml (it does need SQLAlchemy: the journal, D16).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from ks3sync.cli.network import NetworkSettings
    from ks3sync.config import Config
    from ks3sync.crypto.key import EncryptionKey
    from ks3sync.journal import Journal
    from ks3sync.ks3 import Client

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

ENDPOINT_ENV = "KS3_ENDPOINT"
ENDPOINT_HELP = (
    "http(s)://host[:port] of KS3, or 'local' for the embedded local-server "
    f"(default: the --config file's endpoint, else ${ENDPOINT_ENV})."
)

LOCAL_ENDPOINT = "local"
LOCAL_SERVER_DIR = "local-server"
LOCAL_CREDENTIALS_FILE = "local-server-credentials.json"

F = TypeVar("F", bound=Callable[..., Any])


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr (and the JSON error document under --json), then exit (ks3sync.cli.output)."""
    from ks3sync.cli.output import fail

    fail(message, code)


# What a refused certificate asks of the user; appended wherever one stops a command.
CERTIFICATE_HINT = (
    "; trust the endpoint's CA with --ca-bundle FILE or ca_bundle: in the config "
    "(default: the system trust store)"
)


def exit_code_for(exc: BaseException) -> int:
    from ks3sync.errors import AuthError, BucketMissing, CertificateRefused, UsageError

    if isinstance(exc, UsageError | AuthError | BucketMissing | CertificateRefused):
        return EXIT_USAGE
    return EXIT_FAILED


def handle_errors(func: F) -> F:
    """Turn the known failure classes into one line + exit code; anything unknown keeps its traceback
    (a bug should be reported with one)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ks3sync.config import ConfigError
        from ks3sync.errors import BucketMissing, Ks3SyncError, describe

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            die(str(exc), EXIT_USAGE)
        except BucketMissing as exc:
            if not exc.connect:  # say how to create it, with this command's own endpoint options
                params = click.get_current_context().params
                exc = BucketMissing(
                    exc.bucket, connect_flags(params.get("endpoint"), params.get("config_path"))
                )
            die(str(exc), exit_code_for(exc))
        except Ks3SyncError as exc:
            from ks3sync.errors import CertificateRefused

            hint = CERTIFICATE_HINT if isinstance(exc, CertificateRefused) else ""
            die(describe(exc) + hint, exit_code_for(exc))
        except KeyboardInterrupt:
            from ks3sync.cli.interrupt import EXIT_INTERRUPTED
            from ks3sync.cli.output import error_document, json_errors, note

            note("interrupted")
            if json_errors():
                click.echo(error_document("interrupted", EXIT_INTERRUPTED))
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - mapped by class below, re-raised otherwise
            mapped = _foreign_usage_error(exc)
            if mapped is None:
                raise
            die(mapped, EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


def _foreign_usage_error(exc: Exception) -> str | None:
    """Errors from other packages that mean "your setup is wrong": key files, the journal, the client.
    Their classes are imported here, when an error is being mapped, not at start-up."""
    from ks3sync.crypto.errors import KeyFileError
    from ks3sync.journal.errors import JournalError

    if isinstance(exc, KeyFileError | JournalError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    from ks3sync.ks3 import KS3AuthError, KS3CertificateError, KS3TransportError

    if isinstance(exc, KS3AuthError):
        return f"credentials refused by KS3: {exc}"
    if isinstance(exc, KS3CertificateError):
        return f"{exc}{CERTIFICATE_HINT}"
    if isinstance(exc, KS3TransportError):
        return f"cannot reach the endpoint: {exc}"
    return None


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment of the record: while the progress bar is live
    rich has replaced it with a proxy that prints above the bar, so log lines do not tear the bar."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        return None  # StreamHandler's constructor and setStream assign it; the property decides


class _EscapingFormatter(logging.Formatter):
    """``LEVEL logger: message`` with keys and paths in the message escaped (ks3sync.display), so a key
    holding ESC or CR cannot rewrite the terminal or forge a line; a traceback keeps its line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        from ks3sync.display import escape

        return f"{record.levelname} {record.name}: {escape(record.message)}"

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        from ks3sync.display import escape_lines

        return escape_lines(super().formatException(ei))


def setup_logging(verbose: int, *, quiet: bool = False) -> None:
    """stderr logging for a command: WARNING by default, INFO with -v, DEBUG with -vv, ERROR with -q."""
    level = (
        logging.ERROR
        if quiet
        else logging.WARNING
        if verbose <= 0
        else logging.INFO
        if verbose == 1
        else logging.DEBUG
    )
    handler = _CurrentStderr()
    handler.setFormatter(_EscapingFormatter())
    # force: each invocation replaces the handler (tests run many invocations in one process).
    logging.basicConfig(level=level, handlers=[handler], force=True)


# --------------------------------------------------------------------------------------------------
# state dir and config


def default_state_dir() -> Path:
    """Where the journal lives without ``--config``: the same place as a config without ``state_dir``."""
    from ks3sync.config import default_state_dir as config_default

    return config_default()


def load_config_file(path: Path | None) -> Config | None:
    if path is None:
        return None
    from ks3sync.config import load_config

    return load_config(path, check_sources=False)


@dataclass(frozen=True, slots=True)
class Target:
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"ks3://{self.bucket}/{self.prefix}"


def parse_target(text: str, *, what: str) -> Target:
    from ks3sync.config import parse_ks3_url

    try:
        url = parse_ks3_url(text)
    except ValueError as exc:
        die(f"{what}: {exc}")
    return Target(url.bucket, url.prefix)


def parse_object_url(text: str, *, what: str) -> tuple[str, str]:
    """``ks3://bucket/key`` -> (bucket, key); the key is taken verbatim (it may end in '/')."""
    if not text.startswith("ks3://"):
        die(f"{what}: expected ks3://bucket/key, got {text!r}")
    bucket, _, key = text[len("ks3://") :].partition("/")
    parse_target(f"ks3://{bucket}", what=what)  # validates the bucket name
    if not key:
        die(f"{what}: expected ks3://bucket/key (a key is missing), got {text!r}")
    return bucket, key


# --------------------------------------------------------------------------------------------------
# endpoint and credentials


@dataclass(frozen=True, slots=True)
class Connection:
    endpoint: str
    access_key: str
    secret_key: str
    is_local: bool

    def __repr__(self) -> str:
        return f"Connection(endpoint={self.endpoint!r}, access_key={self.access_key!r}, is_local={self.is_local})"


def local_credentials(state_dir: Path) -> tuple[str, str]:
    """The embedded server's credentials: generated on first use, kept in a 0600 file."""
    path = state_dir / LOCAL_CREDENTIALS_FILE
    if not path.exists():
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        access_key = "AKLOCAL" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = -1  # another process created it a moment ago: use theirs
        if fd >= 0:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"access_key": access_key, "secret_key": secret_key}, fh)
            return access_key, secret_key
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["access_key"]), str(data["secret_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        die(
            f"{path}: unreadable local-server credentials ({type(exc).__name__}); delete the file to regenerate"
        )


def resolve_connection(endpoint: str | None, config: Config | None, state_dir: Path) -> Connection:
    """The endpoint: --endpoint, else the --config file's ``endpoint:``, else $KS3_ENDPOINT (a file
    named on the command line is more specific than the environment: docs/decisions.md D11).
    Credentials from KS3_ACCESS_KEY/KS3_SECRET_KEY beat the config file."""
    chosen: str | None = (
        endpoint or (config.endpoint if config is not None else None) or os.environ.get(ENDPOINT_ENV) or None
    )
    if not chosen:
        die(
            f"no endpoint: pass --endpoint URL (or 'local' for an embedded test server), --config FILE, "
            f"or set {ENDPOINT_ENV}"
        )
    if chosen == LOCAL_ENDPOINT:
        local_access, local_secret = local_credentials(state_dir)
        return Connection(LOCAL_ENDPOINT, local_access, local_secret, True)
    if "://" not in chosen:
        chosen = "https://" + chosen
    if not chosen.startswith(("http://", "https://")):
        die(f"--endpoint: expected http(s)://host[:port] or 'local', got {chosen!r}")
    access_key: str | None = os.environ.get("KS3_ACCESS_KEY")
    secret_key: str | None = os.environ.get("KS3_SECRET_KEY")
    if (not access_key or not secret_key) and config is not None and config.credentials is not None:
        access_key = access_key or config.credentials.access_key
        secret_key = secret_key or config.credentials.secret_key
    if not access_key or not secret_key:
        die("no credentials: set KS3_ACCESS_KEY and KS3_SECRET_KEY, or give them in the --config file")
    return Connection(chosen.rstrip("/"), access_key, secret_key, False)


def connect_flags(endpoint: str | None, config_path: Path | None) -> str:
    """The options that reach the same endpoint again, for a command line we suggest (" --endpoint
    URL", " --config FILE"; empty when $KS3_ENDPOINT does it), quoted for a POSIX shell."""
    import shlex

    if endpoint:
        return f" --endpoint {shlex.quote(endpoint)}"
    if config_path is not None:
        return f" --config {shlex.quote(str(config_path))}"
    return ""


@contextlib.contextmanager
def open_client(
    conn: Connection,
    state_dir: Path,
    *,
    jobs: int | None = None,
    ensure_bucket: str | None = None,
    network: NetworkSettings | None = None,
    bwlimit: float | None = None,
) -> Iterator[Client]:
    """A client for ``conn``; for ``local`` the embedded server runs for the duration of the block.
    ``jobs``: the most small requests in flight (the client adapts below it; None: the client's
    defaults, for commands that send one request at a time); ``network``: proxy and timeouts
    (cli/network.py); ``bwlimit`` lowers the request deadline's minimum rate."""
    from ks3sync.cli.network import NetworkSettings, client_options
    from ks3sync.ks3 import Client, ClientConfig, ProxySettings

    with contextlib.ExitStack() as stack:
        endpoint = conn.endpoint
        options = client_options(network or NetworkSettings(), jobs=jobs or 1, bwlimit=bwlimit)
        if jobs is not None:
            # Small requests hold at most ``jobs`` connections; large ones (parts, ranges) take no
            # request slot and need their own.
            options.update(max_in_flight=jobs, max_connections=2 * jobs + 4)
        if conn.is_local:
            options["proxy"] = ProxySettings.direct()  # the embedded server: plain HTTP on loopback
            options.pop("ca_bundle", None)
            from ks3sync.cli.output import note
            from ks3sync.localserver import RootInUse, shared_server

            root = state_dir / LOCAL_SERVER_DIR
            try:
                # this process's own server, or the one another `--endpoint local` process runs on the root
                endpoint = stack.enter_context(
                    shared_server(root, conn.access_key, conn.secret_key, notice=note)
                )
            except RootInUse as exc:
                die(f"--endpoint local: {exc}")
        client = stack.enter_context(
            Client(
                ClientConfig(
                    endpoint=endpoint,
                    access_key=conn.access_key,
                    secret_key=conn.secret_key,
                    **options,
                )
            )
        )
        if conn.is_local and ensure_bucket is not None and not client.head_bucket(ensure_bucket):
            # The README's first command works on a fresh machine: the demo bucket appears on first use.
            client.create_bucket(ensure_bucket)
        yield client


# --------------------------------------------------------------------------------------------------
# mirror pairs: shared by `mirror` and `repair`, which must name a pair's journal records identically


def split_mirror_args(src: str, dst: str) -> tuple[str, str, bool]:
    """(local folder argument, ks3:// argument, True when uploading)."""
    src_remote, dst_remote = src.startswith("ks3://"), dst.startswith("ks3://")
    if src_remote == dst_remote:
        die("exactly one of SRC and DST must be ks3://bucket[/prefix], the other a local folder")
    return (src, dst, True) if dst_remote else (dst, src, False)


def mirror_sync_name(local_root: Path, target: Target) -> str:
    """The journal's name for a mirror pair (``ks3sync repair`` must register the same one): what the
    pair is, the folder and the bucket's prefix, not the endpoint it is reached through. A bucket name
    is unique across KS3's regions, and every pass checks each record against the listing's ETag and
    size, so a changed endpoint (a region's internal one, a restarted test server) keeps the records
    and resumes the multipart uploads in flight (docs/decisions.md D16)."""
    return f"mirror {local_root} {target}"


def mirror_former_name(local_root: Path, target: Target) -> str:
    """How ks3sync named the same pair before D16 began: ``<name> @ <endpoint URL>``. ``register_sync``
    renames such a journal row on first use, so an upgrade forgets nothing."""
    return f"{mirror_sync_name(local_root, target)} @ "


def mirror_options_hash(encrypted: bool) -> str:
    return hashlib.sha256(json.dumps([encrypted]).encode()).hexdigest()[:16]


def register_mirror_pair(journal: Journal, local_root: Path, target: Target, *, encrypted: bool) -> int:
    """The journal's sync id of the pair ``mirror`` (either direction) and ``restore`` share: one name
    and options hash, and an older endpoint-named row of the same trees renamed on first use (D16)."""
    return journal.register_sync(
        mirror_sync_name(local_root, target),
        str(local_root),
        target.bucket,
        target.prefix,
        mirror_options_hash(encrypted),
        formerly=mirror_former_name(local_root, target),
    )


def load_encryption_key(path: Path) -> EncryptionKey:
    """The key file as an EncryptionKey; its warnings (e.g. readable by others) go to stderr."""
    from ks3sync.crypto.key import EncryptionKey

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        key = EncryptionKey.load(path)
    from ks3sync.cli.output import warning as warn

    for warning in caught:
        warn(str(warning.message))
    return key
