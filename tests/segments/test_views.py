"""The segment pages: overview and chart, members (scope, search, filter, pages, CSV, audit),
administration (validation, preview, default copies, deactivation), recompute now, nav link."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from careloop.audit.models import AuditEvent
from careloop.segments import models as sm
from careloop.segments import services
from tests.segments.conftest import Builder

pytestmark = pytest.mark.django_db
CODE = "high_risk_non_adherent"


def client(world: Any, username: str) -> Client:
    user = world.staff[username]
    user.language = "en"
    user.save(update_fields=["language"])
    c = Client(HTTP_ACCEPT_LANGUAGE="en")
    c.force_login(user)
    return c


def segment(code: str = CODE) -> sm.Segment:
    return sm.Segment.objects.get(organisation__isnull=True, code=code)


@pytest.fixture
def populated(build: Builder) -> dict[str, Any]:
    cardio = [build.patient(name=f"心内{i}") for i in range(3)]
    endo = build.patient("nurse.endocrinology", name="内分泌甲")
    for p in [*cardio, endo]:
        build.bp(p, 170, 95)
    services.recompute(build.org_id)
    return {"cardio": cardio, "endo": endo}


class TestOverview:
    def test_counts_and_chart(self, world: Any, populated: dict[str, Any]) -> None:
        response = client(world, "doctor.cardiology").get(reverse("segments:list"))
        assert response.status_code == 200
        html = response.content.decode()
        assert 'data-code="high_risk_non_adherent"' in html
        row = html.split('data-code="high_risk_non_adherent"')[1]
        assert 'data-testid="segment-members">4<' in row
        canvas = html.split('data-segments-chart data-series="')[1].split('"')[0]
        chart = json.loads(canvas.replace("&quot;", '"').replace("&amp;", "&"))
        assert len(chart["labels"]) == 90
        series = {s["label"]: s["data"] for s in chart["series"]}
        assert series["High risk, non-adherent"][-1] == 4
        assert "segments/segments.js" in html
        assert 'data-testid="nav-segments"' in html
        assert 'data-testid="segments-recompute"' not in html  # doctors do not manage

    def test_roles_without_analytics_are_refused(self, world: Any, build: Builder) -> None:
        response = client(world, "auditor").get(reverse("segments:list"))
        assert response.status_code == 403
        assert 'data-testid="nav-segments"' not in response.content.decode()


class TestMembers:
    def test_only_patients_the_user_may_see_and_audited(
        self, world: Any, populated: dict[str, Any]
    ) -> None:
        url = reverse("segments:detail", args=[segment().pk])
        response = client(world, "nurse.cardiology").get(url)
        assert response.status_code == 200
        html = response.content.decode()
        shown = {int(x.split('"')[0]) for x in html.split('data-patient="')[1:]}
        assert shown == {p.pk for p in populated["cardio"]}
        assert populated["endo"].name not in html
        event = AuditEvent.objects.filter(action="segment.members").latest("seq")
        assert sorted(event.detail["patients"]) == sorted(shown)
        admin = client(world, "admin").get(url).content.decode()
        assert populated["endo"].name in admin

    def test_search_department_filter_and_pages(
        self, world: Any, populated: dict[str, Any]
    ) -> None:
        url = reverse("segments:detail", args=[segment().pk])
        c = client(world, "admin")
        html = c.get(url, {"q": "内分泌"}, HTTP_HX_REQUEST="true").content.decode()
        assert populated["endo"].name in html and populated["cardio"][0].name not in html
        html = c.get(url, {"department": world.endo.pk}, HTTP_HX_REQUEST="true").content.decode()
        assert populated["endo"].name in html and populated["cardio"][0].name not in html
        page = c.get(url, {"size": 2, "page": 2}, HTTP_HX_REQUEST="true")
        assert page.status_code == 200
        assert page.content.decode().count('data-testid="segment-member"') == 2
        assert "Page 2 of 2" in page.content.decode()

    def test_a_department_outside_the_scope_is_a_clear_400(
        self, world: Any, populated: dict[str, Any]
    ) -> None:
        url = reverse("segments:detail", args=[segment().pk])
        response = client(world, "nurse.cardiology").get(url, {"department": world.endo.pk})
        assert response.status_code == 400
        assert "Choose one of your departments." in response.content.decode()

    def test_csv_export_is_scoped_and_audited(self, world: Any, populated: dict[str, Any]) -> None:
        url = reverse("segments:export", args=[segment().pk])
        response = client(world, "nurse.cardiology").get(url, {"format": "csv"})
        assert response.status_code == 200
        assert response["Content-Disposition"].endswith('.csv"')
        body = response.content.decode("utf-8-sig")
        assert body.splitlines()[0].startswith("Patient,Record number")
        assert len(body.strip().splitlines()) == 4
        assert populated["endo"].name not in body
        assert "170/95" in body
        event = AuditEvent.objects.filter(action="segment.export").latest("seq")
        assert len(event.detail["patients"]) == 3

    def test_another_organisations_segment_is_404(self, world: Any, build: Builder) -> None:
        own = services.save_segment(
            world.actor("admin.other"),
            {"code": "other_only", "name": "别处", "rule": "age > 1", "strategy": ""},
        )
        response = client(world, "admin").get(reverse("segments:detail", args=[own.pk]))
        assert response.status_code == 404


class TestAdministration:
    def form(self, **changes: Any) -> dict[str, Any]:
        data = {
            "code": "elderly_uncontrolled",
            "name": "高龄未控制",
            "name_en": "Elderly, uncontrolled",
            "description": "",
            "rule": "age >= 75 and last_sbp >= 150",
            "priority": "30",
            "strategy": '{"kind": "high_risk", "call_task": true}',
            "active": "on",
        }
        data.update(changes)
        return data

    def test_create_validates_and_keeps_the_input(self, world: Any, build: Builder) -> None:
        c = client(world, "admin")
        response = c.post(reverse("segments:create"), self.form(rule="bmi > 30 and"))
        assert response.status_code == 400
        html = response.content.decode()
        assert "cannot be read" in html
        assert "高龄未控制" in html  # nothing typed is lost
        response = c.post(reverse("segments:create"), self.form(strategy='{"kind": "fly"}'))
        assert response.status_code == 400
        assert "Unknown strategy kind" in response.content.decode()
        response = c.post(
            reverse("segments:create"),
            self.form(strategy='{"kind": "addon_plan", "template": "nope"}'),
        )
        assert "No active plan template" in response.content.decode()
        response = c.post(reverse("segments:create"), self.form(code=CODE))
        assert "exists already" in response.content.decode()
        response = c.post(reverse("segments:create"), self.form())
        assert response.status_code == 302
        saved = sm.Segment.objects.get(organisation=world.org, code="elderly_uncontrolled")
        assert saved.strategy == {"kind": "high_risk", "call_task": True}
        assert AuditEvent.objects.filter(action="segment.save").exists()

    def test_preview_counts_without_saving(self, world: Any, populated: dict[str, Any]) -> None:
        response = client(world, "admin").post(
            reverse("segments:create"), {**self.form(rule="last_sbp >= 170"), "preview": "1"}
        )
        assert response.status_code == 200
        assert "The rule holds for 4 patients today." in response.content.decode()
        assert not sm.Segment.objects.filter(code="elderly_uncontrolled").exists()

    def test_editing_a_default_makes_a_copy_that_keeps_the_members(
        self, world: Any, populated: dict[str, Any]
    ) -> None:
        shared = segment()
        c = client(world, "admin")
        assert c.get(reverse("segments:edit", args=[shared.pk])).status_code == 200
        response = c.post(
            reverse("segments:edit", args=[shared.pk]),
            self.form(code="ignored", name="高危（本院）", rule="last_sbp >= 165"),
        )
        assert response.status_code == 302
        copy = sm.Segment.objects.get(organisation=world.org, code=CODE)
        assert copy.name == "高危（本院）" and copy.rule == "last_sbp >= 165"
        assert copy.memberships.filter(left_at__isnull=True).count() == 4
        shared.refresh_from_db()
        assert shared.rule.startswith("pdc < 0.6")  # the default is unchanged

    def test_deactivate_needs_confirmation(self, world: Any, populated: dict[str, Any]) -> None:
        url = reverse("segments:deactivate", args=[segment().pk])
        c = client(world, "admin")
        page = c.get(url)
        assert "4 patients leave the segment now" in page.content.decode()
        assert c.post(url, {}).status_code == 400
        assert sm.Membership.objects.filter(left_at__isnull=True).count() == 4
        assert c.post(url, {"confirm": "1"}).status_code == 302
        assert not sm.Membership.objects.filter(segment__code=CODE, left_at__isnull=True).exists()
        html = c.get(reverse("segments:list")).content.decode()
        assert "Inactive" in html

    def test_only_organisation_admins_manage(self, world: Any, build: Builder) -> None:
        c = client(world, "head.cardiology")
        assert c.get(reverse("segments:create")).status_code == 403
        assert c.post(reverse("segments:recompute")).status_code == 403

    def test_recompute_now(self, world: Any, build: Builder) -> None:
        p = build.patient()
        build.bp(p, 170, 90)
        response = client(world, "admin").post(reverse("segments:recompute"), follow=True)
        assert response.status_code == 200
        assert "Segments recomputed: 1 entered, 0 left today." in response.content.decode()
        assert sm.Membership.objects.filter(patient=p, left_at__isnull=True).exists()
        assert AuditEvent.objects.filter(action="segment.recompute").exists()
