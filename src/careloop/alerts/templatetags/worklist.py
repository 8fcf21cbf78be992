"""Template helpers of the worklist: a reading as staff read it, and an inline SVG sparkline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from careloop.observations import domain

register = template.Library()

WIDTH, HEIGHT, PAD = 96, 26, 3
TARGET_SYSTOLIC = 140  # mm[Hg]: the usual office target (China 2018 / ESC 2018 guidelines)


@register.filter
def reading(row: Any, kind: str) -> str:
    """A Latest row as staff read it: 142/91, 7.2."""
    if row is None or row.value is None:
        return ""
    return domain.display(kind, row.value, row.value2)


@register.simple_tag
def sparkline(values: Sequence[float], label: str = "") -> SafeString:
    """The last readings as a small line (server-drawn SVG; no script, no style attribute).
    A dashed line marks the systolic target when it falls inside the drawn range."""
    points = [float(v) for v in values if v is not None]
    if len(points) < 2:
        return SafeString("")
    low = min(min(points), TARGET_SYSTOLIC - 20)
    high = max(max(points), TARGET_SYSTOLIC + 20)
    span = (high - low) or 1.0
    step = (WIDTH - 2 * PAD) / (len(points) - 1)

    def y(v: float) -> float:
        return round(HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD), 1)

    coords = [(round(PAD + i * step, 1), y(v)) for i, v in enumerate(points)]
    line = " ".join(f"{x},{yy}" for x, yy in coords)
    last_x, last_y = coords[-1]
    target = y(TARGET_SYSTOLIC)
    words = label or _("Last systolic pressures")
    title = f"{words}: " + ", ".join(f"{v:.0f}" for v in points)
    return format_html(
        '<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        'aria-label="{t}"><title>{t}</title>'
        '<line class="spark-target" x1="0" x2="{w}" y1="{ty}" y2="{ty}"></line>'
        '<polyline points="{pts}"></polyline>'
        '<circle class="{cls}" cx="{cx}" cy="{cy}" r="2.4"></circle></svg>',
        w=WIDTH,
        h=HEIGHT,
        t=title,
        ty=target,
        pts=line,
        cx=last_x,
        cy=last_y,
        cls="spark-high" if points[-1] >= TARGET_SYSTOLIC else "spark-ok",
    )


@register.simple_tag
def hidden_query(query: str) -> SafeString:
    """The current filters as hidden inputs (forms that must keep them)."""
    from urllib.parse import parse_qsl

    pairs = [(k, v) for k, v in parse_qsl(query) if k not in ("page", "part")]
    return format_html_join("", '<input type="hidden" name="{}" value="{}">', pairs)
