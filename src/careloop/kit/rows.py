"""Many rows in one statement, in the form each database takes fastest: the source of an
INSERT, or one UPDATE repeated over many rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.db import connection, models

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


def update_rows(
    objs: Iterable[models.Model],
    fields: Sequence[str],
    *,
    only_where: Mapping[str, Any] | None = None,
) -> int:
    """Write `fields` of each object to its own row, where the row also matches `only_where`
    (column equality, e.g. still pending). Returns how many rows were written.

    The same outcome as ``bulk_update`` without its per-row CASE expressions, whose building
    grows with the batch.
    """
    objs = list(objs)
    if not objs:
        return 0
    return update_many(
        type(objs[0]),
        fields,
        [(obj.pk, [getattr(obj, name) for name in fields]) for obj in objs],
        only_where=only_where,
    )


def update_many(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[tuple[Any, Sequence[Any]]],
    *,
    only_where: Mapping[str, Any] | None = None,
) -> int:
    """Set `fields` to each row's own values: `rows` are (primary key, values in the order of
    `fields`). One prepared UPDATE run once per row, which both drivers send without parsing
    it again; values go through each field's own conversion for the database. Rows that do
    not also match `only_where` (column equality) are left alone. Returns the rows written."""
    if not rows:
        return 0
    meta = model._meta
    targets = [_concrete(meta, name) for name in fields]
    conditions = [(_concrete(meta, name), value) for name, value in (only_where or {}).items()]
    qn = connection.ops.quote_name
    sql = (
        f"UPDATE {qn(meta.db_table)} SET "  # noqa: S608 - names come from the model
        + ", ".join(f"{qn(_column(f))} = %s" for f in targets)
        + f" WHERE {qn(_column(_concrete(meta, 'pk')))} = %s"
        + "".join(f" AND {qn(_column(f))} = %s" for f, _ in conditions)
    )
    fixed = [f.get_db_prep_value(value, connection) for f, value in conditions]
    params: list[list[Any]] = [
        [f.get_db_prep_save(value, connection) for f, value in zip(targets, values, strict=True)]
        + [pk]
        + fixed
        for pk, values in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        return max(cursor.rowcount, 0)


def _concrete(meta: Any, name: str) -> models.Field[Any, Any]:
    """The model's own column called `name` ("pk" for the primary key)."""
    found = meta.pk if name == "pk" else meta.get_field(name)
    if not isinstance(found, models.Field) or not found.concrete or not found.column:
        raise ValueError(f"{meta.label} has no column {name!r}")
    return found


def _column(field: models.Field[Any, Any]) -> str:
    return str(field.column)
