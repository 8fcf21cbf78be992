"""The education routes in the shared security and audit tests (tests/security/scenario.py).

The scene's patient gets a published video item (an uploaded MP4) delivered to them and already
opened (so a read-through may be reported); the scene's recorded visit has its summary (written
by the visit signal). Every /education/<id>/ and /portal/learn/<id>/ route acts on these.
"""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile

from careloop.education import models as em
from careloop.kit.clock import utc_now

# The smallest thing the MP4 check accepts: an ISO BMFF "ftyp" box, then some bytes.
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)


def _ours(route: Any) -> bool:
    return route.name.startswith(("education:", "portal:learn"))


def extend(scene: Any) -> None:
    p = scene.patient
    now = utc_now()
    item = em.ContentItem(
        organisation_id=p.organisation_id,
        title="在家测血压",
        kind=em.Kind.VIDEO,
        body="坐下休息5分钟再测量。",
        icd10_prefixes=["I10"],
        stage=em.Stage.ANY,
        language=p.preferred_language,
        status=em.ContentItem.Status.PUBLISHED,
        published_at=now,
        video_type="video/mp4",
        video_size=len(MP4),
    )
    item.video_file.save("scene.mp4", ContentFile(MP4), save=False)
    item.save()
    draft = em.ContentItem.objects.create(
        organisation_id=p.organisation_id, title="草稿", body="草稿正文", language="zh-hans"
    )
    em.Delivery.objects.create(
        organisation_id=p.organisation_id, patient=p, item=item, delivered_at=now
    )
    em.ContentRead.objects.create(
        organisation_id=p.organisation_id, patient=p, item=item, event="open", at=now
    )
    scene.extra["edu_item"] = item
    scene.extra["edu_draft"] = draft
    visit = scene.rows["visits"]
    scene.extra["edu_visit"] = visit
    scene.extra["edu_summary"] = em.VisitSummary.objects.get(encounter=visit)


def url_values(route: Any, scene: Any) -> dict[str, Any]:
    if not _ours(route):
        return {}
    values: dict[str, Any] = {}
    if "<int:item_id>" in route.path:
        # Publishing acts on the draft, unpublishing and everything else on the published item.
        key = "edu_draft" if route.name == "education:publish" else "edu_item"
        values["item_id"] = scene.extra[key].pk
    if "<int:summary_id>" in route.path:
        values["summary_id"] = scene.extra["edu_summary"].pk
    if "<int:encounter_id>" in route.path:
        values["encounter_id"] = scene.extra["edu_visit"].pk
    return values


def page_body(route: Any, scene: Any, username: str | None) -> dict[str, Any] | None:
    if not _ours(route):
        return None
    item = scene.extra["edu_item"]
    bodies: dict[str, dict[str, Any]] = {
        "education:create": {
            "title": "低盐饮食",
            "kind": "article",
            "body": "每天盐不超过5克。",
            "stage": "week_1",
            "language": "zh-hans",
            "reading_level": "easy",
            "conditions": "I10",
        },
        "education:edit": {
            "title": "在家测血压（更新）",
            "kind": "video",
            "body": item.body,
            "stage": "any",
            "language": item.language,
            "reading_level": "easy",
            "conditions": "I10",
            "version": item.version,
        },
        "education:publish": {"version": scene.extra["edu_draft"].version},
        "education:unpublish": {"version": item.version},
        "portal:learn_progress": {"seconds": "50"},
    }
    return bodies.get(route.name, {})


def api_body(route: Any, scene: Any) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    return None
