"""Several syncs in one Service: independence, systemd notifications, each sync's health in the journal
(and its write rate), bounded stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ks3sync.cli.status import collect
from ks3sync.config import Config, Ks3Url, SyncConfig
from ks3sync.daemon.backoff import SECOND
from ks3sync.daemon.health import HEARTBEAT_NS
from ks3sync.daemon.notify import Notifier
from ks3sync.daemon.service import Service
from ks3sync.daemon.worker import State, SyncWorker
from ks3sync.errors import AuthError
from ks3sync.journal import Journal
from ks3sync.store.memory import MemoryStore
from ks3sync.transfer.context import TransferOptions
from ks3sync.watch.translate import Note, Observed


def no_reconcile(worker: SyncWorker, stop: threading.Event) -> Any:
    return None


@pytest.fixture()
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def messages(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(65536).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(5)
    return out


@pytest.fixture()
def two_syncs(
    tmp_path: Path, notify_socket, fake_clock
) -> Iterator[tuple[Service, dict[str, MemoryStore], Any]]:
    clock = fake_clock
    syncs = []
    stores = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        syncs.append(
            SyncConfig(
                name=name, source=tmp_path / name, target=Ks3Url("bkt", f"{name}/"), delete=True, debounce=1.0
            )
        )
        stores[name] = MemoryStore("bkt", f"{name}/")
    config = Config(
        path=tmp_path / "c.yaml",
        endpoint="http://127.0.0.1:1",
        credentials=None,
        state_dir=tmp_path / "state",
        syncs=tuple(syncs),
    )
    journal = Journal.open(config.journal_path, clock=clock)
    _, sock_path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "2000000"})
    service = Service(
        config,
        journal,
        stores,
        lambda s: TransferOptions(jobs=2),
        reconcile=no_reconcile,
        clock=clock,
        notifier=notifier,
        watch=False,
    )
    yield service, stores, clock
    service.shutdown(5)
    journal.close()


def settle(service: Service, wait_until) -> None:
    def idle() -> bool:
        # idle before this step, so the step that follows has reaped everything that finished
        was_idle = not any(w.busy() for w in service.workers) and all(
            w.sync_id < 0 or service.journal.stats(w.sync_id).in_flight == 0 for w in service.workers
        )
        for w in service.workers:
            w.poke()
        service.step()
        quiet.append(was_idle and not any(w.busy() for w in service.workers))
        return quiet[-2:] == [True, True]  # two idle rounds: nothing started by the last step

    quiet: list[bool] = []

    wait_until(idle)


def add(service: Service, name: str, path: str, data: str) -> None:
    worker = service.worker(name)
    (worker.root / path).write_text(data)
    worker.buffer.add([Observed(Note.FILE_CHANGED, path)])


def test_ready_status_and_watchdog_notifications(two_syncs, notify_socket, wait_until) -> None:
    service, _, _ = two_syncs
    sock, _ = notify_socket
    service.start()
    settle(service, wait_until)
    got = messages(sock)
    assert any(m.startswith("READY=1\nSTATUS=a: reconciling; b: reconciling") for m in got), got
    assert "WATCHDOG=1" in got
    assert any(m == "STATUS=a: watching; b: watching" for m in got), got
    service.shutdown(5)
    assert messages(sock)[0].startswith("STOPPING=1")


def test_one_sync_losing_its_folder_does_not_stop_the_other(two_syncs, wait_until) -> None:
    service, stores, clock = two_syncs
    service.start()
    settle(service, wait_until)
    a = service.worker("a")
    a.root.rename(a.root.with_name("a-unmounted"))
    add(service, "b", "f.txt", "b's file")
    clock.advance(2)
    settle(service, wait_until)
    assert service.states() == {"a": State.UNAVAILABLE, "b": State.WATCHING}
    assert [e.path for e in stores["b"].list()] == ["f.txt"]
    report = collect(service.config)  # status, from the journal
    a_item, b_item = report["syncs"]
    assert (a_item["state"], a_item["activity"], b_item["state"], report["exit"]) == (
        "failing",
        "unavailable",
        "ok",
        1,
    )
    assert a_item["error"] == f"{a.root}: source folder is missing"
    a.root.with_name("a-unmounted").rename(a.root)  # mounted again: ok as soon as the probe sees it
    clock.advance(2)
    settle(service, wait_until)
    assert [s["state"] for s in collect(service.config)["syncs"]] == ["ok", "ok"]


def test_credentials_refused_pauses_that_sync_only(two_syncs, wait_until) -> None:
    service, stores, clock = two_syncs
    service.start()
    settle(service, wait_until)
    stores["a"].inject("put", AuthError("access key refused"), times=1)
    add(service, "a", "x.txt", "x")
    add(service, "b", "y.txt", "y")
    clock.advance(2)
    settle(service, wait_until)
    assert service.worker("a").state is State.PAUSED
    assert [e.path for e in stores["b"].list()] == ["y.txt"]
    assert service.journal.stats(service.worker("a").sync_id).parked == 0  # not the file's fault
    a_row = service.journal.health()[service.worker("a").sync_id]
    assert (a_row.activity, a_row.last_error, a_row.failing_since_ns) == (
        "paused",
        "access key refused",
        clock.now,
    )
    clock.advance(31)  # the pause ends; the change is retried and succeeds
    settle(service, wait_until)
    clock.advance(1)
    settle(service, wait_until)
    assert [e.path for e in stores["a"].list()] == ["x.txt"]
    assert service.worker("a").state is State.WATCHING
    a_row = service.journal.health()[service.worker("a").sync_id]
    assert (a_row.activity, a_row.failing_since_ns, a_row.last_error) == (
        "watching",
        None,
        "access key refused",
    )


def test_health_is_written_on_changes_and_with_the_heartbeat_only(two_syncs, wait_until) -> None:
    service, _, clock = two_syncs
    service.start()
    settle(service, wait_until)
    journal = service.journal
    started = journal.service()
    assert started is not None and started.stopped_ns is None
    assert {r.activity for r in journal.health().values()} == {"watching"}
    # a thousand quiet steps, a little under one heartbeat apart in all: not one write
    writes = service.health.writes
    for _ in range(1000):
        clock.advance(HEARTBEAT_NS / 1e9 / 1001)
        service.step()
    assert service.health.writes == writes
    clock.advance(HEARTBEAT_NS / 1e9 / 1000 * 2)
    service.step()  # the heartbeat is due
    assert service.health.writes == writes + 1
    beat = journal.service()
    assert beat is not None and beat.heartbeat_ns == clock.now and beat.started_ns == started.started_ns
    # a change of state is written at once
    a = service.worker("a")
    a.root.rename(a.root.with_name("gone"))
    clock.advance(1.5)
    service.step()
    assert journal.health()[a.sync_id].activity == "unavailable"
    assert service.health.writes == writes + 2
    clock.advance(1)
    assert service.shutdown(5) is True
    stopped = journal.service()
    assert stopped is not None and stopped.stopped_ns == clock.now
    assert {r.activity for r in journal.health().values()} == {"stopped"}
    report = collect(service.config)
    assert (report["service"]["state"], report["exit"]) == ("stopped", 3)
    assert {s["state"] for s in report["syncs"]} == {"stopped"}


def test_run_loop_stops_when_asked(two_syncs) -> None:
    service, _, _ = two_syncs
    service.start()
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert SECOND == 1_000_000_000
