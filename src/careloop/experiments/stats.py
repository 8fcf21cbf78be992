"""Effect sizes, confidence intervals, p-values and group-sequential stop boundaries.

Pure functions over counts and numbers, with no database access:

- ``wilson`` — the Wilson score interval of one proportion;
- ``newcombe`` — the difference of two independent proportions with Newcombe's hybrid score
  interval (method 10 of Newcombe 1998), built from the two Wilson intervals;
- ``relative_risk`` — p1 / p2 with the log (Katz) interval;
- ``two_proportions_z`` — the pooled two-proportion z test, two-sided;
- ``welch`` — the difference of two means with the Welch–Satterthwaite t interval and test;
- ``obf_spending`` — the Lan–DeMets O'Brien–Fleming-type alpha spending function, spent on
  each side with α/2 (symmetric two-sided boundaries): α(t) = 4 − 4 Φ(z₁₋α/₄ / √t);
- ``boundaries`` — the two-sided critical z values at looks taken at information fractions
  t₁ < … < t_K, so that the probability under no effect of crossing first at look k equals
  α(t_k) − α(t_{k−1}). The crossing probabilities are computed by recursive numerical
  integration of the score process (a Brownian motion in information time) on a grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import special
from scipy import stats as sps

_N = NormalDist()


def z_of(confidence: float) -> float:
    """The two-sided critical value: 1.959964 for 0.95."""
    return _N.inv_cdf(1 - (1 - confidence) / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of successes / n."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must be within 0..n")
    z = z_of(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Difference:
    """An estimate (arm minus control) and its confidence interval."""

    estimate: float
    low: float
    high: float


def newcombe(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> Difference:
    """p1 − p2 with Newcombe's hybrid score interval (no continuity correction)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p1 - p2
    below = math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    above = math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Difference(d, d - below, d + above)


def relative_risk(
    x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95
) -> Difference | None:
    """p1 / p2 with the interval exp(ln RR ± z·√(1/x1 − 1/n1 + 1/x2 − 1/n2)); None when a
    count of successes is zero (the ratio or its interval is then undefined)."""
    if x1 <= 0 or x2 <= 0 or n1 <= 0 or n2 <= 0:
        return None
    rr = (x1 / n1) / (x2 / n2)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    z = z_of(confidence)
    return Difference(rr, math.exp(math.log(rr) - z * se), math.exp(math.log(rr) + z * se))


def two_proportions_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of the pooled test of p1 = p2; (0, 1) when the pooled rate is 0 or 1."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, 2 * (1 - _N.cdf(abs(z)))


@dataclass(frozen=True)
class Welch:
    estimate: float
    low: float
    high: float
    t: float
    df: float
    p_value: float


def welch(
    mean1: float,
    var1: float,
    n1: int,
    mean2: float,
    var2: float,
    n2: int,
    confidence: float = 0.95,
) -> Welch | None:
    """mean1 − mean2 with the Welch t interval and two-sided p (sample variances, n − 1).
    None when a group has fewer than two values or both variances are zero."""
    if n1 < 2 or n2 < 2:
        return None
    a, b = var1 / n1, var2 / n2
    se2 = a + b
    if se2 <= 0:
        return None
    se = math.sqrt(se2)
    df = se2 * se2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    d = mean1 - mean2
    t = d / se
    q = float(sps.t.ppf(1 - (1 - confidence) / 2, df))
    p = float(2 * sps.t.sf(abs(t), df))
    return Welch(d, d - q * se, d + q * se, t, df, p)


def mean_var(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (n − 1); variance 0 for fewer than two values."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, sum((v - mean) ** 2 for v in values) / (n - 1)


def obf_spending(t: float, alpha: float = 0.05) -> float:
    """Cumulative two-sided alpha spent by information fraction t (Lan–DeMets, O'Brien–
    Fleming type, α/2 on each side): 0 at t = 0 and alpha at t = 1."""
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    return 4 * (1 - _N.cdf(_N.inv_cdf(1 - alpha / 4) / math.sqrt(t)))


_GRID = 1201  # points of the integration grid (odd: Simpson's rule)


def _simpson(m: int, h: float) -> np.ndarray:
    w = np.ones(m)
    w[1:-1:2] = 4
    w[2:-1:2] = 2
    return w * h / 3


def boundaries(fractions: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Two-sided critical z values at looks at the given information fractions (increasing,
    in (0, 1]); the last look at t = 1 spends whatever alpha is left."""
    times = [float(t) for t in fractions]
    if not times or any(t <= 0 or t > 1 for t in times):
        raise ValueError("information fractions must be in (0, 1]")
    if any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError("information fractions must increase")
    spent = [obf_spending(t, alpha) for t in times]
    first = spent[0]
    c = _N.inv_cdf(1 - first / 2) if first > 1e-15 else math.inf
    out = [c]
    # Density of the score S(t) = Z·√t on the continuation region of the looks so far.
    edge = c * math.sqrt(times[0]) if math.isfinite(c) else 8 * math.sqrt(times[0])
    s = np.linspace(-edge, edge, _GRID)
    f = np.exp(-(s**2) / (2 * times[0])) / math.sqrt(2 * math.pi * times[0])
    for k in range(1, len(times)):
        dt = times[k] - times[k - 1]
        sd = math.sqrt(dt)
        w = _simpson(len(s), float(s[1] - s[0])) * f
        target = spent[k] - spent[k - 1]
        root_t = math.sqrt(times[k])

        def exit_probability(crit: float, w: np.ndarray = w, sd: float = sd) -> float:
            edge_k = crit * root_t  # noqa: B023 - evaluated inside this iteration only
            upper = special.ndtr((s - edge_k) / sd)  # noqa: B023
            lower = special.ndtr((-edge_k - s) / sd)  # noqa: B023
            return float(np.sum(w * (upper + lower)))

        if target <= 1e-15:
            crit = math.inf
        else:
            lo, hi = 0.0, 40.0
            for _ in range(80):
                mid = (lo + hi) / 2
                if exit_probability(mid) > target:
                    lo = mid
                else:
                    hi = mid
            crit = (lo + hi) / 2
        out.append(crit)
        if k == len(times) - 1:
            break
        # The next look's continuation region; without a boundary, far enough to hold it all.
        edge_k = crit * root_t if math.isfinite(crit) else 8 * root_t
        new_s = np.linspace(-edge_k, edge_k, _GRID)
        kernel = np.exp(-((new_s[:, None] - s[None, :]) ** 2) / (2 * dt)) / math.sqrt(
            2 * math.pi * dt
        )
        f = kernel @ w
        s = new_s
    return out
