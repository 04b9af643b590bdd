"""Issue 15, point 9: YAML aliases in a config file are refused before anything is expanded.

The bomb test runs `ks3sync check-config` in a child process with an address-space limit and a
timeout, so that a regression fails the test (MemoryError or timeout) instead of taking the machine's
memory: the unfixed code took 1.8 GB and 30+ s on this file's shape.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ks3sync.config import ConfigError, load_config

ENV = {"KS3_ACCESS_KEY": "AKLTEXAMPLE", "KS3_SECRET_KEY": "s3cr3t"}
CHILD_MEMORY = 1 << 30  # bytes of address space for the child: ample for check-config, far below a bomb
CHILD_TIMEOUT = 30  # seconds


def bomb(levels: int = 9) -> str:
    """The billion-laughs shape inside a known key (so that the loader walks it): each level is a list
    of nine aliases of the level before."""
    lines = ["syncs:", '  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels + 1):
        lines.append(f"  - &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def test_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    cfg = tmp_path / "ks3sync.yaml"
    cfg.write_text("endpoint: http://127.0.0.1:9\n" + bomb())
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ks3sync", "check-config", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"check-config still expanding the alias bomb after {CHILD_TIMEOUT}s")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == f"ks3sync: error: {cfg}:4: YAML aliases (*l0) are not supported"


def test_alias_in_a_sync_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    cfg = tmp_path / "ks3sync.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        endpoint: http://127.0.0.1:9
        base: &base {{source: {src}, target: "ks3://bucket/p"}}
        syncs:
          - <<: *base
            name: docs
        """)
    )
    with pytest.raises(ConfigError) as caught:
        load_config(cfg, environ=ENV)
    assert str(caught.value) == f"{cfg}:4: YAML aliases (*base) are not supported"


def test_an_anchor_without_alias_is_harmless(tmp_path: Path) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    cfg = tmp_path / "ks3sync.yaml"
    cfg.write_text(
        f"endpoint: http://127.0.0.1:9\nsyncs:\n  - &docs {{name: docs, source: {src}, target: 'ks3://bucket/p'}}\n"
    )
    assert [s.name for s in load_config(cfg, environ=ENV).syncs] == ["docs"]
