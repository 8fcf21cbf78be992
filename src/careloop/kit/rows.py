"""Many rows as the source of one INSERT, in the form each database takes fastest."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection

# SQLite binds at most 32,766 parameters a statement; PostgreSQL takes one array per column.
SQLITE_ROWS = 400


def row_sources(
    rows: Sequence[Sequence[Any]], pg_types: Sequence[str]
) -> Iterator[tuple[str, list[Any]]]:
    """(SQL row source, parameters) covering `rows`, to follow `INSERT INTO t (cols) `.

    PostgreSQL: `SELECT * FROM unnest(%s::bigint[], …)` with one array per column: a handful of
    parameters however many rows, which the driver binds without scanning a long query text.
    SQLite: `VALUES (…), (…)` in parts small enough for its parameter limit.
    """
    if not rows:
        return
    if connection.vendor == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        casts = ", ".join(f"%s::{t}[]" for t in pg_types)
        yield f"SELECT * FROM unnest({casts})", columns  # noqa: S608 - types from the callers
        return
    width = len(pg_types)
    for start in range(0, len(rows), SQLITE_ROWS):
        part = rows[start : start + SQLITE_ROWS]
        marks = ",".join(["(" + ",".join(["%s"] * width) + ")"] * len(part))
        yield f"VALUES {marks}", [value for row in part for value in row]
