"""Staff library pages and the portal's Learn tab, through the real routes."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.education import models as em
from careloop.portal import events
from tests.conftest import PASSWORD
from tests.education import helpers as h
from tests.education.scene import MP4
from tests.portal.client import portal_client


@pytest.fixture(autouse=True)
def english_staff(world: Any) -> None:
    """Staff pages in English, so that the assertions can name their text."""
    from careloop.accounts.models import Staff

    Staff.objects.update(language="en")


pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def staff(username: str = "nurse.cardiology") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=username, password=PASSWORD)
    return client


def _form(**kw: Any) -> dict[str, Any]:
    data = {
        "title": "Salt",
        "kind": "article",
        "body": "Less salt.",
        "stage": "week_1",
        "language": "en",
        "reading_level": "easy",
        "conditions": "I10",
    }
    data.update(kw)
    return data


def test_stored_xss_is_shown_escaped_to_staff_and_patients(world: Any) -> None:
    client = staff()
    response = client.post(
        "/education/new/", _form(title=f"T {XSS}", body=f"# H {XSS}\n\n{XSS}", for_everyone="on")
    )
    assert response.status_code == 302
    item = em.ContentItem.objects.get()
    assert item.status == "draft" and item.icd10_prefixes == ["I10"]
    for url in ("/education/", f"/education/{item.pk}/"):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html
    preview = client.post("/education/new/", _form(body=XSS, preview="1")).content.decode()
    assert "<script>alert" not in preview and "&lt;script&gt;" in preview
    assert em.ContentItem.objects.count() == 1  # a preview saves nothing
    # Publish (confirmation page, then POST), and the patient reads it.
    assert b"Publish this item?" in client.get(f"/education/{item.pk}/publish/").content
    client.post(f"/education/{item.pk}/publish/", {"version": item.version})
    item.refresh_from_db()
    assert item.status == "published"
    p = h.patient(world, "en")
    patient = portal_client(p)
    for url in ("/portal/learn/", f"/portal/learn/{item.pk}/"):
        html = patient.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html or "&lt;script&gt;" in html.replace("&amp;", "&")


def test_validation_and_https_only_links(world: Any) -> None:
    client = staff()
    response = client.post(
        "/education/new/", _form(kind="video", body="", video_url="javascript:alert(1)")
    )
    assert response.status_code == 422
    assert b"https://" in response.content
    response = client.post("/education/new/", _form(conditions="I10, <b>"))
    assert response.status_code == 422
    assert not em.ContentItem.objects.exists()
    assert staff("auditor").get("/education/").status_code == 403
    assert staff("admin").post("/education/new/", _form()).status_code == 403


def test_video_upload_checked_by_content_and_served_with_ranges(world: Any) -> None:
    client = staff()
    fake = SimpleUploadedFile(
        "clip.mp4", b"<html><script>alert(1)</script></html>", content_type="video/mp4"
    )
    response = client.post("/education/new/", {**_form(kind="video", body=""), "video_file": fake})
    assert response.status_code == 422 and b"MP4 or WebM" in response.content
    good = SimpleUploadedFile("clip.bin", MP4, content_type="application/octet-stream")
    response = client.post("/education/new/", {**_form(kind="video", body=""), "video_file": good})
    assert response.status_code == 302
    item = em.ContentItem.objects.get()
    assert item.video_type == "video/mp4" and item.video_size == len(MP4)
    whole = client.get(f"/education/{item.pk}/video")
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == MP4
    part = client.get(f"/education/{item.pk}/video", HTTP_RANGE="bytes=4-7")
    assert part.status_code == 206 and b"".join(part.streaming_content) == b"ftyp"
    assert part["Content-Range"] == f"bytes 4-7/{len(MP4)}"
    assert client.get(f"/education/{item.pk}/video", HTTP_RANGE="bytes=999-").status_code == 416
    # Patients only once it is theirs.
    p = h.patient(world, "en")
    patient = portal_client(p)
    assert patient.get(f"/portal/learn/{item.pk}/video").status_code == 404
    item.status = "published"
    item.save()
    em.Delivery.objects.create(
        organisation=world.org, patient=p, item=item, delivered_at=item.updated_at
    )
    assert patient.get(f"/portal/learn/{item.pk}/video").status_code == 200


def test_reading_records_open_read_through_and_event(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    seen: list[Any] = []
    events.on(seen.append)
    p = h.patient(world)
    mine = h.item(world, title="给我的")
    em.Delivery.objects.create(
        organisation=world.org, patient=p, item=mine, delivered_at=mine.published_at
    )
    client = portal_client(p)
    learn = client.get("/portal/learn/")
    assert learn.status_code == 200 and "给我的" in learn.content.decode()
    assert b'data-testid="new-badge"' in learn.content
    # A read-through before any open is refused.
    assert (
        client.post(
            f"/portal/learn/{mine.pk}/read", {"seconds": 5}, HTTP_ACCEPT="application/json"
        ).status_code
        == 409
    )
    assert client.get(f"/portal/learn/{mine.pk}/").status_code == 200
    d = em.Delivery.objects.get(patient=p, item=mine)
    assert d.opened_at is not None and d.read_at is None
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(
            f"/portal/learn/{mine.pk}/read", {"seconds": 50}, HTTP_ACCEPT="application/json"
        )
    assert r.json() == {"recorded": True, "first": True}
    again = client.post(
        f"/portal/learn/{mine.pk}/read", {"seconds": 60}, HTTP_ACCEPT="application/json"
    )
    assert again.json()["first"] is False
    assert em.ContentRead.objects.filter(patient=p, item=mine, event="read_through").count() == 1
    d.refresh_from_db()
    assert d.read_at is not None
    assert [(e.kind, e.ref) for e in seen if e.patient_id == p.pk] == [
        (events.CONTENT_READ, f"content:{mine.pk}")
    ]
    assert AuditEvent.objects.filter(
        action="portal.education.read", patient_id=p.pk, actor=f"patient:{p.pk}"
    ).exists()
    staff_html = staff().get(f"/education/{mine.pk}/").content.decode()
    assert 'data-testid="stat-read">1<' in staff_html
    assert 'data-testid="stat-opened">1<' in staff_html
    # Search within my items.
    assert "给我的" not in client.get("/portal/learn/?q=没有这个").content.decode()
    assert "给我的" in client.get("/portal/learn/?q=我的").content.decode()


def test_another_patients_items_and_summaries_answer_404(world: Any) -> None:
    me, other = h.patient(world), h.patient(world)
    theirs = h.item(world, title="别人的")
    em.Delivery.objects.create(
        organisation=world.org, patient=other, item=theirs, delivered_at=theirs.published_at
    )
    everyone = h.item(world, title="大家的", for_everyone=True, icd10_prefixes=[])
    summary = em.VisitSummary.objects.get(encounter=h.visit(world, other))
    client = portal_client(me)
    assert client.get(f"/portal/learn/{theirs.pk}/").status_code == 404
    assert client.get(f"/portal/learn/{theirs.pk}/video").status_code == 404
    assert client.post(f"/portal/learn/{theirs.pk}/read").status_code == 404
    assert client.get(f"/portal/learn/summaries/{summary.pk}/").status_code == 404
    html = client.get("/portal/learn/").content.decode()
    assert "别人的" not in html and "大家的" in html
    assert client.get(f"/portal/learn/{everyone.pk}/").status_code == 200
    # Their own summary is theirs.
    assert portal_client(other).get(f"/portal/learn/summaries/{summary.pk}/").status_code == 200


def test_summary_in_portal_and_on_the_staff_360_page(world: Any) -> None:
    p = h.patient(world, "en")
    h.record(
        world,
        p,
        "medications",
        {
            "name": "Metformin",
            "dose": "500",
            "unit": "mg",
            "route": "po",
            "frequency": "bid",
            "status": "active",
        },
    )
    encounter = h.visit(world, p, "E11.9")
    summary = em.VisitSummary.objects.get(encounter=encounter)
    client = portal_client(p)
    learn = client.get("/portal/learn/").content.decode()
    assert f"/portal/learn/summaries/{summary.pk}/" in learn
    page = client.get(f"/portal/learn/summaries/{summary.pk}/").content.decode()
    assert "Metformin" in page and "08:00" in page and "20:00" in page and "E11.9" in page
    summary.refresh_from_db()
    assert summary.opened_at is not None
    nurse = staff()
    detail = nurse.get(f"/patients/{p.pk}/").content.decode()
    assert f"/education/patients/{p.pk}/summaries/" in detail
    listing = nurse.get(f"/education/patients/{p.pk}/summaries/").content.decode()
    assert f"/education/patients/{p.pk}/summaries/{summary.pk}/" in listing
    assert (
        "Metformin"
        in nurse.get(f"/education/patients/{p.pk}/summaries/{summary.pk}/").content.decode()
    )
    r = nurse.post(f"/education/patients/{p.pk}/visits/{encounter.pk}/summary")
    assert r.status_code == 302
    summary.refresh_from_db()
    assert summary.version == 2
    # Another department's nurse cannot see the patient's summaries.
    assert (
        staff("nurse.endocrinology")
        .get(f"/education/patients/{p.pk}/summaries/{summary.pk}/")
        .status_code
        == 404
    )
