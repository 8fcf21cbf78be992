"""Reading an uploaded patient list: CSV (UTF-8, with or without BOM, or GB 18030) or XLSX.

``open_table`` finds the header row and yields the data rows as lists of text; ``propose``
suggests which patient field each column holds from its header (Chinese or English).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.kit.errors import CareLoopError

HEADER_SCAN = 10  # rows searched for the header (a title line may come first)

# The patient fields a column can hold, in the order the mapping form shows them.
FIELDS: dict[str, Any] = {
    "name": gettext_lazy("Name"),
    "sex": gettext_lazy("Sex"),
    "date_of_birth": gettext_lazy("Date of birth"),
    "national_id": gettext_lazy("Resident ID number"),
    "record_number": gettext_lazy("Record number"),
    "phone": gettext_lazy("Phone"),
    "department": gettext_lazy("Department"),
    "icd10_code": gettext_lazy("Diagnosis (ICD-10 code)"),
    "diagnosis": gettext_lazy("Diagnosis (text)"),
    "doctor": gettext_lazy("Responsible doctor"),
    "address": gettext_lazy("Address"),
}

# Header texts (compared without spaces, punctuation or case) and the field each names.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "患者姓名", "病人姓名", "名字", "name", "patientname", "fullname"),
    "sex": ("性别", "sex", "gender"),
    "date_of_birth": (
        "出生日期", "出生年月", "生日", "出生年月日", "dateofbirth", "birthdate", "dob",
        "birthday", "born",
    ),
    "national_id": (
        "身份证", "身份证号", "身份证号码", "公民身份号码", "证件号码", "idnumber", "nationalid",
        "residentid", "idcard", "idno",
    ),
    "record_number": (
        "病历号", "病案号", "住院号", "门诊号", "recordnumber", "mrn", "medicalrecordnumber",
        "recordno",
    ),
    "phone": (
        "手机", "手机号", "手机号码", "电话", "联系电话", "联系方式", "phone", "mobile",
        "telephone", "phonenumber", "tel",
    ),
    "department": ("科室", "所属科室", "就诊科室", "department", "dept", "ward"),
    "icd10_code": (
        "诊断编码", "icd10", "icd10编码", "icd", "诊断代码", "icd10code", "diagnosiscode",
        "diagnosisicd10",
    ),
    "diagnosis": ("诊断", "诊断名称", "主要诊断", "diagnosis", "diagnosisname"),
    "doctor": (
        "责任医生", "主治医生", "医生", "主管医生", "doctor", "physician", "responsibledoctor",
    ),
    "address": ("地址", "住址", "家庭住址", "联系地址", "address", "homeaddress"),
}  # fmt: skip
_LOOKUP = {word: name for name, words in SYNONYMS.items() for word in words}
_SQUEEZE = re.compile(r"[\s_\-./()（）:：*#]+")


class TableUnreadable(CareLoopError):
    status = 422
    code = "table_unreadable"


def normal_header(text: str) -> str:
    return _SQUEEZE.sub("", str(text or "")).lower()


def field_for(header: str) -> str | None:
    key = normal_header(header)
    if key in _LOOKUP:
        return _LOOKUP[key]
    key = key.replace("-", "")
    return _LOOKUP.get(key)


def propose(headers: list[str]) -> dict[str, str]:
    """{column index: field} for the headers that name a known field (each field once)."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for i, header in enumerate(headers):
        found = field_for(header)
        if found and found not in taken:
            mapping[str(i)] = found
            taken.add(found)
    return mapping


def kind_of(file_name: str, head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if file_name.lower().endswith((".xlsx", ".xlsm")):
        raise TableUnreadable(_("The file is not a valid XLSX workbook."))
    if file_name.lower().endswith(".xls"):
        raise TableUnreadable(
            _(
                "Old .xls workbooks are not read. Save the sheet as .xlsx or CSV and upload it "
                "again."
            )
        )
    return "csv"


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TableUnreadable(
            _("The file is UTF-16 text. Save it as “CSV UTF-8” and upload it again.")
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")  # what Excel saves as CSV on Chinese Windows
    except UnicodeDecodeError:
        raise TableUnreadable(_("The file is neither UTF-8 nor GB 18030 text.")) from None


def cell_text(value: Any) -> str:
    """A spreadsheet value as the text staff typed (dates as ISO, whole numbers without .0)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _csv_rows(stream: IO[bytes]) -> Iterator[list[str]]:
    text = _decode(stream.read())
    for row in csv.reader(io.StringIO(text, newline="")):
        yield [cell.strip() for cell in row]


def _xlsx_rows(stream: IO[bytes]) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(stream, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged workbook
        raise TableUnreadable(_("The file is not a valid XLSX workbook.")) from None
    try:
        sheet = book.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield [cell_text(v) for v in values]
    finally:
        book.close()


@dataclass
class Table:
    headers: list[str]
    header_row: int  # 1-based row number of the header in the sheet
    rows: Iterator[tuple[int, list[str]]]  # (row number in the sheet, cells)


def open_table(stream: IO[bytes], kind: str, header_row: int | None = None) -> Table:
    """The header (found among the first rows, or the given row) and the rows after it."""
    source = _xlsx_rows(stream) if kind == "xlsx" else _csv_rows(stream)
    numbered = enumerate(source, start=1)
    seen: list[tuple[int, list[str]]] = []
    for number, cells in numbered:
        seen.append((number, cells))
        if header_row is not None and number >= header_row:
            break
        if header_row is None:
            known = sum(1 for c in cells if c and field_for(c))
            if known >= 2 or number >= HEADER_SCAN:
                break
    header_at: tuple[int, list[str]] | None = None
    if header_row is not None:
        header_at = next((s for s in seen if s[0] == header_row), None)
    else:
        scored = [(sum(1 for c in cells if c and field_for(c)), -n, n, cells) for n, cells in seen]
        best = max(scored, default=None)
        if best and best[0] >= 1:
            header_at = (best[2], best[3])
        else:
            header_at = next(((n, c) for n, c in seen if any(c)), None)
    if header_at is None:
        raise TableUnreadable(_("The file has no header row."))
    start, headers = header_at
    while headers and not headers[-1]:
        headers = headers[:-1]
    if not headers:
        raise TableUnreadable(_("The file has no header row."))

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, cells in seen:
            if number > start and any(cells):
                yield number, cells
        for number, cells in numbered:
            if any(cells):
                yield number, cells

    return Table(headers=headers, header_row=start, rows=rows())
