"""The import-linter ``layers`` contract places every top-level module and package of ks3sync.

import-linter only checks the modules a layer names: a new top-level module left out of the contract
could import anything. This test fails until the new module is given its layer in pyproject.toml.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layers_contract() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layered = [c for c in contracts if c["type"] == "layers" and c.get("containers") == ["ks3sync"]]
    assert len(layered) == 1, "one layers contract over the ks3sync package"
    return layered[0]


def _top_level_modules() -> set[str]:
    package = ROOT / "ks3sync"
    names = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return names


def test_every_top_level_module_has_a_layer() -> None:
    layers = _layers_contract()["layers"]
    assert isinstance(layers, list)
    placed = [name.strip() for layer in layers for name in layer.replace(":", "|").split("|")]
    assert len(placed) == len(set(placed)), "a module placed twice"
    assert set(placed) == _top_level_modules()
