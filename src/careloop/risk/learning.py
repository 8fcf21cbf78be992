"""The numbers behind the risk model: fitting, scoring, reasons and evaluation.

A fitted model is a plain dict (``Params``): feature names, the training means (which also fill
missing values) and scales of the standardisation, the logistic regression's coefficients and
intercept. Scoring needs numpy only.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

Params = dict[str, Any]
# Standardised values are clipped to ±CLIP: a patient far outside what training saw (silent for
# months, say) counts as far out, not as an extrapolation the model never learnt.
CLIP = 4.0


def _standardise(params: Params, X: np.ndarray) -> np.ndarray:
    means = np.asarray(params["means"], dtype=float)
    scales = np.asarray(params["scales"], dtype=float)
    filled = np.where(np.isnan(X), means, X)
    clip = float(params.get("clip", CLIP))
    return np.clip((filled - means) / scales, -clip, clip)


def fit(X: np.ndarray, y: np.ndarray, names: list[str], *, seed: int = 0, c: float = 1.0) -> Params:
    """A logistic regression on standardised features (missing values: the training mean)."""
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no value at all
        means = np.nanmean(X, axis=0) if len(X) else np.zeros(X.shape[1])
    means = np.where(np.isnan(means), 0.0, means)
    filled = np.where(np.isnan(X), means, X)
    scales = filled.std(axis=0)
    scales = np.where(scales > 1e-9, scales, 1.0)
    Z = np.clip((filled - means) / scales, -CLIP, CLIP)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed, solver="lbfgs")
    model.fit(Z, y)
    return {
        "kind": "logistic_regression",
        "names": list(names),
        "means": [float(v) for v in means],
        "scales": [float(v) for v in scales],
        "coef": [float(v) for v in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
        "c": c,
        "clip": CLIP,
    }


def predict(params: Params, X: np.ndarray) -> np.ndarray:
    if not len(X):
        return np.zeros(0)
    z = _standardise(params, X) @ np.asarray(params["coef"], dtype=float) + params["intercept"]
    return 1.0 / (1.0 + np.exp(-z))


def contributions(params: Params, X: np.ndarray) -> np.ndarray:
    """coef × standardised value, per patient and feature (what pushes the score up or down)."""
    return _standardise(params, X) * np.asarray(params["coef"], dtype=float)


def top_factors(params: Params, X: np.ndarray, *, top: int = 3) -> list[list[dict[str, Any]]]:
    """Per row, the features that raise the risk most: [{"feature", "value", "weight"}]."""
    contrib = contributions(params, X)
    names = params["names"]
    out = []
    for row, c in enumerate(contrib):
        order = np.argsort(-c, kind="stable")
        chosen = [j for j in order[:top] if c[j] > 0]
        out.append(
            [
                {
                    "feature": names[j],
                    "value": None if np.isnan(X[row, j]) else round(float(X[row, j]), 3),
                    "weight": round(float(c[j]), 4),
                }
                for j in chosen
            ]
        )
    return out


# --- evaluation ---------------------------------------------------------------------------------


def auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    """Area under the ROC curve (rank statistic, ties count half); None with one class."""
    y = np.asarray(y, dtype=int)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return None
    ranks = _ranks(np.asarray(s, dtype=float))
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def _ranks(s: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.asarray(rankdata(s), dtype=float)


def bootstrap(
    y: np.ndarray, scores: dict[str, np.ndarray], *, seed: int = 0, rounds: int = 500
) -> dict[str, tuple[float, float] | None]:
    """95% percentile intervals of the AUROC of each score, resampling patients (the same
    resamples for every score, so that they compare fairly)."""
    found = _resampled(y, scores, seed=seed, rounds=rounds)
    out: dict[str, tuple[float, float] | None] = {}
    for key, every in found.items():
        values = [v for v in every if v == v]  # NaN: a resample with one class only
        if len(values) < rounds // 2:
            out[key] = None
        else:
            lo, hi = np.percentile(values, [2.5, 97.5])
            out[key] = (round(float(lo), 4), round(float(hi), 4))
    return out


def _resampled(
    y: np.ndarray, scores: dict[str, np.ndarray], *, seed: int, rounds: int
) -> dict[str, list[float]]:
    """The AUROC of each score on ``rounds`` resamples of the patients (NaN where a resample
    has one class only), the same resamples for every score."""
    rng = np.random.default_rng(seed)
    n = len(y)
    found: dict[str, list[float]] = {k: [] for k in scores}
    if n == 0:
        return found
    for _round in range(rounds):
        pick = rng.integers(0, n, n)
        for key, s in scores.items():
            value = auroc(y[pick], s[pick])
            found[key].append(float("nan") if value is None else value)
    return found


def difference_interval(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, *, seed: int = 0, rounds: int = 500
) -> tuple[float, float] | None:
    """95% percentile interval of AUROC(a) − AUROC(b), paired: both scored on each resample
    of the patients. An interval above zero means ``a`` ranks the outcome better than ``b``."""
    found = _resampled(y, {"a": a, "b": b}, seed=seed, rounds=rounds)
    diffs = [x - z for x, z in zip(found["a"], found["b"], strict=True) if x == x and z == z]
    if len(diffs) < rounds // 2:
        return None
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return (round(float(lo), 4), round(float(hi), 4))


def brier(y: np.ndarray, p: np.ndarray) -> float | None:
    if not len(y):
        return None
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Ten equal-width bins of predicted risk: count, mean predicted, observed rate."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        rows.append(
            {
                "bin": b,
                "low": round(b / bins, 2),
                "high": round((b + 1) / bins, 2),
                "n": count,
                "predicted": round(float(p[mask].mean()), 4) if count else None,
                "observed": round(float(y[mask].mean()), 4) if count else None,
            }
        )
    return rows


def distribution(scores: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Bin edges at the deciles of the training scores, and the share in each bin."""
    scores = np.asarray(scores, dtype=float)
    if not len(scores):
        edges = np.linspace(0, 1, bins + 1)
    else:
        edges = np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = 0.0, 1.0
    if len(edges) < 2:
        edges = np.array([0.0, 1.0])
    shares = _shares(scores, edges)
    return {"edges": [float(e) for e in edges], "shares": [float(s) for s in shares]}


def _shares(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if not len(scores):
        return np.zeros(len(edges) - 1)
    inner = np.asarray(edges[1:-1], dtype=float)
    which = np.searchsorted(inner, scores, side="right")
    counts = np.bincount(which, minlength=len(edges) - 1).astype(float)
    return counts / counts.sum()


def psi(expected: dict[str, list[float]], actual_scores: np.ndarray) -> tuple[float, list[float]]:
    """Population stability index of scores against a training distribution (bins with no
    share on either side count as 0.0001, the usual guard against log(0))."""
    edges = np.asarray(expected["edges"], dtype=float)
    e = np.maximum(np.asarray(expected["shares"], dtype=float), 1e-4)
    actual = _shares(np.asarray(actual_scores, dtype=float), edges)
    a = np.maximum(actual, 1e-4)
    return float(np.sum((a - e) * np.log(a / e))), [float(v) for v in actual]
