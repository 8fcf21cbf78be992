"""State: persisted mid-stream it continues exactly; replay and recompute equal streaming."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careloop.rules import Event, RuleSet, StaleState, State
from careloop.rules.bench import personal_thresholds, synthetic_events

from .support import local, rule

DEFAULT = RuleSet.default()


def stream(n: int = 6000, seed: int = 5) -> list[Event]:
    return synthetic_events(n, seed)


def one_patient(pid: int = 1, n: int = 6000) -> list[Event]:
    return [e for e in stream(n) if e.patient_id == pid]


class TestJson:
    def test_round_trip_is_exact(self) -> None:
        state, _ = DEFAULT.replay(one_patient())
        text = state.to_json()
        again = State.from_json(text)
        assert again == state and again.to_json() == text
        assert State.from_json(text.encode()) == state

    def test_new_state_is_small_and_independent(self) -> None:
        one, two = DEFAULT.new_state(), DEFAULT.new_state()
        DEFAULT.feed(one, local("bp", datetime(2025, 3, 1, 8), 190, 100))  # noqa: DTZ001
        assert one != two
        assert len(two.to_json()) < 400

    def test_state_stays_bounded_over_a_long_history(self) -> None:
        events = [e for e in synthetic_events(100_000, 9) if e.patient_id == 3]
        assert len(events) >= 200
        state, _ = DEFAULT.replay(events)
        assert len(state.to_json()) < 2000

    @pytest.mark.parametrize(
        "garbage", ["", "[]", "{}", '{"v": 1, "s": []}', '{"v": "x"}', b"\xff"]
    )
    def test_garbage_is_refused(self, garbage: str | bytes) -> None:
        with pytest.raises(ValueError):
            State.from_json(garbage)

    def test_state_of_other_rules_is_refused_not_misread(self) -> None:
        state = DEFAULT.new_state()
        changed = rule(kind="threshold", event="bp", condition="value > 1")
        with pytest.raises(StaleState, match="replay"):
            changed.feed(state, local("bp", datetime(2025, 3, 1, 8), 190, 100))  # noqa: DTZ001

    def test_persisting_at_every_point_gives_the_same_fires(self) -> None:
        events = one_patient(2, 12_000)
        expected = DEFAULT.replay(events)[1]
        assert len(expected) > 5
        for cut in range(0, len(events) + 1, 7):
            state, first = DEFAULT.replay(events[:cut])
            restored = State.from_json(state.to_json())
            rest = [out for e in events[cut:] for out in DEFAULT.feed(restored, e)]
            assert first + rest == expected, cut


class TestRecompute:
    def test_recompute_equals_streaming_interleaved_patients(self) -> None:
        events = stream(8000)
        personal = personal_thresholds(40, 5)
        states: dict[int, State] = {}
        streamed = DEFAULT.feed_many(states, events, personal)

        by_patient: dict[int, list[Event]] = {}
        for e in events:
            by_patient.setdefault(e.patient_id, []).append(e)
        order = list(by_patient)
        random.Random(1).shuffle(order)
        recomputed = DEFAULT.recompute(((p, by_patient[p]) for p in order), personal)

        def key(o: object) -> tuple[str, str]:
            return (type(o).__name__, repr(o))

        assert sorted(streamed, key=key) == sorted(recomputed, key=key)
        for pid in order:
            assert DEFAULT.replay(by_patient[pid], personal.get(pid))[0] == states[pid]

    def test_feed_many_keeps_each_patients_order(self) -> None:
        events = stream(4000)
        out = DEFAULT.feed_many({}, events)
        ats: dict[int, int] = {}
        for o in out:
            assert ats.get(o.patient_id, 0) <= o.at
            ats[o.patient_id] = o.at

    def test_same_input_same_output(self) -> None:
        events = stream(3000)
        assert DEFAULT.feed_many({}, events) == DEFAULT.feed_many({}, events)


KINDS = st.sampled_from(["bp", "glucose", "heart_rate", "dose", "weight", "questionnaire", "adr"])


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """One patient's events at random gaps with values around every default threshold."""
    count = draw(st.integers(1, 60))
    t = datetime(2025, 3, 1, 0, 0)  # noqa: DTZ001 - local wall-clock
    events = []
    for _ in range(count):
        t += timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        kind = draw(KINDS)
        value = draw(st.sampled_from([0, 1, 2, 3, 3.8, 7.2, 20, 72, 95, 105, 150, 185]))
        value2 = draw(st.sampled_from([None, 80, 95, 115]))
        context = draw(st.sampled_from(["", "fasting", "missed", "taken", "phq9"]))
        items = draw(st.sampled_from([(), (0.0,) * 9, (1.0,) * 9]))
        events.append(local(kind, t, value, value2, context=context, items=items))
    return events


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(histories(), st.data())
    def test_persist_anywhere_equals_one_pass(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        cut = data.draw(st.integers(0, len(events)))
        personal = data.draw(st.sampled_from([None, {"bp-crisis": {"sys": 150}}]))
        expected = DEFAULT.replay(events, personal)
        state, first = DEFAULT.replay(events[:cut], personal)
        state = State.from_json(state.to_json())
        rest = [o for e in events[cut:] for o in DEFAULT.feed(state, e, personal)]
        assert first + rest == expected[1]
        assert state == expected[0]

    @settings(max_examples=100, deadline=None)
    @given(histories())
    def test_fire_keys_are_unique_and_clears_follow_fires(self, events: list[Event]) -> None:
        out = DEFAULT.replay(events)[1]
        keys = [o.key for o in out if hasattr(o, "key")]
        assert len(keys) == len(set(keys)) or len({e.at for e in events}) < len(events)
        open_: set[tuple[str, str]] = set()
        for o in out:
            if hasattr(o, "key"):
                open_.add((o.rule, o.stage))
            else:
                assert (o.rule, o.stage) in open_
                open_.discard((o.rule, o.stage))
