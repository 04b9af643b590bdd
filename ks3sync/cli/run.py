"""`ks3sync run --config FILE`: the sync service in the foreground (systemd runs it as Type=notify).

Wires the concrete parts: config → journal (state_dir/journal.db) → one KS3 client → a KS3Store per
sync → the daemon's Service; installs SIGTERM/SIGINT handlers and runs until one arrives. Exit status:
0 after a clean stop (also when in-flight work had to be left to the next start: the journal has it),
2 for a configuration problem (one line), 1 if the service could not start at all.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from ks3sync.cli.check_config import load_config_or_exit

if TYPE_CHECKING:  # each imported where it is used, so that `run --help` stays quick
    from ks3sync.cli.common import Connection
    from ks3sync.cli.network import NetworkSettings
    from ks3sync.config import Config, SyncConfig
    from ks3sync.crypto.key import EncryptionKey
    from ks3sync.journal import Journal
    from ks3sync.transfer.context import TransferOptions

log = logging.getLogger("ks3sync.daemon")

RETRY_ENV = "KS3SYNC_RETRY_INTERVAL"  # for tests (docs/service.md): how soon a failing sync is retried


@click.command("run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The YAML configuration file (see config/ks3sync.example.yaml).",
)
@click.option(
    "--stop-timeout",
    default=8.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="Seconds to let transfers in flight finish or checkpoint after SIGTERM.",
)
def run(config_path: Path, stop_timeout: float) -> None:
    """Run the sync service in the foreground until SIGTERM or Ctrl-C."""
    from ks3sync.cli.common import die, resolve_connection
    from ks3sync.daemon import logs

    config = load_config_or_exit(config_path, check_sources=False)
    if not config.syncs:
        die(f"{config_path}: syncs: nothing to run (the list is empty)")
    conn = resolve_connection(None, config, config.state_dir)
    from ks3sync.cli.network import network_settings

    network = network_settings(config)
    proxy = network.proxies.proxy if network.proxies is not None else None
    # the secrets in use (from the environment or the file) are scrubbed from every log line
    logs.configure(
        config.logging.level,
        config.logging.format,
        secrets=[conn.secret_key, *([proxy.password] if proxy is not None and proxy.password else [])],
    )
    transfer_for = _transfer_options_factory(config)  # key files: a bad one is exit 2 before anything
    retry_ns = _retry_ns()

    from ks3sync.journal import Journal, JournalError

    lock = _lock_state_dir(config.state_dir)  # noqa: F841 - held (open) for the life of the process
    try:
        journal = Journal.open(config.journal_path)
    except JournalError as exc:
        die(str(exc).splitlines()[0])
    stop = threading.Event()
    _install_signal_handlers(stop)
    clean = _serve(config, conn, network, journal, transfer_for, stop, stop_timeout, retry_ns)
    if not clean:
        # Transfer threads still hold requests open; their work is checkpointed in the journal and
        # resumes at the next start. Leave now rather than outlive systemd's stop timeout.
        logging.shutdown()
        os._exit(0)
    journal.close()
    sys.exit(0)


def _serve(
    config: Config,
    conn: Connection,
    network: NetworkSettings,
    journal: Journal,
    transfer_for: Callable[[SyncConfig], TransferOptions],
    stop: threading.Event,
    stop_timeout: float,
    retry_ns: int,
) -> bool:
    from ks3sync.cli.common import connect_flags, open_client
    from ks3sync.daemon.metrics import Metrics, MetricsUnavailable
    from ks3sync.daemon.notify import Notifier
    from ks3sync.daemon.reconcile import mirror_reconciler
    from ks3sync.daemon.service import Service
    from ks3sync.store.ks3store import KS3Store

    metrics = None
    if config.metrics.enabled:
        try:
            metrics = Metrics(config.metrics.host_port)
        except MetricsUnavailable as exc:
            from ks3sync.cli.common import die

            die(str(exc))
        except OSError as exc:
            from ks3sync.cli.common import die

            die(f"{config.path}: metrics.listen: cannot listen on {config.metrics.listen}: {exc.strerror}")
    with open_client(
        conn, config.state_dir, jobs=config.transfer.jobs, network=network, bwlimit=config.transfer.bwlimit
    ) as client:
        # a missing bucket's message says how to create it: `ks3sync mb ks3://b --config FILE`
        connect = connect_flags(None, config.path.absolute())
        stores = {s.name: KS3Store(client, s.bucket, s.prefix, connect=connect) for s in config.syncs}
        service = Service(
            config,
            journal,
            stores,
            transfer_for,
            reconcile=mirror_reconciler(),
            notifier=Notifier(),
            metrics=metrics,
            retry_ns=retry_ns,
        )
        service.start()
        service.run(stop)
        return service.shutdown(stop_timeout)


def _lock_state_dir(state_dir: Path) -> TextIO:
    """One service per state directory: a second `ks3sync run` on the same journal would release the
    first one's claims and race it on every path. The lock dies with the process (even on kill -9);
    `status` probes it to tell a running service from a dead one (daemon/lock.py)."""
    from ks3sync.cli.common import die
    from ks3sync.daemon.lock import StateDirBusy, acquire

    try:
        return acquire(state_dir)
    except StateDirBusy as exc:
        die(f"{state_dir}: another ks3sync run (pid {exc.holder}) is using this state directory")
    except OSError as exc:
        die(f"{state_dir}: cannot use the state directory: {exc.strerror}")


def _retry_ns() -> int:
    """How long a sync that failed as a whole (credentials, bucket, listing) waits before it is retried:
    30 s, or $KS3SYNC_RETRY_INTERVAL, a knob for tests that must see a recovery without waiting."""
    from ks3sync.cli.common import die
    from ks3sync.config import parse_duration
    from ks3sync.daemon.worker import RETRY_NS

    text = os.environ.get(RETRY_ENV)
    if not text:
        return RETRY_NS
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        die(f"${RETRY_ENV}: {exc}")
    if not 0 < seconds <= 3600:
        die(f"${RETRY_ENV}: expected a duration between 1ms and 1h, got {text!r}")
    return int(seconds * 1_000_000_000)


def _install_signal_handlers(stop: threading.Event) -> None:
    from ks3sync.cli.interrupt import quit_now
    from ks3sync.daemon.logs import event

    def on_signal(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and stop.is_set():
            # A second Ctrl-C in a terminal: quit now, quietly (the journal has every change; in-flight
            # multipart parts that were not confirmed are simply sent again at the next start).
            quit_now("interrupted")
        event(log, logging.INFO, "signal", signal=signal.Signals(signum).name, action="stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # No reload: a changed config takes effect at restart (`systemctl restart`), which resumes safely.
    signal.signal(
        signal.SIGHUP,
        lambda *_: event(
            log, logging.WARNING, "signal", signal="SIGHUP", action="ignored; restart to reload"
        ),
    )


def _transfer_options_factory(config: Config) -> Callable[[SyncConfig], TransferOptions]:
    from ks3sync.store.base import WriteOptions
    from ks3sync.transfer.context import TransferOptions

    keys: dict[Path, EncryptionKey] = {}

    def key_for(path: Path | None) -> EncryptionKey | None:
        if path is None:
            return None
        if path not in keys:
            from ks3sync.cli.common import die
            from ks3sync.crypto.errors import KeyFileError
            from ks3sync.crypto.key import EncryptionKey

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # load_config already warned about permissions
                    keys[path] = EncryptionKey.load(path)
            except KeyFileError as exc:
                die(f"{config.path}: encrypt_key_file: {exc}")
        return keys[path]

    def transfer_for(sync: SyncConfig) -> TransferOptions:
        t = config.transfer
        return TransferOptions(
            jobs=t.jobs,
            part_size=t.part_size,
            multipart_threshold=t.multipart_threshold,
            write=WriteOptions(storage_class=sync.storage_class, acl=sync.acl),
            encryption_key=key_for(sync.encrypt_key_file),
            allow_unencrypted=sync.allow_unencrypted,
            require_integrity=sync.require_integrity,
            backup_prefix=sync.backup_prefix,
            bwlimit=float(t.bwlimit) if t.bwlimit else None,
        )

    # load every key now: a bad key file is a configuration error at start, not a failure hours later
    for sync in config.syncs:
        key_for(sync.encrypt_key_file)
    return transfer_for
