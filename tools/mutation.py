"""Mutation testing of the modules where a wrong line loses data (opt-in; minutes to hours, never in CI).

    python tools/mutation.py                  # list the targets
    python tools/mutation.py executor         # score one target: mutate its code, run its tests
    python tools/mutation.py executor --report  # print the last score and every survivor's diff
    python tools/mutation.py executor --retest  # test the last run's survivors again (after new tests)

Each target is one module (or the functions of one that decide something) and the test files that cover
it in-process. mutmut 3 (docs/decisions.md D13) reads its settings from ``pyproject.toml`` in the
directory it runs in, so every target gets its own work directory, ``build/mutation/<target>/``, with a
generated ``pyproject.toml`` whose ``[tool.mutmut]`` section names only that target's file and tests;
the cached results there make a second run re-test only mutants of functions that changed. The run is
niced (``nice -n 19``) and uses ``--jobs`` worker processes (default 1: the machine is often shared).

Scores and the explained survivors are kept in docs/mutation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "mutation"


@dataclass(frozen=True)
class Target:
    files: tuple[str, ...]  # source files mutmut mutates (repository-relative)
    tests: tuple[str, ...]  # the test files/folders that cover them in-process
    functions: tuple[str, ...] = ()  # mutant-name globs; empty: every function of ``files``


TARGETS: dict[str, Target] = {
    "plan": Target(
        ("ks3sync/plan/*",),
        ("tests/plan", "tests/mirror/test_engine_memory.py"),
    ),
    "decide": Target(
        ("ks3sync/daemon/decide.py",),
        (
            "tests/daemon/test_decide.py",
            "tests/daemon/test_decide_table.py",
            "tests/daemon/test_worker.py",
            "tests/daemon/test_worker_safety.py",
        ),
    ),
    # The per-change delete selection of the service: which deletes a batch may run.
    "worker-deletes": Target(
        ("ks3sync/daemon/batch.py",),
        (
            "tests/daemon/test_worker_safety.py",
            *(
                f"tests/daemon/test_worker.py::test_{name}"
                for name in (
                    "rename_is_a_server_side_copy_then_delete",
                    "delete_and_delete_off",
                    "delete_off_keeps_the_object",
                    "failures_back_off_then_park_without_blocking_others",
                    "max_delete_holds_deletes_beyond_the_budget",
                    "an_emptied_source_never_deletes",
                    "a_missing_source_pauses_and_resumes",
                )
            ),
        ),
        (
            "ks3sync.daemon.batch.xǁBatchRunnerǁ_execute__mutmut_*",
            "ks3sync.daemon.batch.xǁBatchRunnerǁ_transfer_outcome__mutmut_*",
            "ks3sync.daemon.batch.xǁBatchRunnerǁ_run_deletes__mutmut_*",
            "ks3sync.daemon.batch.xǁBatchRunnerǁ_guard_deletes__mutmut_*",
            "ks3sync.daemon.batch.xǁBatchOutcomeǁsettled__mutmut_*",
            "ks3sync.daemon.batch.x__budgeted__mutmut_*",
        ),
    ),
    "executor": Target(
        ("ks3sync/transfer/executor.py",),
        (
            "tests/transfer/test_executor_memory.py",
            "tests/transfer/test_safety_faults.py",
            "tests/mirror/test_engine_memory.py",
            "tests/mirror/test_stop.py",
        ),
    ),
    "upload": Target(
        ("ks3sync/transfer/upload.py",),
        (
            "tests/transfer/test_executor_memory.py",
            "tests/transfer/test_safety_faults.py",
            "tests/transfer/test_part_pool.py",
            "tests/transfer/test_memory_body.py",
            "tests/mirror/test_engine_memory.py",
            "tests/crypto/test_interop.py",
            "tests/crypto/test_sealed_parts.py",
        ),
    ),
    "download": Target(
        ("ks3sync/transfer/download.py",),
        (
            "tests/transfer/test_download_and_crypto.py",
            "tests/transfer/test_executor_memory.py",
            "tests/transfer/test_durable.py",
            "tests/transfer/test_restore_safety.py",
            "tests/transfer/test_safety_faults.py",
            "tests/mirror/test_engine_memory.py",
        ),
    ),
    # The journal's record paths: what is written when KS3 confirmed a file, a part, a delete.
    "journal-records": Target(
        ("ks3sync/journal/checkpoint.py",),
        ("tests/journal", "tests/daemon/test_worker.py", "tests/daemon/test_worker_safety.py"),
    ),
}

# Files the selected tests read from the repository besides the package and tests/.
ALSO_COPY = ("README.md", "config", "systemd", "docs")
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "type check",
    None: "not checked",
}


def _pyproject(target: Target) -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    settings = {
        "source_paths": ["ks3sync"],
        "only_mutate": list(target.files),
        "pytest_add_cli_args_test_selection": list(target.tests),
        # A mutant that makes a test wait forever uses no CPU, so mutmut's CPU limit never fires.
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "--timeout=60"],
        "also_copy": list(ALSO_COPY),
        "use_git_change_detection": False,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return text + "\n".join(lines) + "\n"


def _prepare(name: str, target: Target) -> Path:
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    for item in ("ks3sync", "tests", *ALSO_COPY):
        link = work / item
        if not link.exists():
            link.symlink_to(REPO / item)
    (work / "pyproject.toml").write_text(_pyproject(target), encoding="utf-8")
    mutated = work / "mutants"
    # mutmut copies tests/ once; refresh it so new or edited tests are the ones run.
    if (mutated / "tests").exists():
        shutil.rmtree(mutated / "tests")
    return work


def _results(work: Path) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for meta in (work / "mutants" / "ks3sync").rglob("*.meta"):
        out.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return out


def _selected(target: Target, results: dict[str, int | None]) -> dict[str, int | None]:
    if not target.functions:
        return results
    import fnmatch

    return {k: v for k, v in results.items() if any(fnmatch.fnmatch(k, g) for g in target.functions)}


def _diff(work: Path, mutant: str) -> tuple[str, str]:
    """(the original line, the mutated line) of a mutant, from ``mutmut show``."""
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", mutant],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    removed = [line[1:].strip() for line in shown.splitlines() if re.match(r"^-(?!-)", line)]
    added = [line[1:].strip() for line in shown.splitlines() if re.match(r"^\+(?!\+)", line)]
    return " / ".join(removed), " / ".join(added)


def _order(mutant: str) -> tuple[str, int]:
    function, _, number = mutant.rpartition("__mutmut_")
    return function, int(number)


def report(name: str, target: Target) -> int:
    """The score, then the mutants not killed grouped by function and original line (the mutant numbers
    and what each changed), the form docs/mutation.md explains them in."""
    work = WORK / name
    results = _selected(target, _results(work))
    if not results:
        print(f"{name}: no results yet (run it first)")
        return 1
    counts: dict[str, int] = {}
    for code in results.values():
        status = STATUS.get(code, "suspicious")
        counts[status] = counts.get(status, 0) + 1
    print(f"{name}: {len(results)} mutants: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    groups: dict[tuple[str, str], list[str]] = {}
    for mutant in sorted(results, key=_order):
        status = STATUS.get(results[mutant], "suspicious")
        if status in ("killed", "timeout"):
            continue
        function, number = _order(mutant)
        original, mutated = _diff(work, mutant)
        note = "" if status == "survived" else f" ({status})"
        groups.setdefault((function, original), []).append(f"{number}{note}: {mutated}")
    for (function, original), mutants in groups.items():
        print(f"- {function.rpartition('.')[2]}: `{original}`")
        for item in mutants:
            print(f"    {item}")
    return 0


def _forget_survivors(work: Path, target: Target) -> int:
    """mutmut keeps a verdict until the mutated function changes; new tests need the survivors re-tested."""
    import fnmatch

    forgotten = 0
    for meta in (work / "mutants" / "ks3sync").rglob("*.meta"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        for key, code in data["exit_code_by_key"].items():
            selected = not target.functions or any(fnmatch.fnmatch(key, g) for g in target.functions)
            if selected and code is not None and STATUS.get(code) != "killed":
                data["exit_code_by_key"][key] = None
                forgotten += 1
        meta.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return forgotten


def run(name: str, target: Target, jobs: int, *, retest: bool = False) -> int:
    work = _prepare(name, target)
    if retest:
        print(f"re-testing {_forget_survivors(work, target)} mutants that were not killed")
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    command = ["nice", "-n", "19", mutmut, "run", "--max-children", str(jobs), *target.functions]
    print("$ (cd", work, "&&", " ".join(command) + ")", flush=True)
    env = dict(os.environ)
    env.pop("KS3SYNC_CONFIG", None)
    code = subprocess.run(command, cwd=work, env=env, check=False).returncode
    report(name, target)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--report", action="store_true", help="only print the last run's score and survivors")
    parser.add_argument("--retest", action="store_true", help="test the last run's survivors again")
    args = parser.parse_args()
    if args.target is None:
        for name, target in TARGETS.items():
            print(f"{name:16} {' '.join(target.files)}  <-  {' '.join(target.tests)}")
        return 0
    target = TARGETS[args.target]
    if args.report:
        return report(args.target, target)
    return run(args.target, target, args.jobs, retest=args.retest)


if __name__ == "__main__":
    sys.exit(main())
