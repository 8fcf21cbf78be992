"""Files of readings, read as streams: CareLoop CSV, device CSV, Apple Health export, NDJSON.

A reader turns a binary stream into ``(line, item)`` pairs for ``services.ingest`` (which does
every check of the values and every write). What a reader cannot turn into an item (a line
that is not text, a wrong number of cells, a spreadsheet formula, a line of bad JSON) it records
as a problem naming the line; the following lines are read as usual. Nothing here holds more than
one chunk of the file in memory: CSV and NDJSON are read line by line (a line is at most
``MAX_LINE`` bytes), the Apple Health export is fed to expat 64 KiB at a time and only the
current record is kept.

The formats are described in docs/observations.md.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import IO, Any
from xml.parsers import expat

from django.utils.translation import gettext as _

from careloop.kit.errors import CareLoopError
from careloop.observations.services import PROBLEM_LIMIT, IngestReport, LineProblem

MAX_LINE = 64 * 1024  # bytes in one line of a CSV or NDJSON file
XML_CHUNK = 64 * 1024
SNIFF_BYTES = 256 * 1024  # what the upload check reads of a file
ZIP_EXPANSION = 60  # an export.zip may unpack to at most this many times its size

FORMATS = ("csv", "device_csv", "apple_health", "ndjson")


class ImportFailed(CareLoopError):
    """The file as a whole cannot be read (its header, its encoding, its XML)."""

    status = 422
    code = "import_failed"


@dataclass
class Reader:
    """Reads one file; `items()` yields ``(line, item)``, problems collect on the side."""

    stream: IO[bytes]
    fixed_patient: bool = False
    lines: int = 0
    rejected: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    error: str = ""  # why reading stopped early (the readings before it are kept)
    on_bytes: Callable[[], None] | None = None  # called every few MiB read (progress)

    def problem(self, line: int, field_name: str, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < PROBLEM_LIMIT:
            self.problems.append(LineProblem(line, field_name, reason))

    def position(self) -> int:
        """How far into the file the reader has got, in bytes."""
        try:
            return int(self.stream.tell())
        except (OSError, ValueError):
            return 0

    def items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            yield from self._items()
        except ImportFailed as exc:
            self.error = str(exc.message)

    def _items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        raise NotImplementedError


def combine(report: IngestReport, reader: Reader) -> dict[str, Any]:
    """The figures of an import: what ingest said plus what the reader could not read."""
    problems = sorted([*report.problems, *reader.problems], key=lambda p: (p.line, p.field))[
        :PROBLEM_LIMIT
    ]
    return {
        "lines": reader.lines,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": report.rejected + reader.rejected,
        "problems": [p.as_dict() for p in problems],
    }


def open_reader(fmt: str, stream: IO[bytes], *, fixed_patient: bool = False) -> Reader:
    """A reader of one of FORMATS over a binary stream (a file, an upload, a zip member)."""
    readers: dict[str, type[Reader]] = {
        "csv": CareLoopCsv,
        "device_csv": DeviceCsv,
        "apple_health": AppleHealth,
        "ndjson": Ndjson,
    }
    if fmt not in readers:
        raise ImportFailed(_("Unknown file format %(format)r.") % {"format": fmt})
    return readers[fmt](stream, fixed_patient=fixed_patient)


# --- lines of text -----------------------------------------------------------------------------


def _encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM); else GB 18030, which is what Excel saves on Chinese Windows.

    Decided by the lines of the sample that are not plain ASCII: in a GB 18030 file hardly any
    of them is also valid UTF-8, so a few broken lines in a UTF-8 file do not tip the choice.
    """
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFailed(
            _("The file is UTF-16 text. Save it as “CSV UTF-8” (or plain CSV) and upload it again.")
        )
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    good = bad = 0
    lines = sample.split(b"\n")
    if len(lines) > 1:
        lines.pop()  # the last line may be cut in the middle of a character
    for line in lines:
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            bad += 1
    return "gb18030" if bad > good else "utf-8"


class _Lines:
    """Physical lines of a text file, decoded one by one; too long or undecodable lines are
    noted (by line number) and replaced by an empty line so the CSV parser can go on."""

    def __init__(self, reader: Reader, encoding: str | None = None) -> None:
        self.reader = reader
        stream = reader.stream
        if encoding is None:
            sample = stream.read(SNIFF_BYTES)
            stream.seek(0)
            encoding = _encoding(sample)
        self.encoding = encoding
        self.bad: dict[int, str] = {}
        self._next_tick = 4 << 20

    def __iter__(self) -> Iterator[str]:
        stream = self.reader.stream
        number = 0
        while True:
            raw = stream.readline(MAX_LINE + 1)
            if not raw:
                return
            number += 1
            self.reader.lines = number
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                while True:  # skip the rest of the line without holding it
                    more = stream.readline(MAX_LINE)
                    if not more or more.endswith(b"\n"):
                        break
                self.bad[number] = _("the line is longer than %(n)d KiB") % {"n": MAX_LINE >> 10}
                yield "\n"
                continue
            if b"\x00" in raw:
                self.bad[number] = _("the line contains a NUL byte")
                yield "\n"
                continue
            try:
                text = raw.decode(self.encoding)
            except UnicodeDecodeError:
                self.bad[number] = _("the line is not %(encoding)s text") % {
                    "encoding": self.encoding.upper()
                }
                yield "\n"
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")
            if self.reader.on_bytes is not None and self.reader.position() >= self._next_tick:
                self._next_tick = self.reader.position() + (4 << 20)
                self.reader.on_bytes()
            yield text


# --- CSV ---------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def _formula(cell: str) -> bool:
    """A cell a spreadsheet would run: =…, @…, or +/- not followed by a number (OWASP)."""
    if cell.startswith(("=", "@", "\t", "\r")):
        return True
    return cell.startswith(("+", "-")) and not _NUMBER.match(cell)


def _decimal(cell: str) -> str:
    """A number written with a decimal comma ("7,2") in the form Python reads ("7.2")."""
    if "," in cell and _NUMBER.match(cell):
        return cell.replace(",", ".")
    return cell


class _CsvReader(Reader):
    """Rows of a CSV file with a header line, as {column: text} with empty cells left out."""

    COLUMNS: tuple[str, ...] = ()
    ALIASES: dict[str, str] = {}
    NUMERIC: frozenset[str] = frozenset()

    def required(self) -> list[tuple[str, ...]]:
        """Groups of columns of which the header must have at least one."""
        raise NotImplementedError

    def item(self, row: dict[str, str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def header(self, cells: list[str]) -> list[str]:
        names = []
        for cell in cells:
            name = cell.strip().lower().replace(" ", "_")
            name = self.ALIASES.get(name, name)
            if not name:
                raise ImportFailed(_("The header line has an empty column name."))
            if name not in self.COLUMNS:
                raise ImportFailed(
                    _("Unknown column “%(name)s” in the header. The columns are: %(columns)s.")
                    % {"name": cell.strip()[:40], "columns": ", ".join(self.COLUMNS)}
                )
            if name in names:
                raise ImportFailed(_("The column “%(name)s” appears twice.") % {"name": name})
            names.append(name)
        for group in self.required():
            if not set(group) & set(names):
                raise ImportFailed(
                    _("The header has no column “%(name)s”.") % {"name": " / ".join(group)}
                )
        return names

    def _items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        lines = _Lines(self)
        source = iter(lines)
        first = next(source, None)
        while first is not None and not first.strip():
            first = next(source, None)
        if first is None:
            raise ImportFailed(_("The file is empty."))
        header_line = self.lines
        if header_line in lines.bad:
            raise ImportFailed(
                _("The header line cannot be read: %(reason)s.")
                % {"reason": lines.bad[header_line]}
            )
        dialect = _delimiter(first)
        names = self.header(next(csv.reader([first], delimiter=dialect), []))
        rows = csv.reader(source, delimiter=dialect)
        done = header_line
        while True:
            try:
                cells = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                line = header_line + rows.line_num
                self.problem(line, "", _csv_reason(exc))
                done = line
                continue
            start, end = done + 1, header_line + rows.line_num
            done = end
            bad = [lines.bad.pop(n) for n in range(start, end + 1) if n in lines.bad]
            if bad:
                self.problem(start, "", bad[0])
                continue
            if not any(c.strip() for c in cells):
                continue  # a blank line
            if len(cells) != len(names):
                extra = cells[len(names) :]
                if len(cells) < len(names) or any(c.strip() for c in extra):
                    reason = _("%(found)d cells, but the header has %(expected)d") % {
                        "found": len(cells),
                        "expected": len(names),
                    }
                    if end > start:
                        reason += " " + _(
                            "(a quoted cell runs on to line %(end)d: is a quote mark missing?)"
                        ) % {"end": end}
                    self.problem(start, "", reason)
                    continue
            row: dict[str, str] = {}
            formula = ""
            for name, cell in zip(names, cells, strict=False):
                text = cell.strip()
                if text.strip("-") == "":
                    text = ""  # "-" or "--": nothing measured
                elif text.startswith("'") and len(text) > 1 and _formula(text[1:]):
                    text = text[1:]  # a cell a spreadsheet export marked as text
                elif _formula(text):
                    formula = name
                    break
                if text:
                    row[name] = _decimal(text) if name in self.NUMERIC else text
            if formula:
                self.problem(start, formula, _("the cell looks like a spreadsheet formula"))
                continue
            for item in self.item(row):
                yield start, item


def _delimiter(header: str) -> str:
    """Comma, or the semicolon or tab some spreadsheets write, whichever the header uses most."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: (counts[d], d == ","))


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if "NUL" in text:
        return _("the line contains a NUL byte")
    if "field larger" in text:
        return _("a cell is too long (is a quote mark missing?)")
    return _("the line is not valid CSV")


class CareLoopCsv(_CsvReader):
    """CareLoop's own CSV: one reading per line, the columns of the ingest item."""

    COLUMNS = (
        "patient",
        "code",
        "value",
        "systolic",
        "diastolic",
        "unit",
        "effective",
        "time_zone",
        "source",
        "device",
        "context",
    )
    NUMERIC = frozenset({"value", "systolic", "diastolic"})

    def required(self) -> list[tuple[str, ...]]:
        groups: list[tuple[str, ...]] = [("code",), ("effective",), ("value", "systolic")]
        if not self.fixed_patient:
            groups.insert(0, ("patient",))
        return groups

    def item(self, row: dict[str, str]) -> list[dict[str, Any]]:
        return [dict(row)]


# Measurement names of the device CSV → CareLoop codes (anything else is read as a CareLoop
# code or a LOINC code).
DEVICE_TYPES = {
    "bp": "bp",
    "blood_pressure": "bp",
    "bloodpressure": "bp",
    "nibp": "bp",
    "glucose": "glucose",
    "blood_glucose": "glucose",
    "bg": "glucose",
    "hr": "heart_rate",
    "pulse": "heart_rate",
    "heart_rate": "heart_rate",
    "weight": "weight",
    "body_weight": "weight",
    "spo2": "spo2",
    "oxygen_saturation": "spo2",
    "temperature": "temperature",
    "body_temperature": "temperature",
    "temp": "temperature",
    "steps": "steps",
    "step_count": "steps",
    "sleep": "sleep",
    "sleep_hours": "sleep",
    "hba1c": "hba1c",
}
_BP_VALUE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")


class DeviceCsv(_CsvReader):
    """The generic device CSV: what a device gateway or a meter's software exports."""

    COLUMNS = (
        "device_id",
        "patient_id",
        "record_number",
        "measured_at",
        "type",
        "value",
        "value2",
        "unit",
        "pulse",
        "context",
        "time_zone",
    )
    ALIASES = {
        "device": "device_id",
        "serial": "device_id",
        "patient": "patient_id",
        "mrn": "record_number",
        "timestamp": "measured_at",
        "time": "measured_at",
        "measurement": "type",
        "diastolic": "value2",
    }
    NUMERIC = frozenset({"value2", "pulse"})

    def required(self) -> list[tuple[str, ...]]:
        groups: list[tuple[str, ...]] = [("device_id",), ("measured_at",), ("type",), ("value",)]
        if not self.fixed_patient:
            groups.insert(0, ("patient_id", "record_number"))
        return groups

    def item(self, row: dict[str, str]) -> list[dict[str, Any]]:
        kind = row.get("type", "").strip()
        code = DEVICE_TYPES.get(kind.lower().replace(" ", "_").replace("-", "_"), kind)
        item: dict[str, Any] = {
            "code": code,
            "effective": _device_time(row.get("measured_at", "")),
            "source": "device",
            "device": row.get("device_id", ""),
        }
        if "record_number" in row:
            item["patient"] = "#" + row["record_number"]
        elif "patient_id" in row:
            item["patient"] = row["patient_id"]
        for name in ("unit", "context", "time_zone"):
            if name in row:
                item[name] = row[name]
        value = row.get("value", "")
        pair = _BP_VALUE.match(value)
        if code in ("bp", "85354-9", "55284-4") and pair:
            item["systolic"], item["diastolic"] = pair.group(1), pair.group(2)
        elif code in ("bp", "85354-9", "55284-4"):
            item["systolic"], item["diastolic"] = _decimal(value), row.get("value2", "")
        else:
            item["value"] = _decimal(value)
        items = [item]
        if "pulse" in row:  # the pulse a blood pressure monitor measured with the pressure
            same = ("patient", "effective", "source", "device", "time_zone")
            pulse = {k: v for k, v in item.items() if k in same}
            items.append({**pulse, "code": "heart_rate", "value": row["pulse"]})
        return items


def _device_time(text: str) -> Any:
    """ISO 8601, "2026-01-06 07:30", "2026/01/06 07:30" or Unix seconds; else as given (the
    ingest check names it)."""
    text = text.strip()
    if text.isdigit() and 9 <= len(text) <= 11:
        return datetime.fromtimestamp(int(text), UTC)
    if re.match(r"^\d{4}/\d{1,2}/\d{1,2}", text):
        day, _sep, rest = text.partition(" ")
        y, m, d = day.split("/")
        text = f"{int(y):04d}-{int(m):02d}-{int(d):02d}" + (f"T{rest}" if rest else "")
    return text


# --- NDJSON ------------------------------------------------------------------------------------


class Ndjson(Reader):
    """One JSON object per line (the ingest item, as the JSON API takes it)."""

    def _items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        lines = _Lines(self, encoding="utf-8")
        for text in lines:
            number = self.lines
            if number in lines.bad:
                self.problem(number, "", lines.bad.pop(number))
                continue
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except ValueError as exc:
                self.problem(
                    number, "", _("not valid JSON (%(error)s)") % {"error": _json_error(exc)}
                )
                continue
            yield number, item


def _json_error(exc: ValueError) -> str:
    return str(getattr(exc, "msg", exc))[:80]


# --- Apple Health export.xml -------------------------------------------------------------------

HK = "HKQuantityTypeIdentifier"
APPLE_QUANTITIES = {
    f"{HK}BloodGlucose": "glucose",
    f"{HK}HeartRate": "heart_rate",
    f"{HK}BodyMass": "weight",
    f"{HK}OxygenSaturation": "spo2",
    f"{HK}BodyTemperature": "temperature",
}
APPLE_SYSTOLIC = f"{HK}BloodPressureSystolic"
APPLE_DIASTOLIC = f"{HK}BloodPressureDiastolic"
APPLE_STEPS = f"{HK}StepCount"
APPLE_SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"
APPLE_ASLEEP = "HKCategoryValueSleepAnalysisAsleep"  # also …AsleepCore, …AsleepDeep, …AsleepREM
APPLE_TYPES = frozenset(
    {*APPLE_QUANTITIES, APPLE_SYSTOLIC, APPLE_DIASTOLIC, APPLE_STEPS, APPLE_SLEEP}
)
APPLE_UNITS = {"count/min": "/min", "degC": "Cel", "degF": "[degF]", "lb": "lb", "kg": "kg",
               "g": "g", "mg/dL": "mg/dL", "%": "%"}  # fmt: skip
APPLE_MEAL_TIME = {"2": "postprandial"}  # HKBloodGlucoseMealTime: 1 preprandial, 2 postprandial
_PENDING_LIMIT = 10_000


def _apple_time(text: str) -> datetime:
    """Apple's "2026-01-06 07:30:00 +0800"."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")


@dataclass
class _Day:
    line: int
    day: date
    zone: tzinfo
    total: float = 0.0


class AppleHealth(Reader):
    """An Apple Health export (export.xml, or the export.zip the iPhone writes), for one patient.

    Parsed with expat directly rather than ElementTree: the handlers see each element's
    attributes as it starts, so nothing builds up, and expat lets us refuse entity declarations
    and external DTDs outright (real exports carry an internal DTD of ELEMENT and ATTLIST
    declarations only, which is allowed).
    """

    def __init__(self, stream: IO[bytes], *, fixed_patient: bool = False) -> None:
        super().__init__(stream, fixed_patient=fixed_patient)
        self._out: list[tuple[int, dict[str, Any]]] = []
        self._record: dict[str, str] | None = None
        self._record_line = 0
        self._meta: dict[str, str] = {}
        self._root = ""
        self._pending: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._paired: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._steps: dict[tuple[str, date], _Day] = {}
        self._sleep: dict[tuple[str, date], _Day] = {}
        self._parser: Any = None
        self._outer: IO[bytes] = stream  # the file itself, when reading a member of a zip
        self._limit = 0  # most bytes a zip member may unpack to

    def position(self) -> int:
        try:
            return int(self._outer.tell())
        except (OSError, ValueError):
            return 0

    # parsing --------------------------------------------------------------------------------

    def _items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        stream = self._open()
        parser = expat.ParserCreate()
        self._parser = parser
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._entity
        parser.UnparsedEntityDeclHandler = self._entity
        parser.ExternalEntityRefHandler = self._external
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        read = 0
        limit = self._limit
        next_tick = 4 << 20
        while True:
            chunk = stream.read(XML_CHUNK)
            read += len(chunk)
            if limit and read > limit:
                raise ImportFailed(_("The export unpacks to more than the allowed size."))
            try:
                parser.Parse(chunk, not chunk)
            except expat.ExpatError as exc:
                self.lines = exc.lineno
                reason = _("The XML is malformed at line %(line)d: %(error)s") % {
                    "line": exc.lineno,
                    "error": expat.errors.messages.get(exc.code, str(exc)),
                }
                self.problem(exc.lineno, "", reason)
                yield from self._drain()
                yield from self._totals()  # the days read so far are kept
                raise ImportFailed(reason) from None
            self.lines = parser.CurrentLineNumber
            yield from self._drain()
            if self.on_bytes is not None and read >= next_tick:
                next_tick = read + (4 << 20)
                self.on_bytes()
            if not chunk:
                break
        if self._root != "HealthData":
            raise ImportFailed(_("This is not an Apple Health export (no <HealthData> element)."))
        for (_source, _start), pending in self._pending.items():
            missing = _("diastolic") if "systolic" in pending else _("systolic")
            self.problem(
                pending["line"], "diastolic" if "systolic" in pending else "systolic",
                _("blood pressure without its %(part)s value") % {"part": missing},
            )  # fmt: skip
        self._pending.clear()
        yield from self._totals()

    def _open(self) -> IO[bytes]:
        head = self.stream.read(4)
        self.stream.seek(0)
        if head != b"PK\x03\x04":
            return self.stream
        archive = zipfile.ZipFile(self.stream)
        names = [n for n in archive.namelist() if n.endswith("export.xml") and "__MACOSX" not in n]
        if not names:
            raise ImportFailed(_("The zip file has no export.xml in it."))
        size = self.stream.seek(0, 2)
        self.stream.seek(0)
        self._limit = max(size, 1 << 20) * ZIP_EXPANSION
        return archive.open(min(names, key=len))

    def _drain(self) -> Iterator[tuple[int, dict[str, Any]]]:
        out, self._out = self._out, []
        yield from out

    def _doctype(self, name: str, system_id: str | None, public_id: str | None, _sub: int) -> None:
        if system_id or public_id:
            raise ImportFailed(_("The XML names an external DTD; such files are refused."))

    def _entity(self, *_args: Any) -> None:
        raise ImportFailed(_("The XML declares entities; such files are refused."))

    def _external(self, *_args: Any) -> int:
        raise ImportFailed(_("The XML refers to an external entity; such files are refused."))

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "Record":
            if attrs.get("type") in APPLE_TYPES:
                self._record = attrs
                self._record_line = self._parser.CurrentLineNumber
                self._meta = {}
        elif name == "MetadataEntry":
            if self._record is not None:
                self._meta[attrs.get("key", "")] = attrs.get("value", "")
        elif not self._root:
            self._root = name
            if name != "HealthData":
                raise ImportFailed(
                    _("This is not an Apple Health export (no <HealthData> element).")
                )

    def _end(self, name: str) -> None:
        if name == "Record" and self._record is not None:
            record, self._record = self._record, None
            self._take(record, self._record_line)

    # records → items ------------------------------------------------------------------------

    def _take(self, record: dict[str, str], line: int) -> None:
        kind = record.get("type", "")
        device = record.get("sourceName", "").strip()[:64]
        try:
            start = _apple_time(record.get("startDate", ""))
        except ValueError:
            self.problem(line, "effective", _("the record has no readable startDate"))
            return
        raw = record.get("value", "")
        if kind == APPLE_SLEEP:
            self._night(record, device, start, line)
            return
        try:
            value = float(raw)
        except ValueError:
            self.problem(line, "value", _("value is not a number: %(value)r") % {"value": raw[:20]})
            return
        if kind == APPLE_STEPS:
            local = start.date()
            day = self._steps.setdefault((device, local), _Day(line, local, start.tzinfo or UTC))
            day.total += value
            return
        if kind in (APPLE_SYSTOLIC, APPLE_DIASTOLIC):
            self._pressure(kind, device, start, record, value, line)
            return
        unit = record.get("unit", "")
        code = APPLE_QUANTITIES[kind]
        item: dict[str, Any] = {
            "code": code,
            "value": value,
            "unit": APPLE_UNITS.get(unit, unit),
            "effective": start,
            "source": "device",
            "device": device,
        }
        if code == "glucose":
            if unit.startswith("mmol"):  # Apple writes "mmol<180.1558800000541>/L"
                item["unit"] = "mmol/L"
            item["context"] = APPLE_MEAL_TIME.get(
                self._meta.get("HKBloodGlucoseMealTime", ""), "random"
            )
        elif code == "spo2" and unit == "%" and value <= 1.0:
            item["value"] = round(value * 100, 2)  # Apple stores saturation as a fraction
        self._out.append((line, item))

    def _pressure(
        self,
        kind: str,
        device: str,
        start: datetime,
        record: dict[str, str],
        value: float,
        line: int,
    ) -> None:
        key = (device, record.get("startDate", ""))
        if key in self._paired:  # the same pair again (inside a Correlation element)
            return
        pending = self._pending.setdefault(key, {"line": line})
        pending["systolic" if kind == APPLE_SYSTOLIC else "diastolic"] = value
        if "systolic" in pending and "diastolic" in pending:
            del self._pending[key]
            self._paired[key] = None
            if len(self._paired) > _PENDING_LIMIT:
                self._paired.popitem(last=False)
            self._out.append(
                (
                    pending["line"],
                    {
                        "code": "bp",
                        "systolic": pending["systolic"],
                        "diastolic": pending["diastolic"],
                        "unit": "mm[Hg]",
                        "effective": start,
                        "source": "device",
                        "device": device,
                    },
                )
            )
        elif len(self._pending) > _PENDING_LIMIT:
            (_dev, _at), old = self._pending.popitem(last=False)
            self.problem(old["line"], "diastolic", _("blood pressure without its pair"))

    def _night(self, record: dict[str, str], device: str, start: datetime, line: int) -> None:
        if not record.get("value", "").startswith(APPLE_ASLEEP):
            return  # in bed, awake
        try:
            end = _apple_time(record.get("endDate", ""))
        except ValueError:
            self.problem(line, "effective", _("the record has no readable endDate"))
            return
        # A night belongs to the morning it ends on: sleep from 23:00 or from 01:00 both count
        # for the next calendar day.
        night = (start + timedelta(hours=12)).date()
        entry = self._sleep.setdefault((device, night), _Day(line, night, start.tzinfo or UTC))
        entry.total += max(0.0, (end - start).total_seconds())

    def _totals(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Steps summed per day and sleep per night, at the start of that local day."""
        days = sorted(
            [("steps", k, d) for k, d in self._steps.items()]
            + [("sleep", k, d) for k, d in self._sleep.items()],
            key=lambda e: e[2].line,
        )
        self._steps, self._sleep = {}, {}
        for code, (device, _day), entry in days:
            at = datetime.combine(entry.day, time(0, 0), tzinfo=entry.zone)
            value = round(entry.total) if code == "steps" else round(entry.total / 3600, 2)
            unit = "/d" if code == "steps" else "h"
            yield entry.line, {"code": code, "value": value, "unit": unit, "effective": at,
                               "source": "device", "device": device}  # fmt: skip


# --- checks at upload --------------------------------------------------------------------------


def sniff(fmt: str, head: bytes, *, fixed_patient: bool) -> None:
    """Refuse (ImportFailed) a file that is plainly not of the chosen format, from its start."""
    if fmt not in FORMATS:
        raise ImportFailed(_("Unknown file format %(format)r.") % {"format": fmt})
    if fmt == "apple_health":
        if head.startswith(b"PK\x03\x04"):
            return  # export.zip: looked into when read
        if b"<HealthData" not in head:
            raise ImportFailed(
                _("This does not look like an Apple Health export (export.xml or export.zip).")
            )
        return
    # A stray NUL is one bad line; many are a binary file (or UTF-16, refused below by name).
    if head[:8192].count(b"\x00") > 8 and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFailed(_("This is not a text file."))
    if head.startswith(b"PK\x03\x04") or head.lstrip().startswith(b"<"):
        raise ImportFailed(_("This is not a text file of readings (is it a spreadsheet?)."))
    if fmt == "ndjson":
        first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if first and first != b"{":
            raise ImportFailed(_("NDJSON lines must each be one JSON object, starting with {."))
        return
    csv_class: type[_CsvReader] = CareLoopCsv if fmt == "csv" else DeviceCsv
    line = head.split(b"\n", 1)[0]
    text = line.decode(_encoding(head), errors="replace").removeprefix("\ufeff")
    if not text.strip():
        raise ImportFailed(_("The first line must be the header line."))
    checker = csv_class(io.BytesIO(b""), fixed_patient=fixed_patient)
    checker.header(next(csv.reader([text], delimiter=_delimiter(text)), []))
