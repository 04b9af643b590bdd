"""Walking the parsed YAML: ``${VAR}`` expansion, and typed getters that know the key path they read,
so that every complaint is one :class:`ConfigError` line naming the file and the key.

:class:`Reader` holds what one load shares (the file name, the environment, the warnings found);
:class:`Section` is one mapping of the file (the top level, ``transfer``, ``syncs[2]``) read key by key.

Must not import: anything of ks3sync outside this package; PyYAML is ``yamlfile``'s business.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from ks3sync.config.schema import ConfigError
from ks3sync.config.values import boolean_from_text
from ks3sync.digits import parse_decimal

T = TypeVar("T")

# "$$" is a literal "$"; ${NAME} a variable; anything else starting "${" is malformed.
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?")


class _Expanded(str):
    """A string that came from a ``${VAR}`` reference: typed fields may convert it (``jobs: ${JOBS}``)."""


def written_in_file(value: object) -> bool:
    """True if a secret is written in the file itself rather than referenced as ``${VAR}``."""
    if not isinstance(value, str):
        return False
    return bool(_VARIABLE.sub("", value).strip())


class Reader:
    """What one load shares: the file name for messages, the environment, and the warnings found."""

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.warnings: list[str] = []

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, key, reason)

    def warn(self, key: str, reason: str) -> None:
        self.warnings.append(f"{self.file}: {key}: {reason}")

    # -- ${VAR} expansion ------------------------------------------------------------------------
    def expand(self, value: object, key: str) -> object:
        if isinstance(value, dict):
            return {name: self.expand(item, join_key(key, str(name))) for name, item in value.items()}
        if isinstance(value, list):
            return [self.expand(item, f"{key}[{index}]") for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return _Expanded(_VARIABLE.sub(lambda match: self._substitute(match, key), value))
        return value

    def _substitute(self, match: re.Match[str], key: str) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if name is None:
            raise self.fail(key, f"malformed variable reference {match.group(0)!r} (use ${{NAME}})")
        if name not in self.environ:
            raise self.fail(key, f"environment variable ${{{name}}} is not set")
        return self.environ[name]

    # -- typed getters -----------------------------------------------------------------------------
    def section(self, value: object, key: str, allowed: tuple[str, ...]) -> Section:
        """``value`` as a mapping whose keys are all in ``allowed``."""
        return Section(self, self.mapping(value, key, allowed), key)

    def mapping(self, value: object, key: str, allowed: tuple[str, ...]) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", f"expected a mapping, got {kind_of(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(join_key(key, str(name)), "keys must be strings")
            if name not in allowed:
                hint = _close_match(name, allowed)
                raise self.fail(
                    join_key(key, name), "unknown key" + (f" (did you mean {hint!r}?)" if hint else "")
                )
        return value

    def string(self, value: object, key: str, *, secret: bool = False) -> str:
        if isinstance(value, str) and value:
            return str(value)  # a plain str, also when it came from ${VAR}
        if secret:
            raise self.fail(key, "expected a non-empty string")
        raise self.fail(key, f"expected a non-empty string, got {kind_of(value)}")

    def boolean(self, value: object, key: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, _Expanded) and (switch := boolean_from_text(value)) is not None:
            return switch
        raise self.fail(key, f"expected true or false, got {kind_of(value)}")

    def integer(self, value: object, key: str, *, minimum: int) -> int:
        if isinstance(value, _Expanded) and (number := parse_decimal(value)) is not None:
            value = number
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {kind_of(value)}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def parsed(self, value: object, key: str, parse: Callable[[object], T]) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def path(self, value: object, key: str, base: Path) -> Path:
        """A path; a relative one is relative to ``base`` (the config file's folder)."""
        text = self.string(value, key)
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (base / path)

    def string_list(self, value: object, key: str) -> tuple[str, ...]:
        """A list of strings; a single string is a list of one."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise self.fail(key, f"expected a list of strings, got {kind_of(value)}")
        return tuple(self.string(item, f"{key}[{index}]") for index, item in enumerate(items))


class Section:
    """One mapping of the file, read by key name with its key path kept for messages."""

    def __init__(self, reader: Reader, values: dict[str, object], key_path: str) -> None:
        self.reader = reader
        self.values = values
        self.key_path = key_path  # "" for the top level

    def key(self, name: str) -> str:
        """The key path of ``name`` in this section, as messages show it (``syncs[0].debounce``)."""
        return join_key(self.key_path, name)

    def fail(self, name: str, reason: str) -> ConfigError:
        return self.reader.fail(self.key(name), reason)

    def require(self, *names: str) -> None:
        for name in names:
            if name not in self.values:
                raise self.fail(name, "missing")

    def optional(self, name: str, read: Callable[[object, str], T], default: T) -> T:
        """``read`` the value of ``name``; absent or empty (``name:`` alone) is ``default``."""
        value = self.values.get(name)
        return default if value is None else read(value, self.key(name))

    def optional_boolean(self, name: str, default: bool) -> bool:
        return self.optional(name, self.reader.boolean, default)

    def optional_string(self, name: str) -> str | None:
        return self.optional(name, self.reader.string, None)

    def optional_parsed(self, name: str, parse: Callable[[object], T], default: T) -> T:
        """:meth:`optional` with a value parser (``parse_duration``...)."""
        return self.optional(name, lambda value, key: self.reader.parsed(value, key, parse), default)

    def parsed(self, name: str, parse: Callable[[object], T]) -> T:
        return self.reader.parsed(self.values.get(name), self.key(name), parse)

    def parsed_if_present(self, name: str, parse: Callable[[object], T], default: T) -> T:
        """``parse`` the value of ``name`` if the key is written at all: an empty value (``name:`` alone)
        is parsed too, and most parsers refuse it."""
        return self.parsed(name, parse) if name in self.values else default

    def string(self, name: str, *, secret: bool = False) -> str:
        return self.reader.string(self.values.get(name), self.key(name), secret=secret)

    def path(self, name: str, base: Path) -> Path:
        return self.reader.path(self.values.get(name), self.key(name), base)


def join_key(key: str, child: str) -> str:
    return f"{key}.{child}" if key else child


def kind_of(value: object) -> str:
    """What a wrong value is, for a message: short scalars as written, containers by kind."""
    if value is None:
        return "nothing"
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 60):
        return repr(str(value) if isinstance(value, _Expanded) else value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _close_match(word: str, options: tuple[str, ...]) -> str | None:
    import difflib  # only for a misspelt key

    close = difflib.get_close_matches(word.replace("-", "_"), options, n=1, cutoff=0.7)
    return close[0] if close else None
