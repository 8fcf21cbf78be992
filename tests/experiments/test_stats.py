"""The arithmetic of careloop.experiments.stats against values worked out by hand or published."""

from __future__ import annotations

import math

import pytest

from careloop.experiments import stats


class TestProportions:
    def test_wilson_by_hand(self) -> None:
        # 56/70: p = 0.8, z = 1.959964; centre = (0.8 + z²/140) / (1 + z²/70) = 0.784393,
        # half = z·√(0.8·0.2/70 + z²/19600) / (1 + z²/70) = 0.092560.
        low, high = stats.wilson(56, 70)
        assert low == pytest.approx(0.691834, abs=1e-5)
        assert high == pytest.approx(0.876953, abs=1e-5)

    def test_wilson_of_zero_and_all(self) -> None:
        assert stats.wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
        assert stats.wilson(10, 10)[1] == pytest.approx(1.0, abs=1e-12)
        assert stats.wilson(0, 10)[1] == pytest.approx(0.277535, abs=1e-5)  # z²/(n + z²)
        with pytest.raises(ValueError):
            stats.wilson(3, 0)

    def test_newcombe_published_examples(self) -> None:
        # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10.
        d = stats.newcombe(56, 70, 48, 80)
        assert d.estimate == pytest.approx(0.2)
        assert (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)
        d = stats.newcombe(9, 10, 3, 10)
        assert (round(d.low, 4), round(d.high, 4)) == (0.1705, 0.8090)

    def test_newcombe_is_built_from_the_two_wilson_intervals(self) -> None:
        l1, u1 = stats.wilson(56, 70)
        l2, u2 = stats.wilson(48, 80)
        d = stats.newcombe(56, 70, 48, 80)
        assert d.low == pytest.approx(0.2 - math.sqrt((0.8 - l1) ** 2 + (u2 - 0.6) ** 2))
        assert d.high == pytest.approx(0.2 + math.sqrt((u1 - 0.8) ** 2 + (0.6 - l2) ** 2))

    def test_relative_risk_by_hand(self) -> None:
        # RR = 0.8 / 0.6 = 1.3333; se(ln RR) = √(1/56 − 1/70 + 1/48 − 1/80) = 0.109109;
        # exp(0.287682 ∓ 1.959964 · 0.109109) = 1.07663 … 1.65125.
        rr = stats.relative_risk(56, 70, 48, 80)
        assert rr is not None
        assert rr.estimate == pytest.approx(4 / 3)
        assert rr.low == pytest.approx(1.07663, abs=1e-4)
        assert rr.high == pytest.approx(1.65125, abs=1e-4)
        assert stats.relative_risk(0, 10, 3, 10) is None

    def test_pooled_z_by_hand(self) -> None:
        # pooled 104/150 = 0.693333; se = √(0.693333 · 0.306667 · (1/70 + 1/80)) = 0.075467;
        # z = 0.2 / 0.075467 = 2.6502, two-sided p = 0.00805.
        z, p = stats.two_proportions_z(56, 70, 48, 80)
        assert z == pytest.approx(2.6502, abs=1e-3)
        assert p == pytest.approx(0.00805, abs=5e-5)
        assert stats.two_proportions_z(0, 5, 0, 5) == (0.0, 1.0)


class TestWelch:
    def test_by_hand(self) -> None:
        # a = 1..5: mean 3, variance 2.5; b = 3, 5, 7: mean 5, variance 4.
        # se² = 2.5/5 + 4/3 = 1.833333; t = −2 / 1.354006 = −1.47710;
        # df = 1.833333² / (0.5²/4 + 1.333333²/2) = 3.53285.
        mean_a, var_a = stats.mean_var([1, 2, 3, 4, 5])
        mean_b, var_b = stats.mean_var([3, 5, 7])
        assert (mean_a, var_a, mean_b, var_b) == (3, 2.5, 5, 4)
        w = stats.welch(mean_a, var_a, 5, mean_b, var_b, 3)
        assert w is not None
        assert w.estimate == -2
        assert w.t == pytest.approx(-1.47710, abs=1e-4)
        assert w.df == pytest.approx(3.53285, abs=1e-4)
        assert w.p_value == pytest.approx(0.2227, abs=1e-3)
        # The interval is estimate ± t(0.975, df) · se, symmetric around the estimate.
        assert (w.low + w.high) / 2 == pytest.approx(-2)
        assert (w.high - w.low) / 2 / math.sqrt(1.833333) == pytest.approx(2.9271, abs=2e-3)

    def test_undefined_with_fewer_than_two_values(self) -> None:
        assert stats.welch(1, 0, 1, 2, 1, 5) is None
        assert stats.welch(1, 0, 4, 1, 0, 4) is None


class TestSpending:
    def test_spending_function_by_hand(self) -> None:
        # α(t) = 4 − 4Φ(z₀.₉₈₇₅ / √t): z₀.₉₈₇₅ = 2.241403; at t = 0.5, 2.241403/√0.5 = 3.169822,
        # 1 − Φ(3.169822) = 0.000763, so α(0.5) = 0.003051.
        assert stats.obf_spending(0.5) == pytest.approx(0.003051, abs=2e-6)
        assert stats.obf_spending(1.0) == pytest.approx(0.05)
        assert stats.obf_spending(0.0) == 0.0

    def test_one_look_is_the_fixed_sample_test(self) -> None:
        assert stats.boundaries([1.0]) == [pytest.approx(1.959964, abs=1e-5)]

    def test_first_look_spends_its_own_alpha(self) -> None:
        # P(|Z| ≥ c) = α(0.5) = 0.003051 ⇒ c = Φ⁻¹(1 − 0.0015253) = 2.9626.
        assert stats.boundaries([0.5, 1.0])[0] == pytest.approx(2.9626, abs=1e-3)

    @pytest.mark.parametrize(
        ("fractions", "expected"),
        [
            # Lan–DeMets O'Brien–Fleming-type bounds, two-sided α = 0.05, as tabulated for
            # equally spaced looks (e.g. by the R packages ldbounds and gsDesign).
            ([0.5, 1.0], [2.963, 1.969]),
            ([0.2, 0.4, 0.6, 0.8, 1.0], [4.877, 3.357, 2.680, 2.290, 2.031]),
        ],
    )
    def test_published_boundaries(self, fractions: list[float], expected: list[float]) -> None:
        found = stats.boundaries(fractions, 0.05)
        assert found == [pytest.approx(e, abs=2e-3) for e in expected]

    def test_bad_fractions(self) -> None:
        with pytest.raises(ValueError):
            stats.boundaries([0.5, 0.5])
        with pytest.raises(ValueError):
            stats.boundaries([0.0, 1.0])
