"""Structured log lines: one event per line, ``key=value`` pairs or one JSON object.

Call :func:`event` with an event name and fields; :class:`KeyValueFormatter` / :class:`JsonFormatter`
render them. Values are quoted when they contain spaces or quotes. Secrets never get here: callers log
paths, counts and error descriptions (which ks3sync's errors keep free of secrets, invariant 7); as a
last line of defence :func:`configure` registers the configured secret values and any occurrence is
replaced by ``***`` before a line is written.

Keys and paths are hostile text (a key may hold ESC or CR): a text value that holds a character
ks3sync.display escapes is written as a JSON string, with ks3sync.display.json_text, which leaves no
control, bidirectional or separator character raw; the JSON format uses the same function. So no key
can rewrite the terminal that shows the log or forge a log line (docs/decisions.md D12).

``OpLog`` is the executor's progress subscriber for the service: one ``op`` line per operation.
``describe_exc`` is how an unexpected exception appears in a line: its type and first line.

Imports ks3sync.display, and the executor's progress protocol for ``OpLog``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from ks3sync.display import json_text, needs_escape
from ks3sync.transfer.progress import NullProgress

FIELDS = "ks3sync_fields"
_secrets: tuple[str, ...] = ()


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={FIELDS: fields})


def scrub(text: str) -> str:
    """``text`` with every configured secret replaced by ``***`` (also used for what goes in the journal)."""
    for secret in _secrets:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def _value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=') or needs_escape(text):
        return json_text(text)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        fields: dict[str, Any] = getattr(record, FIELDS, {})
        parts = [when, record.levelname.lower(), f"event={_value(record.getMessage())}"]
        if not fields and record.name != "ks3sync.daemon":
            parts.append(f"logger={record.name}")
        parts += [f"{k}={_value(v)}" for k, v in fields.items() if v is not None]
        if record.exc_info:
            parts.append(f"exc={_value(self.formatException(record.exc_info))}")
        return scrub(" ".join(parts))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, FIELDS, {})
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        if not fields:
            data["logger"] = record.name
        data.update({k: v for k, v in fields.items() if v is not None})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return scrub(json_text(data, default=str))


def configure(
    level: str = "info", fmt: str = "text", *, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """Route every ks3sync (and watchdog) log record to ``stream`` (stderr: journald picks it up)."""
    global _secrets
    _secrets = tuple(s for s in secrets if s)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "ks3sync_handler", False):
            root.removeHandler(old)
    handler.ks3sync_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return handler


def describe_exc(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class OpLog(NullProgress):
    """The executor's progress subscriber: one log line per operation (the rest of the protocol: no-ops)."""

    def __init__(self, sync: str) -> None:
        self.sync = sync
        self._log = logging.getLogger("ks3sync.daemon")

    def entry_done(self, path: str, action: str, ok: bool, message: str = "") -> None:
        if ok:
            event(self._log, logging.INFO, "op", sync=self.sync, action=action, path=path)
        else:
            event(
                self._log,
                logging.WARNING,
                "op",
                sync=self.sync,
                action=action,
                path=path,
                ok=False,
                error=message,
            )
