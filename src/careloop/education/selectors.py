"""Every read of health education, scoped to the acting staff member or portal patient."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.education import models as em
from careloop.education import rendering
from careloop.kit.errors import NotFound
from careloop.patients import models as pm
from careloop.patients.selectors import get_patient, require

PAGE_SIZE = 50


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# --- staff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    q: str = ""
    language: str = ""
    status: str = ""
    stage: str = ""
    condition: str = ""
    kind: str = ""


def items(actor: Actor, f: Filters) -> list[Any]:
    require(actor, Action.CLINICAL_VIEW)
    qs = em.ContentItem.objects.filter(organisation_id=actor.organisation_id or 0)
    if f.q:
        qs = qs.filter(Q(title__icontains=f.q) | Q(body__icontains=f.q))
    if f.language in em.Language.values:
        qs = qs.filter(language=f.language)
    if f.status in em.ContentItem.Status.values:
        qs = qs.filter(status=f.status)
    if f.stage in em.Stage.values:
        qs = qs.filter(stage=f.stage)
    if f.kind in em.Kind.values:
        qs = qs.filter(kind=f.kind)
    rows = list(
        qs.annotate(delivered=Count("deliveries", distinct=True)).order_by("-updated_at", "-id")[
            : PAGE_SIZE * 4
        ]
    )
    if f.condition:
        wanted = f.condition.strip().upper()
        rows = [
            r
            for r in rows
            if any(
                t.upper().startswith(wanted) or wanted.startswith(t.upper())
                for t in r.icd10_prefixes
            )
            or wanted in r.snomed_codes
        ]
    return rows[:PAGE_SIZE]


def item(actor: Actor, item_id: Any) -> em.ContentItem:
    require(actor, Action.CLINICAL_VIEW)
    found = em.ContentItem.objects.filter(
        pk=_int(item_id), organisation_id=actor.organisation_id or 0
    ).first()
    if found is None:
        raise NotFound()
    return found


@dataclass(frozen=True)
class Stats:
    delivered: int
    opened: int
    read_through: int
    opens: int

    @property
    def read_rate(self) -> int:
        base = max(self.delivered, self.opened)
        return round(100 * self.read_through / base) if base else 0


def stats(item: em.ContentItem) -> Stats:
    """Counts of patients (not names): delivered, opened, read to the end; and all opens."""
    reads = em.ContentRead.objects.filter(item=item)
    return Stats(
        delivered=em.Delivery.objects.filter(item=item).count(),
        opened=reads.filter(event=em.ContentRead.Event.OPEN)
        .values("patient_id")
        .distinct()
        .count(),
        read_through=reads.filter(event=em.ContentRead.Event.READ_THROUGH).count(),
        opens=reads.filter(event=em.ContentRead.Event.OPEN).count(),
    )


def patient_summaries(actor: Actor, patient_id: int) -> tuple[pm.Patient, list[Any]]:
    """A patient's visits, each with its summary (or None), newest first."""
    require(actor, Action.CLINICAL_VIEW, patient_id=patient_id)
    patient = get_patient(actor, patient_id)
    visits = list(
        pm.Encounter.objects.filter(patient=patient, deleted_at__isnull=True)
        .select_related("department")
        .order_by("-admitted_on", "-id")
    )
    summaries = {s.encounter_id: s for s in em.VisitSummary.objects.filter(encounter__in=visits)}
    return patient, [(v, summaries.get(v.pk)) for v in visits]


def patient_summary(
    actor: Actor, patient_id: int, summary_id: Any
) -> tuple[pm.Patient, em.VisitSummary]:
    require(actor, Action.CLINICAL_VIEW, patient_id=patient_id)
    patient = get_patient(actor, patient_id)
    summary = em.VisitSummary.objects.filter(pk=_int(summary_id), patient=patient).first()
    if summary is None:
        raise NotFound()
    return patient, summary


# --- the portal (a PortalActor: patient_id and organisation_id fixed by the sign-in) ----------


def _visible(actor: Any) -> QuerySet[em.ContentItem]:
    """Published items delivered to this patient, or published for everyone of their language."""
    language = (
        pm.Patient.objects.filter(pk=actor.patient_id)
        .values_list("preferred_language", flat=True)
        .first()
    )
    delivered = em.Delivery.objects.filter(patient_id=actor.patient_id).values("item_id")
    return em.ContentItem.objects.filter(
        organisation_id=actor.organisation_id, status=em.ContentItem.Status.PUBLISHED
    ).filter(Q(pk__in=delivered) | Q(for_everyone=True, language=language))


@dataclass(frozen=True)
class LearnRow:
    item: em.ContentItem
    delivery: em.Delivery | None

    @property
    def is_new(self) -> bool:
        return self.delivery is not None and self.delivery.opened_at is None

    @property
    def excerpt(self) -> str:
        return rendering.plain(self.item.body, 110)

    @property
    def is_read(self) -> bool:
        return self.delivery is not None and self.delivery.read_at is not None


def learn(actor: Any, q: str = "") -> tuple[list[em.VisitSummary], list[LearnRow]]:
    summaries = list(
        em.VisitSummary.objects.filter(
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            withdrawn_at__isnull=True,
        ).order_by("-visit_date", "-id")[:20]
    )
    qs = _visible(actor)
    q = (q or "").strip()[:100]
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(body__icontains=q))
        summaries = []
    deliveries = {d.item_id: d for d in em.Delivery.objects.filter(patient_id=actor.patient_id)}
    rows = [LearnRow(i, deliveries.get(i.pk)) for i in qs[:200]]
    rows.sort(
        key=lambda r: (
            not r.is_new,
            -(
                r.delivery.delivered_at.timestamp()
                if r.delivery
                else r.item.published_at.timestamp()
                if r.item.published_at
                else 0
            ),
        )
    )
    return summaries, rows


def learn_item(actor: Any, item_id: Any) -> em.ContentItem:
    found = _visible(actor).filter(pk=_int(item_id)).first()
    if found is None:
        raise NotFound()
    return found


def learn_summary(actor: Any, summary_id: Any) -> em.VisitSummary:
    found = em.VisitSummary.objects.filter(
        pk=_int(summary_id),
        patient_id=actor.patient_id,
        organisation_id=actor.organisation_id,
        withdrawn_at__isnull=True,
    ).first()
    if found is None:
        raise NotFound()
    return found


def new_count(actor: Any) -> int:
    return em.Delivery.objects.filter(
        patient_id=actor.patient_id,
        opened_at__isnull=True,
        item__status=em.ContentItem.Status.PUBLISHED,
    ).count()
