"""Reading a config file into plain YAML data: UTF-8 text, then PyYAML's safe loader made stricter.

A duplicate key is an error (PyYAML would keep the last one silently: a typo deserves a message), and
an alias is refused before anything is expanded (an alias "bomb" is a few hundred bytes that grow
exponentially, issue 15). Every failure is one :class:`ConfigError` line; a YAML error names its line
and column.

PyYAML is imported on first use: a ``mirror`` without ``--config`` (start-up time is most of a no-change
run) must not pay for its imports (D20).

Must not import: anything of ks3sync outside this package.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ks3sync.config.schema import ConfigError

if TYPE_CHECKING:
    import yaml


class YamlDocument(NamedTuple):  # not a dataclass: cheaper to define, on load_config's path (D20)
    data: object  # what the YAML holds: never None (an empty file is an error)
    mode: int  # the file's st_mode, for the warning about a secret in a file others can read


class AliasRefused(Exception):
    """A YAML alias in a config file (``line`` is 1-based)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def read_yaml_file(path: Path, file: str) -> YamlDocument:
    """The YAML data of ``path``; ``file`` is how messages name it."""
    text, mode = _read_text(path, file)
    import yaml

    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except AliasRefused as exc:
        raise ConfigError(f"{file}:{exc.line}", "", exc.reason) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(file, "", f"{where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, "", f"invalid YAML: {exc}") from None
    if data is None:
        raise ConfigError(file, "", "the file is empty")
    return YamlDocument(data=data, mode=mode)


def _read_text(path: Path, file: str) -> tuple[str, int]:
    """The file's text and its ``st_mode``."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(file, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(file, "", "is a directory, expected a YAML file") from None
    except PermissionError:
        raise ConfigError(file, "", "permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(file, "", exc.strerror or str(exc)) from None
    return text, mode


@functools.cache
def _unique_key_loader() -> type[yaml.SafeLoader]:
    """A SafeLoader that refuses duplicate keys and aliases (``AliasRefused``: see ``compose_node``).
    Built on first use, after PyYAML is imported."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            # Refused while composing, before anything is expanded: an alias "bomb" (nested lists of
            # aliases) is a few hundred bytes of YAML that grows exponentially when the values are
            # walked (1.8 GB and 30+ s, issue 15). An anchor alone expands nothing and is left alone.
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark is not None else 0
                raise AliasRefused(line, f"YAML aliases (*{event.anchor}) are not supported")
            return super().compose_node(parent, index)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
    return UniqueKeyLoader


def _construct_unique_mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[object, object]:
    import yaml

    seen_keys: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            break  # a list or mapping as a key: construct_mapping refuses it, naming the line
        if key in seen_keys:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen_keys.add(key)
    return loader.construct_mapping(node, deep=deep)
