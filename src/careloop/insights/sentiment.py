"""Tone of a patient's message, offline: a score in [-1, 1] (negative … positive).

Chinese text (any CJK character) is scored by SnowNLP's sentiment model (probability p of
positive, mapped to 2p − 1); other text by VADER's compound score. Both models ship inside
their packages, so nothing leaves the machine. General-purpose models misread the words of
follow-up care ("头晕", "按时吃药", "dizzy"), so a small lexicon of care words is blended in:
for Chinese it is matched here (with a preceding negation such as 没有 or 不 flipping it), for
English its words are added to VADER's own lexicon.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# Any CJK unified ideograph (basic block and extension A) or CJK punctuation.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3000-\u303f\uff01-\uff5e]")

POSITIVE = "positive"
NEUTRAL = "neutral"
NEGATIVE = "negative"
# A message whose score is within ±THRESHOLD reads as neutral.
THRESHOLD = 0.2

# Words of follow-up care, with their weight (−2 … +2). Longer entries win over the shorter
# ones inside them (不舒服 is one negative word, not 不 + 舒服).
ZH_WORDS: dict[str, float] = {
    # symptoms and complaints
    "头晕": -1.5,
    "头痛": -1.5,
    "头疼": -1.5,
    "难受": -1.5,
    "不舒服": -1.5,
    "胸闷": -1.6,
    "胸痛": -1.8,
    "心慌": -1.4,
    "心悸": -1.4,
    "气短": -1.4,
    "喘不上气": -1.8,
    "恶心": -1.3,
    "呕吐": -1.5,
    "失眠": -1.2,
    "睡不着": -1.2,
    "乏力": -1.0,
    "没力气": -1.0,
    "水肿": -1.2,
    "浮肿": -1.2,
    "疼": -1.0,
    "痛": -1.0,
    "加重": -1.5,
    "更严重": -1.6,
    "越来越差": -1.6,
    "偏高": -1.0,
    "有点高": -0.8,
    "血压高": -1.0,
    "血糖高": -1.0,
    "副作用": -1.2,
    # worries and barriers
    "担心": -1.0,
    "害怕": -1.2,
    "焦虑": -1.3,
    "烦": -1.0,
    "太贵": -1.2,
    "买不起": -1.5,
    "忘了吃": -1.0,
    "不想吃药": -1.5,
    "没用": -1.3,
    "没效果": -1.3,
    "不管用": -1.3,
    "不满意": -1.6,
    "失望": -1.5,
    "生气": -1.5,
    "投诉": -1.5,
    "等太久": -1.2,
    # improvement and thanks
    "好多了": 1.6,
    "好转": 1.5,
    "改善": 1.2,
    "稳定": 1.0,
    "正常": 0.8,
    "降下来": 1.2,
    "不错": 1.2,
    "挺好": 1.3,
    "很好": 1.4,
    "舒服": 1.0,
    "轻松": 1.0,
    "放心": 1.2,
    "安心": 1.2,
    "谢谢": 1.2,
    "感谢": 1.4,
    "辛苦了": 1.0,
    "满意": 1.4,
    "耐心": 1.0,
    "按时吃药": 1.0,
    "按时": 0.6,
    "坚持": 0.8,
    "开心": 1.4,
}
_ZH_BY_LENGTH = sorted(ZH_WORDS, key=len, reverse=True)
# A negation just before a care word turns it round ("没有头晕", "不担心").
_ZH_NEGATIONS = ("没有", "不再", "不", "没", "无", "未", "别")

EN_WORDS: dict[str, float] = {
    "dizzy": -1.6,
    "dizziness": -1.6,
    "lightheaded": -1.4,
    "nausea": -1.5,
    "nauseous": -1.6,
    "headache": -1.5,
    "headaches": -1.5,
    "breathless": -1.6,
    "palpitations": -1.4,
    "swollen": -1.2,
    "swelling": -1.2,
    "insomnia": -1.3,
    "sleepless": -1.3,
    "tired": -1.0,
    "exhausted": -1.4,
    "unwell": -1.6,
    "worse": -1.6,
    "expensive": -1.0,
    "unaffordable": -1.5,
    "forgot": -0.8,
    "improving": 1.5,
    "improved": 1.5,
    "stable": 1.0,
    "recovered": 1.6,
    "grateful": 1.8,
}

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_SHORT = 6  # texts shorter than this (in characters) get a damped model score
_BLEND = 0.6  # the share of the care lexicon in a Chinese score when it found any word


def is_chinese(text: str) -> bool:
    return bool(_CJK.search(text or ""))


def label(value: float | None) -> str:
    """positive / neutral / negative for a score (neutral when there is none)."""
    if value is None:
        return NEUTRAL
    if value >= THRESHOLD:
        return POSITIVE
    if value <= -THRESHOLD:
        return NEGATIVE
    return NEUTRAL


def zh_lexicon(text: str) -> tuple[float, int]:
    """The care words of a Chinese text: (sum of weights, number of words found)."""
    total = 0.0
    found = 0
    i = 0
    while i < len(text):
        word = next((w for w in _ZH_BY_LENGTH if text.startswith(w, i)), None)
        if word is None:
            i += 1
            continue
        weight = ZH_WORDS[word]
        before = text[max(0, i - 2) : i]
        if any(before.endswith(n) for n in _ZH_NEGATIONS):
            # "不头晕" is relief, but less strongly positive than "头晕" is negative.
            weight = -weight * 0.6
        total += weight
        found += 1
        i += len(word)
    return total, found


@lru_cache(maxsize=1)
def _snownlp() -> Any:
    # Imported on first use: loading the model takes a couple of seconds.
    from snownlp import SnowNLP

    return SnowNLP


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    analyser.lexicon.update(EN_WORDS)
    return analyser


def _zh(text: str) -> float:
    p = float(_snownlp()(text).sentiments)
    # The model is unsure of very short replies ("收到", "好的"): they count for less.
    han = len(_HAN.findall(text))
    model = (2 * p - 1) * min(1.0, han / _SHORT)
    total, found = zh_lexicon(text)
    if not found:
        return model
    words = math.tanh(total / 1.5)
    return (1 - _BLEND) * model + _BLEND * words


def _en(text: str) -> float:
    return float(_vader().polarity_scores(text)["compound"])


@lru_cache(maxsize=4096)
def _cached(text: str, chinese: bool) -> float:
    value = _zh(text) if chinese else _en(text)
    return max(-1.0, min(1.0, round(value, 4)))


def score(text: str, language: str | None = None) -> float:
    """The tone of a text in [-1, 1]; 0 for an empty one.

    ``language`` ("zh-hans", "en", …) forces a model; without it, a text with any CJK
    character is read as Chinese."""
    text = (text or "").strip()
    if not text:
        return 0.0
    if language:
        chinese = language.lower().startswith("zh")
    else:
        chinese = is_chinese(text)
    return _cached(text, chinese)


def scores(texts: Iterable[str], language: str | None = None) -> list[float]:
    """score() of each text, in order."""
    return [score(t, language) for t in texts]
