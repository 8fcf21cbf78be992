"""The monthly department report as a PDF (reportlab).

A title page (organisation, department, month, when it was made, a summary of every headline
figure), then one section per metric of the registry: the headline figure with its numerator
and denominator, a 12-month trend chart with a legend in the metric's accessible colours, the
table of its parts for the month, and the definition as a footnote.

The figures come from `careloop.analytics.registry` only, for the department's cohort in the
organisation's time zone, so the PDF always agrees with the dashboards. Chinese text needs a
CJK font: the first TrueType font of `FONT_FILES` found on the machine is embedded (subset),
else reportlab's built-in CID font STSong-Light is used (which PDF readers supply themselves).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from django.utils import translation
from django.utils.translation import gettext

from careloop.accounts.models import Department, Organisation
from careloop.analytics import registry
from careloop.kit.clock import utc_now

log = logging.getLogger("careloop.analytics.reports")

# TrueType fonts with Chinese glyphs (a .ttc is read at sub-font 0). CFF-based OpenType files
# (e.g. Noto Sans CJK .otf/.ttc) are not TrueType and are not listed.
FONT_FILES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
    "/System/Library/Fonts/STHeiti Light.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
FONT_NAME = "CareLoopCJK"
CID_FONT = "STSong-Light"

# Charts (Okabe–Ito, colour-blind safe); parts without a colour of their own take these.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#999999")
INK = "#222222"
MUTED = "#666666"
RULE = "#CCCCCC"


# --- fonts -------------------------------------------------------------------------------------


@cache
def cjk_font() -> str:
    """Register (once) and name the font every text of the report is set in."""
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    for path in FONT_FILES:
        if not Path(path).is_file():
            continue
        try:
            pdfmetrics.registerFont(TTFont(FONT_NAME, path, subfontIndex=0))
        except Exception:  # an unreadable or non-TrueType file: try the next one
            log.warning("report font %s could not be read; trying the next", path)
            continue
        name = FONT_NAME
        break
    else:
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
        name = CID_FONT
    # One face for every style: <b> and <i> in paragraphs stay in the CJK font.
    for bold in (0, 1):
        for italic in (0, 1):
            addMapping(name, bold, italic, name)
    return name


# --- the figures -------------------------------------------------------------------------------


@dataclass
class Section:
    """One metric's figures for the report: 12 months ending with the report's month."""

    metric: registry.Metric
    months: list[date]
    values: registry.Computed = field(default_factory=dict)
    failed: bool = False

    @property
    def month(self) -> date:
        return self.months[-1]

    @property
    def headline_key(self) -> str:
        keys = [p.key for p in self.metric.parts]
        return self.metric.headline if self.metric.headline in keys else keys[0]

    def value(self, part: str, month: date | None = None) -> registry.Value | None:
        return self.values.get(month or self.month, {}).get(part)


@dataclass
class Report:
    organisation: Organisation
    department: Department
    month: date
    generated_at: datetime
    sections: list[Section]


def cohort_for(department: Department, today: date | None = None) -> registry.Cohort:
    org = department.organisation
    return registry.Cohort(
        organisation_id=org.pk,
        time_zone=org.time_zone,
        department_ids=(department.pk,),
        today=today,
    )


def collect(
    department: Department,
    month: date,
    *,
    today: date | None = None,
    keys: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """Compute every metric (or those of `keys`, in that order) for the department and the
    12 months ending with `month`. A metric that fails is logged and shown as unavailable,
    so one broken figure never withholds the others."""
    cohort = cohort_for(department, today)
    months = [registry.add_months(month, i) for i in range(-11, 1)]
    metrics = registry.all_metrics()
    chosen = [metrics[k] for k in keys] if keys is not None else list(metrics.values())
    sections = []
    for metric in chosen:
        section = Section(metric=metric, months=months)
        try:
            section.values = metric.compute(cohort, months)
        except Exception:
            log.exception("report: metric %s failed for department %s", metric.key, department.pk)
            section.failed = True
        sections.append(section)
    return Report(
        organisation=department.organisation,
        department=department,
        month=month,
        generated_at=now or utc_now(),
        sections=sections,
    )


# --- formatting --------------------------------------------------------------------------------


def _number(amount: float, digits: int = 1) -> str:
    if float(amount).is_integer():
        return f"{int(amount):,}"
    return f"{amount:,.{digits}f}"


def format_value(kind: str, value: registry.Value | None) -> str:
    """The figure as the page shows it: a share in per cent, hours, days, a count."""
    ratio = value.value if value is not None else None
    if ratio is None:
        return "—"
    if kind == "share" and value is not None and value.denominator is not None:
        return f"{ratio * 100:.1f}%"
    if kind == "share":  # a plain count among the shares (e.g. "patients with both measures")
        return _number(ratio)
    if kind == "hours":
        return gettext("%(amount)s h") % {"amount": f"{ratio:,.1f}"}
    if kind == "days":
        return gettext("%(amount)s days") % {"amount": f"{ratio:,.1f}"}
    if kind == "score":
        return f"{ratio:,.1f}"
    return _number(ratio)


def fraction(value: registry.Value | None) -> str:
    """numerator / denominator; empty for a plain amount (no denominator) or no figure."""
    if value is None or value.denominator is None:
        return ""
    return f"{_number(value.numerator)} / {_number(value.denominator)}"


def chart_value(kind: str, value: registry.Value | None) -> float | None:
    ratio = value.value if value is not None else None
    if ratio is None:
        return None
    return ratio * 100 if kind == "share" else float(ratio)


def _plain_count(section: Section, part: str) -> bool:
    """Whether a part's figures are amounts without a denominator in every month."""
    values = [section.value(part, m) for m in section.months]
    present = [v for v in values if v is not None]
    return bool(present) and all(v.denominator is None for v in present)


def department_name(department: Department, language: str) -> str:
    if language.startswith("en") and department.name_en:
        return department.name_en
    return department.name


def month_label(month: date) -> str:
    return f"{month:%Y-%m}"


# --- the chart ---------------------------------------------------------------------------------


def _colour(code: str) -> Any:
    from reportlab.lib import colors

    return colors.HexColor(code)


def _nice_top(highest: float) -> tuple[float, float]:
    """An axis maximum at or above `highest` and a step giving about five gridlines."""
    if highest <= 0:
        return 1.0, 0.2
    magnitude = 10 ** (len(str(int(highest))) - 1)
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude / 5
        top = step * -(-highest // step)
        if top / step <= 6:
            return float(top), float(step)
    return float(highest), float(highest) / 5  # pragma: no cover - the loop always returns


def trend_chart(section: Section, width: float, font: str) -> Any:
    """A 12-month chart of every part: lines for shares (0–100 %), bars for amounts; a legend
    names each part in its colour; a dashed line marks the metric's target when it has one."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.charts.linecharts import HorizontalLineChart
    from reportlab.graphics.shapes import Circle, Drawing, Line, String

    metric = section.metric
    share = metric.kind == "share"
    parts = list(metric.parts)
    if share:
        # Plain counts among the shares stay in the table: they have no place on a % axis.
        parts = [p for p in parts if not _plain_count(section, p.key)] or parts
    series = [
        [chart_value(metric.kind, section.value(p.key, m)) for m in section.months] for p in parts
    ]
    colours = [p.colour or PALETTE[i % len(PALETTE)] for i, p in enumerate(parts)]
    legend_rows = (len(parts) + 2) // 3
    height = 150 + 14 * legend_rows
    drawing = Drawing(width, height)
    chart: Any = HorizontalLineChart() if share else VerticalBarChart()
    chart.x, chart.y = 36, 26 + 14 * legend_rows
    chart.width, chart.height = width - 48, 110
    chart.data = [tuple(v for v in values) for values in series] or [(None,) * 12]
    chart.categoryAxis.categoryNames = [f"{m:%y-%m}" for m in section.months]
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 6.5
    chart.categoryAxis.strokeColor = _colour(RULE)
    chart.valueAxis.labels.fontName = font
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.strokeColor = _colour(RULE)
    chart.valueAxis.visibleGrid = True
    chart.valueAxis.gridStrokeColor = _colour("#EEEEEE")
    chart.valueAxis.valueMin = 0
    if share:
        top, step = 100.0, 20.0
        chart.valueAxis.labelTextFormat = "%d%%"
    else:
        highest = max([v for values in series for v in values if v is not None] or [0])
        top, step = _nice_top(highest)
        chart.valueAxis.labelTextFormat = "%d" if step >= 1 else "%.1f"
    chart.valueAxis.valueMax = top
    chart.valueAxis.valueStep = step
    if share:
        # The chart draws the axes and grid only; the lines are drawn below, so that a month
        # without a figure (no denominator) leaves a gap instead of a made-up point.
        chart.joinedLines = 0
    else:
        for i, code in enumerate(colours):
            chart.bars[i].fillColor = _colour(code)
            chart.bars[i].strokeColor = None
        chart.barSpacing = 0.5
        chart.groupSpacing = 4
    drawing.add(chart)
    if share:
        step_x = chart.width / len(section.months)
        for values, code in zip(series, colours, strict=True):
            points = [
                (chart.x + (i + 0.5) * step_x, chart.y + chart.height * v / top)
                if v is not None
                else None
                for i, v in enumerate(values)
            ]
            for here, there in zip(points, points[1:], strict=False):
                if here is not None and there is not None:
                    drawing.add(Line(*here, *there, strokeColor=_colour(code), strokeWidth=1.6))
            for point in points:
                if point is not None:
                    drawing.add(Circle(*point, 1.8, fillColor=_colour(code), strokeColor=None))
    if metric.target is not None:
        target = metric.target * 100 if share else float(metric.target)
        if 0 <= target <= top:
            y = chart.y + chart.height * target / top
            drawing.add(
                Line(
                    chart.x,
                    y,
                    chart.x + chart.width,
                    y,
                    strokeColor=_colour(INK),
                    strokeDashArray=[3, 2],
                    strokeWidth=0.8,
                )
            )
            label = gettext("target %(value)s") % {
                "value": format_value(metric.kind, registry.Value(metric.target))
                if not share
                else f"{target:.0f}%"
            }
            drawing.add(
                String(
                    chart.x + 3,
                    y + 2.5,
                    label,
                    fontName=font,
                    fontSize=6.5,
                    textAnchor="start",
                    fillColor=_colour(INK),
                )
            )
    legend = Legend()
    legend.x, legend.y = chart.x, 8 + 14 * legend_rows
    legend.alignment = "right"
    legend.fontName = font
    legend.fontSize = 7.5
    legend.columnMaximum = legend_rows
    legend.deltax = (width - 48) / 3
    legend.deltay = 12
    legend.dx, legend.dy = 8, 8
    legend.dxTextSpace = 4
    legend.strokeColor = None
    legend.colorNamePairs = [
        (_colour(c), str(p.label)) for c, p in zip(colours, parts, strict=True)
    ]
    drawing.add(legend)
    return drawing


# --- the document ------------------------------------------------------------------------------


def _styles(font: str) -> dict[str, Any]:
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("base", fontName=font, fontSize=9.5, leading=13, wordWrap="CJK")
    return {
        "base": base,
        "cover": ParagraphStyle("cover", parent=base, fontSize=24, leading=30, spaceAfter=12),
        "cover2": ParagraphStyle("cover2", parent=base, fontSize=15, leading=21, spaceAfter=6),
        "h1": ParagraphStyle("h1", parent=base, fontSize=14, leading=18, spaceBefore=4),
        "figure": ParagraphStyle("figure", parent=base, fontSize=20, leading=25, spaceBefore=4),
        "muted": ParagraphStyle("muted", parent=base, textColor=_colour(MUTED)),
        "note": ParagraphStyle(
            "note", parent=base, fontSize=7.5, leading=10, textColor=_colour(MUTED)
        ),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8.5, leading=11),
    }


def _text(value: Any) -> str:
    return escape(str(value))


def _table(rows: list[list[Any]], widths: Sequence[float], font: str) -> Any:
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), font),
                ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                ("TEXTCOLOR", (0, 0), (-1, 0), _colour(MUTED)),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, _colour(RULE)),
                ("LINEBELOW", (0, 1), (-1, -1), 0.3, _colour("#EEEEEE")),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _cover(report: Report, language: str, styles: dict[str, Any], font: str) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import PageBreak, Paragraph, Spacer

    zone = ZoneInfo(report.organisation.time_zone)
    made = report.generated_at.astimezone(zone)
    flow: list[Any] = [
        Spacer(1, 3 * cm),
        Paragraph(_text(gettext("Monthly department report")), styles["cover"]),
        Paragraph(_text(report.organisation.name), styles["cover2"]),
        Paragraph(_text(department_name(report.department, language)), styles["cover2"]),
        Paragraph(
            _text(gettext("Month: %(month)s") % {"month": month_label(report.month)}),
            styles["cover2"],
        ),
        Spacer(1, 0.4 * cm),
        Paragraph(
            _text(
                gettext("Generated at %(time)s (%(zone)s)")
                % {"time": f"{made:%Y-%m-%d %H:%M}", "zone": report.organisation.time_zone}
            ),
            styles["muted"],
        ),
        Paragraph(
            _text(
                gettext(
                    "Figures as of the end of the month, for the patients of the department,"
                    " in the organisation's time zone."
                )
            ),
            styles["muted"],
        ),
        Spacer(1, 1 * cm),
    ]
    rows: list[list[Any]] = [[gettext("Figure"), gettext("This month"), gettext("Of")]]
    for section in report.sections:
        headline = section.value(section.headline_key)
        title = Paragraph(_text(section.metric.title), styles["cell"])
        if section.failed:
            rows.append([title, gettext("not available"), ""])
        else:
            rows.append([title, format_value(section.metric.kind, headline), fraction(headline)])
    flow.append(_table(rows, (9.5 * cm, 3 * cm, 4.5 * cm), font))
    flow.append(PageBreak())
    return flow


def _section(section: Section, styles: dict[str, Any], font: str, width: float) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer

    metric = section.metric
    head: list[Any] = [Paragraph(_text(metric.title), styles["h1"])]
    if section.failed:
        head.append(
            Paragraph(_text(gettext("This figure could not be computed.")), styles["muted"])
        )
        return [KeepTogether(head), Spacer(1, 0.6 * cm)]
    key = section.headline_key
    headline = section.value(key)
    part = next(p for p in metric.parts if p.key == key)
    head.append(Paragraph(_text(format_value(metric.kind, headline)), styles["figure"]))
    shown = {"part": part.label, "month": month_label(section.month)}
    if fraction(headline):
        caption = gettext("%(part)s, %(month)s: %(fraction)s") % {
            **shown,
            "fraction": fraction(headline),
        }
    else:
        caption = gettext("%(part)s, %(month)s") % shown
    head.append(Paragraph(_text(caption), styles["muted"]))
    head.append(Spacer(1, 0.2 * cm))
    head.append(trend_chart(section, width, font))
    rows: list[list[Any]] = [
        [gettext("Part"), gettext("Numerator"), gettext("Denominator"), gettext("Value")]
    ]
    for p in metric.parts:
        value = section.value(p.key)
        numerator = _number(value.numerator) if value is not None else "—"
        denominator = (
            _number(value.denominator)
            if value is not None and value.denominator is not None
            else "—"
        )
        rows.append(
            [
                Paragraph(_text(p.label), styles["cell"]),
                numerator,
                denominator,
                format_value(metric.kind, value),
            ]
        )
    head.append(_table(rows, (8 * cm, 3 * cm, 3 * cm, 3 * cm), font))
    head.append(Spacer(1, 0.15 * cm))
    head.append(
        Paragraph(
            _text(gettext("Definition: %(text)s") % {"text": metric.definition}), styles["note"]
        )
    )
    return [KeepTogether(head), Spacer(1, 0.7 * cm)]


def render(report: Report, language: str = "zh-hans") -> bytes:
    """The report as PDF bytes, its text in `language`."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    font = cjk_font()
    language = language or "zh-hans"
    with translation.override(language):
        styles = _styles(font)
        name = department_name(report.department, language)
        title = gettext("Monthly department report")
        out = io.BytesIO()
        doc = SimpleDocTemplate(
            out,
            pagesize=A4,
            leftMargin=2 * cm,
            rightMargin=2 * cm,
            topMargin=1.8 * cm,
            bottomMargin=1.8 * cm,
            title=f"{title} · {name} · {month_label(report.month)}",
            author="CareLoop",
            subject=report.organisation.name,
            lang=language,
        )
        footer = f"{report.organisation.name} · {name} · {month_label(report.month)}"
        page_word = gettext("page %(number)d")

        def decorate(canvas: Any, document: Any) -> None:
            canvas.saveState()
            canvas.setFont(font, 7.5)
            canvas.setFillColor(_colour(MUTED))
            canvas.drawString(2 * cm, 1.1 * cm, footer)
            canvas.drawRightString(A4[0] - 2 * cm, 1.1 * cm, page_word % {"number": document.page})
            canvas.restoreState()

        flow = _cover(report, language, styles, font)
        for section in report.sections:
            flow += _section(section, styles, font, doc.width)
        doc.build(flow, onFirstPage=decorate, onLaterPages=decorate)
    return out.getvalue()


def build(
    department: Department,
    month: date,
    *,
    language: str = "zh-hans",
    today: date | None = None,
    keys: Iterable[str] | None = None,
    now: datetime | None = None,
) -> bytes:
    """The monthly report of a department as PDF bytes."""
    report = collect(
        department, month, today=today, keys=list(keys) if keys is not None else None, now=now
    )
    return render(report, language)


def filename(department: Department, month: date) -> str:
    """An ASCII file name for the download and the attachment."""
    return f"careloop-{department.code}-{month:%Y-%m}.pdf"
