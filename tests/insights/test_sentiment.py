"""Offline tone scores of patient messages (SnowNLP for Chinese, VADER for English)."""

from __future__ import annotations

import pytest

from careloop.insights import sentiment

CHINESE_POSITIVE = [
    "今天感觉很好，谢谢医生！",
    "血压稳定，好多了，太感谢护士的耐心了",
    "按时吃药以后头也不晕了，很开心",
]
CHINESE_NEGATIVE = [
    "头晕得厉害，很难受，药吃了也没用",
    "吃了药以后一直恶心，不想吃药了",
    "药太贵了，买不起，最近胸闷很担心",
]
ENGLISH_POSITIVE = [
    "I feel great today, thank you so much!",
    "My blood pressure is stable now and I feel much better.",
]
ENGLISH_NEGATIVE = [
    "I feel dizzy and awful, the pills do not help at all.",
    "Terrible headaches since the new medicine, I am worried and exhausted.",
]


class TestClearTone:
    @pytest.mark.parametrize("text", CHINESE_POSITIVE + ENGLISH_POSITIVE)
    def test_clearly_positive_scores_above_zero(self, text: str) -> None:
        value = sentiment.score(text)
        assert value >= sentiment.THRESHOLD, value
        assert sentiment.label(value) == sentiment.POSITIVE

    @pytest.mark.parametrize("text", CHINESE_NEGATIVE + ENGLISH_NEGATIVE)
    def test_clearly_negative_scores_below_zero(self, text: str) -> None:
        value = sentiment.score(text)
        assert value <= -sentiment.THRESHOLD, value
        assert sentiment.label(value) == sentiment.NEGATIVE

    def test_positive_above_zero_above_negative_in_each_language(self) -> None:
        for good, bad in (
            (CHINESE_POSITIVE, CHINESE_NEGATIVE),
            (ENGLISH_POSITIVE, ENGLISH_NEGATIVE),
        ):
            assert min(sentiment.scores(good)) > 0 > max(sentiment.scores(bad))

    def test_scores_stay_in_range(self) -> None:
        texts = CHINESE_POSITIVE + CHINESE_NEGATIVE + ENGLISH_POSITIVE + ENGLISH_NEGATIVE
        assert all(-1.0 <= v <= 1.0 for v in sentiment.scores(texts))


class TestCareWords:
    def test_a_care_complaint_reads_negative_where_the_general_model_does_not(self) -> None:
        # "Blood pressure a bit high": the general model leans positive; the care word does not.
        assert sentiment.score("血压有点偏高") < 0

    def test_negation_turns_a_complaint_into_relief(self) -> None:
        assert sentiment.zh_lexicon("头晕")[0] < 0
        assert sentiment.zh_lexicon("没有头晕")[0] > 0
        assert sentiment.zh_lexicon("不担心")[0] > 0

    def test_the_longest_word_wins(self) -> None:
        # 不舒服 is one complaint, not a negated 舒服 (which would read as relief).
        total, found = sentiment.zh_lexicon("不舒服")
        assert (total, found) == (sentiment.ZH_WORDS["不舒服"], 1)

    def test_english_care_words_are_known(self) -> None:
        assert sentiment.score("I am dizzy") < -sentiment.THRESHOLD


class TestNeutralAndInput:
    @pytest.mark.parametrize("text", ["收到", "好的", "See you on Monday", "I took my pills"])
    def test_short_plain_replies_are_neutral(self, text: str) -> None:
        assert sentiment.label(sentiment.score(text)) == sentiment.NEUTRAL

    def test_empty_text_is_zero(self) -> None:
        assert sentiment.score("") == 0.0
        assert sentiment.score("   ") == 0.0

    def test_any_cjk_character_picks_the_chinese_model(self) -> None:
        assert sentiment.is_chinese("BP 140/90 头晕")
        assert not sentiment.is_chinese("BP 140/90, dizzy")

    def test_language_forces_the_model(self) -> None:
        # Read as English, the Chinese complaint has no English words: nothing to score.
        assert sentiment.score("头晕得厉害，很难受", language="en") == 0.0
        assert sentiment.score("头晕得厉害，很难受", language="zh-hans") < 0

    def test_batch_keeps_order(self) -> None:
        texts = [CHINESE_NEGATIVE[0], ENGLISH_POSITIVE[0], "收到"]
        assert sentiment.scores(texts) == [sentiment.score(t) for t in texts]

    def test_label_bounds(self) -> None:
        assert sentiment.label(None) == sentiment.NEUTRAL
        assert sentiment.label(sentiment.THRESHOLD) == sentiment.POSITIVE
        assert sentiment.label(-sentiment.THRESHOLD) == sentiment.NEGATIVE
        assert sentiment.label(0.19) == sentiment.NEUTRAL
