"""The ``verify:`` setting of a sync (docs/decisions.md D21): one budget, objects or bytes per day, off
when absent; every mistake one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ks3sync.config import ConfigError, VerifyConfig, load_config
from tests.config.test_versions import ENV, config


def test_verify_budgets_and_the_default(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, "verify: {objects_per_day: 5000}\n"), environ=ENV)
    assert cfg.syncs[0].verify == VerifyConfig(objects_per_day=5000)
    assert cfg.effective()["syncs"][0]["verify"] == {"objects_per_day": 5000}
    cfg = load_config(config(tmp_path, "verify: {bytes_per_day: 10GiB}\n"), environ=ENV)
    assert cfg.syncs[0].verify == VerifyConfig(bytes_per_day=10 * 1024**3)
    assert cfg.effective()["syncs"][0]["verify"] == {"bytes_per_day": "10GiB"}
    assert load_config(config(tmp_path, "verify: {bytes_per_day: 1MB}\n"), environ=ENV).syncs[
        0
    ].verify == VerifyConfig(bytes_per_day=1_000_000)  # sizes as everywhere else: MB decimal, MiB binary
    cfg = load_config(config(tmp_path, ""), environ=ENV)
    assert cfg.syncs[0].verify is None  # off unless asked for
    assert cfg.effective()["syncs"][0]["verify"] is None


@pytest.mark.parametrize(
    ("verify", "key", "words"),
    [
        ("verify: {}", "syncs[0].verify", "set a budget"),
        ("verify: {objects_per_day: 0}", "syncs[0].verify.objects_per_day", "at least 1"),
        ("verify: {objects_per_day: -3}", "syncs[0].verify.objects_per_day", "at least 1"),
        ("verify: {objects_per_day: many}", "syncs[0].verify.objects_per_day", "expected an integer"),
        ("verify: {bytes_per_day: 0}", "syncs[0].verify.bytes_per_day", "more than 0"),
        ("verify: {bytes_per_day: lots}", "syncs[0].verify.bytes_per_day", "expected a size"),
        ("verify: {objects_per_day: 10, bytes_per_day: 1GiB}", "syncs[0].verify.bytes_per_day", "not both"),
        ("verify: {object_per_day: 10}", "syncs[0].verify.object_per_day", "did you mean 'objects_per_day'"),
        ("verify: {bytes_a_day: 10}", "syncs[0].verify.bytes_a_day", "did you mean 'bytes_per_day'"),
        ("verify: 1000", "syncs[0].verify", "expected a mapping"),
        ("verfy: {objects_per_day: 10}", "syncs[0].verfy", "did you mean 'verify'"),
    ],
)
def test_each_verify_mistake_names_its_key(tmp_path: Path, verify: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config(tmp_path, verify + "\n"), environ=ENV)
    message = str(caught.value)
    assert f": {key}: " in message and words in message and "\n" not in message
