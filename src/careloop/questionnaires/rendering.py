"""Questionnaire items as template-ready fields (portal answer pages and staff previews), and
the plain-language results patients see."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.questionnaires import fhir, scoring


@dataclass
class Choice:
    value: str
    label: str
    checked: bool


@dataclass
class Field:
    item: fhir.Item
    name: str
    label: str
    prefix: str
    widget: str  # radio | checkbox | number | text | textarea | date | display | group
    required: bool
    values: list[str]
    error: str = ""
    choices: list[Choice] = field(default_factory=list)
    step: str = ""
    min: str = ""
    max: str = ""
    max_length: int | None = None
    unit: str = ""
    condition: dict[str, Any] | None = None
    children: list[Field] = field(default_factory=list)
    enabled: bool = True

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def condition_json(self) -> str:
        return json.dumps(self.condition, ensure_ascii=False) if self.condition else ""


def _as_text(value: fhir.Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def _condition(item: fhir.Item) -> dict[str, Any] | None:
    """The item's enableWhen for the page script (same semantics as fhir.enabled_items)."""
    if not item.enable_when:
        return None
    return {
        "behavior": item.enable_behavior,
        "when": [
            {
                "q": c.question,
                "op": c.operator,
                "kind": c.kind,
                "answer": c.answer[1] if c.kind == "coding" else c.answer,
            }
            for c in item.enable_when
        ],
    }


def build_fields(
    definition: fhir.Definition,
    items: Sequence[fhir.Item],
    answers: Mapping[str, Sequence[fhir.Value]],
    language: str,
    *,
    errors: Mapping[str, str] | None = None,
    raw: Mapping[str, list[str]] | None = None,
    enabled: set[str] | None = None,
) -> list[Field]:
    base = definition.language
    errors = errors or {}
    out = []
    for item in items:
        if raw is not None and item.link_id in raw:
            values = raw[item.link_id]
        else:
            values = [_as_text(v) for v in answers.get(item.link_id) or []]
        widget = {
            "choice": "checkbox" if item.repeats else "radio",
            "boolean": "radio",
            "integer": "number",
            "decimal": "number",
            "quantity": "number",
            "string": "text",
            "text": "textarea",
            "date": "date",
            "display": "display",
            "group": "group",
        }[item.type]
        f = Field(
            item=item,
            name=f"q:{item.link_id}",
            label=item.text(language, base),
            prefix=item.prefix,
            widget=widget,
            required=item.required,
            values=values,
            error=errors.get(item.link_id, ""),
            max_length=item.max_length,
            unit=item.unit,
            condition=_condition(item),
            enabled=enabled is None or item.link_id in enabled,
        )
        if item.type == "choice":
            f.choices = [
                Choice(o.code, o.label(language, base), o.code in values) for o in item.options
            ]
        elif item.type == "boolean":
            f.choices = [
                Choice("true", _("Yes"), "true" in values),
                Choice("false", _("No"), "false" in values),
            ]
        elif widget == "number":
            f.step = "1" if item.type == "integer" else "any"
            if isinstance(item.min_value, float):
                f.min = _as_text(item.min_value)
            if isinstance(item.max_value, float):
                f.max = _as_text(item.max_value)
        elif widget == "date":
            f.min = item.min_value if isinstance(item.min_value, str) else ""
            f.max = item.max_value if isinstance(item.max_value, str) else ""
        if item.type == "group":
            f.children = build_fields(
                definition,
                [c for c in item.children if c.asked or c.type in ("display", "group")],
                answers,
                language,
                errors=errors,
                raw=raw,
                enabled=enabled,
            )
        out.append(f)
    return out


def page_items(items: Sequence[fhir.Item]) -> list[fhir.Item]:
    """Every item a page's form posts (questions inside groups included)."""
    found: list[fhir.Item] = []
    for item in items:
        if item.asked:
            found.append(item)
        found += page_items(item.children)
    return found


def read_form(
    definition: fhir.Definition, items: Sequence[fhir.Item], data: QueryDict
) -> tuple[dict[str, list[str]], fhir.Answers, dict[str, str]]:
    """A page's posted values → (raw text per item, parsed answers, errors per item)."""
    raw: dict[str, list[str]] = {}
    parsed: fhir.Answers = {}
    errors: dict[str, str] = {}
    for item in page_items(items):
        texts = [t[:5000] for t in data.getlist(f"q:{item.link_id}")]
        raw[item.link_id] = texts
        values, error = fhir.parse_input(item, texts)
        if error:
            errors[item.link_id] = error
        elif values:
            parsed[item.link_id] = values
    return raw, parsed, errors


def answer_rows(
    definition: fhir.Definition, answers: fhir.Answers, language: str
) -> list[tuple[str, str]]:
    """(question, answer text) of every answered item, in questionnaire order (staff view)."""
    rows = []
    for item in definition.walk():
        values = answers.get(item.link_id)
        if not item.asked or not values:
            continue
        shown = []
        for value in values:
            if item.type == "choice":
                option = item.option(str(value))
                shown.append(option.label(language, definition.language) if option else str(value))
            elif item.type == "boolean":
                shown.append(str(_("Yes") if value else _("No")))
            else:
                shown.append(_as_text(value) + (f" {item.unit}" if item.unit else ""))
        rows.append((item.text(language, definition.language) or item.link_id, "; ".join(shown)))
    return rows


# --- what the patient is told -----------------------------------------------------------------

_MOOD = {
    "minimal": gettext_lazy("Thank you. Your answers show few signs of low mood at the moment."),
    "mild": gettext_lazy(
        "Thank you. Your answers show some signs of low mood. Small steps such as regular "
        "sleep, daily activity and talking with people you trust can help. Your care team "
        "will see your answers."
    ),
    "moderate": gettext_lazy(
        "Thank you for telling us how you feel. Your answers show you have been having a hard "
        "time. Your care team will look at them and may contact you to talk about support."
    ),
}
_ANXIETY = {
    "minimal": gettext_lazy("Thank you. Your answers show few signs of worry at the moment."),
    "mild": gettext_lazy(
        "Thank you. Your answers show some signs of worry. Your care team will see your answers."
    ),
    "moderate": gettext_lazy(
        "Thank you for telling us how you feel. Your answers show you have been worried a lot. "
        "Your care team will look at them and may contact you to talk about support."
    ),
}


def patient_result(instrument: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """{"tone": good|warn, "text": ..., "crisis": bool, "contact": bool} — no scores or labels
    that alarm, only what it means and what happens next."""
    band = str(result.get("band") or "")
    flags = list(result.get("flags") or [])
    out: dict[str, Any] = {"tone": "good", "text": "", "crisis": False, "contact": False}
    if instrument in ("phq9", "gad7"):
        table = _MOOD if instrument == "phq9" else _ANXIETY
        key = band if band in ("minimal", "mild") else "moderate"
        out["text"] = str(table[key])
        out["tone"] = "good" if band == "minimal" else "warn"
        out["contact"] = key == "moderate"
        if "phq9_item9" in flags:
            # Whatever the total, the answer to item 9 is what matters now.
            out["text"] = _("Thank you for telling us how you have been feeling.")
            out["crisis"] = True
            out["contact"] = True
            out["tone"] = "warn"
    elif instrument == "postop":
        if band == "red_flag":
            out["tone"] = "warn"
            out["contact"] = True
            out["text"] = _(
                "Thank you. Some of your answers need a nurse to look at them. Your care team "
                "has been told and will contact you today."
            )
        elif band == "watch":
            out["text"] = _(
                "Thank you. Your recovery needs a little watching: keep the wound clean and dry, "
                "rest, and fill in the next questionnaire when it comes. Tell us if anything gets "
                "worse."
            )
        else:
            out["text"] = _("Thank you. Your recovery looks on track.")
    elif instrument == "previsit":
        out["text"] = _("Thank you. Your doctor will read your answers before your visit.")
    else:
        out["text"] = _("Thank you for your answers. Your care team can see them.")
    return out


def band_label(band: str) -> str:
    label = scoring.BAND_LABELS.get(band)
    return str(label) if label is not None else band
