"""Pure rules of health education: plan stages, who an item is for, video checks, and the
plain-language words of visit summaries. Nothing here touches the database."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from careloop.careplans.domain import DOSE_TIMES, UNSCHEDULED_FREQUENCIES, code_matches

# Days since the enrolment started (inclusive bounds; None: no upper bound).
STAGES: dict[str, tuple[int, int | None]] = {
    "any": (0, None),
    "after_discharge": (0, 3),
    "week_1": (0, 6),
    "week_2": (7, 13),
    "weeks_3_4": (14, 27),
    "month_2": (28, 59),
    "month_3": (60, 89),
    "later": (90, None),
}

VIDEO_MAX_BYTES = 50 * 1024 * 1024
_ICD_PREFIX = re.compile(r"^[A-Z]\d{0,2}(\.?[0-9A-Z]{0,4})?$")
_SNOMED = re.compile(r"^\d{6,18}$")


def stage_matches(stage: str, day: int) -> bool:
    low, high = STAGES.get(stage, (0, None))
    return day >= low and (high is None or day <= high)


@dataclass(frozen=True)
class Audience:
    """What the push knows of one patient on one enrolment."""

    language: str
    icd10_codes: Sequence[str]
    snomed_codes: Sequence[str]
    day: int


@dataclass(frozen=True)
class Tags:
    language: str
    stage: str
    icd10_prefixes: Sequence[str] = field(default_factory=tuple)
    snomed_codes: Sequence[str] = field(default_factory=tuple)


def condition_matches(tags: Tags, icd10_codes: Iterable[str], snomed_codes: Iterable[str]) -> bool:
    """An untagged item is general (everyone); a tagged one needs one matching condition."""
    if not tags.icd10_prefixes and not tags.snomed_codes:
        return True
    icd = list(icd10_codes)
    if tags.icd10_prefixes and any(code_matches(c, tags.icd10_prefixes) for c in icd):
        return True
    return bool(set(tags.snomed_codes) & set(snomed_codes))


def is_for(tags: Tags, who: Audience) -> bool:
    return (
        tags.language == who.language
        and stage_matches(tags.stage, who.day)
        and condition_matches(tags, who.icd10_codes, who.snomed_codes)
    )


def parse_tags(text: str) -> tuple[list[str], list[str], list[str]]:
    """Condition tags typed by staff ("I10, E11, 38341003") → (ICD-10 prefixes, SNOMED ids,
    problems)."""
    icd: list[str] = []
    snomed: list[str] = []
    problems: list[str] = []
    for raw in re.split(r"[,，;；\s]+", text or ""):
        tag = raw.strip().upper()
        if not tag:
            continue
        if _SNOMED.match(tag):
            if tag not in snomed:
                snomed.append(tag)
        elif _ICD_PREFIX.match(tag):
            if tag not in icd:
                icd.append(tag)
        else:
            problems.append(raw.strip())
    return icd, snomed, problems


def video_type(head: bytes) -> str | None:
    """The video format by its first bytes: MP4 (an ISO BMFF ``ftyp`` box) or WebM (EBML with
    the webm doc type); None for anything else, whatever its name claims."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "video/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in head[:64]:
        return "video/webm"
    return None


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """One range of an HTTP Range header ("bytes=0-99", "bytes=100-", "bytes=-50") as an
    inclusive (start, end); None when absent, multi-range or unsatisfiable."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not m or size <= 0 or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
    else:
        start = max(size - int(m.group(2)), 0)
        end = size - 1
    end = min(end, size - 1)
    if start > end:
        return None
    return start, end


# --- visit summaries: plain-language words, per language ---------------------------------------

Words = Mapping[str, str]


@dataclass(frozen=True)
class ConditionAdvice:
    prefixes: tuple[str, ...]
    explain: Words
    warnings: tuple[Words, ...]


# What a diagnosis means and what to watch for, in plain words (general guidance written for
# CareLoop; the clinic's own instructions come first).
ADVICE: tuple[ConditionAdvice, ...] = (
    ConditionAdvice(
        ("I10", "I11", "I12", "I13", "I15"),
        {
            "en": "High blood pressure: the pressure in your blood vessels is higher than it "
            "should be. Medicine, less salt and regular activity bring it down.",
            "zh-hans": "高血压：血管里的压力比正常高。按时吃药、少吃盐、规律活动可以把血压降下来。",
        },
        (
            {
                "en": "Call 120 or go to the emergency department for a severe headache, chest "
                "pain, sudden weakness or numbness of the face, arm or leg, or trouble speaking.",
                "zh-hans": "如果出现剧烈头痛、胸痛、脸部或手脚突然无力麻木、说话不清，"
                "请立即拨打120或去急诊。",
            },
            {
                "en": "Measure your blood pressure at home as your care team asked; if it is "
                "180/110 or higher, rest 5 minutes and measure again, and contact us if still "
                "high.",
                "zh-hans": "按医护人员的要求在家量血压；如果高于或等于180/110，休息5分钟再量，"
                "仍然很高请联系我们。",
            },
        ),
    ),
    ConditionAdvice(
        ("E10", "E11", "E13", "E14"),
        {
            "en": "Diabetes: your body does not keep blood sugar in the normal range by itself. "
            "Medicine, food choices, activity and checking your sugar keep it under control.",
            "zh-hans": "糖尿病：身体不能自己把血糖保持在正常范围。药物、合理饮食、运动和监测血糖"
            "可以帮助控制。",
        },
        (
            {
                "en": "Low sugar signs: shaking, sweating, hunger, confusion. Eat or drink "
                "something sweet at once (for example 3 sugar cubes or half a glass of juice) "
                "and check again after 15 minutes.",
                "zh-hans": "低血糖表现：发抖、出汗、心慌、饥饿、意识模糊。立即吃含糖食物"
                "（如3块方糖或半杯果汁），15分钟后再测血糖。",
            },
            {
                "en": "Seek care the same day for very high sugar with thirst, vomiting or "
                "drowsiness, or for a foot wound that does not heal.",
                "zh-hans": "如果血糖很高并伴有口渴、呕吐、嗜睡，或脚上伤口不愈合，请当天就医。",
            },
        ),
    ),
    ConditionAdvice(
        ("I20", "I21", "I22", "I25"),
        {
            "en": "Coronary heart disease: the blood vessels of your heart are narrowed. "
            "Medicine and a healthy lifestyle protect your heart.",
            "zh-hans": "冠心病：给心脏供血的血管变窄了。坚持用药和健康的生活方式可以保护心脏。",
        },
        (
            {
                "en": "Call 120 at once for chest pain or pressure lasting more than 5 minutes, "
                "especially with sweating, shortness of breath or pain spreading to the arm "
                "or jaw.",
                "zh-hans": "胸痛或胸闷超过5分钟，尤其伴有出汗、气短或疼痛放射到手臂、下巴，"
                "请立即拨打120。",
            },
        ),
    ),
    ConditionAdvice(
        ("I50",),
        {
            "en": "Heart failure: your heart pumps less strongly than it should. Medicine, "
            "limiting salt and fluid, and weighing yourself daily help.",
            "zh-hans": "心力衰竭：心脏泵血的力量变弱了。按时用药、限制盐和水的摄入、每天称体重"
            "都有帮助。",
        },
        (
            {
                "en": "Contact us if your weight goes up by more than 2 kg in 3 days, your legs "
                "swell, or you get more short of breath lying down.",
                "zh-hans": "如果3天内体重增加超过2公斤、腿脚肿胀或平躺时更气短，请联系我们。",
            },
        ),
    ),
    ConditionAdvice(
        ("Z48", "Z98", "Z09", "T81"),
        {
            "en": "After your operation: your wound and body need time to heal. Follow the "
            "wound care and activity advice you were given.",
            "zh-hans": "手术后：伤口和身体需要时间恢复。"
            "请按照医护人员给您的伤口护理和活动建议去做。",
        },
        (
            {
                "en": "Contact us the same day for fever above 38 °C, a wound that is red, hot, "
                "swollen or leaking, or pain that keeps getting worse.",
                "zh-hans": "如果体温超过38°C、伤口红肿发热或有渗液、疼痛越来越重，请当天联系我们。",
            },
            {
                "en": "Call 120 for sudden shortness of breath, chest pain, or a painful "
                "swollen calf.",
                "zh-hans": "如果突然气短、胸痛，或小腿肿痛，请立即拨打120。",
            },
        ),
    ),
)

GENERAL_WARNING: Words = {
    "en": "If you feel much worse, or have any sign that worries you, contact your care team; "
    "in an emergency call 120.",
    "zh-hans": "如果您感觉明显变差，或有任何让您担心的情况，请联系您的医护团队；"
    "紧急情况请拨打120。",
}

FREQUENCY_WORDS: dict[str, Words] = {
    "qd": {"en": "once a day", "zh-hans": "每天1次"},
    "bid": {"en": "twice a day", "zh-hans": "每天2次"},
    "tid": {"en": "three times a day", "zh-hans": "每天3次"},
    "qid": {"en": "four times a day", "zh-hans": "每天4次"},
    "qn": {"en": "every night", "zh-hans": "每晚1次"},
    "qod": {"en": "every other day", "zh-hans": "隔天1次"},
    "qw": {"en": "once a week", "zh-hans": "每周1次"},
    "prn": {"en": "only when needed", "zh-hans": "需要时服用"},
    "st": {"en": "once, straight away", "zh-hans": "立即使用1次"},
    "ud": {"en": "as your doctor directed", "zh-hans": "遵医嘱"},
}

ROUTE_WORDS: dict[str, Words] = {
    "po": {"en": "by mouth", "zh-hans": "口服"},
    "sl": {"en": "under the tongue", "zh-hans": "舌下含服"},
    "sc": {"en": "injection under the skin", "zh-hans": "皮下注射"},
    "im": {"en": "injection into the muscle", "zh-hans": "肌肉注射"},
    "iv": {"en": "into a vein (at the clinic)", "zh-hans": "静脉给药（在医院）"},
    "inh": {"en": "inhaled", "zh-hans": "吸入"},
    "top": {"en": "on the skin", "zh-hans": "外用"},
}


def word(words: Words, language: str) -> str:
    return words.get(language) or words.get("en") or ""


def advice_for(code: str) -> ConditionAdvice | None:
    for advice in ADVICE:
        if code_matches(code, advice.prefixes):
            return advice
    return None


_CODE_IN_TEXT = re.compile(r"\b([A-Z]\d{2}(?:\.[0-9A-Z]{1,4})?)\b")


def codes_in(text: str) -> list[str]:
    """ICD-10 codes written in a visit's free-text diagnoses ("I10 高血压; E11.9")."""
    seen: list[str] = []
    for code in _CODE_IN_TEXT.findall((text or "").upper()):
        if code not in seen:
            seen.append(code)
    return seen


def split_diagnoses(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,，;；、\n]+", text or "") if p.strip()]


def dose_times(frequency: str, overrides: Mapping[str, Sequence[str]]) -> list[str]:
    if frequency in UNSCHEDULED_FREQUENCIES:
        return []
    return list(overrides.get(frequency) or DOSE_TIMES.get(frequency, ()))


def format_dose(dose: Any, unit: str) -> str:
    if dose is None:
        return ""  # an order received without an amount
    text = f"{dose:f}" if hasattr(dose, "as_tuple") else str(dose)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}".strip()


def warnings_for(codes: Iterable[str], language: str) -> list[str]:
    out: list[str] = []
    for code in codes:
        advice = advice_for(code)
        if advice:
            for w in advice.warnings:
                text = word(w, language)
                if text not in out:
                    out.append(text)
    out.append(word(GENERAL_WARNING, language))
    return out
