"""Every write of the risk app: training a model, daily scores, drift checks and the actions
taken because of a score (each one audited)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from django.db import transaction
from django.db.models import Max, Min
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Organisation
from careloop.accounts.roles import Action as Perm
from careloop.audit import services as audit
from careloop.kit.clock import utc_now
from careloop.kit.errors import CareLoopError, NotFound
from careloop.patients import models as pm
from careloop.reminders.models import Occurrence
from careloop.risk import features, learning
from careloop.risk import models as rm

log = logging.getLogger("careloop.risk")

MIN_EXAMPLES = 50
MIN_TEST = 20
MAX_WEEKS = 52
PSI_WARN = 0.2
# Action kinds: call_task, segment_entry, outreach and whatever other short code a caller uses.
KIND_PATTERN = re.compile(r"[a-z][a-z_]{0,19}")
AGE_BANDS = [("<45", 0, 45), ("45–64", 45, 65), ("65–74", 65, 75), ("75+", 75, 200)]
# Bands: the top 20% of training scores are "high", the next 30% "medium".
HIGH_SHARE, MEDIUM_SHARE = 0.2, 0.3
# A band also needs an absolute risk: where outcomes are rare, the top fifth of scores can be a
# few percent, which no nurse would call high.
HIGH_FLOOR, MEDIUM_FLOOR = 0.5, 0.2


class RiskError(CareLoopError):
    code = "risk"


# --- time --------------------------------------------------------------------------------------


def _zone(organisation: Organisation) -> ZoneInfo:
    try:
        return ZoneInfo(organisation.time_zone)
    except (ValueError, KeyError):
        return ZoneInfo("Asia/Shanghai")


def local_day(organisation: Organisation, at: datetime) -> date:
    return at.astimezone(_zone(organisation)).date()


def _midnight(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def as_of_dates(
    organisation_id: int, as_of: datetime, horizon_days: int = 30
) -> tuple[datetime, list[datetime]]:
    """The time split: (test as-of, training as-ofs oldest first).

    The test as-of is the latest midnight (UTC) whose label window has ended by `as_of`; the
    training as-ofs are weekly before it, each with a label window that ends on or before the
    test as-of, back to a week after the organisation's first medication reminder was sent.
    """
    test = _midnight(as_of - timedelta(days=horizon_days))
    first = (
        Occurrence.objects.filter(
            organisation_id=organisation_id, kind="medication", attempts__outcome__in=features.SENT
        )
        .aggregate(first=Min("attempts__started_at"))
        .get("first")
    )
    if first is None:
        return test, []
    earliest = first + timedelta(days=7)
    dates: list[datetime] = []
    t = test - timedelta(days=horizon_days)
    while t >= earliest and len(dates) < MAX_WEEKS:
        dates.append(t)
        t -= timedelta(days=7)
    return test, sorted(dates)


# --- training ----------------------------------------------------------------------------------


def _examples(
    organisation_id: int, as_of: datetime, horizon_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patient ids, X, y) of the labelled patients at one as-of moment."""
    target = features.labels(organisation_id, as_of, horizon_days)
    if not target:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(features.NAMES))), np.zeros(0)
    found = features.matrix(organisation_id, as_of, patient_ids=list(target))
    y = np.array([target[int(p)] for p in found.ids], dtype=int)
    return found.ids, found.X, y


def _subgroups(
    y: np.ndarray, p: np.ndarray, ages: np.ndarray, female: np.ndarray
) -> dict[str, list[dict[str, Any]]]:
    def row(group: str, mask: np.ndarray) -> dict[str, Any]:
        value = learning.auroc(y[mask], p[mask]) if mask.any() else None
        return {
            "group": group,
            "n": int(mask.sum()),
            "positives": int(y[mask].sum()),
            "auroc": None if value is None else round(value, 4),
        }

    return {
        "age": [row(name, (ages >= lo) & (ages < hi)) for name, lo, hi in AGE_BANDS],
        "sex": [row("female", female == 1), row("male_or_unknown", female != 1)],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def train(
    organisation_id: int,
    *,
    as_of: datetime | None = None,
    seed: int = 0,
    horizon_days: int = 30,
) -> rm.Model:
    """Fit the model on weekly as-ofs before the test as-of, evaluate it on the test as-of,
    and make it the organisation's active model. RiskError when there is too little data."""
    moment = as_of or utc_now()
    test_at, train_at = as_of_dates(organisation_id, moment, horizon_days)
    parts = [_examples(organisation_id, t, horizon_days) for t in train_at]
    ids = [p[0] for p in parts]
    X = np.vstack([p[1] for p in parts]) if parts else np.zeros((0, len(features.NAMES)))
    y = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, dtype=int)
    if len(y) < MIN_EXAMPLES:
        raise RiskError(
            _(
                "Too little data to train: %(n)s labelled examples before %(day)s, at least "
                "%(min)s are needed (patients with five or more medication reminders sent in "
                "a 30-day window)."
            )
            % {"n": len(y), "day": test_at.date().isoformat(), "min": MIN_EXAMPLES}
        )
    if y.min() == y.max():
        raise RiskError(
            _("Every training example has the same outcome; the model cannot learn from it.")
        )
    params = learning.fit(X, y, features.NAMES, seed=seed)
    train_scores = learning.predict(params, X)

    test_ids, X_test, y_test = _examples(organisation_id, test_at, horizon_days)
    p_test = learning.predict(params, X_test)
    base_test = features.baseline(features.Features(test_ids, X_test, features.NAMES))
    limitations = ["observational", "organisation", "coverage", "time_split"]
    evaluable = len(y_test) >= MIN_TEST and 0 < y_test.sum() < len(y_test)
    if not evaluable:
        limitations.append("small_test")
    ci = (
        learning.bootstrap(y_test, {"model": p_test, "baseline": base_test}, seed=seed)
        if evaluable
        else {"model": None, "baseline": None}
    )
    model_auroc = learning.auroc(y_test, p_test) if evaluable else None
    baseline_auroc = learning.auroc(y_test, base_test) if evaluable else None
    card: dict[str, Any] = {
        "target": {
            "horizon_days": horizon_days,
            "min_sent": features.MIN_SENT,
            "non_adherent_below": features.NON_ADHERENT_BELOW,
            "ack_within_hours": features.ACK_WITHIN / 3600,
        },
        "data": {
            "period_start": (train_at[0] - timedelta(days=30)).isoformat(),
            "period_end": (test_at + timedelta(days=horizon_days)).isoformat(),
            "train_as_of": [t.date().isoformat() for t in train_at],
            "test_as_of": test_at.date().isoformat(),
            "patients": len(set(np.concatenate([*ids, test_ids]).tolist())),
            "examples": {"train": len(y), "test": len(y_test)},
            "positive_rate": {
                "train": _round(float(y.mean())),
                "test": _round(float(y_test.mean())) if len(y_test) else None,
            },
        },
        "features": [
            {"name": n, "coef": round(c, 4), "mean": round(m, 4), "scale": round(s, 4)}
            for n, c, m, s in zip(
                params["names"], params["coef"], params["means"], params["scales"], strict=True
            )
        ],
        "metrics": {
            "auroc": {
                "model": _round(model_auroc),
                "model_ci": ci["model"],
                "baseline": _round(baseline_auroc),
                "baseline_ci": ci["baseline"],
                # Paired on the same resamples: above zero means the model ranks better.
                "difference": (
                    _round(model_auroc - baseline_auroc)
                    if model_auroc is not None and baseline_auroc is not None
                    else None
                ),
                "difference_ci": (
                    learning.difference_interval(y_test, p_test, base_test, seed=seed)
                    if evaluable
                    else None
                ),
                "train": _round(learning.auroc(y, train_scores)),
            },
            "brier": {
                "model": _round(learning.brier(y_test, p_test)),
                "baseline": _round(learning.brier(y_test, base_test)),
            },
        },
        "calibration": learning.calibration(y_test, p_test),
        "subgroups": _subgroups(
            y_test,
            p_test,
            X_test[:, features.NAMES.index("age")],
            X_test[:, features.NAMES.index("sex_female")],
        ),
        "thresholds": {
            "medium": round(
                max(MEDIUM_FLOOR, float(np.quantile(train_scores, 1 - HIGH_SHARE - MEDIUM_SHARE))),
                4,
            ),
            "high": round(max(HIGH_FLOOR, float(np.quantile(train_scores, 1 - HIGH_SHARE))), 4),
        },
        "score_distribution": learning.distribution(train_scores),
        "limitations": limitations,
    }
    with transaction.atomic():
        last = (
            rm.Model.objects.select_for_update()
            .filter(organisation_id=organisation_id)
            .aggregate(v=Max("version"))["v"]
        )
        rm.Model.objects.filter(organisation_id=organisation_id, active=True).update(active=False)
        model = rm.Model.objects.create(
            organisation_id=organisation_id,
            version=(last or 0) + 1,
            trained_at=utc_now(),
            as_of=moment,
            period_start=train_at[0] - timedelta(days=30),
            period_end=test_at + timedelta(days=horizon_days),
            horizon_days=horizon_days,
            seed=seed,
            params=params,
            card=card,
            active=True,
        )
        audit.append(
            action="risk.train",
            actor_name="system",
            organisation_id=organisation_id,
            object_type="risk.model",
            object_id=model.pk,
            detail={"version": model.version, "examples": len(y), "test": len(y_test)},
        )
    return model


def active_model(organisation_id: int) -> rm.Model | None:
    return rm.Model.objects.filter(organisation_id=organisation_id, active=True).first()


# --- scoring -----------------------------------------------------------------------------------


def band_of(score: float, thresholds: dict[str, float]) -> str:
    if score >= thresholds["high"]:
        return rm.Band.HIGH
    if score >= thresholds["medium"]:
        return rm.Band.MEDIUM
    return rm.Band.LOW


def _columns(params: learning.Params, found: features.Features) -> np.ndarray:
    """The matrix in the model's own column order (a feature the model does not know is
    dropped; one the matrix lacks is missing, i.e. the training mean)."""
    out = np.full((len(found.ids), len(params["names"])), np.nan)
    for j, name in enumerate(params["names"]):
        if name in found.names:
            out[:, j] = found.X[:, found.names.index(name)]
    return out


def score(organisation_id: int, now: datetime | None = None) -> int:
    """Score every patient with the active model; one row per patient per organisation-local
    day (scoring again the same day replaces that day's figures). Returns the number scored."""
    model = active_model(organisation_id)
    if model is None:
        raise RiskError(_("No risk model has been trained for this organisation yet."))
    moment = now or utc_now()
    organisation = Organisation.objects.get(pk=organisation_id)
    day = local_day(organisation, moment)
    found = features.matrix(organisation_id, moment)
    X = _columns(model.params, found)
    probabilities = learning.predict(model.params, X)
    reasons = learning.top_factors(model.params, X)
    thresholds = model.thresholds
    with transaction.atomic():
        existing = {
            s.patient_id: s
            for s in rm.Score.objects.filter(organisation_id=organisation_id, day=day)
        }
        new, changed = [], []
        for pid, p, factors in zip(found.ids.tolist(), probabilities, reasons, strict=True):
            values = {
                "model": model,
                "score": round(float(p), 6),
                "band": band_of(float(p), thresholds),
                "factors": factors,
                "scored_at": moment,
            }
            row = existing.get(pid)
            if row is None:
                new.append(
                    rm.Score(organisation_id=organisation_id, patient_id=pid, day=day, **values)
                )
            else:
                for key, value in values.items():
                    setattr(row, key, value)
                changed.append(row)
        rm.Score.objects.bulk_create(new, batch_size=1000)
        rm.Score.objects.bulk_update(
            changed, ["model", "score", "band", "factors", "scored_at"], batch_size=1000
        )
    return len(found.ids)


def drift(organisation_id: int, now: datetime | None = None) -> rm.DriftCheck:
    """PSI of the active model's latest day of scores against its training scores; the check
    is stored (one per model and day) and warns at PSI ≥ 0.2."""
    model = active_model(organisation_id)
    if model is None:
        raise RiskError(_("No risk model has been trained for this organisation yet."))
    day = rm.Score.objects.filter(model=model).aggregate(d=Max("day"))["d"]
    if day is None:
        raise RiskError(_("The active risk model has not scored anyone yet."))
    scores = np.array(
        list(rm.Score.objects.filter(model=model, day=day).values_list("score", flat=True))
    )
    expected = model.card.get("score_distribution") or learning.distribution(np.zeros(0))
    value, actual = learning.psi(expected, scores)
    check, _created = rm.DriftCheck.objects.update_or_create(
        model=model,
        day=day,
        defaults={
            "organisation_id": organisation_id,
            "checked_at": now or utc_now(),
            "psi": round(value, 6),
            "warn": value >= PSI_WARN,
            "scored": len(scores),
            "bins": {"edges": expected["edges"], "expected": expected["shares"], "actual": actual},
        },
    )
    if check.warn:
        log.warning(
            "risk model v%s of organisation %s drifted: PSI %.3f",
            model.version,
            organisation_id,
            value,
        )
    return check


# --- actions -----------------------------------------------------------------------------------


def record_action(
    patient_id: int,
    *,
    kind: str,
    detail: Any,
    actor: Actor | None = None,
    score_id: int | None = None,
) -> rm.Action:
    """Record (and audit) something done because of a risk score. Without `score_id` the
    patient's latest score is the one acted on."""
    if not KIND_PATTERN.fullmatch(kind or ""):
        raise ValueError(f"a risk action kind is a short lower-case code, not {kind!r}")
    patient = pm.Patient.objects.filter(pk=patient_id).first()
    if patient is None:
        raise NotFound()
    if score_id is None:
        score_id = (
            rm.Score.objects.filter(patient_id=patient_id)
            .order_by("-scored_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
    elif not rm.Score.objects.filter(pk=score_id, patient_id=patient_id).exists():
        raise NotFound()
    info = detail if isinstance(detail, dict) else {"text": str(detail)}
    with transaction.atomic():
        action = rm.Action.objects.create(
            organisation_id=patient.organisation_id,
            patient_id=patient_id,
            score_id=score_id,
            kind=kind,
            detail=info,
            actor=actor.user if actor is not None else None,
        )
        summary = {"kind": kind, "score": score_id, **info}
        if actor is not None:
            audit.record(actor, "risk.action", patient_id=patient_id, obj=action, detail=summary)
        else:
            audit.append(
                action="risk.action",
                actor_name="system",
                organisation_id=patient.organisation_id,
                patient_id=patient_id,
                object_type="risk.action",
                object_id=action.pk,
                detail=summary,
            )
    return action


def open_call_task(actor: Actor, patient_id: int) -> tuple[Any, rm.Action | None]:
    """Open a nurse call task for a scored patient the actor may see (404 otherwise) and record
    the action; a second request for the same score finds the same task and records nothing."""
    from careloop.alerts import models as am
    from careloop.alerts import services as alerts
    from careloop.patients import selectors as patient_selectors

    patient_selectors.require(actor, Perm.CLINICAL_WRITE, patient_id=patient_id)
    patient = patient_selectors.get_patient(actor, patient_id, audit_read=False)
    latest = (
        rm.Score.objects.filter(patient=patient, model__active=True)
        .order_by("-scored_at", "-id")
        .first()
    )
    if latest is None:
        raise RiskError(_("This patient has no risk score yet."))
    key = f"risk:{latest.pk}"
    known = am.Task.objects.filter(source_key=key).first()
    if known is not None:
        return known, None
    task = alerts.open_task(
        organisation_id=patient.organisation_id,
        patient_id=patient.pk,
        kind=am.Task.Kind.CALL_PATIENT,
        source_key=key,
        due_at=utc_now() + timedelta(days=1),
        reason=_("High risk of missing medication or dropping out (score %(score)s)")
        % {"score": f"{latest.score:.2f}"},
    )
    action = record_action(
        patient.pk,
        kind=rm.Action.Kind.CALL_TASK,
        detail={"task": task.pk, "score": latest.score, "band": latest.band},
        actor=actor,
        score_id=latest.pk,
    )
    return task, action


# --- the daily job -----------------------------------------------------------------------------


def run_daily(now: datetime | None = None) -> list[int]:
    """Score each organisation with an active model once per organisation-local day, then check
    drift. Returns the organisations scored."""
    moment = now or utc_now()
    done = []
    for model in rm.Model.objects.filter(active=True).select_related("organisation"):
        day = local_day(model.organisation, moment)
        if rm.Score.objects.filter(model=model, day=day).exists():
            if not rm.DriftCheck.objects.filter(model=model, day=day).exists():
                drift(model.organisation_id, moment)
            continue
        try:
            if score(model.organisation_id, moment):
                drift(model.organisation_id, moment)
            done.append(model.organisation_id)
        except RiskError:
            log.exception("risk scoring of organisation %s failed", model.organisation_id)
    return done
