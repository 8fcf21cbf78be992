"""Every write of health education: the library, the stage push, reads and visit summaries."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.appointments import models as am
from careloop.audit import services as audit
from careloop.careplans import models as cm
from careloop.careplans.domain import local_of, zone
from careloop.careplans.selectors import consented_channels
from careloop.education import domain
from careloop.education import models as em
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict, NotFound, StaleVersion, ValidationFailed
from careloop.patients import models as pm
from careloop.patients.selectors import get_patient, require
from careloop.portal import events

log = logging.getLogger("careloop.education")

EDITABLE = (
    "title",
    "kind",
    "body",
    "video_url",
    "stage",
    "language",
    "reading_level",
    "for_everyone",
)


# --- the library ------------------------------------------------------------------------------


def _clean(
    data: Mapping[str, Any], video: UploadedFile | None, item: em.ContentItem | None
) -> tuple[dict[str, Any], str]:
    """Validate an item's fields; the cleaned values and the video's checked type."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    title = str(data.get("title") or "").strip()
    if not title:
        errors["title"] = [_("Give the item a title.")]
    elif len(title) > 200:
        errors["title"] = [_("At most 200 characters.")]
    clean["title"] = title
    kind = str(data.get("kind") or em.Kind.ARTICLE)
    if kind not in em.Kind.values:
        errors["kind"] = [_("Choose article or video.")]
    clean["kind"] = kind
    body = str(data.get("body") or "").replace("\r\n", "\n").strip()
    if len(body) > 20000:
        errors["body"] = [_("At most 20,000 characters.")]
    clean["body"] = body
    url = str(data.get("video_url") or "").strip()
    if url and (not url.lower().startswith("https://") or len(url) > 500 or " " in url):
        errors["video_url"] = [_("A video link must be a full https:// address.")]
    clean["video_url"] = url
    for name, choices in (
        ("stage", em.Stage),
        ("language", em.Language),
        ("reading_level", em.Level),
    ):
        value = str(data.get(name) or "")
        if value not in choices.values:
            errors[name] = [_("Choose one of the options.")]
        clean[name] = value
    clean["for_everyone"] = str(data.get("for_everyone") or "").lower() in ("on", "true", "1")
    icd, snomed, problems = domain.parse_tags(str(data.get("conditions") or ""))
    if problems:
        errors["conditions"] = [
            _("Not an ICD-10 code prefix or SNOMED CT concept id: %(tags)s")
            % {"tags": ", ".join(problems)}
        ]
    clean["icd10_prefixes"], clean["snomed_codes"] = icd, snomed
    checked = ""
    if video is not None:
        if video.size is None or video.size > domain.VIDEO_MAX_BYTES:
            errors["video_file"] = [_("The video may be at most 50 MB.")]
        else:
            video.seek(0)
            checked = domain.video_type(video.read(64)) or ""
            video.seek(0)
            if not checked:
                errors["video_file"] = [_("Upload an MP4 or WebM video.")]
    if kind == em.Kind.VIDEO and not url and video is None and not (item and item.video_file):
        errors["video_url"] = [_("A video needs an uploaded file or a link.")]
    if kind == em.Kind.ARTICLE and not body:
        errors["body"] = [_("Write the article's text.")]
    if errors:
        raise ValidationFailed(details=errors)
    return clean, checked


def create_item(
    actor: Actor, data: Mapping[str, Any], video: UploadedFile | None = None
) -> em.ContentItem:
    require(actor, Action.CLINICAL_WRITE)
    clean, checked = _clean(data, video, None)
    with transaction.atomic():
        item = em.ContentItem(
            organisation_id=actor.organisation_id or 0,
            created_by=actor.user,
            updated_by=actor.user,
            **clean,
        )
        if video is not None:
            item.video_file.save(f"video.{checked.split('/')[1]}", video, save=False)
            item.video_type, item.video_size = checked, int(video.size or 0)
        item.save()
        audit.record(actor, "education.item.create", obj=item, detail={"title": item.title})
    return item


def _locked(actor: Actor, item_id: Any) -> em.ContentItem:
    item = (
        em.ContentItem.objects.select_for_update()
        .filter(pk=_int(item_id), organisation_id=actor.organisation_id or 0)
        .first()
    )
    if item is None:
        raise NotFound()
    return item


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _check(item: em.ContentItem, version: Any) -> None:
    if version not in (None, "") and _int(version) != item.version:
        raise StaleVersion(details={"version": item.version})


def update_item(
    actor: Actor,
    item_id: Any,
    data: Mapping[str, Any],
    version: Any = None,
    video: UploadedFile | None = None,
) -> em.ContentItem:
    require(actor, Action.CLINICAL_WRITE)
    with transaction.atomic():
        item = _locked(actor, item_id)
        _check(item, version)
        clean, checked = _clean(data, video, item)
        changed = sorted(k for k, v in clean.items() if getattr(item, k) != v)
        for k, v in clean.items():
            setattr(item, k, v)
        if video is not None:
            item.video_file.save(f"video.{checked.split('/')[1]}", video, save=False)
            item.video_type, item.video_size = checked, int(video.size or 0)
            changed.append("video_file")
        item.version += 1
        item.updated_by = actor.user
        item.save()
        audit.record(
            actor,
            "education.item.update",
            obj=item,
            detail={"fields": changed, "version": item.version},
        )
    return item


def set_published(
    actor: Actor, item_id: Any, published: bool, version: Any = None
) -> em.ContentItem:
    require(actor, Action.CLINICAL_WRITE)
    with transaction.atomic():
        item = _locked(actor, item_id)
        _check(item, version)
        target = em.ContentItem.Status.PUBLISHED if published else em.ContentItem.Status.DRAFT
        if item.status == target:
            raise Conflict(_("The item is already in that state."))
        item.status = target
        item.published_at = utc_now() if published else item.published_at
        item.version += 1
        item.updated_by = actor.user
        item.save()
        audit.record(
            actor,
            "education.item.publish" if published else "education.item.unpublish",
            obj=item,
            detail={"version": item.version},
        )
    return item


# --- the stage push ---------------------------------------------------------------------------


def has_education_consent(patient: pm.Patient) -> bool:
    return bool(consented_channels(patient, "education"))


def patient_codes(patient_ids: list[int]) -> dict[int, tuple[list[str], list[str]]]:
    codes: dict[int, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for pid, icd, snomed in pm.Condition.objects.filter(
        patient_id__in=patient_ids,
        deleted_at__isnull=True,
        status__in=(pm.Condition.Status.ACTIVE, pm.Condition.Status.REMISSION),
    ).values_list("patient_id", "icd10_code", "snomed_code"):
        codes[pid][0].append(icd)
        if snomed:
            codes[pid][1].append(snomed)
    return codes


def push(now: datetime | None = None, organisation_id: int | None = None) -> int:
    """Deliver published items to each actively enrolled patient whose conditions, plan day and
    language they are tagged for, once per patient and item, with education consent only.
    Returns how many deliveries were made; running it again delivers nothing new."""
    now = now or utc_now()
    enrolments = cm.Enrolment.objects.filter(
        status=cm.Enrolment.Status.ACTIVE,
        patient__merged_into__isnull=True,
        patient__deceased_on__isnull=True,
    ).select_related("patient")
    if organisation_id is not None:
        enrolments = enrolments.filter(organisation_id=organisation_id)
    by_patient: dict[int, list[cm.Enrolment]] = defaultdict(list)
    for e in enrolments:
        by_patient[e.patient_id].append(e)
    if not by_patient:
        return 0
    items_by_org: dict[int, list[em.ContentItem]] = defaultdict(list)
    for item in em.ContentItem.objects.filter(
        status=em.ContentItem.Status.PUBLISHED,
        organisation_id__in={e[0].organisation_id for e in by_patient.values()},
    ):
        items_by_org[item.organisation_id].append(item)
    codes = patient_codes(list(by_patient))
    have: set[tuple[int, int]] = set(
        em.Delivery.objects.filter(patient_id__in=list(by_patient)).values_list(
            "patient_id", "item_id"
        )
    )
    delivered = 0
    for pid, patient_enrolments in by_patient.items():
        patient = patient_enrolments[0].patient
        items = items_by_org.get(patient.organisation_id, [])
        if not items or not has_education_consent(patient):
            continue
        today = local_of(now, zone(patient.time_zone)).date()
        icd, snomed = codes[pid]
        fresh: list[em.Delivery] = []
        for e in sorted(patient_enrolments, key=lambda x: x.starts_on):
            day = (today - e.starts_on).days
            if day < 0:
                continue
            who = domain.Audience(patient.preferred_language, icd, snomed, day)
            for item in items:
                tags = domain.Tags(
                    item.language, item.stage, item.icd10_prefixes, item.snomed_codes
                )
                if (pid, item.pk) in have or not domain.is_for(tags, who):
                    continue
                have.add((pid, item.pk))
                fresh.append(
                    em.Delivery(
                        organisation_id=patient.organisation_id,
                        patient_id=pid,
                        item=item,
                        enrolment=e,
                        plan_day=day,
                        delivered_at=now,
                    )
                )
        if fresh:
            delivered += _deliver(patient, fresh, now)
    return delivered


def _deliver(patient: pm.Patient, fresh: list[em.Delivery], now: datetime) -> int:
    made = 0
    with transaction.atomic():
        for d in fresh:
            try:
                with transaction.atomic():
                    d.save()
                made += 1
            except IntegrityError:  # another worker delivered it first
                continue
        if not made:
            return 0
        audit.append(
            action="education.deliver",
            actor_name="education-push",
            organisation_id=patient.organisation_id,
            patient_id=patient.pk,
            object_type="education.delivery",
            detail={"items": [d.item_id for d in fresh if d.pk]},
        )
        _notify(patient, now)
    return made


def _notify(patient: pm.Patient, now: datetime) -> None:
    """One message a day at most, through the reminder channels (education consent is checked
    per channel at send time). It names no item and no diagnosis."""
    from careloop.reminders import services as reminder_services

    with translation.override("zh-hans"):
        title = _("New reading for you in CareLoop")
    with translation.override("en"):
        title_en = _("New reading for you in CareLoop")
    day = local_of(now, zone(patient.time_zone)).date()
    reminder_services.schedule_one(
        organisation_id=patient.organisation_id,
        patient_id=patient.pk,
        kind="education",
        source_key=f"education:{patient.pk}:{day.isoformat()}",
        due_at=now,
        time_zone=patient.time_zone,
        payload={"title": title, "title_en": title_en},
        ref=f"education:{day.isoformat()}",
        purpose="education",
    )


def periodic(now: datetime | None = None) -> int:
    """What the worker runs now and then: the stage push, once per (UTC) day across workers."""
    now = now or utc_now()
    try:
        with transaction.atomic():
            run = em.PushRun.objects.create(day=now.date(), started_at=now)
    except IntegrityError:
        return 0
    count = push(now)
    em.PushRun.objects.filter(pk=run.pk).update(delivered=count)
    if count:
        log.info("education push delivered %s items", count)
    return count


# --- reads (the portal) -----------------------------------------------------------------------


def record_open(actor: Any, item: em.ContentItem) -> None:
    """The patient (or their caregiver) opened an item."""
    now = utc_now()
    with transaction.atomic():
        em.ContentRead.objects.create(
            organisation_id=actor.organisation_id,
            patient_id=actor.patient_id,
            item=item,
            event=em.ContentRead.Event.OPEN,
            at=now,
            by_caregiver=actor.is_proxy,
        )
        em.Delivery.objects.filter(
            patient_id=actor.patient_id, item=item, opened_at__isnull=True
        ).update(opened_at=now)
        actor.audit("portal.education.read", object_type="education.contentitem", object_id=item.pk)


def record_read_through(actor: Any, item: em.ContentItem, seconds: Any = 0) -> bool:
    """The patient reached the end (or stayed long enough). Once per patient and item; only
    after an open. True when this was the first read-through."""
    now = utc_now()
    with transaction.atomic():
        opened = em.ContentRead.objects.filter(
            patient_id=actor.patient_id, item=item, event=em.ContentRead.Event.OPEN
        ).exists()
        if not opened:
            raise Conflict(_("Open the item first."))
        try:
            with transaction.atomic():
                em.ContentRead.objects.create(
                    organisation_id=actor.organisation_id,
                    patient_id=actor.patient_id,
                    item=item,
                    event=em.ContentRead.Event.READ_THROUGH,
                    at=now,
                    seconds=min(max(_int(seconds), 0), 86400),
                    by_caregiver=actor.is_proxy,
                )
        except IntegrityError:
            return False
        em.Delivery.objects.filter(
            patient_id=actor.patient_id, item=item, read_at__isnull=True
        ).update(read_at=now)
        actor.audit(
            "portal.education.read_through", object_type="education.contentitem", object_id=item.pk
        )
        events.emit(
            events.CONTENT_READ,
            patient_id=actor.patient_id,
            organisation_id=actor.organisation_id,
            ref=f"content:{item.pk}",
        )
    return True


def record_summary_open(actor: Any, summary: em.VisitSummary) -> None:
    with transaction.atomic():
        em.VisitSummary.objects.filter(pk=summary.pk, opened_at__isnull=True).update(
            opened_at=utc_now()
        )
        actor.audit(
            "portal.education.read", object_type="education.visitsummary", object_id=summary.pk
        )


# --- visit summaries --------------------------------------------------------------------------


def _concepts(codes: list[str]) -> dict[str, pm.Concept]:
    wanted = {c.upper() for c in codes} | {c.split(".")[0].upper() for c in codes}
    return {
        c.code.upper(): c
        for c in pm.Concept.objects.filter(system=pm.Concept.System.ICD10, code__in=wanted)
    }


def _display(concepts: Mapping[str, pm.Concept], code: str, language: str) -> str:
    concept = concepts.get(code.upper()) or concepts.get(code.split(".")[0].upper())
    if concept is None:
        return ""
    return concept.display_en if language == "en" else concept.display_zh


def _department_name(department: Any, language: str) -> str:
    english = getattr(department, "name_en", "")
    return str(english if language == "en" and english else department.name)


def compose(encounter: pm.Encounter, now: datetime | None = None) -> dict[str, Any]:
    """The summary's content, in the patient's language, from the record as it is now."""
    now = now or utc_now()
    patient = encounter.patient
    language = (
        patient.preferred_language
        if patient.preferred_language in em.Language.values
        else "zh-hans"
    )
    conditions = list(
        pm.Condition.objects.filter(
            patient=patient, deleted_at__isnull=True, status=pm.Condition.Status.ACTIVE
        ).order_by("id")
    )
    written = domain.codes_in(encounter.diagnoses)
    concepts = _concepts(written + [c.icd10_code for c in conditions])
    diagnoses: list[dict[str, str]] = []
    seen: set[str] = set()

    def add(code: str, name: str) -> None:
        key = code.upper() or name
        if key in seen:
            return
        seen.add(key)
        advice = domain.advice_for(code) if code else None
        diagnoses.append(
            {
                "code": code,
                "name": _display(concepts, code, language) or name or code,
                "explain": domain.word(advice.explain, language) if advice else "",
            }
        )

    for part in domain.split_diagnoses(encounter.diagnoses):
        found = domain.codes_in(part)
        add(found[0] if found else "", part if not found else "")
    for c in conditions:
        add(c.icd10_code, c.display)
    pref = cm.ReminderPreference.objects.filter(patient=patient).first()
    overrides = (pref.dose_times if pref else {}) or {}
    medications = []
    for rx in pm.Medication.objects.filter(
        patient=patient, deleted_at__isnull=True, status=pm.Medication.Status.ACTIVE
    ).order_by("name", "id"):
        if rx.end_date and rx.end_date < encounter.admitted_on:
            continue
        medications.append(
            {
                "name": rx.name,
                "dose": domain.format_dose(rx.dose, rx.unit),
                "route": domain.word(domain.ROUTE_WORDS.get(rx.route, {}), language),
                "frequency": domain.word(domain.FREQUENCY_WORDS.get(rx.frequency, {}), language),
                "times": domain.dose_times(rx.frequency, overrides),
                "until": rx.end_date.isoformat() if rx.end_date else "",
            }
        )
    allergies = [
        {"substance": a.substance, "reaction": a.reaction}
        for a in pm.Allergy.objects.filter(patient=patient, deleted_at__isnull=True).order_by("id")
    ]
    codes = [d["code"] for d in diagnoses if d["code"]]
    tz = zone(patient.time_zone)
    upcoming = (
        am.Appointment.objects.filter(
            patient=patient, status__in=am.Appointment.ACTIVE, starts_at__gt=now
        )
        .select_related("department", "doctor")
        .order_by("starts_at")
        .first()
    )
    next_visit = None
    if upcoming is not None:
        local = local_of(upcoming.starts_at, tz)
        next_visit = {
            "date": local.date().isoformat(),
            "time": f"{local:%H:%M}",
            "department": _department_name(upcoming.department, language),
            "doctor": str(upcoming.doctor) if upcoming.doctor else "",
        }
    with translation.override(language):
        kind = (
            str(pm.Encounter.Kind(encounter.kind).label)
            if encounter.kind in pm.Encounter.Kind.values
            else ""
        )
    return {
        "language": language,
        "visit": {
            "date": encounter.admitted_on.isoformat(),
            "discharged": encounter.discharged_on.isoformat() if encounter.discharged_on else "",
            "kind": kind,
            "department": _department_name(encounter.department, language),
            "doctor": encounter.attending,
        },
        "diagnoses": diagnoses,
        "medications": medications,
        "allergies": allergies,
        "warnings": domain.warnings_for(codes, language),
        "next_visit": next_visit,
    }


def generate(
    encounter: pm.Encounter, *, by: Any = None, now: datetime | None = None
) -> em.VisitSummary:
    """Write (or rewrite) the summary of a visit. Runs inside the caller's transaction."""
    now = now or utc_now()
    content = compose(encounter, now)
    with transaction.atomic():
        summary = em.VisitSummary.objects.select_for_update().filter(encounter=encounter).first()
        if summary is None:
            summary = em.VisitSummary(
                organisation_id=encounter.organisation_id,
                patient_id=encounter.patient_id,
                encounter=encounter,
                version=0,
            )
        summary.visit_date = encounter.admitted_on
        summary.language = content["language"]
        summary.content = content
        summary.version += 1
        summary.generated_at = now
        summary.generated_by = by
        summary.withdrawn_at = None
        summary.save()
    return summary


def regenerate(actor: Actor, patient_id: int, encounter_id: Any) -> em.VisitSummary:
    """Staff rewrite a visit's summary from the record as it is now."""
    require(actor, Action.CLINICAL_WRITE, patient_id=patient_id)
    patient = get_patient(actor, patient_id, audit_read=False)
    encounter = (
        pm.Encounter.objects.filter(pk=_int(encounter_id), patient=patient, deleted_at__isnull=True)
        .select_related("patient", "department")
        .first()
    )
    if encounter is None:
        raise NotFound()
    with transaction.atomic():
        summary = generate(encounter, by=actor.user)
        audit.record(
            actor,
            "education.summary.generate",
            patient_id=patient.pk,
            obj=summary,
            detail={"encounter": encounter.pk, "version": summary.version},
        )
    return summary


# Record kinds whose change rewrites the latest recent summary (what the patient takes home).
_SUMMARY_KINDS = ("conditions", "allergies", "medications")
RECENT_DAYS = 14


def on_record_changed(*, actor: Any, patient: pm.Patient, kind: str, row: Any, change: str) -> None:
    """A visit recorded (or corrected) writes its summary; a visit removed withdraws it; a
    diagnosis, allergy or medicine changed soon after a visit rewrites that visit's summary."""
    user = getattr(actor, "user", None)
    if kind == "visits":
        if change == "delete":
            em.VisitSummary.objects.filter(encounter=row).update(withdrawn_at=utc_now())
            return
        generate(row, by=user)
        audit.record(
            actor,
            "education.summary.generate",
            patient_id=patient.pk,
            object_type="education.visitsummary",
            object_id=row.pk,
            detail={"encounter": row.pk, "trigger": change},
        )
        return
    if kind not in _SUMMARY_KINDS:
        return
    latest = (
        em.VisitSummary.objects.filter(patient=patient, withdrawn_at__isnull=True)
        .select_related("encounter", "encounter__patient", "encounter__department")
        .order_by("-visit_date", "-id")
        .first()
    )
    if latest is None or (utc_now().date() - latest.visit_date).days > RECENT_DAYS:
        return
    generate(latest.encounter, by=user)
