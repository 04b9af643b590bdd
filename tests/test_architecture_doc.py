"""docs/architecture.md names every module of ks3sync: a package row for each package (its
``__init__.py``) and top-level module, and a row of the module table for every other file.

A new module without a line there fails here, with the list of what is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _named_in_tables() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            named.update(re.findall(r"`([^`]+)`", first_cell))
    return named


def test_every_module_has_a_line_in_the_architecture_doc() -> None:
    named = _named_in_tables()
    package = ROOT / "ks3sync"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if path.name == "__init__.py" and path.parent != package:
            wanted = rel.rsplit("/", 1)[0] + "/"  # the package's row
        else:
            wanted = rel
        if wanted not in named:
            missing.append(wanted)
    assert missing == [], f"docs/architecture.md does not name: {', '.join(missing)}"
