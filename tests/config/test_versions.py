"""The ``versions:`` setting of a sync (docs/versions.md): its keys, defaults, and every mistake as one
line naming the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ks3sync.config import ConfigError, VersionsConfig, load_config

ENV = {"KS3_ACCESS_KEY": "AKLTEXAMPLE", "KS3_SECRET_KEY": "s3cr3t-value-never-shown"}


def config(tmp_path: Path, versions: str) -> Path:
    src = tmp_path / "docs"
    src.mkdir(exist_ok=True)
    path = tmp_path / "ks3sync.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        endpoint: https://ks3-cn-beijing.ksyuncs.com
        credentials: {{access_key: "${{KS3_ACCESS_KEY}}", secret_key: "${{KS3_SECRET_KEY}}"}}
        syncs:
          - name: docs
            source: {src}
            target: ks3://bucket/docs/
        """)
        + textwrap.indent(textwrap.dedent(versions), " " * 4)
    )
    path.chmod(0o600)
    return path


def test_versions_keys_and_their_defaults(tmp_path: Path) -> None:
    cfg = load_config(
        config(tmp_path, "versions: {prefix: hist, keep: 30d, keep_passes: 100, cold_after: 7d}\n"),
        environ=ENV,
    )
    assert cfg.syncs[0].versions == VersionsConfig("hist/", 30 * 86400.0, 100, 7 * 86400.0)
    assert cfg.effective()["syncs"][0]["versions"] == {
        "prefix": "hist/",
        "keep": "30d",
        "keep_passes": 100,
        "cold_after": "7d",
    }
    cfg = load_config(config(tmp_path, "versions: {}\n"), environ=ENV)
    assert cfg.syncs[0].versions == VersionsConfig(".versions/", None, None, None)  # kept forever
    assert load_config(config(tmp_path, ""), environ=ENV).syncs[0].versions is None


@pytest.mark.parametrize(
    ("versions", "key", "words"),
    [
        ("versions: {prefix: /abs/}", "syncs[0].versions.prefix", "relative"),
        ("versions: {prefix: a//b}", "syncs[0].versions.prefix", "segments"),
        ("versions: {keep: soon}", "syncs[0].versions.keep", "duration"),
        ("versions: {keep: 0s}", "syncs[0].versions.keep", "at least 1s"),
        ("versions: {keep_passes: 0}", "syncs[0].versions.keep_passes", "at least 1"),
        ("versions: {keep: 7d, cold_after: 30d}", "syncs[0].versions.cold_after", "shorter than keep"),
        ("versions: {kept: 7d}", "syncs[0].versions.kept", "did you mean 'keep'"),
        ("versions: true", "syncs[0].versions", "expected a mapping"),
        ("versions: {}\nbackup_prefix: trash/", "syncs[0].versions", "cannot be combined with backup_prefix"),
    ],
)
def test_each_versions_mistake_names_its_key(tmp_path: Path, versions: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config(tmp_path, versions + "\n"), environ=ENV)
    message = str(caught.value)
    assert f": {key}: " in message and words in message and "\n" not in message
