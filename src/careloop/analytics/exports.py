"""A metric's figures as tables: shown on the pages and downloaded as CSV or XLSX.

Every metric is shown the same way from its registry entry (parts, kind, breakdowns), so a new
metric needs no template of its own. Downloads go through careloop.kit.exports, which keeps
every cell text (formula-safe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import combinations
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.analytics import registry
from careloop.analytics.selectors import PatientRow

# Okabe–Ito: colours told apart with any colour vision, for parts that name none.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#999999")

BREAKDOWN_TITLES: dict[str, Any] = {
    "department": gettext_lazy("By department"),
    "staff": gettext_lazy("By staff member"),
    "channel": gettext_lazy("By channel"),
    "hour": gettext_lazy("By local hour of day"),
    "weekday": gettext_lazy("By weekday"),
    "drug_class": gettext_lazy("By drug class"),
    "class": gettext_lazy("By drug class"),
    "severity": gettext_lazy("By severity"),
    "questionnaire": gettext_lazy("By questionnaire"),
    "priority": gettext_lazy("By priority"),
}
BREAKDOWN_COLUMNS: dict[str, Any] = {
    "department": gettext_lazy("Department"),
    "staff": gettext_lazy("Staff member"),
    "channel": gettext_lazy("Channel"),
    "hour": gettext_lazy("Local hour"),
    "weekday": gettext_lazy("Weekday"),
    "drug_class": gettext_lazy("Drug class"),
    "class": gettext_lazy("Drug class"),
}
# Breakdowns over time of day or week: the "best send time" bar chart.
CHARTED_BREAKDOWNS = frozenset({"hour", "weekday"})


def month_text(month: date) -> str:
    return month.strftime("%Y-%m")


def breakdown_title(name: str) -> str:
    title = BREAKDOWN_TITLES.get(name)
    return str(title) if title is not None else name.replace("_", " ").capitalize()


def _number(x: float, decimals: int = 1) -> str:
    if float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.{decimals}f}"


# Kinds whose ratios read as percentages; for the others a ratio is a mean (hours per alert…).
PERCENT_KINDS = frozenset({"share", "score"})


def is_ratio(value: registry.Value | None) -> bool:
    return value is not None and value.denominator is not None


def _as_percent(kind: str, value: registry.Value | None) -> bool:
    return is_ratio(value) and kind in PERCENT_KINDS


def chart_number(kind: str, value: registry.Value | None) -> float | None:
    """The figure as a chart plots it: percent for shares, the value itself otherwise."""
    if value is None or value.value is None:
        return None
    if _as_percent(kind, value):
        return round(value.value * 100, 1)
    return round(value.value, 2)


def format_value(kind: str, value: registry.Value | None) -> str:
    """The figure as people read it: "42.3%", "12", "3.5 h", "2.0 d"; "—" when undefined.

    A value with a denominator is a ratio (a percentage for shares and scores); one without is
    a plain amount (a count, a median in hours, an NPS)."""
    if value is None or value.value is None:
        return "—"
    v = value.value
    if _as_percent(kind, value):
        return f"{v * 100:.1f}%"
    if kind == "hours":
        return _("%(n)s h") % {"n": f"{v:.1f}"}
    if kind == "days":
        return _("%(n)s d") % {"n": f"{v:.1f}"}
    return _number(v, 2 if is_ratio(value) else 1)


def format_target(kind: str, target: float | None) -> str:
    """A goal as a ratio (0.8 of a share reads "80.0%")."""
    if target is None:
        return ""
    return format_value(kind, registry.Value(target, 1))


def counts_text(value: registry.Value | None) -> str:
    """Numerator and denominator: "12 / 40" (empty for a plain amount)."""
    if value is None or value.denominator is None:
        return ""
    return f"{_number(value.numerator)} / {_number(value.denominator)}"


def colours(metric: registry.Metric) -> dict[str, str]:
    return {
        part.key: part.colour or PALETTE[i % len(PALETTE)] for i, part in enumerate(metric.parts)
    }


@dataclass
class Cell:
    text: str
    value: registry.Value | None = None
    part: str = ""  # set when the figure can be drilled into
    month: date | None = None
    href: str = ""  # the drill-down address, set by the page


@dataclass
class Table:
    """A table of a metric: a header and rows of cells (the first cell is the row's name)."""

    key: str
    title: str
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    chart: dict[str, Any] | None = None

    def download_rows(self) -> list[list[str]]:
        return [[cell.text for cell in row] for row in self.rows]


def drillable(metric: registry.Metric) -> set[str]:
    if metric.patients is None:
        return set()
    return {part.key for part in metric.parts if part.drill}


def parts_table(metric: registry.Metric, computed: registry.Computed, month: date) -> Table:
    """One month: each part with its figure, numerator and denominator."""
    figures = computed.get(month, {})
    drill = drillable(metric)
    table = Table(
        "parts",
        _("%(month)s by part") % {"month": month_text(month)},
        [_("Part"), _("Figure"), _("Numerator"), _("Denominator")],
    )
    for part in metric.parts:
        value = figures.get(part.key)
        # Only a count of patients leads to patients: not a zero, nor a median or a score.
        link = part.key if part.key in drill and value is not None and value.numerator else ""
        # A plain amount (a count, a median) is its own figure: no numerator or denominator.
        den = value.denominator if value is not None else None
        top = _number(value.numerator) if value is not None and den is not None else ""
        table.rows.append(
            [
                Cell(str(part.label)),
                Cell(format_value(metric.kind, value), value, link, month),
                Cell(top, value, link if top else "", month),
                Cell(_number(den) if den is not None else ""),
            ]
        )
    return table


def trend_table(metric: registry.Metric, computed: registry.Computed, months: list[date]) -> Table:
    """Month by month (oldest first), one column per part, and its counts for ratios."""
    drill = drillable(metric)
    with_counts = metric.kind == "share" or any(
        v.denominator is not None for figures in computed.values() for v in figures.values()
    )
    header = [_("Month")]
    for part in metric.parts:
        header.append(str(part.label))
        if with_counts:
            header.append(_("%(part)s (numerator / denominator)") % {"part": part.label})
    table = Table("trend", _("Last 12 months"), header)
    for month in months:
        row = [Cell(month_text(month))]
        for part in metric.parts:
            value = computed.get(month, {}).get(part.key)
            link = part.key if part.key in drill and value is not None and value.numerator else ""
            row.append(Cell(format_value(metric.kind, value), value, link, month))
            if with_counts:
                row.append(Cell(counts_text(value), value, link, month))
        table.rows.append(row)
    return table


def breakdown_table(
    metric: registry.Metric, name: str, rows: registry.Breakdown, headline: str
) -> Table:
    present = [p for p in metric.parts if any(p.key in figures for _k, _l, figures in rows)]
    header = [str(BREAKDOWN_COLUMNS.get(name) or name.replace("_", " ").capitalize())]
    for part in present:
        header += [str(part.label), _("%(part)s (numerator / denominator)") % {"part": part.label}]
    table = Table(name, breakdown_title(name), header)
    for _key, label, figures in rows:
        row = [Cell(str(label))]
        for part in present:
            value = figures.get(part.key)
            row += [Cell(format_value(metric.kind, value), value), Cell(counts_text(value), value)]
        table.rows.append(row)
    if name in CHARTED_BREAKDOWNS and rows:
        main = headline if any(headline in f for _k, _l, f in rows) else present[0].key
        label = next((str(p.label) for p in metric.parts if p.key == main), main)
        table.chart = {
            "type": "bar",
            "percent": any(_as_percent(metric.kind, f.get(main)) for _k, _l, f in rows),
            "labels": [str(label_) for _k, label_, _f in rows],
            "series": [
                {
                    "label": label,
                    "colour": colours(metric).get(main, PALETTE[0]),
                    "data": [chart_number(metric.kind, f.get(main)) for _k, _l, f in rows],
                }
            ],
            "target": None,
        }
    return table


def _ratio_part(computed: registry.Computed, key: str) -> bool:
    values = [figures[key] for figures in computed.values() if key in figures]
    return bool(values) and all(is_ratio(v) for v in values)


def _same_denominator(computed: registry.Computed, key: str, headline: str) -> bool:
    for figures in computed.values():
        mine, main = figures.get(key), figures.get(headline)
        if (mine is None) != (main is None):
            return False
        if mine is not None and main is not None and mine.denominator != main.denominator:
            return False
    return True


def _partition(computed: registry.Computed, keys: list[str]) -> list[str]:
    """The largest set of `keys` (in order) whose numerators add up to their common
    denominator in every month — parts that split the denominator (drawn as stacked bars)."""
    months = [f for f in computed.values() if all(k in f for k in keys)]
    if len(keys) < 2 or len(keys) > 10 or len(months) != len(computed):
        return []
    if not any(f[keys[0]].denominator for f in months):
        return []  # no month with anything to split
    for size in range(len(keys), 1, -1):
        for chosen in combinations(keys, size):
            if all(
                abs(sum(f[k].numerator for k in chosen) - (f[chosen[0]].denominator or 0)) < 1e-9
                for f in months
            ):
                return list(chosen)
    return []


def chart_parts(metric: registry.Metric, computed: registry.Computed) -> tuple[list[str], bool]:
    """The parts the trend chart draws, and whether as stacked bars. The chart keeps to the
    headline's unit: with a ratio headline, the parts over the same denominator (stacked when
    they split it); with an amount headline, the amounts."""
    headline = metric.headline or metric.parts[0].key
    keys = [p.key for p in metric.parts]
    if not _ratio_part(computed, headline):
        return [k for k in keys if not _ratio_part(computed, k) or k == headline], False
    same = [
        k for k in keys if _ratio_part(computed, k) and _same_denominator(computed, k, headline)
    ]
    split = _partition(computed, same) if metric.kind in PERCENT_KINDS else []
    return (split, True) if split else (same, False)


def trend_chart(
    metric: registry.Metric, computed: registry.Computed, months: list[date]
) -> dict[str, Any]:
    """The data of the 12-month chart (the canvas's data-series attribute)."""
    palette = colours(metric)
    keys, is_stacked = chart_parts(metric, computed)
    headline = metric.headline or metric.parts[0].key
    percent = metric.kind in PERCENT_KINDS and _ratio_part(computed, headline)
    target = metric.target
    return {
        "type": "bar" if is_stacked else "line",
        "stacked": is_stacked,
        "percent": percent,
        "labels": [month_text(m) for m in months],
        "series": [
            {
                "label": str(part.label),
                "colour": palette[part.key],
                "data": [
                    chart_number(metric.kind, computed.get(m, {}).get(part.key)) for m in months
                ],
            }
            for part in metric.parts
            if part.key in keys
        ],
        "target": (
            chart_number(metric.kind, registry.Value(target, 1 if percent else None))
            if target is not None
            else None
        ),
        "targetLabel": _("Goal %(target)s") % {"target": format_target(metric.kind, target)},
    }


def has_data(computed: registry.Computed) -> bool:
    return any(
        v.value is not None and (v.denominator is not None or v.numerator)
        for figures in computed.values()
        for v in figures.values()
    )


def patient_table(rows: list[PatientRow]) -> tuple[list[str], list[list[Any]]]:
    header = [
        _("Record number"),
        _("Name"),
        _("Sex"),
        _("Age"),
        _("Departments"),
        _("Last blood pressure (mmHg)"),
        _("Measured on"),
    ]
    body = [
        [
            r.patient.record_number,
            r.patient.name,
            r.patient.get_sex_display(),
            r.age,
            ", ".join(r.departments),
            r.last_bp,
            r.last_bp_on,
        ]
        for r in rows
    ]
    return header, body
