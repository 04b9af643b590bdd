"""The shipped systemd units: the directives the service relies on are there, and systemd accepts them."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"


def directives(unit: Path) -> dict[str, list[str]]:
    """Service-section directives, each with every value (systemd allows repeats)."""
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    values: dict[str, list[str]] = {}
    section = None
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


@pytest.mark.parametrize("name", ["ks3sync.service", "ks3sync@.service"])
def test_unit_has_notify_watchdog_restart_and_hardening(name: str) -> None:
    d = directives(UNITS / name)
    assert d["Service.Type"] == ["notify"]
    assert d["Service.WatchdogSec"] and d["Service.Restart"] == ["on-failure"]
    assert d["Service.RestartPreventExitStatus"] == ["2"]  # a config error is not retried forever
    assert d["Service.ProtectSystem"] == ["strict"]
    assert d["Service.NoNewPrivileges"] == ["yes"]
    assert d["Service.PrivateTmp"] == ["yes"]
    assert d["Service.ProtectHome"] == ["read-only"]
    state = "/var/lib/ks3sync/%i" if "@" in name else "/var/lib/ks3sync"
    assert state in d["Service.ReadWritePaths"]
    config = "/etc/ks3sync/%i.yaml" if "@" in name else "/etc/ks3sync/ks3sync.yaml"
    assert d["Service.ExecStart"] == [f"/usr/local/bin/ks3sync run --config {config}"]
    assert d["Install.WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize(
    ("name", "instance"),
    [("ks3sync.service", "ks3sync.service"), ("ks3sync@.service", "ks3sync@docs.service")],
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, name: str, instance: str) -> None:
    # verify insists that ExecStart exists: point it at this environment's ks3sync
    exe = Path(sys.executable).with_name("ks3sync")
    text = (UNITS / name).read_text().replace("/usr/local/bin/ks3sync", str(exe))
    (tmp_path / name).write_text(text)
    if name != instance:
        (tmp_path / instance).symlink_to(tmp_path / name)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / instance)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown key" not in result.stderr and "Unknown section" not in result.stderr, result.stderr
