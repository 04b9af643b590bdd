"""load_config: the issue's shape works; every kind of mistake is one line naming file and key."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ks3sync.config import (
    ConfigError,
    MaxDelete,
    load_config,
    parse_duration,
    parse_ks3_url,
    parse_max_delete,
    parse_rate,
    parse_size,
)

ENV = {"KS3_ACCESS_KEY": "AKLTEXAMPLE", "KS3_SECRET_KEY": "s3cr3t-value-never-shown"}


def write(tmp_path: Path, body: str, name: str = "ks3sync.yaml", mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    path.chmod(mode)
    return path


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


def issue_shape(src: Path, extra_sync: str = "", extra_top: str = "") -> str:
    return f"""\
        endpoint: https://ks3-cn-beijing.ksyuncs.com
        credentials:
          access_key: ${{KS3_ACCESS_KEY}}
          secret_key: ${{KS3_SECRET_KEY}}
        state_dir: /var/lib/ks3sync
        syncs:
          - name: docs
            source: {src}
            target: ks3://bucket/prefix
            delete: true
            debounce: 2s
{textwrap.indent(textwrap.dedent(extra_sync), " " * 12)}
{textwrap.indent(textwrap.dedent(extra_top), " " * 8)}
        """


def test_issue_shape_loads(tmp_path: Path, src: Path) -> None:
    cfg = load_config(write(tmp_path, issue_shape(src)), environ=ENV)
    assert cfg.endpoint == "https://ks3-cn-beijing.ksyuncs.com"
    assert cfg.credentials is not None
    assert cfg.credentials.access_key == "AKLTEXAMPLE"
    assert cfg.credentials.secret_key == ENV["KS3_SECRET_KEY"]
    assert cfg.state_dir == Path("/var/lib/ks3sync")
    assert cfg.journal_path == Path("/var/lib/ks3sync/journal.db")
    (sync,) = cfg.syncs
    assert (sync.name, sync.source, sync.bucket, sync.prefix) == ("docs", src, "bucket", "prefix/")
    assert sync.delete is True and sync.debounce == 2.0
    assert sync.max_delete == MaxDelete(count=None, percent=50.0)  # the guard is on by default
    assert cfg.metrics.enabled is False  # metrics are off unless asked for
    assert cfg.warnings == ()


def test_every_option(tmp_path: Path, src: Path) -> None:
    key = tmp_path / "enc.key"
    key.write_bytes(b"0123456789abcdef")
    key.chmod(0o600)
    ignore = tmp_path / "ignore.txt"
    ignore.write_text("*.tmp\n")
    extra_sync = f"""\
        max_delete: 10%
        backup_prefix: backup/docs
        excludes: ["*.tmp", ".cache/"]
        exclude_from: [{ignore}]
        encrypt_key_file: {key}
        allow_unencrypted: true
        require_integrity: true
        storage_class: standard_ia
        acl: private
        rescan_interval: 1h30m
        follow_symlinks: false
        delete_excluded: true
        """
    extra_top = """\
        transfer:
          jobs: ${JOBS}
          part_size: 16MiB
          multipart_threshold: 64M
          bwlimit: 10MB/s
        metrics:
          listen: 127.0.0.1:9464
        logging:
          level: debug
          format: json
        """
    env = dict(ENV, JOBS="8")
    cfg = load_config(write(tmp_path, issue_shape(src, extra_sync, extra_top)), environ=env)
    sync = cfg.syncs[0]
    assert sync.max_delete == MaxDelete(count=None, percent=10.0)
    assert sync.backup_prefix == "backup/docs/"
    assert sync.excludes == ("*.tmp", ".cache/")
    assert sync.exclude_from == (ignore,)
    assert sync.delete and sync.delete_excluded
    assert sync.encrypt_key_file == key
    assert sync.allow_unencrypted is True and sync.require_integrity is True
    assert sync.storage_class == "STANDARD_IA" and sync.acl == "private"
    assert sync.rescan_interval == 5400.0
    assert cfg.transfer.jobs == 8
    assert cfg.transfer.part_size == 16 * 1024**2
    assert cfg.transfer.multipart_threshold == 64 * 1024**2
    assert cfg.transfer.bwlimit == 10_000_000
    assert cfg.metrics.host_port == ("127.0.0.1", 9464)
    assert cfg.logging.format == "json"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    body = """\
        endpoint: http://127.0.0.1:9000
        state_dir: state
        syncs: [{name: a, source: data, target: "ks3://bkt"}]
        """
    cfg = load_config(write(tmp_path, body), environ={})
    assert cfg.state_dir == tmp_path.resolve() / "state"
    assert cfg.syncs[0].source == tmp_path.resolve() / "data"
    assert cfg.syncs[0].prefix == ""
    assert cfg.credentials is None


def one_line_error(path: Path, environ: dict[str, str] | None = None, **kw: bool) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV if environ is None else environ, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


@pytest.mark.parametrize(
    ("extra_sync", "extra_top", "key", "words"),
    [
        ("colour: blue", "", "syncs[0].colour", "unknown key"),
        ("delte: true", "", "syncs[0].delte", "did you mean 'delete'"),
        ("max_delete: lots", "", "syncs[0].max_delete", "percentage like '10%'"),
        ("max_delete: 150%", "", "syncs[0].max_delete", "percentage"),
        ("max_delete: '²'", "", "syncs[0].max_delete", "percentage"),
        ("storage_class: GOLD", "", "syncs[0].storage_class", "STANDARD_IA"),
        ("acl: public-read-write", "", "syncs[0].acl", "private"),
        ("rescan_interval: 0s", "", "syncs[0].rescan_interval", "at least 1s"),
        ("encrypt_key_file: /nonexistent/key", "", "syncs[0].encrypt_key_file", "does not exist"),
        (
            "allow_unencrypted: true",
            "",
            "syncs[0].allow_unencrypted",
            "only means something with encrypt_key_file",
        ),
        (
            "require_integrity: true",
            "",
            "syncs[0].require_integrity",
            "only means something with encrypt_key_file",
        ),
        ("require_integrity: maybe", "", "syncs[0].require_integrity", "expected true or false"),
        ("backup_prefix: prefix/old", "", "syncs[0].backup_prefix", "inside the sync's own target"),
        ("excludes: {a: 1}", "", "syncs[0].excludes", "expected a list of strings"),
        ("", "transfer: {jobs: many}", "transfer.jobs", "expected an integer"),
        ("", "transfer: {jobs: 0}", "transfer.jobs", "at least 1"),
        ("", "transfer: {part_size: 1KiB}", "transfer.part_size", "between 100KiB and 5GiB"),
        ("", "transfer: {part_size: huge}", "transfer.part_size", "expected a size like '8MiB'"),
        ("", "transfer: {part_size: 6GiB}", "transfer.part_size", "between 100KiB and 5GiB"),
        ("", "transfer: {multipart_threshold: 6GiB}", "transfer.multipart_threshold", "largest single PUT"),
        (
            "",
            "transfer: {multipart_threshold: 1KiB}",
            "transfer.multipart_threshold",
            "between 100KiB and 5GiB",
        ),
        ("", "transfer: {bwlimit: fast}", "transfer.bwlimit", "expected a rate like '10MB/s'"),
        ("", "metrics: {listen: everywhere}", "metrics.listen", "host:port"),
        ("", "logging: {format: xml}", "logging.format", "text or json"),
        ("", "verbose: true", "verbose", "unknown key"),
    ],
)
def test_each_mistake_names_its_key(
    tmp_path: Path, src: Path, extra_sync: str, extra_top: str, key: str, words: str
) -> None:
    message = one_line_error(write(tmp_path, issue_shape(src, extra_sync, extra_top)))
    assert f": {key}: " in message
    assert words in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "debounce: 2s",
            "debounce: soon",
            "syncs[0].debounce: expected a duration like '2s', '500ms' or '1h', got 'soon'",
        ),
        ("delete: true", "delete: 'yes please'", "syncs[0].delete: expected true or false, got 'yes please'"),
        ("delete: true", "delete: 1", "syncs[0].delete: expected true or false, got 1"),
        ("name: docs", "name: [docs]", "syncs[0].name: expected a non-empty string, got a list"),
    ],
)
def test_wrong_types(tmp_path: Path, src: Path, old: str, new: str, expected: str) -> None:
    path = write(tmp_path, issue_shape(src).replace(old, new))
    assert one_line_error(path) == f"{path}: {expected}"


def test_delete_excluded_needs_delete(tmp_path: Path, src: Path) -> None:
    body = issue_shape(src, "delete_excluded: true").replace("delete: true", "delete: false")
    message = one_line_error(write(tmp_path, body))
    assert message.endswith("syncs[0].delete_excluded: needs delete: true in the same sync")
    assert load_config(write(tmp_path, issue_shape(src)), environ=ENV).syncs[0].delete_excluded is False


def test_bad_url(tmp_path: Path, src: Path) -> None:
    body = issue_shape(src).replace("ks3://bucket/prefix", "s3://bucket/prefix")
    message = one_line_error(write(tmp_path, body))
    assert "syncs[0].target: expected a URL like 'ks3://bucket/prefix'" in message
    body = issue_shape(src).replace("ks3://bucket/prefix", "ks3://Bad_Bucket/x")
    assert "syncs[0].target: bucket name" in one_line_error(write(tmp_path, body))


def test_missing_source_folder(tmp_path: Path) -> None:
    path = write(tmp_path, issue_shape(tmp_path / "gone"))
    message = one_line_error(path)
    assert "syncs[0].source: folder" in message and "does not exist" in message
    # The service starts anyway (that sync is reported unavailable); only validation insists.
    assert load_config(path, environ=ENV, check_sources=False).syncs[0].source == tmp_path / "gone"


def test_undefined_variable_names_the_variable_not_its_value(tmp_path: Path, src: Path) -> None:
    message = one_line_error(write(tmp_path, issue_shape(src)), environ={"KS3_ACCESS_KEY": "AK"})
    assert message.endswith("credentials.secret_key: environment variable ${KS3_SECRET_KEY} is not set")


def test_malformed_variable(tmp_path: Path, src: Path) -> None:
    body = issue_shape(src).replace("${KS3_ACCESS_KEY}", "${KS3 ACCESS}")
    assert "credentials.access_key: malformed variable reference" in one_line_error(write(tmp_path, body))


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path, src: Path) -> None:
    body = issue_shape(src).replace("${KS3_SECRET_KEY}", "pa$$word")
    cfg = load_config(write(tmp_path, body), environ=ENV)
    assert cfg.credentials is not None and cfg.credentials.secret_key == "pa$word"


def test_duplicate_sync_names(tmp_path: Path, src: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    body = f"""\
        endpoint: http://127.0.0.1:9000
        syncs:
          - {{name: docs, source: {src}, target: "ks3://bucket/a"}}
          - {{name: docs, source: {other}, target: "ks3://bucket/b"}}
        """
    assert "syncs[1].name: duplicate sync name 'docs'" in one_line_error(write(tmp_path, body))


def test_overlapping_targets_would_delete_each_other(tmp_path: Path, src: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    body = f"""\
        endpoint: http://127.0.0.1:9000
        syncs:
          - {{name: a, source: {src}, target: "ks3://bucket/a"}}
          - {{name: b, source: {other}, target: "ks3://bucket/a/b"}}
        """
    assert "syncs[1].target: ks3://bucket/a/b/ overlaps the target of sync 'a'" in one_line_error(
        write(tmp_path, body)
    )


def test_duplicate_yaml_key(tmp_path: Path, src: Path) -> None:
    body = issue_shape(src).replace("debounce: 2s", "debounce: 2s\n            debounce: 5s")
    message = one_line_error(write(tmp_path, body))
    assert "duplicate key 'debounce'" in message and "line " in message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("", "the file is empty"),
        ("- just\n- a list\n", "(top level): expected a mapping"),
        ("endpoint: [unclosed\n", "line "),
        ("syncs: []\n", "endpoint: missing"),
        ("endpoint: http://127.0.0.1:9000\n", "syncs: missing"),
        ("endpoint: 'not a host!'\nsyncs: []\n", "endpoint: expected a host name"),
        ("endpoint: http://h\nsyncs: [{name: a}]\n", "syncs[0].source: missing"),
        ("endpoint: http://h\ncredentials: {access_key: a}\nsyncs: []\n", "credentials.secret_key: missing"),
        # A list or mapping as a key: one line, not a TypeError traceback.
        ("endpoint: http://h\n? [a, b]\n: c\n", "line 2, column 3: found unhashable key"),
        ("endpoint: http://h\nsyncs: [{{x: 1}: y}]\n", "line 2, column 10: found unhashable key"),
    ],
)
def test_file_level_mistakes(tmp_path: Path, body: str, words: str) -> None:
    assert words in one_line_error(write(tmp_path, body))


def test_missing_file(tmp_path: Path) -> None:
    assert one_line_error(tmp_path / "nope.yaml").endswith("nope.yaml: no such file")


def test_secret_never_echoed_in_errors_or_repr(tmp_path: Path, src: Path) -> None:
    secret = ENV["KS3_SECRET_KEY"]
    body = issue_shape(src).replace("${KS3_SECRET_KEY}", "[" + secret + "]")  # wrong type: a list
    message = one_line_error(write(tmp_path, body))
    assert "credentials.secret_key" in message and secret not in message
    cfg = load_config(write(tmp_path, issue_shape(src)), environ=ENV)
    assert secret not in repr(cfg)
    assert secret not in str(cfg.effective())


def test_world_readable_file_with_literal_secret_warns(tmp_path: Path, src: Path) -> None:
    body = issue_shape(src).replace("${KS3_SECRET_KEY}", "literal-secret")
    cfg = load_config(write(tmp_path, body, mode=0o644), environ=ENV)
    assert len(cfg.warnings) == 1
    assert "credentials.secret_key" in cfg.warnings[0] and "0644" in cfg.warnings[0]
    assert "literal-secret" not in cfg.warnings[0]
    # private file, or a file that only references the environment: no warning
    assert load_config(write(tmp_path, body, mode=0o600), environ=ENV).warnings == ()
    assert load_config(write(tmp_path, issue_shape(src), mode=0o644), environ=ENV).warnings == ()


# -- value parsers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5", 1.5),
        (3, 3.0),
        ("0", 0.0),
        ("250us", 0.00025),
        ("1d", 86400.0),
        ("2 s", 2.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "", "s", "-1s", "2x", "1h foo", True, None, "nan"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like '2s'"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8MiB", 8 << 20),
        ("64M", 64 << 20),
        ("64MB", 64_000_000),
        ("1.5G", 3 << 29),
        ("100k", 102400),
        ("1024", 1024),
        (4096, 4096),
        ("10 KiB", 10240),
        ("7B", 7),
        ("2T", 2 << 40),
    ],
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["big", "", "8XB", "-1M", "0.5", "1.5B", "iB", True, [1]])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


def test_parse_rate() -> None:
    assert parse_rate("10MB/s") == 10_000_000
    assert parse_rate("512KiB/s") == 512 * 1024
    assert parse_rate("10M") == 10 << 20
    assert parse_rate("off") is None and parse_rate(0) is None and parse_rate(None) is None
    with pytest.raises(ValueError, match="expected a rate"):
        parse_rate("fast/s")


def test_parse_max_delete() -> None:
    assert parse_max_delete(100) == MaxDelete(count=100, percent=None)
    assert parse_max_delete("25%") == MaxDelete(count=None, percent=25.0)
    assert parse_max_delete("7") == MaxDelete(count=7, percent=None)
    for bad in (-1, "x%", "101%", True, 1.5):
        with pytest.raises(ValueError):
            parse_max_delete(bad)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("ks3://bucket", "bucket", ""),
        ("ks3://bucket/", "bucket", ""),
        ("ks3://b-1/a/b", "b-1", "a/b/"),
        ("ks3://my-bucket/dir/", "my-bucket", "dir/"),
        ("ks3://abc/文件", "abc", "文件/"),
    ],
)
def test_parse_ks3_url(url: str, bucket: str, prefix: str) -> None:
    parsed = parse_ks3_url(url)
    assert (parsed.bucket, parsed.prefix) == (bucket, prefix)
    assert parse_ks3_url(str(parsed)) == parsed


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket",
        "ks3://",
        "ks3://ab",
        "ks3://-ab",
        "ks3://kssbucket",
        "ks3://b_c/x",
        "ks3://abc/a//b",
        "ks3://abc/../x",
        "ks3://ABC/x",
        42,
    ],
)
def test_parse_ks3_url_rejects(url: object) -> None:
    with pytest.raises(ValueError):
        parse_ks3_url(url)


@given(st.integers(min_value=0, max_value=2**50))
def test_sizes_round_trip_through_their_display(n: int) -> None:
    from ks3sync.config import format_size

    assert parse_size(format_size(n)) == n


@given(st.integers(min_value=0, max_value=10**7))
def test_durations_round_trip_through_their_display(ms: int) -> None:
    from ks3sync.config import format_duration

    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


def test_config_dataclasses_are_frozen(tmp_path: Path, src: Path) -> None:
    import dataclasses

    cfg = load_config(write(tmp_path, issue_shape(src)), environ=ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.syncs[0].delete = False  # type: ignore[misc]
    assert os.fspath(cfg.path).endswith("ks3sync.yaml")
