"""The risk model's inputs and its target, computed in bulk for a whole organisation.

``matrix(organisation_id, as_of)`` reads only what was known before ``as_of``: a reminder counts
from its first accepted send, an acknowledgement from the moment it was given, a reading from
the moment it was uploaded, an appointment only if its status was last changed before ``as_of``.
Every figure comes from a few grouped queries turned into numpy arrays; nothing is asked per
patient.

``labels(organisation_id, as_of, horizon_days)`` is the target: within the ``horizon_days``
after ``as_of`` the patient acknowledged fewer than half of the medication reminders sent to
them (an acknowledgement counts within 12 hours of the first accepted send), or dropped out (no
acknowledgement, reading, questionnaire answer or message from them in the window). Patients
with fewer than ``MIN_SENT`` medication reminders sent in the window have no label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from django.db.models import Max, Min, Q, QuerySet
from django.utils.translation import gettext_lazy as _

from careloop.appointments.models import Appointment
from careloop.messaging.models import Message
from careloop.observations.models import Observation
from careloop.patients import models as pm
from careloop.questionnaires.models import Response
from careloop.reminders.models import Attempt, IntakeEvent, Occurrence

DAY = 86400.0
ACK_WITHIN = 12 * 3600.0  # an acknowledgement counts within 12 hours of the first send
MIN_SENT = 5  # fewer medication reminders sent in the window: no label
NON_ADHERENT_BELOW = 0.5
SENT = (Attempt.Outcome.ACCEPTED, Attempt.Outcome.DELIVERED)
PATIENT_SOURCES = ("patient", "device")
PATIENT_AUTHORS = (Message.Author.PATIENT, Message.Author.CAREGIVER)
NO_ACTIVITY_DAYS = 365.0
LATENCY_CAP = 48.0  # hours  # "days since last activity" for a patient never heard from

# (name, human label) in the order of the matrix's columns.
FEATURES: list[tuple[str, Any]] = [
    ("age", _("Age (years)")),
    ("sex_female", _("Female")),
    ("conditions", _("Number of active conditions")),
    ("hypertension", _("Hypertension")),
    ("diabetes", _("Diabetes")),
    ("ack_rate_7d", _("Medication reminders acknowledged, last 7 days")),
    ("ack_rate_30d", _("Medication reminders acknowledged, last 30 days")),
    ("ack_trend", _("Acknowledgement trend (7 days minus days 8 to 30)")),
    ("latency_30d", _("Median hours to acknowledge, unanswered counted as 48, last 30 days")),
    ("latency_trend", _("Change in hours to acknowledge (7 days minus days 8 to 30)")),
    ("late_day_acks_30d", _("Reminders acknowledged on a later day, last 30 days")),
    ("readings_14d", _("Readings uploaded, last 14 days")),
    ("readings_30d", _("Readings uploaded, last 30 days")),
    ("last_sbp", _("Last systolic blood pressure (mmHg)")),
    ("sbp_change_30d", _("Change in systolic blood pressure over 30 days (mmHg)")),
    ("missed_appointments_90d", _("Missed appointments, last 90 days")),
    ("skipped_side_effects_30d", _("Doses skipped for side effects, last 30 days")),
    ("skipped_cost_30d", _("Doses skipped for cost, last 30 days")),
    ("skipped_forgot_30d", _("Doses skipped because forgotten, last 30 days")),
    ("messages_30d", _("Messages from the patient, last 30 days")),
    ("questionnaires_30d", _("Questionnaires answered, last 30 days")),
    ("days_enrolled", _("Days since enrolment")),
    ("days_since_activity", _("Days since the patient was last active")),
]
NAMES = [name for name, _label in FEATURES]
RATES = frozenset({"ack_rate_7d", "ack_rate_30d"})
SHARES_OF_CHANGE = frozenset({"ack_trend"})
LABELS: dict[str, Any] = dict(FEATURES)


def label_of(name: str) -> str:
    return str(LABELS.get(name, name))


@dataclass
class Features:
    ids: np.ndarray  # patient ids, ascending
    X: np.ndarray  # one row per patient, one column per name; NaN where unknown
    names: list[str]

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.names.index(name)]


# --- helpers ------------------------------------------------------------------------------------


def _ts(values: Iterable[datetime | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v.timestamp() for v in values], dtype=float)


class _Index:
    """Patient id -> row of the matrix."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids

    def rows(self, patient_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, mask): rows[i] is the row of patient_ids[i] where mask[i] is true."""
        pids = np.asarray(patient_ids, dtype=np.int64)
        if not len(self.ids) or not len(pids):
            return np.zeros(len(pids), dtype=np.int64), np.zeros(len(pids), dtype=bool)
        at = np.searchsorted(self.ids, pids)
        at = np.clip(at, 0, len(self.ids) - 1)
        return at, self.ids[at] == pids

    def counts(self, patient_ids: Sequence[int], weights: np.ndarray | None = None) -> np.ndarray:
        rows, ok = self.rows(patient_ids)
        w = None if weights is None else np.asarray(weights, dtype=float)[ok]
        return np.bincount(rows[ok], weights=w, minlength=len(self.ids)).astype(float)

    def maximum(self, pairs: Sequence[tuple[int, datetime | None]]) -> np.ndarray:
        out = np.full(len(self.ids), np.nan)
        if not pairs:
            return out
        pids = [p for p, _v in pairs]
        rows, ok = self.rows(pids)
        values = _ts(v for _p, v in pairs)
        ok &= ~np.isnan(values)
        out[rows[ok]] = values[ok]
        return out


def _rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(len(den), np.nan)
    has = den > 0
    out[has] = num[has] / den[has]
    return out


def _group_median(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    if not len(values):
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    counts = np.bincount(g, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    lo = starts[has] + (counts[has] - 1) // 2
    hi = starts[has] + counts[has] // 2
    out[has] = (v[lo] + v[hi]) / 2.0
    return out


def _local_days(stamps: np.ndarray, zones: Sequence[str], at: datetime) -> np.ndarray:
    """Patient-local day numbers of UTC stamps (each zone's offset at `at`)."""
    offsets = np.zeros(len(stamps))
    names = np.asarray(zones, dtype=object)
    for zone in set(zones):
        try:
            offset = ZoneInfo(zone).utcoffset(at.replace(tzinfo=None))
        except (ValueError, KeyError):
            offset = None
        seconds = offset.total_seconds() if offset is not None else 8 * 3600.0
        offsets[names == zone] = seconds
    return np.floor((stamps + offsets) / DAY)


def patients(
    organisation_id: int, as_of: datetime, patient_ids: Iterable[int] | None = None
) -> QuerySet[pm.Patient]:
    """The organisation's patients registered before `as_of`, not merged, not deceased."""
    qs = pm.Patient.objects.filter(organisation_id=organisation_id, merged_into__isnull=True)
    qs = qs.filter(
        Q(registered_on__lte=as_of.date()) | Q(registered_on__isnull=True, created_at__lt=as_of)
    ).exclude(deceased_on__lt=as_of.date())
    if patient_ids is not None:
        qs = qs.filter(pk__in=list(patient_ids))
    return qs.order_by("pk")


def _medication_sends(
    organisation_id: int, start: datetime, end: datetime, ids: np.ndarray | None
) -> QuerySet[Any]:
    """Medication reminders whose first accepted send fell in [start, end)."""
    qs = Occurrence.objects.filter(
        organisation_id=organisation_id,
        kind="medication",
        due_at__gte=start - timedelta(days=2),
        due_at__lt=end,
    )
    if ids is not None:
        qs = qs.filter(patient_id__in=[int(i) for i in ids])
    return (
        qs.annotate(sent=Min("attempts__started_at", filter=Q(attempts__outcome__in=SENT)))
        .filter(sent__gte=start, sent__lt=end)
        .values_list("patient_id", "sent", "acknowledged_at", "time_zone")
    )


# --- the matrix -----------------------------------------------------------------------------------


def matrix(
    organisation_id: int, as_of: datetime, patient_ids: Iterable[int] | None = None
) -> Features:
    """One row per patient of the organisation, from what was known before `as_of`."""
    rows = list(
        patients(organisation_id, as_of, patient_ids).values_list("pk", "sex", "date_of_birth")
    )
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    n = len(ids)
    index = _Index(ids)
    cols: dict[str, np.ndarray] = {}
    t = as_of.timestamp()
    d30 = as_of - timedelta(days=30)
    restrict = ids if patient_ids is not None else None

    # Who they are.
    today = as_of.date()
    cols["age"] = np.array([_years(r[2], today) for r in rows], dtype=float)
    cols["sex_female"] = np.array([1.0 if r[1] == "female" else 0.0 for r in rows])
    conditions = list(
        pm.Condition.objects.filter(
            organisation_id=organisation_id,
            status=pm.Condition.Status.ACTIVE,
            created_at__lt=as_of,
        )
        .filter(Q(deleted_at__isnull=True) | Q(deleted_at__gte=as_of))
        .values_list("patient_id", "icd10_code")
    )
    pids = [c[0] for c in conditions]
    codes = [c[1].upper() for c in conditions]
    cols["conditions"] = index.counts(pids)
    htn = np.array([c[:3] in ("I10", "I11", "I12", "I13", "I15") for c in codes], dtype=float)
    dm = np.array([c[:3] in ("E10", "E11", "E12", "E13", "E14") for c in codes], dtype=float)
    cols["hypertension"] = np.minimum(index.counts(pids, htn), 1.0)
    cols["diabetes"] = np.minimum(index.counts(pids, dm), 1.0)

    # Medication reminders of the last 30 days.
    sends = list(_medication_sends(organisation_id, d30, as_of, restrict))
    s_rows, s_ok = index.rows([s[0] for s in sends])
    sent = _ts(s[1] for s in sends)
    acked_at = _ts(s[2] for s in sends)
    known = ~np.isnan(acked_at) & (acked_at < t)
    acked = known & (acked_at - sent <= ACK_WITHIN)
    recent = sent >= t - 7 * DAY
    g = s_rows[s_ok]

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(g, weights=mask[s_ok].astype(float), minlength=n)

    rate_7 = _rate(count(acked & recent), count(recent))
    rate_30 = _rate(count(acked), count(np.ones(len(sends), dtype=bool)))
    rate_older = _rate(count(acked & ~recent), count(~recent))
    cols["ack_rate_7d"] = rate_7
    cols["ack_rate_30d"] = rate_30
    cols["ack_trend"] = rate_7 - rate_older
    # Hours to acknowledge, capped at LATENCY_CAP; a reminder never acknowledged counts as the
    # cap once its 12 hours have passed (silence is the slowest answer, not a missing one).
    latency = np.where(known, np.minimum((acked_at - sent) / 3600.0, LATENCY_CAP), LATENCY_CAP)
    for_latency = (known | (sent < t - ACK_WITHIN)) & s_ok
    lat_30 = _group_median(s_rows[for_latency], latency[for_latency], n)
    lat_7 = _group_median(s_rows[for_latency & recent], latency[for_latency & recent], n)
    lat_old = _group_median(s_rows[for_latency & ~recent], latency[for_latency & ~recent], n)
    cols["latency_30d"] = lat_30
    cols["latency_trend"] = lat_7 - lat_old
    zones = [s[3] for s in sends]
    if sends:
        later = known & (
            _local_days(np.where(known, acked_at, sent), zones, as_of)
            > _local_days(sent, zones, as_of)
        )
    else:
        later = np.zeros(0, dtype=bool)
    cols["late_day_acks_30d"] = count(later)

    # Readings and blood pressure.
    readings = list(
        Observation.objects.filter(
            organisation_id=organisation_id,
            source__in=PATIENT_SOURCES,
            created_at__lt=as_of,
            effective_at__gte=d30,
            effective_at__lt=as_of,
        ).values_list("patient_id", "effective_at")
    )
    r_at = _ts(r[1] for r in readings)
    r_ids = [r[0] for r in readings]
    cols["readings_14d"] = index.counts(r_ids, (r_at >= t - 14 * DAY).astype(float))
    cols["readings_30d"] = index.counts(r_ids)
    cols["last_sbp"], cols["sbp_change_30d"] = _sbp(organisation_id, as_of, index)

    # Appointments missed, doses skipped, messages, questionnaires.
    missed = Appointment.objects.filter(
        organisation_id=organisation_id,
        status=Appointment.Status.NO_SHOW,
        starts_at__gte=as_of - timedelta(days=90),
        starts_at__lt=as_of,
        updated_at__lt=as_of,
    ).values_list("patient_id", flat=True)
    cols["missed_appointments_90d"] = index.counts(list(missed))
    skips = list(
        IntakeEvent.objects.filter(
            organisation_id=organisation_id,
            status=IntakeEvent.Status.SKIPPED,
            recorded_at__gte=d30,
            recorded_at__lt=as_of,
        ).values_list("patient_id", "reason")
    )
    skip_ids = [s[0] for s in skips]
    for name, reason in (
        ("skipped_side_effects_30d", IntakeEvent.SkipReason.SIDE_EFFECT),
        ("skipped_cost_30d", IntakeEvent.SkipReason.COST),
        ("skipped_forgot_30d", IntakeEvent.SkipReason.FORGOT),
    ):
        cols[name] = index.counts(skip_ids, np.array([s[1] == reason for s in skips], dtype=float))
    messages = _patient_messages(organisation_id).filter(created_at__gte=d30, created_at__lt=as_of)
    cols["messages_30d"] = index.counts(list(messages.values_list("thread__patient_id", flat=True)))
    answered = _patient_responses(organisation_id).filter(
        completed_at__gte=d30, completed_at__lt=as_of
    )
    cols["questionnaires_30d"] = index.counts(list(answered.values_list("patient_id", flat=True)))

    # Time on the programme and since the patient was last heard from.
    enrolled = (
        _enrolments(organisation_id)
        .filter(starts_on__lte=today)
        .values("patient_id")
        .annotate(first=Min("starts_on"))
        .values_list("patient_id", "first")
    )
    days_enrolled = np.full(n, np.nan)
    e_rows, e_ok = index.rows([e[0] for e in enrolled])
    days_enrolled[e_rows[e_ok]] = np.array([(today - e[1]).days for e in enrolled], dtype=float)[
        e_ok
    ]
    cols["days_enrolled"] = days_enrolled
    last = last_activity(organisation_id, index, before=as_of)
    cols["days_since_activity"] = np.where(
        np.isnan(last), NO_ACTIVITY_DAYS, np.minimum((t - last) / DAY, NO_ACTIVITY_DAYS)
    )

    X = np.column_stack([cols[name] for name in NAMES]) if n else np.zeros((0, len(NAMES)))
    return Features(ids=ids, X=X.astype(float), names=list(NAMES))


def _years(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _sbp(organisation_id: int, as_of: datetime, index: _Index) -> tuple[np.ndarray, np.ndarray]:
    """Last systolic pressure before `as_of` and its change from about 30 days earlier."""
    n = len(index.ids)
    last, change = np.full(n, np.nan), np.full(n, np.nan)
    rows = list(
        Observation.objects.filter(
            organisation_id=organisation_id,
            kind="bp",
            created_at__lt=as_of,
            effective_at__gte=as_of - timedelta(days=120),
            effective_at__lt=as_of,
        )
        .order_by("patient_id", "effective_at", "id")
        .values_list("patient_id", "effective_at", "value")
    )
    if not rows:
        return last, change
    r, ok = index.rows([x[0] for x in rows])
    at = _ts(x[1] for x in rows)[ok]
    value = np.array([x[2] for x in rows], dtype=float)[ok]
    g = r[ok]
    if not len(g):
        return last, change
    ends = np.r_[g[1:] != g[:-1], True]
    last[g[ends]] = value[ends]
    # The reference: the last reading 30 or more days back, else the first one within 30 days.
    cut = as_of.timestamp() - 30 * DAY
    old = at <= cut
    ref = np.full(n, np.nan)
    og = g[old]
    if len(og):
        old_ends = np.r_[og[1:] != og[:-1], True]
        ref[og[old_ends]] = value[old][old_ends]
    ng = g[~old]
    if len(ng):
        starts = np.r_[True, ng[1:] != ng[:-1]]
        firsts = np.full(n, np.nan)
        firsts[ng[starts]] = value[~old][starts]
        counts = np.bincount(ng, minlength=n)
        usable = np.isnan(ref) & (counts >= 2)
        ref[usable] = firsts[usable]
    change = last - ref
    return last, change


def _patient_messages(organisation_id: int) -> QuerySet[Message]:
    return Message.objects.filter(
        thread__organisation_id=organisation_id, author_kind__in=PATIENT_AUTHORS
    )


def _patient_responses(organisation_id: int) -> QuerySet[Response]:
    return Response.objects.filter(
        organisation_id=organisation_id,
        status=Response.Status.COMPLETED,
        source__in=(Response.Source.PATIENT, Response.Source.CAREGIVER),
    )


def _enrolments(organisation_id: int) -> QuerySet[Any]:
    from careloop.careplans.models import Enrolment

    return Enrolment.objects.filter(organisation_id=organisation_id)


def last_activity(
    organisation_id: int, index: _Index, *, before: datetime, since: datetime | None = None
) -> np.ndarray:
    """Per patient, the last moment (Unix time) they acknowledged a reminder, uploaded a
    reading, answered a questionnaire or wrote a message in [since, before); NaN if never."""
    window: dict[str, Any] = {"lt": before}
    if since is not None:
        window["gte"] = since

    def within(field: str) -> dict[str, Any]:
        return {f"{field}__{op}": value for op, value in window.items()}

    groups: list[tuple[QuerySet[Any], str]] = [
        (
            Occurrence.objects.filter(organisation_id=organisation_id, **within("acknowledged_at")),
            "acknowledged_at",
        ),
        (
            Observation.objects.filter(
                organisation_id=organisation_id, source__in=PATIENT_SOURCES, **within("created_at")
            ),
            "created_at",
        ),
        (_patient_responses(organisation_id).filter(**within("completed_at")), "completed_at"),
        (_patient_messages(organisation_id).filter(**within("created_at")), "created_at"),
    ]
    last = np.full(len(index.ids), np.nan)
    for qs, field in groups:
        key = "thread__patient_id" if qs.model is Message else "patient_id"
        pairs = list(qs.values(key).annotate(last=Max(field)).values_list(key, "last"))
        last = np.fmax(last, index.maximum(pairs))
    return last


# --- the target ---------------------------------------------------------------------------------


def labels(organisation_id: int, as_of: datetime, horizon_days: int = 30) -> dict[int, int]:
    """1 = non-adherent or dropped out in the `horizon_days` after `as_of`; 0 = neither.
    Patients with fewer than MIN_SENT medication reminders sent in the window are left out."""
    ids = np.array(
        list(patients(organisation_id, as_of).values_list("pk", flat=True)), dtype=np.int64
    )
    if not len(ids):
        return {}
    index = _Index(ids)
    end = as_of + timedelta(days=horizon_days)
    sends = list(_medication_sends(organisation_id, as_of, end, None))
    if not sends:
        return {}
    sent = _ts(s[1] for s in sends)
    acked_at = _ts(s[2] for s in sends)
    ok_ack = ~np.isnan(acked_at) & (acked_at < end.timestamp()) & (acked_at - sent <= ACK_WITHIN)
    pids = [s[0] for s in sends]
    n_sent = index.counts(pids)
    n_acked = index.counts(pids, ok_ack.astype(float))
    active = ~np.isnan(last_activity(organisation_id, index, before=end, since=as_of))
    has = n_sent >= MIN_SENT
    rate = _rate(n_acked, n_sent)
    positive = (rate < NON_ADHERENT_BELOW) | ~active
    return {int(p): int(y) for p, y, h in zip(ids, positive, has, strict=True) if h}


def baseline(features: Features) -> np.ndarray:
    """The simple rule a model must beat: 1 − last-30-day medication acknowledgement rate
    (0.5 when nothing was sent)."""
    rate = features.column("ack_rate_30d")
    return np.where(np.isnan(rate), 0.5, 1.0 - rate)
