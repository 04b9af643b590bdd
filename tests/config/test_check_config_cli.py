"""`ks3sync check-config`: prints the effective config with secrets masked; errors are one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from click.testing import CliRunner

from ks3sync.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "ks3sync.example.yaml"


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_prints_effective_config_with_secret_masked(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    cfg = tmp_path / "ks3sync.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        endpoint: http://127.0.0.1:9000
        credentials:
          access_key: ${{AK}}
          secret_key: ${{SK}}
        state_dir: {tmp_path}/state
        syncs:
          - name: docs
            source: {tmp_path}/docs
            target: ks3://bucket/prefix
            delete: true
            debounce: 2s
        """)
    )
    code, out, err = run(["check-config", "--config", str(cfg)], env={"AK": "AKID", "SK": "TOPSECRET"})
    assert code == 0, err
    assert "TOPSECRET" not in out + err
    effective = yaml.safe_load(out)
    assert effective["credentials"] == {"access_key": "AKID", "secret_key": "********"}
    sync = effective["syncs"][0]
    assert sync["target"] == "ks3://bucket/prefix/" and sync["debounce"] == "2s" and sync["delete"] is True
    assert sync["max_delete"] == "50%"  # defaults are shown
    assert effective["transfer"]["part_size"] == "8MiB"


def test_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    cfg = tmp_path / "ks3sync.yaml"
    cfg.write_text(
        f"endpoint: http://h\nsyncs:\n  - {{name: a, source: {tmp_path}/docs, target: 'ks3://bkt', debounce: soon}}\n"
    )
    code, out, err = run(["check-config", "--config", str(cfg)])
    assert code == 2
    assert out == ""
    assert (
        err
        == f"ks3sync: error: {cfg}: syncs[0].debounce: expected a duration like '2s', '500ms' or '1h', got 'soon'\n"
    )


def test_missing_file_exit_2(tmp_path: Path) -> None:
    code, _, err = run(["check-config", "--config", str(tmp_path / "none.yaml")])
    assert code == 2 and err.count("\n") == 1 and "none.yaml: no such file" in err


def test_missing_option_is_a_usage_error() -> None:
    code, _, err = run(["check-config"])
    assert code == 2 and "--config" in err


def test_warning_for_world_readable_secret_goes_to_stderr(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"endpoint: http://h\ncredentials: {{access_key: a, secret_key: plain}}\n"
        f"syncs: [{{name: a, source: {tmp_path}/d, target: 'ks3://bkt'}}]\n"
    )
    cfg.chmod(0o644)
    code, out, err = run(["check-config", "--config", str(cfg)])
    assert code == 0
    assert "warning:" in err and "readable by group/others" in err and "plain" not in err


def test_example_config_is_valid_apart_from_its_example_folder(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("/srv/docs", str(tmp_path))
    cfg = tmp_path / "example.yaml"
    cfg.write_text(text)
    env = {"KS3_ACCESS_KEY": "AK", "KS3_SECRET_KEY": "SK"}
    code, out, err = run(["check-config", "--config", str(cfg)], env=env)
    assert code == 0, err
    assert yaml.safe_load(out)["syncs"][0]["name"] == "docs"
    # and as shipped, the only complaint is the folder that does not exist on this machine
    code, _, err = run(["check-config", "--config", str(EXAMPLE)], env=env)
    assert code == 2 and "syncs[0].source: folder '/srv/docs' does not exist" in err


def test_real_subprocess_exit_status(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("endpoint: http://h\nsyncs: []\nextra: 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ks3sync", "check-config", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ks3sync: error: {cfg}: extra: unknown key"


def test_bad_encryption_key_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    key = tmp_path / "short.key"
    key.write_bytes(b"too short")
    key.chmod(0o600)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"endpoint: http://h\nstate_dir: {tmp_path}/state\nsyncs: [{{name: a, source: {tmp_path}/d, "
        f"target: 'ks3://bkt', encrypt_key_file: {key}}}]\n"
    )
    for command in ("check-config", "run"):
        code, _, err = run(
            [command, "--config", str(cfg)], env={"KS3_ACCESS_KEY": "a", "KS3_SECRET_KEY": "b"}
        )
        assert code == 2, (command, err)
        assert err.count("\n") == 1 and "encrypt_key_file" in err and str(key) in err
        assert "too short" not in err  # the key's bytes are never shown
        assert not (tmp_path / "state").exists()  # nothing created before the config was known good
    good = tmp_path / "good.key"
    good.write_bytes(b"0123456789abcdef")
    good.chmod(0o600)
    cfg.write_text(cfg.read_text().replace(str(key), str(good)))
    code, out, err = run(["check-config", "--config", str(cfg)])
    assert code == 0, err
    assert "0123456789abcdef" not in out + err


def test_systemd_drop_in_lists_state_dir_and_watched_folders_and_systemd_accepts_it(tmp_path: Path) -> None:
    import shutil

    odd = tmp_path / 'odd "100%" name'
    for folder in (tmp_path / "docs", odd):
        folder.mkdir()
    cfg = tmp_path / "ks3sync.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        endpoint: http://127.0.0.1:9000
        credentials: {{access_key: AK, secret_key: TOPSECRET}}
        state_dir: {tmp_path}/state
        syncs:
          - {{name: docs, source: {tmp_path}/docs, target: ks3://bucket/docs}}
          - name: odd
            source: '{odd}'
            target: ks3://bucket/odd
        """)
    )
    code, out, err = run(["check-config", "--config", str(cfg), "--systemd-drop-in"])
    assert code == 0, err
    assert "TOPSECRET" not in out
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert lines == [
        "[Service]",
        f'ReadWritePaths="-{tmp_path}/state"',
        f'ReadWritePaths="-{tmp_path}/docs"',
        f'ReadWritePaths="-{tmp_path}/odd \\"100%%\\" name"',
    ]
    if shutil.which("systemd-analyze") is None:
        return
    # systemd itself reads the drop-in beside the shipped template: no unknown key, no bad path.
    units = tmp_path / "units"
    (units / "ks3sync@docs.service.d").mkdir(parents=True)
    template = (Path(__file__).resolve().parents[2] / "systemd" / "ks3sync@.service").read_text()
    (units / "ks3sync@.service").write_text(
        template.replace("/usr/local/bin/ks3sync", str(Path(sys.executable).with_name("ks3sync")))
    )
    (units / "ks3sync@docs.service.d" / "ks3sync-paths.conf").write_text(out)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "ks3sync@docs.service"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=units,
        env={"SYSTEMD_UNIT_PATH": f"{units}:", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "ReadWritePaths" not in result.stderr and "Unknown key" not in result.stderr, result.stderr


def test_part_sizes_outside_ks3_limits_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    cfg = tmp_path / "c.yaml"
    for transfer, expected in [
        (
            "part_size: 50KiB",
            "transfer.part_size: must be between 100KiB and 5GiB (KS3's part size limits), got 50KiB",
        ),
        (
            "part_size: 6GiB",
            "transfer.part_size: must be between 100KiB and 5GiB (KS3's part size limits), got 6GiB",
        ),
        (
            "multipart_threshold: 6GiB",
            "transfer.multipart_threshold: must be between 100KiB and 5GiB (the "
            "largest single PUT KS3 takes), got 6GiB",
        ),
    ]:
        cfg.write_text(
            f"endpoint: http://h\ntransfer: {{{transfer}}}\n"
            f"syncs: [{{name: a, source: {tmp_path}/d, target: 'ks3://bkt'}}]\n"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "ks3sync", "check-config", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == f"ks3sync: error: {cfg}: {expected}\n"
