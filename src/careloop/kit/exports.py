"""Downloads of tables as CSV or XLSX that a spreadsheet opens as data, never as formulas.

CSV cells go through ``csvsafe.safe_cell`` (a leading = + - @ tab or CR is quoted away); XLSX
cells are written with the string type set explicitly, so a text such as ``=HYPERLINK(…)`` stays
text and is not stored as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from django.http import HttpResponse

from careloop.kit.csvsafe import safe_cell

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def csv_bytes(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a byte-order mark, so that Excel reads the Chinese text correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(_text(v)) for v in header])
    for row in rows:
        writer.writerow([safe_cell(_text(v)) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(header: Sequence[Any], rows: Iterable[Sequence[Any]], title: str = "Sheet") -> bytes:
    """One sheet; every cell a string (a number stays as written: phones, ID numbers)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31] or "Sheet")

    def cells(values: Sequence[Any]) -> list[Any]:
        row = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=None)
            cell.data_type = "s"
            cell._value = _text(value)
            row.append(cell)
        return row

    sheet.append(cells(header))
    for values in rows:
        sheet.append(cells(values))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def download(
    name: str, fmt: str, header: Sequence[Any], rows: Iterable[Sequence[Any]]
) -> HttpResponse:
    """An attachment `name.csv` or `name.xlsx` of the table."""
    if fmt == "xlsx":
        body, content_type = xlsx_bytes(header, rows), XLSX_TYPE
    else:
        fmt, body, content_type = "csv", csv_bytes(header, rows), "text/csv; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response
