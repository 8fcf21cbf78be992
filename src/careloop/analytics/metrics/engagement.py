"""Patient engagement (metrics.md, "Engagement"): reminder engagement with its "best send
time" views, reading upload rate, NPS and CSAT of the satisfaction questionnaire, and which
education content is read.

Grouped SQL over the months asked for, scoped to the cohort's living patients (see
operations.py for the shared helpers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import (
    Case,
    Count,
    DateField,
    DateTimeField,
    Exists,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce, ExtractIsoWeekDay, Substr
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext_lazy as _

from careloop.analytics.metrics.operations import (
    BAD,
    GOOD,
    INFO,
    NEUTRAL,
    OTHER,
    WARNING,
    Grouped,
    Window,
    as_breakdown,
    fetch,
    month_case,
    none_value,
    per_month,
    scoped,
    span,
    split_counts,
    sql_of,
    union_all,
    windows,
    zero_figures,
)
from careloop.analytics.registry import (
    Breakdown,
    Cohort,
    Computed,
    Metric,
    Months,
    Part,
    local_bounds,
    register,
)
from careloop.analytics.registry import Value as Figure

FAR_FUTURE = datetime(3000, 1, 1, tzinfo=UTC)


def _own_department(cohort: Cohort, path: str) -> Q:
    """Rows of the cohort's departments, or of no department (a reminder outside any plan,
    e.g. of an appointment, belongs to the patient). Everything when the cohort is not
    narrowed to departments."""
    if cohort.department_ids is None:
        return Q()
    return Q(**{f"{path}__in": cohort.department_ids}) | Q(**{f"{path}__isnull": True})


# --- reminder engagement --------------------------------------------------------------------

# Who acknowledged: anything but a nurse's call counts as the patient's own answer (a
# confirmation, an SMS reply, the message link, the portal).
STAFF_ACK = "staff_call"


def _reminders(cohort: Cohort, wins: Sequence[Window], group: str) -> QuerySet[Any]:
    """Delivered reminders of the windows (by their local due day), with `m`, `g` and `acked`."""
    from careloop.reminders import models as rm

    attempts = rm.Attempt.objects.filter(occurrence_id=OuterRef("pk"))
    delivered = Q(Exists(attempts.filter(outcome="delivered"))) | Q(
        Q(status__in=[rm.Status.DELIVERED, rm.Status.ACKNOWLEDGED])
        & Q(Exists(attempts.filter(outcome="accepted")))
    )
    qs = (
        scoped(rm.Occurrence.objects.filter(organisation_id=cohort.organisation_id), cohort)
        .filter(_own_department(cohort, "enrolment__department_id"))
        .filter(span("local_due", wins, "text"))
        .filter(delivered)
    )
    if group == "channel":
        # The channel of the last message sent before the patient answered (or the last one).
        before = Coalesce(
            OuterRef("acknowledged_at"), Value(FAR_FUTURE, output_field=DateTimeField())
        )
        g: Any = Subquery(
            rm.Attempt.objects.filter(
                occurrence_id=OuterRef("pk"),
                outcome__in=["accepted", "delivered"],
                started_at__lte=before,
            )
            .order_by("-started_at", "-id")
            .values("channel")[:1]
        )
    elif group == "hour":
        g = Cast(Substr("local_due", 12, 2), IntegerField())
    elif group == "weekday":
        g = ExtractIsoWeekDay(Cast(Substr("local_due", 1, 10), DateField()))
    else:
        g = none_value()
    return qs.annotate(
        m=month_case("local_due", wins, "text"),
        g=g,
        acked=Case(
            When(Q(acknowledged_at__isnull=False) & ~Q(ack_source=STAFF_ACK), then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ),
    )


def _engagement(cohort: Cohort, wins: Sequence[Window], group: str) -> Grouped:
    return split_counts(
        _reminders(cohort, wins, group), Q(acked=1), ("acknowledged", "unacknowledged")
    )


def engagement_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(cohort, months, ("acknowledged", "unacknowledged"), _engagement)


def engagement_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    qs = _reminders(cohort, windows(cohort, [month]), "").filter(
        m=0, acked=1 if part == "acknowledged" else 0
    )
    return sorted(set(qs.values_list("patient_id", flat=True)))


def _channel_labels(keys: Iterable[Any]) -> dict[Any, str]:
    from careloop.patients.models import Channel

    names = dict(Channel.choices)
    labels = {k: str(names.get(k, k)) for k in keys}
    labels[None] = str(_("Unknown"))
    return labels


def _hour_labels(keys: Iterable[Any]) -> dict[Any, str]:
    return {k: f"{k:02d}:00" for k in keys if k is not None}


def _weekday_labels(keys: Iterable[Any]) -> dict[Any, str]:
    return {k: str(WEEKDAYS[k - 1]) for k in keys if k is not None}


def _engagement_breakdown(group: str, labels: Any) -> Any:
    def breakdown(cohort: Cohort, month: date) -> Breakdown:
        found = _engagement(cohort, windows(cohort, [month]), group)
        rows = {g: parts for (_m, g), parts in found.items()}
        if group in ("hour", "weekday"):  # in clock / calendar order, not by label
            return as_breakdown(rows, labels(rows), order=lambda kv: (kv[0] is None, kv[0] or 0))
        return as_breakdown(rows, labels(rows))

    return breakdown


register(
    Metric(
        key="reminder_engagement",
        title=_("Reminder engagement"),
        definition=_(
            "Reminders the patient acknowledged (confirmed, replied to, or opened the link of; "
            "a confirmation taken by a nurse on the phone does not count) ÷ reminders delivered, "
            "for reminders due in the month. Delivered: a message of the reminder was delivered, "
            "or accepted by the provider and the reminder marked delivered or acknowledged. "
            "Month, hour and weekday: the reminder's due time in the patient's own time zone. "
            "By channel: the last message sent before the answer. Dead patients are excluded."
        ),
        kind="share",
        parts=(
            Part("acknowledged", _("Acknowledged"), colour=GOOD),
            Part("unacknowledged", _("Not acknowledged"), colour=BAD),
        ),
        compute=engagement_compute,
        patients=engagement_patients,
        breakdowns={
            "channel": _engagement_breakdown("channel", _channel_labels),
            "hour": _engagement_breakdown("hour", _hour_labels),
            "weekday": _engagement_breakdown("weekday", _weekday_labels),
        },
        group="engagement",
        headline="acknowledged",
    )
)


# --- reading upload rate --------------------------------------------------------------------

UPLOAD_DAYS = 30


def _upload_flags(cohort: Cohort, wins: Sequence[Window]) -> tuple[str, tuple[Any, ...]]:
    """Rows (patient_id, e0…, u0…): per patient and window, e = enrolled on the as-of day in a
    plan asking for readings, u = a self-reported reading in the 30 days to the as-of day.

    One scan of the enrolments and one of the readings, stacked and grouped by patient (no
    join, no per-patient subquery), so twelve months cost about what one does."""
    from careloop.careplans import models as cm
    from careloop.observations import models as om

    enrolled: dict[str, Any] = {}
    uploaded: dict[str, Any] = {}
    zero = Value(0, output_field=IntegerField())
    for w in wins:
        day_end = local_bounds(w.last, w.last, cohort.tz)[1]
        since = local_bounds(w.last - timedelta(days=UPLOAD_DAYS - 1), w.last, cohort.tz)[0]
        active = Q(starts_on__lte=w.last) & (
            Q(ended_at__isnull=True, status=cm.Enrolment.Status.ACTIVE) | Q(ended_at__gte=day_end)
        )
        enrolled[f"e{w.index}"] = Case(
            When(active, then=Value(1)), default=zero, output_field=IntegerField()
        )
        uploaded[f"u{w.index}"] = Case(
            When(Q(effective_at__gte=since, effective_at__lt=day_end), then=Value(1)),
            default=zero,
            output_field=IntegerField(),
        )
    no_e = {k: zero for k in enrolled}
    no_u = {k: zero for k in uploaded}
    enrolments = scoped(
        cm.Enrolment.objects.filter(
            organisation_id=cohort.organisation_id,
            template__activities__kind=cm.ActivityKind.MEASUREMENT,
            starts_on__lte=max(w.last for w in wins),
        ),
        cohort,
        department="department_id",
    ).values("patient_id", **enrolled, **no_u)
    first_since = min(w.last for w in wins) - timedelta(days=UPLOAD_DAYS - 1)
    readings = (
        scoped(
            om.Observation.objects.filter(
                organisation_id=cohort.organisation_id, source=om.Source.PATIENT
            ),
            cohort,
        )
        .filter(
            effective_at__gte=local_bounds(first_since, first_since, cohort.tz)[0],
            effective_at__lt=max(local_bounds(w.last, w.last, cohort.tz)[1] for w in wins),
        )
        .values("patient_id", **no_e, **uploaded)
    )
    rows_sql, params = union_all(enrolments, readings)
    flags = ", ".join(f"MAX(x.{k}) AS {k}" for k in [*enrolled, *uploaded])
    sql = f"SELECT x.patient_id AS patient_id, {flags} FROM ({rows_sql}) x GROUP BY x.patient_id"  # noqa: S608
    return sql, params


def upload_compute(cohort: Cohort, months: Months) -> Computed:
    wins = [w for w in windows(cohort, months) if w.last >= w.first]
    out = zero_figures(months, ("uploading", "not_uploading"))
    if not wins:
        return out
    flags, params = _upload_flags(cohort, wins)
    sums = ", ".join(f"SUM(p.e{w.index}), SUM(p.e{w.index} * p.u{w.index})" for w in wins)
    row = fetch(f"SELECT {sums} FROM ({flags}) p", params)[0]  # noqa: S608 - fixed names
    for n, w in enumerate(wins):
        d, up = int(row[2 * n] or 0), int(row[2 * n + 1] or 0)
        out[w.month] = {"uploading": Figure(up, d), "not_uploading": Figure(d - up, d)}
    return out


def upload_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    wins = [w for w in windows(cohort, [month]) if w.last >= w.first]
    if not wins:
        return []
    flags, params = _upload_flags(cohort, wins)
    wanted = 1 if part == "uploading" else 0
    sql = f"SELECT p.patient_id FROM ({flags}) p WHERE p.e0 = 1 AND p.u0 = %s ORDER BY 1"  # noqa: S608
    return [r[0] for r in fetch(sql, (*params, wanted))]


register(
    Metric(
        key="upload_rate",
        title=_("Reading upload rate"),
        definition=_(
            "Patients with at least one self-reported reading (entered by the patient or a "
            "caregiver) in the 30 days ending on the as-of day ÷ patients enrolled on the as-of "
            "day in a plan that asks for readings (a plan with a measurement activity). As-of "
            "day: the last day of the month, or today for the current month. Dead patients are "
            "excluded."
        ),
        kind="share",
        parts=(
            Part("uploading", _("Uploaded a reading"), colour=GOOD),
            Part("not_uploading", _("No reading uploaded"), colour=BAD),
        ),
        compute=upload_compute,
        patients=upload_patients,
        group="engagement",
        headline="uploading",
    )
)


# --- satisfaction: NPS and CSAT --------------------------------------------------------------

SATISFACTION = "satisfaction"  # the instrument of the shipped satisfaction questionnaire


def _latest_answers(
    cohort: Cohort, wins: Sequence[Window], answer: str
) -> tuple[str, tuple[Any, ...]]:
    """Rows (m, patient_id, value): each patient's latest completed satisfaction response of
    each window that answers `answer` ("nps": the 0–10 item, "csat": the 1–5 item)."""
    from careloop.questionnaires import models as qm

    csat = Cast(KeyTextTransform("csat", KeyTransform("details", "result")), FloatField())
    qs = (
        scoped(
            qm.Response.objects.filter(
                organisation_id=cohort.organisation_id,
                status=qm.Response.Status.COMPLETED,
                questionnaire__instrument=SATISFACTION,
            ),
            cohort,
        )
        .filter(span("completed_at", wins))
        .annotate(m=month_case("completed_at", wins), v=F("score") if answer == "nps" else csat)
        .filter(v__isnull=False)
        .values("patient_id", "id", "completed_at", "m", "v")
    )
    inner, params = sql_of(qs)
    sql = (
        "SELECT r.m, r.patient_id, r.v FROM (SELECT q.m AS m, q.patient_id AS patient_id, "  # noqa: S608 - ORM SQL
        "q.v AS v, ROW_NUMBER() OVER (PARTITION BY q.patient_id, q.m "
        f"ORDER BY q.completed_at DESC, q.id DESC) AS rn FROM ({inner}) q "
        "WHERE q.m IS NOT NULL) r WHERE r.rn = 1"
    )
    return sql, params


NPS_BANDS = (  # (part, SQL condition on the 0–10 answer v)
    ("promoters", "l.v >= 9"),
    ("passives", "l.v >= 7 AND l.v < 9"),
    ("detractors", "l.v < 7"),
)


def nps_compute(cohort: Cohort, months: Months) -> Computed:
    wins = windows(cohort, months)
    out: Computed = {m: nps_parts(0, 0, 0) for m in months}
    latest, params = _latest_answers(cohort, wins, "nps")
    counts = ", ".join(f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)" for _p, cond in NPS_BANDS)
    sql = f"SELECT l.m, {counts} FROM ({latest}) l GROUP BY l.m"  # noqa: S608 - fixed SQL
    for m, promoters, passives, detractors in fetch(sql, params):
        out[wins[m].month] = nps_parts(int(promoters), int(passives), int(detractors))
    return out


def nps_parts(promoters: int, passives: int, detractors: int) -> dict[str, Figure]:
    """% promoters − % detractors (−100 … 100) and the share of each group."""
    n = promoters + passives + detractors
    score = Figure(round(100.0 * (promoters - detractors) / n, 1), None) if n else Figure(0, 0)
    return {
        "nps": score,
        "promoters": Figure(promoters, n),
        "passives": Figure(passives, n),
        "detractors": Figure(detractors, n),
    }


def _answering(cohort: Cohort, month: date, item: str, cond: str | None) -> list[int]:
    """Patients whose latest answer to `item` in the month meets `cond` (SQL on `l.v`)."""
    if cond is None:
        return []
    latest, params = _latest_answers(cohort, windows(cohort, [month]), item)
    sql = f"SELECT l.patient_id FROM ({latest}) l WHERE {cond} ORDER BY l.patient_id"  # noqa: S608
    return [row[0] for row in fetch(sql, params)]


def nps_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    return _answering(cohort, month, "nps", dict(NPS_BANDS).get(part))


register(
    Metric(
        key="nps",
        title=_("Net Promoter Score"),
        definition=_(
            'NPS = % promoters (9–10) − % detractors (0–6) among patients who answered "How '
            'likely are you to recommend our follow-up service to family or friends?" (0–10) '
            "in the satisfaction survey completed in the month; each patient's latest answer of "
            "the month counts once. Passives: 7–8. Month: the calendar month of completion in "
            "the organisation's time zone, up to the as-of day. Dead patients are excluded."
        ),
        kind="score",
        parts=(
            Part("nps", _("NPS"), drill=False, colour=INFO),
            Part("promoters", _("Promoters (9–10)"), colour=GOOD),
            Part("passives", _("Passives (7–8)"), colour=OTHER),
            Part("detractors", _("Detractors (0–6)"), colour=BAD),
        ),
        compute=nps_compute,
        patients=nps_patients,
        group="engagement",
        headline="nps",
    )
)


def csat_compute(cohort: Cohort, months: Months) -> Computed:
    wins = windows(cohort, months)
    out: Computed = {m: csat_parts(0, 0, 0.0) for m in months}
    latest, params = _latest_answers(cohort, wins, "csat")
    sql = (
        "SELECT l.m, COUNT(*), SUM(CASE WHEN l.v >= 4 THEN 1 ELSE 0 END), SUM(l.v) "  # noqa: S608
        f"FROM ({latest}) l GROUP BY l.m"
    )
    for m, n, satisfied, total in fetch(sql, params):
        out[wins[m].month] = csat_parts(int(n), int(satisfied), float(total))
    return out


def csat_parts(n: int, satisfied: int, total: float) -> dict[str, Figure]:
    return {
        "satisfied": Figure(satisfied, n),
        "not_satisfied": Figure(n - satisfied, n),
        "mean_score": Figure(round(total / n, 2), None) if n else Figure(0, 0),
    }


def csat_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    cond = {"satisfied": "l.v >= 4", "not_satisfied": "l.v < 4"}.get(part)
    return _answering(cohort, month, "csat", cond)


register(
    Metric(
        key="csat",
        title=_("Satisfaction (CSAT)"),
        definition=_(
            'Satisfied: patients answering 4 (satisfied) or 5 (very satisfied) to "Overall, how '
            'satisfied are you with your follow-up care?" (1–5) ÷ patients who answered it, in '
            "satisfaction surveys completed in the month; each patient's latest answer of the "
            "month counts once. Mean score: the average answer (1–5) of the same patients. "
            "Month: the calendar month of completion in the organisation's time zone, up to the "
            "as-of day. Dead patients are excluded."
        ),
        kind="share",
        parts=(
            Part("satisfied", _("Satisfied (4–5)"), colour=GOOD),
            Part("not_satisfied", _("Neutral or dissatisfied (1–3)"), colour=WARNING),
            Part("mean_score", _("Mean score (1–5)"), drill=False, colour=NEUTRAL),
        ),
        compute=csat_compute,
        patients=csat_patients,
        group="engagement",
        headline="satisfied",
    )
)


# --- education content reads ----------------------------------------------------------------


def _deliveries(cohort: Cohort, wins: Sequence[Window], group: str) -> QuerySet[Any]:
    from careloop.education import models as em

    return (
        scoped(em.Delivery.objects.filter(organisation_id=cohort.organisation_id), cohort)
        .filter(_own_department(cohort, "enrolment__department_id"))
        .filter(span("delivered_at", wins))
        .annotate(
            m=month_case("delivered_at", wins),
            g=F("item_id") if group == "item" else none_value(),
        )
    )


OPENED = Q(opened_at__isnull=False) | Q(read_at__isnull=False)
READ = Q(read_at__isnull=False)


def _reads(
    cohort: Cohort, wins: Sequence[Window], group: str
) -> dict[tuple[int, Any], dict[str, Figure]]:
    rows = (
        _deliveries(cohort, wins, group)
        .order_by()
        .values("m", "g")
        .annotate(n=Count("pk"), opened=Count("pk", filter=OPENED), read=Count("pk", filter=READ))
    )
    out = {}
    for r in rows:
        if r["m"] is not None:
            n = r["n"]
            out[(r["m"], r["g"])] = {"opened": Figure(r["opened"], n), "read": Figure(r["read"], n)}
    return out


def reads_compute(cohort: Cohort, months: Months) -> Computed:
    return per_month(cohort, months, ("opened", "read"), _reads)


def reads_patients(cohort: Cohort, month: date, part: str) -> list[int]:
    qs = _deliveries(cohort, windows(cohort, [month]), "").filter(m=0)
    qs = qs.filter(READ if part == "read" else OPENED)
    return sorted(set(qs.values_list("patient_id", flat=True)))


def reads_by_item(cohort: Cohort, month: date) -> Breakdown:
    """Content items of the month, the most read first."""
    from careloop.education import models as em

    rows = {g: parts for (_m, g), parts in _reads(cohort, windows(cohort, [month]), "item").items()}
    labels = {pk: item.title for pk, item in em.ContentItem.objects.in_bulk(list(rows)).items()}
    return as_breakdown(
        rows,
        labels,
        order=lambda kv: (
            -kv[1]["read"].numerator,
            -kv[1]["opened"].numerator,
            labels.get(kv[0], ""),
        ),
    )


register(
    Metric(
        key="content_reads",
        title=_("Education content read"),
        definition=_(
            "Education items delivered to patients in the month that were opened (or read "
            "through) ÷ items delivered in the month; read: read through to the end ÷ "
            "delivered. Opening or reading counts whenever it happens. Month: the calendar month "
            "of delivery in the organisation's time zone, up to the as-of day. By item: the most "
            "read first. Dead patients are excluded."
        ),
        kind="share",
        parts=(
            Part("opened", _("Opened"), colour=INFO),
            Part("read", _("Read through"), colour=GOOD),
        ),
        compute=reads_compute,
        patients=reads_patients,
        breakdowns={"item": reads_by_item},
        group="engagement",
        headline="read",
    )
)
