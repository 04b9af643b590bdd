"""The config's network keys next to ``endpoint``: ``timeouts:`` (connect, read, request) and ``proxy:``, what
they become in the client's ClientConfig, and each mistake as one line naming its key."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from ks3sync.cli.network import client_options, network_settings
from ks3sync.config import ConfigError, TimeoutsConfig, load_config
from ks3sync.ks3 import ClientConfig, ProxySettings, ProxyURL


def config_file(tmp_path: Path, top: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    path = tmp_path / "ks3sync.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        endpoint: https://ks3-cn-beijing.ksyuncs.com
        syncs:
          - name: docs
            source: {src}
            target: ks3://bucket/prefix
        """)
        + textwrap.dedent(top)
    )
    return path


def test_timeout_defaults_are_the_clients() -> None:
    defaults = ClientConfig(endpoint="https://h", access_key="a", secret_key="s")
    assert TimeoutsConfig() == TimeoutsConfig(
        connect=defaults.connect_timeout, read=defaults.timeout, request=defaults.request_timeout
    )


def test_timeouts_are_durations_and_reach_the_client(tmp_path: Path) -> None:
    config = load_config(
        config_file(
            tmp_path,
            """\
        timeouts:
          connect: 2s
          read: 1m30s
          request: 10m
        """,
        )
    )
    assert config.timeouts == TimeoutsConfig(connect=2.0, read=90.0, request=600.0)
    assert config.effective()["timeouts"] == {"connect": "2s", "read": "90s", "request": "10m"}
    options = client_options(network_settings(config), jobs=8, bwlimit=None)
    assert options == {
        "connect_timeout": 2.0,
        "timeout": 90.0,
        "request_timeout": 600.0,
        "proxy": ProxySettings(),
    }
    client = ClientConfig(endpoint="https://h", access_key="a", secret_key="s", **options)
    assert (client.connect_timeout, client.timeout, client.request_timeout) == (2.0, 90.0, 600.0)


def test_a_partial_timeouts_mapping_keeps_the_other_defaults(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, "timeouts: {request: 30s}\n"))
    assert config.timeouts == dataclasses.replace(TimeoutsConfig(), request=30.0)


def test_a_bandwidth_limit_lowers_the_deadlines_minimum_rate() -> None:
    settings = network_settings(None)
    assert "min_rate" not in client_options(settings, jobs=8, bwlimit=None)
    assert (
        client_options(settings, jobs=8, bwlimit=10_000_000)["min_rate"] == 16 * 1024
    )  # never above the default
    assert client_options(settings, jobs=8, bwlimit=64_000)["min_rate"] == 4000  # half of a fair share
    assert client_options(settings, jobs=8, bwlimit=1_000)["min_rate"] == 1024  # and never near zero


@pytest.mark.parametrize(
    ("top", "key", "words"),
    [
        ("timeouts: 5s", "timeouts", "expected a mapping"),
        ("timeouts: {connect: soon}", "timeouts.connect", "expected a duration"),
        ("timeouts: {read: 0s}", "timeouts.read", "more than 0s"),
        ("timeouts: {request: -1}", "timeouts.request", "expected a duration"),
        ("timeouts: {idle: 5s}", "timeouts.idle", "unknown key"),
    ],
)
def test_each_timeouts_mistake_names_its_key(tmp_path: Path, top: str, key: str, words: str) -> None:
    path = config_file(tmp_path, top + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: {key}: ") and words in message


@pytest.mark.parametrize(
    ("value", "expected", "shown"),
    [
        (None, ProxySettings(), "from the environment"),
        ("none", ProxySettings.direct(), "none"),
        ("NONE", ProxySettings.direct(), "none"),
        (
            "http://user:pw@proxy.example:3128",
            ProxySettings(ProxyURL.parse("http://user:pw@proxy.example:3128")),
            "http://user:****@proxy.example:3128",
        ),
    ],
)
def test_proxy_reaches_the_client_and_shows_masked(
    tmp_path: Path, value: str | None, expected: ProxySettings, shown: str
) -> None:
    config = load_config(config_file(tmp_path, f"proxy: {value}\n" if value is not None else ""))
    assert client_options(network_settings(config), jobs=8, bwlimit=None)["proxy"] == expected
    assert config.effective()["proxy"] == shown
    assert "pw" not in repr(config)


@pytest.mark.parametrize(
    "value", ["{a: 1}", "'http://user:pw@ bad host'", "ftp//nope", "'http://user:pw://x@host'"]
)
def test_a_bad_proxy_names_its_key_and_never_its_password(tmp_path: Path, value: str) -> None:
    path = config_file(tmp_path, f"proxy: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: proxy: expected a proxy URL") and "pw" not in message


def test_ca_bundle_is_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    config = load_config(config_file(tmp_path, "ca_bundle: ca.pem\n"))
    assert config.ca_bundle == tmp_path / "ca.pem"
    assert config.effective()["ca_bundle"] == str(tmp_path / "ca.pem")
    assert load_config(config_file(tmp_path, "")).effective()["ca_bundle"] == "the system trust store"
    path = config_file(tmp_path, "ca_bundle: missing.pem\n")
    with pytest.raises(ConfigError, match=r": ca_bundle: file .*missing.pem' does not exist"):
        load_config(path)
