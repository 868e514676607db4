"""Core statements compiled once per dialect and run on the driver's own cursor.

Hand-written because SQLAlchemy's per-execute machinery (execution context, events, result
set-up) costs about three times the statement itself on the request path, which runs some
16 short statements per `next` + `answer` pair (BENCHMARKS.md, "The annotator API under
load"). Values are still converted by each column's SQLAlchemy type (its bind and result
processors for the dialect), so what is written and read here is exactly what the ORM
writes and reads. The statements run inside the caller's transaction (`Database.write()`).
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Executable, Select
from sqlalchemy.types import JSON


@dataclass
class _Compiled:
    """One statement as one dialect runs it."""

    dialect: Dialect
    sql: str
    positional: bool
    names: tuple[str, ...]  # the parameters in order (positional) or once each (named)
    fixed: dict[str, Any]  # values the statement itself carries (literals, LIMITs)
    defaults: dict[str, Callable[[], Any]]  # Python-side column defaults the statement leaves out
    to_db: dict[str, Callable[[Any], Any]]
    columns: tuple[Any, ...]  # the selected (or returned) columns
    row: Any  # a namedtuple class named by them, or None
    shared_json: bool = False  # JSON values decoded once per text and shared (`Prepared`)
    from_db: tuple[Callable[[Any], Any] | None, ...] | None = None  # set at the first result

    def convert(self, cursor: Any, raw: Sequence[Any]) -> Any:
        """A row of driver values as the columns' types read them."""
        if self.from_db is None:  # some drivers' processors depend on the type code they report
            processors = []
            for column, described in zip(self.columns, cursor.description, strict=True):
                process = column.type.dialect_impl(self.dialect).result_processor(self.dialect, described[1])
                if process is not None and self.shared_json and isinstance(column.type, JSON):
                    process = _decoded_once(process)
                processors.append(process)
            self.from_db = tuple(processors)
        return self.row(*(v if f is None else f(v) for f, v in zip(self.from_db, raw, strict=True)))


# Texts a shared-JSON column remembers at most (the least recently read go): an annotator's confusion
# matrix is read with each clip they answered, and decoding it was a tenth of the server's work.
JSON_MEMO = 4096


def _decoded_once(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`process`, remembering what it made of the last JSON_MEMO texts (drivers that decode JSON
    themselves hand over objects, which pass through)."""
    cached = functools.lru_cache(maxsize=JSON_MEMO)(process)

    def read(value: Any) -> Any:
        return cached(value) if isinstance(value, str | bytes) else process(value)

    return read


def _compile(stmt: Any, dialect: Dialect, shared_json: bool = False) -> _Compiled:
    compiled = stmt.compile(dialect=dialect)
    binds = compiled.binds
    names = tuple(compiled.positiontup) if compiled.positional else tuple(binds)
    fixed = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    defaults = {}
    for column, default in [(c, c.default) for c in compiled.insert_prefetch] + [
        (c, c.onupdate) for c in compiled.update_prefetch
    ]:
        if default.is_scalar:
            fixed[column.key] = default.arg
        else:  # SQLAlchemy wraps the callable to take an execution context, which ours ignore
            defaults[column.key] = lambda arg=default.arg: arg(None)
    to_db = {}
    for name, bind in binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            to_db[name] = process
    columns = tuple(stmt.selected_columns if isinstance(stmt, Select) else stmt.exported_columns)
    row = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None  # type: ignore[misc]
    sql, positional = compiled.string, compiled.positional
    return _Compiled(dialect, sql, positional, names, fixed, defaults, to_db, columns, row, shared_json)


class Prepared:
    """A Core statement with bind parameters, compiled on first use for each dialect (or ahead,
    by `compile_all`)."""

    def __init__(self, stmt: Executable, dialect: str | None = None, shared_json: bool = False) -> None:
        """`dialect`: the one dialect the statement is written for (e.g. a SQLite upsert), if any.
        `shared_json`: each JSON text is decoded once and the same object handed to every row
        that holds it (for values the caller only reads: it must not change them)."""
        self.stmt = stmt
        self.dialect = dialect
        self.shared_json = shared_json
        self._compiled: dict[str, _Compiled] = {}
        _ALL.append(self)

    def compile_for(self, dialect: Dialect) -> None:
        """Compile for `dialect` now, if not done yet."""
        if dialect.name not in self._compiled:
            self._compiled[dialect.name] = _compile(self.stmt, dialect, self.shared_json)

    def _for(self, conn: Connection) -> _Compiled:
        dialect = conn.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _compile(self.stmt, dialect, self.shared_json)
        return compiled

    def _cursor(self, conn: Connection, params: dict[str, Any]) -> tuple[Any, _Compiled]:
        c = self._for(conn)
        values = {**c.fixed, **params}
        for name, make in c.defaults.items():
            if name not in params:
                values[name] = make()
        for name, process in c.to_db.items():
            values[name] = process(values[name])
        args: Any = [values[n] for n in c.names] if c.positional else {n: values[n] for n in c.names}
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(c.sql, args)
        return cursor, c

    def run(self, conn: Connection, params: dict[str, Any]) -> int:
        """Execute; the number of rows changed."""
        cursor, _ = self._cursor(conn, params)
        count = int(cursor.rowcount)
        cursor.close()
        return count

    def first(self, conn: Connection, params: dict[str, Any]) -> Any:
        """The first row (attributes named by the columns), or None."""
        cursor, c = self._cursor(conn, params)
        raw = cursor.fetchone()
        row = None if raw is None else c.convert(cursor, raw)
        cursor.close()
        return row

    def scalar(self, conn: Connection, params: dict[str, Any]) -> Any:
        """The first column of the first row, or None."""
        row = self.first(conn, params)
        return None if row is None else row[0]

    def all(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        """Every row."""
        cursor, c = self._cursor(conn, params)
        rows = [c.convert(cursor, raw) for raw in cursor.fetchall()]
        cursor.close()
        return rows


# Every Prepared statement (module-level constants, so the list stays as long as the modules).
_ALL: list[Prepared] = []


def compile_all(dialect: Dialect) -> int:
    """Compile every Prepared statement defined so far for `dialect`; how many there are.

    The server calls it at start-up: compiled on first use, the request path's statements cost
    about 1 ms each on the first requests of a campaign, when every annotator's first `next`
    and `answer` queue together (issue 17's first second)."""
    mine = [prepared for prepared in _ALL if prepared.dialect in (None, dialect.name)]
    for prepared in mine:
        prepared.compile_for(dialect)
    return len(mine)
