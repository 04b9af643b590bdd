"""Bad input, configuration: every key of the config file given a malformed value ends `check-config`
and `mirror --config` with exit 2 and exactly one line naming the file and the key, no traceback, and
(for mirror) no request sent. A valid file is the control: it passes, so each failure is the key's.
Run in-process through click's runner (fast), plus one real subprocess for mirror.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ks3sync.cli.main import cli
from tests.serverkit import ServerHandle

from .helpers import run_cli


def _base(tmp_path: Path) -> dict[str, Any]:
    src = tmp_path / "docs"
    src.mkdir(exist_ok=True)
    key = tmp_path / "docs.key"
    key.write_bytes(
        b"k3y-for-config-t"
    )  # fixed: random bytes may begin or end with whitespace, which the SDK strips
    key.chmod(0o600)
    ignore = tmp_path / "docs.ignore"
    ignore.write_text("*.tmp\n")
    return {
        "endpoint": "http://127.0.0.1:9",
        "credentials": {"access_key": "${KS3_ACCESS_KEY}", "secret_key": "${KS3_SECRET_KEY}"},
        "state_dir": str(tmp_path / "state"),
        "transfer": {"jobs": 4, "part_size": "8MiB", "multipart_threshold": "64MiB", "bwlimit": "off"},
        "logging": {"level": "info", "format": "text"},
        "syncs": [
            {
                "name": "docs",
                "source": str(src),
                "target": "ks3://bucket/docs",
                "delete": True,
                "debounce": "2s",
                "max_delete": "50%",
                "backup_prefix": "trash/docs/",
                "excludes": ["*.tmp"],
                "exclude_from": [str(ignore)],
                "encrypt_key_file": str(key),
                "storage_class": "STANDARD_IA",
                "acl": "private",
                "rescan_interval": "1h",
                "follow_symlinks": False,
            }
        ],
    }


# (key path shown in the message, how to break it)
BREAKAGES: list[tuple[str, Any]] = [
    ("endpoint", ("endpoint", "ftp://nowhere")),
    ("endpoint", ("endpoint", ["a", "list"])),
    ("credentials", ("credentials", "AK:SK")),
    ("credentials.access_key", ("credentials.access_key", "${KS3SYNC_TEST_UNSET_VARIABLE}")),
    ("credentials.secret_key", ("credentials.secret_key", 12345)),
    ("state_dir", ("state_dir", ["x"])),
    ("transfer.jobs", ("transfer.jobs", 0)),
    ("transfer.jobs", ("transfer.jobs", "many")),
    ("transfer.part_size", ("transfer.part_size", "1KiB")),
    ("transfer.part_size", ("transfer.part_size", "huge")),
    ("transfer.multipart_threshold", ("transfer.multipart_threshold", "-5")),
    ("transfer.bwlimit", ("transfer.bwlimit", "fast")),
    ("transfer.colour", ("transfer.colour", "blue")),
    ("logging.level", ("logging.level", "loud")),
    ("logging.format", ("logging.format", "xml")),
    ("metrics.listen", ("metrics", {"listen": "nowhere"})),
    ("syncs", ("syncs", "docs")),
    ("syncs[0].name", ("syncs.0.name", "bad name!")),
    ("syncs[0].source", ("syncs.0.source", "/nonexistent/ks3sync/source")),
    ("syncs[0].target", ("syncs.0.target", "s3://bucket/docs")),
    ("syncs[0].delete", ("syncs.0.delete", "maybe")),
    ("syncs[0].debounce", ("syncs.0.debounce", "soon")),
    ("syncs[0].max_delete", ("syncs.0.max_delete", "lots")),
    ("syncs[0].backup_prefix", ("syncs.0.backup_prefix", "docs/inside")),
    ("syncs[0].excludes", ("syncs.0.excludes", {"a": 1})),
    ("syncs[0].exclude_from", ("syncs.0.exclude_from", ["/nonexistent/ignore"])),
    ("syncs[0].encrypt_key_file", ("syncs.0.encrypt_key_file", "/nonexistent/key")),
    ("syncs[0].storage_class", ("syncs.0.storage_class", "GOLD")),
    ("syncs[0].acl", ("syncs.0.acl", "everyone")),
    ("syncs[0].rescan_interval", ("syncs.0.rescan_interval", "often")),
    ("syncs[0].follow_symlinks", ("syncs.0.follow_symlinks", "perhaps")),
    ("syncs[0].colour", ("syncs.0.colour", "blue")),
    ("syncs[1].name", ("syncs.1", "DUPLICATE")),
    ("colour", ("colour", "blue")),
]


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        index = int(last)
        if value == "DUPLICATE":  # a second sync with the same name and another target
            twin = copy.deepcopy(node[0])
            twin["target"] = "ks3://bucket/other"
            node.append(twin)
        else:
            node[index] = value
    else:
        node[last] = value


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "ks3sync.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def _check(path: Path) -> Any:
    env = {"KS3_ACCESS_KEY": "AKLTcfg", "KS3_SECRET_KEY": "cfg-secret-value"}
    return CliRunner().invoke(cli, ["check-config", "--config", str(path)], env=env, catch_exceptions=False)


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    result = _check(_write(tmp_path, _base(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "cfg-secret-value" not in result.output


@pytest.mark.parametrize(("key", "breakage"), BREAKAGES, ids=[f"{k}={b[1]!r}"[:60] for k, b in BREAKAGES])
def test_each_malformed_key_is_one_line_naming_file_and_key(tmp_path: Path, key: str, breakage: Any) -> None:
    doc = _base(tmp_path)
    _set(doc, *breakage)
    path = _write(tmp_path, doc)
    result = _check(path)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert path.name in lines[0] and key in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert "cfg-secret-value" not in result.output


def test_mirror_with_a_malformed_config_sends_nothing(local_server: ServerHandle, tmp_path: Path) -> None:
    doc = _base(tmp_path)
    doc["endpoint"] = local_server.endpoint
    doc["transfer"]["jobs"] = "many"
    path = _write(tmp_path, doc)
    mark = local_server.mark()
    env = dict(os.environ, KS3_ACCESS_KEY=local_server.access_key, KS3_SECRET_KEY=local_server.secret_key)
    run = run_cli(
        [
            sys.executable,
            "-m",
            "ks3sync",
            "mirror",
            str(tmp_path / "docs"),
            "ks3://bucket/docs",
            "--config",
            str(path),
            "--state-db",
            str(tmp_path / "j.db"),
        ],
        env,
    )
    assert run.returncode == 2, run.stderr
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1, run.stderr
    assert "transfer.jobs" in run.stderr
    assert local_server.requests()[mark:] == []
