"""Start-up cost guard: a plain (unencrypted, no --config) `ks3sync mirror` imports none of Alembic,
PyYAML, rich or pycryptodome, whether it creates the journal or finds it. A no-change re-run is mostly
process start-up and shutdown (issue 7, W4 at 2,000 files), so each of these is measurable wall time;
the control runs show that the probe does see them when a run needs them. (SQLAlchemy is loaded by
every run now: the journal's statements are built with it, docs/decisions.md D16.) Shutdown: the
entry point freezes the heap so the interpreter's final collections skip it, and atexit handlers still
run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HEAVY = ("alembic", "yaml", "rich", "Crypto")

# Runs the real entry point in a child and reports, at exit, which of HEAVY it imported.
PROBE = f"""
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(
    {{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))))
from ks3sync.cli.main import main
sys.argv = ["ks3sync", *sys.argv[1:]]
main()
"""


def mirror(server: Any, *args: str) -> tuple[int, set[str], str]:
    env = dict(os.environ, KS3_ACCESS_KEY=server.access_key, KS3_SECRET_KEY=server.secret_key)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "mirror", "--endpoint", server.endpoint, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("MODULES ")]
    return done.returncode, set(json.loads(line.removeprefix("MODULES "))), done.stderr


def test_a_plain_mirror_imports_none_of_the_heavy_packages(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(20):
        (src / "d" / f"f{i}.txt").write_text(f"file {i}\n")
    common = [str(src), f"ks3://{bucket}/p/", "--state-db", str(tmp_path / "state" / "journal.db")]

    code, first, err = mirror(local_server, *common)
    assert code == 0, err
    assert first == set()  # a new journal is created from schema.py: no migration, no Alembic

    (src / "d" / "f3.txt").write_text("changed\n")
    (src / "d" / "f4.txt").unlink()
    (src / "new.txt").write_text("new\n")
    code, changed, err = mirror(local_server, *common, "--delete")
    assert code == 0, err
    assert changed == set()

    code, unchanged, err = mirror(local_server, *common, "--delete")
    assert code == 0, err
    assert "unchanged 20" in err and unchanged == set()


def test_the_probe_sees_packages_a_run_does_need(local_server: Any, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef")
    key.chmod(0o600)
    config = tmp_path / "ks3sync.yaml"
    config.write_text(
        f"endpoint: {local_server.endpoint}\nstate_dir: {tmp_path / 'state'}\n"
        f"syncs:\n  - name: s\n    source: {src}\n    target: ks3://{bucket}/enc/\n"
    )
    code, seen, err = mirror(
        local_server, str(src), f"ks3://{bucket}/enc/", "--encrypt-key", str(key), "--config", str(config)
    )
    assert code == 0, err
    assert {"Crypto", "yaml"} <= seen


def test_the_entry_point_freezes_the_heap_and_atexit_handlers_still_run() -> None:
    child = """
import atexit, gc, sys
atexit.register(lambda: print("FROZEN", gc.get_freeze_count()))
from ks3sync.cli.main import main
sys.argv = ["ks3sync", "--version"]
main()
"""
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ks3sync, version")
    frozen = int(lines[-1].removeprefix("FROZEN "))
    assert frozen > 1000  # the imported modules' objects, at least
