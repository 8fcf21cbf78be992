"""Scores and published severity bands, as pure functions.

- PHQ-9 (Kroenke, Spitzer & Williams 2001): total 0–27; 0–4 minimal, 5–9 mild, 10–14
  moderate, 15–19 moderately severe, 20–27 severe. Item 9 (thoughts of self-harm) above 0
  needs a same-day safety assessment whatever the total.
- GAD-7 (Spitzer et al. 2006): total 0–21; 0–4 minimal, 5–9 mild, 10–14 moderate, 15–21
  severe.
- NPS (Reichheld 2003): 0–10; 9–10 promoter, 7–8 passive, 0–6 detractor.
- CSAT: 1–5; 4–5 satisfied, 3 neutral, 1–2 dissatisfied.
- Post-operative symptoms (CareLoop's questionnaire): red flags are pain ≥ 8/10, temperature
  ≥ 38.5 °C, pus from the wound, wound redness together with fever, vomiting that does not
  stop, shortness of breath, a painful swollen calf. No red flag but pain ≥ 5, fever, redness
  or nausea: "watch". Otherwise "as expected".

Which instrument a questionnaire is comes from its ``code`` (LOINC panel codes, or CareLoop's
own instrument code system); item scores come from the answer options' ordinal values
(``ordinalValue`` / ``itemWeight`` extensions), items found by LOINC item code when the
questionnaire carries them and in document order otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.utils.translation import gettext_lazy as _

from careloop.questionnaires import fhir

INSTRUMENT_SYSTEM = "https://careloop.dev/fhir/CodeSystem/instrument"

PHQ9_PANEL = "44249-1"
GAD7_PANEL = "69737-5"
# LOINC codes of the nine PHQ-9 symptom items and the seven GAD-7 items, in order.
PHQ9_ITEMS = (
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
)
GAD7_ITEMS = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")

PHQ9_BANDS = (
    (4, "minimal"),
    (9, "mild"),
    (14, "moderate"),
    (19, "moderately_severe"),
    (27, "severe"),
)
GAD7_BANDS = ((4, "minimal"), (9, "mild"), (14, "moderate"), (21, "severe"))

BAND_LABELS = {
    "minimal": _("Minimal"),
    "mild": _("Mild"),
    "moderate": _("Moderate"),
    "moderately_severe": _("Moderately severe"),
    "severe": _("Severe"),
    "promoter": _("Promoter"),
    "passive": _("Passive"),
    "detractor": _("Detractor"),
    "satisfied": _("Satisfied"),
    "neutral": _("Neutral"),
    "dissatisfied": _("Dissatisfied"),
    "red_flag": _("Red flag"),
    "watch": _("Watch"),
    "as_expected": _("As expected"),
    "incomplete": _("Incomplete"),
}

FLAG_LABELS = {
    "phq9_item9": _("PHQ-9 item 9 positive: thoughts of self-harm"),
    "severe_pain": _("Severe pain (8/10 or more)"),
    "high_fever": _("Temperature 38.5 °C or higher"),
    "wound_pus": _("Pus or smell from the wound"),
    "wound_infection_signs": _("Wound redness with fever"),
    "persistent_vomiting": _("Persistent vomiting"),
    "breathless": _("Shortness of breath"),
    "calf_swelling": _("Painful or swollen calf"),
}

INSTRUMENTS = ("phq9", "gad7", "postop", "previsit", "satisfaction")
INSTRUMENT_LABELS = {
    "phq9": "PHQ-9",
    "gad7": "GAD-7",
    "postop": _("Post-operative symptoms"),
    "previsit": _("Pre-visit"),
    "satisfaction": _("Satisfaction (NPS, CSAT)"),
}


@dataclass
class Result:
    instrument: str
    total: float | None = None
    band: str = ""
    items: list[float] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # 1-based numbers of unanswered items
    flags: list[str] = field(default_factory=list)  # e.g. "phq9_item9", "fever"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def red_flag(self) -> bool:
        return bool(self.flags) and self.instrument in ("phq9", "postop")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _band(total: float, bands: Sequence[tuple[int, str]]) -> str:
    for upper, name in bands:
        if total <= upper:
            return name
    return bands[-1][1]


def phq9_band(total: float) -> str:
    return _band(total, PHQ9_BANDS)


def gad7_band(total: float) -> str:
    return _band(total, GAD7_BANDS)


def nps_category(score: float) -> str:
    if not 0 <= score <= 10:
        raise ValueError("NPS answers are 0 to 10")
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def csat_category(score: float) -> str:
    if not 1 <= score <= 5:
        raise ValueError("CSAT answers are 1 to 5")
    return "satisfied" if score >= 4 else "neutral" if score >= 3 else "dissatisfied"


def nps(scores: Sequence[float]) -> float:
    """Net Promoter Score of many answers: % promoters − % detractors (−100 … 100)."""
    if not scores:
        return 0.0
    cats = [nps_category(s) for s in scores]
    return round(100.0 * (cats.count("promoter") - cats.count("detractor")) / len(cats), 1)


def csat_percent(scores: Sequence[float]) -> float:
    """CSAT of many answers: the % satisfied (4 or 5)."""
    if not scores:
        return 0.0
    return round(100.0 * sum(csat_category(s) == "satisfied" for s in scores) / len(scores), 1)


def phq9(items: Sequence[float | None]) -> Result:
    """Nine item scores 0–3 (None: unanswered). The total of answered items; the band only
    when every item is answered."""
    if len(items) != 9:
        raise ValueError("PHQ-9 has nine items")
    return _summed("phq9", items, 3, PHQ9_BANDS, item9=True)


def gad7(items: Sequence[float | None]) -> Result:
    if len(items) != 7:
        raise ValueError("GAD-7 has seven items")
    return _summed("gad7", items, 3, GAD7_BANDS, item9=False)


def _summed(
    instrument: str,
    items: Sequence[float | None],
    top: int,
    bands: Sequence[tuple[int, str]],
    *,
    item9: bool,
) -> Result:
    for value in items:
        if value is not None and not 0 <= value <= top:
            raise ValueError(f"item scores are 0 to {top}")
    answered = [float(v) for v in items if v is not None]
    missing = [i + 1 for i, v in enumerate(items) if v is None]
    total = sum(answered)
    result = Result(
        instrument,
        total=total,
        band="incomplete" if missing else _band(total, bands),
        items=[float(v) if v is not None else -1.0 for v in items],
        missing=missing,
    )
    if item9 and items[8] is not None and items[8] > 0:
        result.flags.append("phq9_item9")
    return result


# The post-operative questionnaire's linkIds (data/postop-symptoms.json).
POSTOP_RED_PAIN = 8
POSTOP_WATCH_PAIN = 5
POSTOP_RED_TEMPERATURE = 38.5


def postop(answers: fhir.Answers) -> Result:
    def first(link_id: str) -> Any:
        values = answers.get(link_id) or []
        return values[0] if values else None

    pain = first("pain")
    fever = first("fever") is True
    temperature = first("temperature")
    redness = first("wound-redness") is True
    discharge = first("wound-discharge")
    nausea = first("nausea")
    flags: list[str] = []
    if isinstance(pain, int | float) and pain >= POSTOP_RED_PAIN:
        flags.append("severe_pain")
    if isinstance(temperature, int | float) and temperature >= POSTOP_RED_TEMPERATURE:
        flags.append("high_fever")
    if discharge == "pus":
        flags.append("wound_pus")
    if redness and fever:
        flags.append("wound_infection_signs")
    if nausea == "vomiting":
        flags.append("persistent_vomiting")
    if first("breathless") is True:
        flags.append("breathless")
    if first("calf-swelling") is True:
        flags.append("calf_swelling")
    watch = (
        (isinstance(pain, int | float) and pain >= POSTOP_WATCH_PAIN)
        or fever
        or redness
        or nausea == "nausea"
        or discharge in ("clear", "bloody")
    )
    band = "red_flag" if flags else "watch" if watch else "as_expected"
    return Result(
        "postop",
        total=float(len(flags)),
        band=band,
        items=[float(pain) if isinstance(pain, int | float) else -1.0],
        flags=flags,
        details={"pain": pain, "temperature": temperature},
    )


def satisfaction(answers: fhir.Answers) -> Result:
    nps_values = answers.get("nps") or []
    csat_values = answers.get("csat") or []
    details: dict[str, Any] = {}
    score = None
    band = ""
    if nps_values and isinstance(nps_values[0], int | float):
        score = float(nps_values[0])
        band = nps_category(score)
        details["nps"] = score
        details["nps_category"] = band
    if csat_values:
        try:
            csat_value = float(str(csat_values[0]))
        except ValueError:
            csat_value = None
        if csat_value is not None:
            details["csat"] = csat_value
            details["csat_category"] = csat_category(csat_value)
    return Result("satisfaction", total=score, band=band, details=details)


def instrument_of(definition: fhir.Definition) -> str:
    """The instrument a questionnaire is, from its codes ("" if none is known)."""
    codes = set(definition.codes)
    if PHQ9_PANEL in codes:
        return "phq9"
    if GAD7_PANEL in codes:
        return "gad7"
    for coding in definition.resource.get("code") or []:
        if (
            isinstance(coding, dict)
            and coding.get("system") == INSTRUMENT_SYSTEM
            and coding.get("code") in INSTRUMENTS
        ):
            return str(coding["code"])
    return ""


def item_scores(
    definition: fhir.Definition, answers: fhir.Answers, loinc: Sequence[str]
) -> list[float | None]:
    """The ordinal scores of an instrument's items: found by LOINC item code when the
    questionnaire has them, else the first weighted choice items in document order."""
    weighted = [
        item
        for item in definition.walk()
        if item.type == "choice" and any(o.weight is not None for o in item.options)
    ]
    by_code = {code: item for item in weighted for code in item.codes}
    if any(code in by_code for code in loinc):
        chosen: list[fhir.Item | None] = [by_code.get(code) for code in loinc]
    else:
        chosen = list(weighted[: len(loinc)])
        chosen += [None] * (len(loinc) - len(chosen))
    scores: list[float | None] = []
    for item in chosen:
        if item is None:
            scores.append(None)
            continue
        values = answers.get(item.link_id) or []
        option = item.option(str(values[0])) if values else None
        scores.append(option.weight if option is not None else None)
    return scores


def score(instrument: str, definition: fhir.Definition, answers: fhir.Answers) -> Result | None:
    """Score a response to a questionnaire of a known instrument; None if unscored."""
    if instrument == "phq9":
        return phq9(item_scores(definition, answers, PHQ9_ITEMS))
    if instrument == "gad7":
        return gad7(item_scores(definition, answers, GAD7_ITEMS))
    if instrument == "postop":
        return postop(answers)
    if instrument == "satisfaction":
        return satisfaction(answers)
    return None
