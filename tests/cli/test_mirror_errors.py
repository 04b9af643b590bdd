"""`ks3sync mirror` error mapping at the CLI boundary: errors of other packages (the journal, key files)
become one line and exit 2 by class, not by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ks3sync.cli.common import EXIT_USAGE, exit_code_for
from ks3sync.cli.main import cli


def test_a_state_db_that_is_not_a_journal_is_one_line_and_exit_2(
    local_server: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    state = tmp_path / "state.db"
    state.write_bytes(b"this is not an SQLite database, and it must survive the attempt" * 20)
    before = state.read_bytes()
    env = {"KS3_ACCESS_KEY": local_server.access_key, "KS3_SECRET_KEY": local_server.secret_key}
    result = CliRunner().invoke(
        cli,
        [
            "mirror",
            "--endpoint",
            local_server.endpoint,
            "--state-db",
            str(state),
            str(src),
            f"ks3://{bucket}/",
        ],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_USAGE
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ks3sync: error: ") and str(state) in lines[0]
    assert "Traceback" not in result.output
    assert state.read_bytes() == before  # nothing lost


def test_journal_unavailable_inside_a_run_exits_1() -> None:
    from ks3sync.errors import JournalUnavailable

    assert exit_code_for(JournalUnavailable("the journal could not record progress (synced): disk full")) == 1
