"""What a person sees from `ks3sync mirror` on a real terminal (issue 14 point 5): the CLI runs under a
pseudo-terminal (tests/ptykit.py) so its live progress bar is really drawn, against the session's
`local-server` (or the embedded one for `--endpoint local`).

- `-v` prints each finished entry on a line of its own above the bar; the bar counts in binary units;
- the first Ctrl-C says what it waits for and the process ends within a few seconds with status 130, no
  traceback, the cursor shown again; multipart parts confirmed before the stop are not sent again by
  the next run;
- a second Ctrl-C quits at once, quietly, also with the embedded server; under `--json` it still
  leaves a JSON document on stdout;
- `-q`, `--no-progress`, `-n`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.ptykit import TerminalRun, ended_at_exit

KIB = 1024
# Generous: the machine running the tests is shared and often loaded. Typical values: docs/decisions.md D12.
STOP_BOUND_S = 10.0
QUIT_BOUND_S = 5.0
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """Terminal output without colours and cursor movements."""
    return _CSI.sub("", text)


def screen_lines(text: str) -> list[str]:
    """The lines as a terminal leaves them: what follows a line's last carriage return overwrites what
    came before it (rich erases the bar's line, then prints an entry there and redraws the bar below)."""
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in plain(text).split("\n")]


def env_for(server: Any, **extra: str) -> dict[str, str]:
    return dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key, **extra)


@pytest.fixture()
def terminal() -> Iterator[list[TerminalRun]]:
    """Every TerminalRun appended here is closed (killed if still running) at teardown."""
    runs: list[TerminalRun] = []
    yield runs
    for run in runs:
        run.close()


def start(
    runs: list[TerminalRun], args: list[str], env: dict[str, str], cwd: Path | None = None
) -> TerminalRun:
    run = TerminalRun(args, env, cwd)
    runs.append(run)
    return run


def make_tree(root: Path, files: int, size: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"f{i:02d}.bin").write_bytes(os.urandom(size))


def of_key(entries: list[dict[str, Any]], bucket: str, key: str, op: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["op"] == op and e["path"] == f"/{bucket}/{key}"]


def ok_parts(entries: list[dict[str, Any]], bucket: str, key: str) -> set[int]:
    return {
        int(parse_qs(e["query"])["partNumber"][0])
        for e in of_key(entries, bucket, key, "UploadPart")
        if e["status"] == 200
    }


def test_verbose_lines_print_above_the_live_bar_in_binary_units(
    local_server: Any, bucket: str, tmp_path: Path, terminal: list[TerminalRun]
) -> None:
    src = tmp_path / "src"
    make_tree(src, 12, 48 * KIB)
    run = start(
        terminal,
        [
            "mirror",
            str(src),
            f"ks3://{bucket}/v/",
            "--endpoint",
            local_server.endpoint,
            "--state-db",
            str(tmp_path / "j.db"),
            "-v",
        ],
        env_for(local_server),
    )
    assert run.wait(120) == 0, run.output
    out = run.output
    assert "\x1b[?25l" in out, out  # the live display was active (rich hides the cursor while it draws)
    lines = screen_lines(out)
    for i in range(12):
        # each entry once, on a line of its own: printed above the bar, not into it
        assert lines.count(f"uploaded f{i:02d}.bin") == 1, out
    last_entry = max(i for i, line in enumerate(lines) if re.fullmatch(r"uploaded f\d+\.bin", line))
    assert any("12/12 files" in line for line in lines[last_entry:]), out  # the bar's last state, below them
    bar = plain(out)
    assert "KiB" in bar and not re.search(r"\d (kB|MB)\b", bar), out  # binary, as the summary


def test_first_ctrl_c_says_what_it_waits_for_stops_within_seconds_and_a_rerun_resumes(
    local_server: Any, bucket: str, tmp_path: Path, terminal: list[TerminalRun]
) -> None:
    src = tmp_path / "src"
    make_tree(src, 30, 256 * KIB)
    (src / "big.bin").write_bytes(os.urandom(4 * 1024 * KIB))  # sorts first: multipart from the start
    common = [
        str(src),
        f"ks3://{bucket}/c/",
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j.db"),
        "--part-size",
        "256KiB",
        "--multipart-threshold",
        "1MiB",
        "--jobs",
        "4",
    ]
    mark = local_server.mark()
    run = start(terminal, ["mirror", *common, "--bwlimit", "2MiB/s", "-v"], env_for(local_server))

    def parts_confirmed() -> bool:
        return bool(ok_parts(local_server.requests()[mark:], bucket, "c/big.bin"))

    deadline = time.monotonic() + 60
    while not parts_confirmed():  # bounded: stop only once a multipart part is safely on the server
        assert time.monotonic() < deadline and run.exit_code is None, run.output
        run.wait_for(lambda out: True, 1)
        time.sleep(0.05)
    sent = run.interrupt()
    run.wait_for(lambda out: "stopping: waiting for" in out, STOP_BOUND_S)
    code = run.wait(60)
    latency = (run.ended or time.monotonic()) - sent
    print(f"first Ctrl-C to exit: {latency:.2f} s")
    out = run.output
    assert code == 130, out
    assert "Traceback" not in out, out
    assert re.search(
        r"stopping: waiting for \d+ transfers? in flight \(Ctrl-C again to quit now\)", plain(out)
    ), out
    assert "\x1b[?25h" in out  # the cursor the bar hid is shown again
    assert "interrupted" in plain(out)
    assert latency < STOP_BOUND_S, f"{latency:.1f} s from Ctrl-C to exit\n{out}"
    first_run = local_server.requests()[mark:]
    sent_before = ok_parts(first_run, bucket, "c/big.bin")
    completed = of_key(first_run, bucket, "c/big.bin", "CompleteMultipartUpload")

    second = local_server.mark()
    again = subprocess.run(
        [sys.executable, "-m", "ks3sync", "mirror", *common],
        env=env_for(local_server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    rerun = local_server.requests()[second:]
    if not completed:  # the upload was cut off: the re-run resumes it, sending only the missing parts
        assert not of_key(rerun, bucket, "c/big.bin", "InitiateMultipartUpload"), rerun
        assert ok_parts(rerun, bucket, "c/big.bin") and not ok_parts(rerun, bucket, "c/big.bin") & sent_before
    again_again = subprocess.run(
        [sys.executable, "-m", "ks3sync", "mirror", *common, "--json"],
        env=env_for(local_server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = json.loads(again_again.stdout)
    assert summary["unchanged"] == 31 and summary["uploaded"] == 0


def test_a_transfer_that_outlasts_the_grace_period_is_abandoned_unrecorded(
    local_server: Any, bucket: str, tmp_path: Path, terminal: list[TerminalRun]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "slow.bin").write_bytes(os.urandom(6 * 1024 * KIB))  # one single PUT, ~12 s at this rate
    common = [
        str(src),
        f"ks3://{bucket}/g/",
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j.db"),
    ]
    run = start(terminal, ["mirror", *common, "--bwlimit", "512KiB/s"], env_for(local_server))
    run.wait_for(lambda out: re.search(r"[1-9][\d.]* (KiB|MiB)/", plain(out)) is not None, 60)  # bytes moving
    sent = run.interrupt()
    code = run.wait(60)
    latency = (run.ended or time.monotonic()) - sent
    out = plain(run.output)
    assert code == 130, out
    assert "stopping: waiting for 1 transfer in flight" in out and "quit with 1 transfer in flight" in out, (
        out
    )
    assert "Traceback" not in out
    assert latency < STOP_BOUND_S, f"{latency:.1f} s"
    again = subprocess.run(
        [sys.executable, "-m", "ks3sync", "mirror", *common, "--json"],
        env=env_for(local_server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["uploaded"] == 1  # nothing was recorded for the abandoned PUT


def test_a_second_ctrl_c_quits_at_once_without_a_traceback_also_with_the_embedded_server(
    tmp_path: Path, terminal: list[TerminalRun]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KS3_")}
    env.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"))
    make_tree(tmp_path / "src", 40, 256 * KIB)
    run = start(
        terminal,
        ["mirror", "src", "ks3://demo/x", "--endpoint", "local", "--bwlimit", "1MiB/s", "-v", "--jobs", "8"],
        env,
        cwd=tmp_path,
    )
    run.wait_for(lambda out: "uploaded f" in out, 60)
    run.interrupt()
    run.wait_for(lambda out: "stopping" in out, STOP_BOUND_S)
    sent = run.interrupt()
    code = run.wait(30)
    quit_s = (run.ended or time.monotonic()) - sent
    print(f"second Ctrl-C to exit: {quit_s:.2f} s")
    out = run.output
    assert code == 130, out
    assert "Traceback" not in out and "Exception" not in out, out
    assert "interrupted" in plain(out)
    assert quit_s < QUIT_BOUND_S, out
    assert out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l")  # the terminal is left with its cursor shown


def test_a_second_ctrl_c_under_json_still_prints_a_json_document(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", 40, 256 * KIB)
    out_file, err_file = tmp_path / "out", tmp_path / "err"
    mark = local_server.mark()
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ks3sync",
                "mirror",
                str(tmp_path / "src"),
                f"ks3://{bucket}/j/",
                "--endpoint",
                local_server.endpoint,
                "--state-db",
                str(tmp_path / "j.db"),
                "--bwlimit",
                "1MiB/s",
                "--json",
            ],
            env=env_for(local_server),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    with ended_at_exit(process):
        deadline = time.monotonic() + 60
        while not [e for e in local_server.requests()[mark:] if e["op"] == "PutObject"]:
            assert time.monotonic() < deadline and process.poll() is None, err_file.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        while "stopping" not in err_file.read_text():
            assert time.monotonic() < deadline, err_file.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
    document = json.loads(out_file.read_text())
    assert document["exit"] == 130 and document["error"].startswith("interrupted"), document
    assert "Traceback" not in err_file.read_text()


def test_quiet_no_progress_and_n(
    local_server: Any, bucket: str, tmp_path: Path, terminal: list[TerminalRun]
) -> None:
    src = tmp_path / "src"
    make_tree(src, 3, KIB)
    common = [
        str(src),
        f"ks3://{bucket}/q/",
        "--endpoint",
        local_server.endpoint,
        "--state-db",
        str(tmp_path / "j.db"),
    ]
    dry = start(terminal, ["mirror", *common, "-n"], env_for(local_server))
    assert dry.wait(60) == 0, dry.output
    assert "upload   f00.bin (new)" in plain(dry.output) and "nothing changed" in dry.output

    no_bar = start(terminal, ["mirror", *common, "--no-progress"], env_for(local_server))
    assert no_bar.wait(60) == 0, no_bar.output
    assert "\x1b[?25l" not in no_bar.output and "uploaded 3" in no_bar.output

    (src / "f00.bin").write_bytes(b"changed")
    quiet = start(terminal, ["mirror", *common, "-q"], env_for(local_server))
    assert quiet.wait(60) == 0, quiet.output
    assert quiet.output == ""  # nothing to say: no bar, no summary

    both = subprocess.run(
        [sys.executable, "-m", "ks3sync", "mirror", *common, "-q", "-v"],
        env=env_for(local_server),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 2 and both.stderr.startswith("ks3sync: error: -q and -v")
