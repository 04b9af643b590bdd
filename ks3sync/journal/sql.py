"""How the journal's statements are run: SQLAlchemy Core constructs over ``schema.py``'s tables, by
one of two paths.

- ``conn.execute(stmt, params)`` on a SQLAlchemy ``Connection``: SQLAlchemy's own path, its compiled
  cache included. For statements run once per call of a public method (registering a sync, status,
  history, the large streamed reads, whose cost is per row and the same on either path).
- :class:`Prepared`: for statements run per file, per part or per queued change, where SQLAlchemy's
  per-execution work (a cache key, an execution context, a parameter dict per row) would cost several
  times the statement itself (measured in docs/decisions.md, D16). The construct is compiled once per
  process, on first use, by SQLAlchemy's SQLite compiler, and run on the transaction's DBAPI
  connection with a tuple of parameters (``executemany`` for batches). The order of that tuple is
  written next to the statement and checked against the compiled statement's own, so a changed
  construct fails loudly instead of binding values to the wrong columns.

Either way the SQL text comes from the tables, never from a string. Imports: SQLAlchemy, sqlite3.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

# Compiles Prepared statements: the dialect every journal engine uses (pysqlite, qmark parameters).
DIALECT = SQLiteDialect_pysqlite()


class Prepared:
    """A Core statement compiled once, run on a DBAPI connection with positional parameters in
    ``order`` (the names of its bind parameters, as the compiled statement lists them)."""

    __slots__ = ("_order", "_sql", "statement")

    def __init__(self, statement: Executable, *order: str) -> None:
        self.statement = statement
        self._order = order
        self._sql: str | None = None

    @property
    def sql(self) -> str:
        sql = self._sql
        if sql is None:  # two threads may both compile it the first time: same text, no harm
            assert isinstance(self.statement, ClauseElement)
            compiled = self.statement.compile(dialect=DIALECT)
            assert isinstance(compiled, SQLCompiler)
            names = tuple(compiled.positiontup or ())
            if names != self._order:
                raise AssertionError(f"parameters of {compiled} are {names}, not {self._order}")
            self._sql = sql = str(compiled)
        return sql

    def run(self, db: sqlite3.Connection, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return db.execute(self.sql, params)

    def run_many(self, db: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return db.executemany(self.sql, rows)

    def one(self, db: sqlite3.Connection, params: Sequence[Any] = ()) -> Any:
        """The first row, or None."""
        return db.execute(self.sql, params).fetchone()


def dbapi(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy one (inside its transaction, which the engine's
    events began)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw
