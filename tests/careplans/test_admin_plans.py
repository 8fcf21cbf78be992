"""Plan templates and enrolment rules in the Django admin.

Saving goes through the same rules as the plan files: a bad activity is shown on the form and
nothing is saved; a good save bumps the version and replans only the future of active
enrolments. Shared plans are read-only for an organisation admin, who copies them to edit.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.clock import utc_now
from careloop.reminders import models as rm

pytestmark = pytest.mark.django_db

BP = {
    "code": "bp",
    "kind": "measurement",
    "title": "测量血压",
    "title_en": "Measure your blood pressure",
    "schedule": {"rrule": "FREQ=DAILY", "times": ["08:30"]},
    "channels": ["sms"],
    "escalation": [],
    "measurement": "bp",
}


@pytest.fixture
def admin_client(world: Any) -> Client:
    """The organisation admin, reading English."""
    admin = world.staff["admin"]
    admin.language = "en"
    admin.save(update_fields=["language"])
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def own(world: Any) -> cm.PlanTemplate:
    """The organisation's own plan: one daily blood pressure reading at 08:30."""
    tpl, _ = plan_services.save_template(
        {"code": "bp-plan", "name": "血压监测", "activities": [BP]}, organisation=world.org
    )
    return tpl


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def change_data(tpl: cm.PlanTemplate, **activity_changes: Any) -> dict[str, Any]:
    """The change form as the admin page posts it, with changes to the first activity."""
    spec = plan_services.template_spec(tpl)
    data: dict[str, Any] = {
        "name": spec["name"],
        "name_en": spec["name_en"],
        "description": spec["description"],
        "description_en": spec["description_en"],
        "anchor": spec["anchor"],
        "applicability": _json(spec["applicability"]),
        "active": "on",
    }
    activities = list(tpl.activities.all())
    data.update(
        {
            "activities-TOTAL_FORMS": str(len(activities)),
            "activities-INITIAL_FORMS": str(len(activities)),
            "activities-MIN_NUM_FORMS": "0",
            "activities-MAX_NUM_FORMS": "1000",
        }
    )
    for i, act in enumerate(activities):
        values = {
            "id": act.pk,
            "template": tpl.pk,
            "position": act.position,
            "code": act.code,
            "kind": act.kind,
            "title": act.title,
            "title_en": act.title_en,
            "schedule": _json(act.schedule),
            "channels": _json(act.channels),
            "escalation": _json(act.escalation),
            "applicability": _json(act.applicability),
            "measurement": act.measurement,
            "call_by": act.call_by,
        }
        if i == 0:
            values.update(
                {
                    k: _json(v) if isinstance(v, dict | list) else v
                    for k, v in activity_changes.items()
                }
            )
        data.update({f"activities-{i}-{k}": v for k, v in values.items()})
    return data


def select(page: str, name: str) -> str:
    """The HTML of one drop-down of a page."""
    match = re.search(rf'<select name="{name}".*?</select>', page, re.S)
    assert match, f"no {name} drop-down"
    return match.group(0)


def url(tpl: cm.PlanTemplate) -> str:
    return f"/admin/careplans/plantemplate/{tpl.pk}/change/"


class TestValidation:
    def test_a_bad_rrule_is_shown_and_nothing_is_saved(
        self, world: Any, admin_client: Client, own: cm.PlanTemplate
    ) -> None:
        before = AuditEvent.objects.count()
        response = admin_client.post(
            url(own), change_data(own, schedule={"rrule": "FREQ=SOMETIMES", "times": ["08:30"]})
        )
        assert response.status_code == 200  # the form again, with its errors
        page = response.content.decode()
        assert "rrule" in page and "errorlist" in page
        own.refresh_from_db()
        assert own.version == 1
        assert own.activities.get().schedule == BP["schedule"]
        assert AuditEvent.objects.count() == before

    def test_a_bad_new_plan_is_not_created(self, world: Any, admin_client: Client) -> None:
        data = {
            "code": "new-plan",
            "name": "新计划",
            "anchor": "enrolment",
            "applicability": "{}",
            "active": "on",
            "activities-TOTAL_FORMS": "1",
            "activities-INITIAL_FORMS": "0",
            "activities-MIN_NUM_FORMS": "0",
            "activities-MAX_NUM_FORMS": "1000",
            "activities-0-position": "0",
            "activities-0-code": "x",
            "activities-0-kind": "measurement",
            "activities-0-title": "测量",
            "activities-0-schedule": _json({"rrule": "FREQ=DAILY;BYHOUR=99"}),
            "activities-0-channels": _json(["pigeon"]),
            "activities-0-escalation": "[]",
            "activities-0-applicability": "{}",
        }
        response = admin_client.post("/admin/careplans/plantemplate/add/", data)
        assert response.status_code == 200
        errors = response.context["inline_admin_formsets"][0].formset.forms[0].errors
        assert {"schedule", "channels"} <= set(errors)
        assert not cm.PlanTemplate.objects.filter(code="new-plan").exists()

    def test_a_plan_needs_an_activity_and_distinct_codes(
        self, world: Any, admin_client: Client, own: cm.PlanTemplate
    ) -> None:
        data = change_data(own)
        data["activities-0-DELETE"] = "on"
        response = admin_client.post(url(own), data)
        assert response.status_code == 200
        assert "A plan needs at least one activity." in response.content.decode()
        assert own.activities.count() == 1

    def test_a_good_new_plan_is_created_in_the_admins_organisation(
        self, world: Any, admin_client: Client
    ) -> None:
        data = {
            "code": "walks",
            "name": "散步计划",
            "anchor": "enrolment",
            "applicability": "{}",
            "active": "on",
            "activities-TOTAL_FORMS": "1",
            "activities-INITIAL_FORMS": "0",
            "activities-MIN_NUM_FORMS": "0",
            "activities-MAX_NUM_FORMS": "1000",
            "activities-0-position": "0",
            "activities-0-code": "walk",
            "activities-0-kind": "education",
            "activities-0-title": "每天散步三十分钟",
            "activities-0-schedule": _json({"rrule": "FREQ=WEEKLY;BYDAY=MO", "times": ["18:00"]}),
            "activities-0-channels": _json(["outbox"]),
            "activities-0-escalation": "[]",
            "activities-0-applicability": "{}",
        }
        response = admin_client.post("/admin/careplans/plantemplate/add/", data)
        assert response.status_code == 302, response.content.decode()[-3000:]
        tpl = cm.PlanTemplate.objects.get(code="walks")
        assert (tpl.organisation_id, tpl.version) == (world.org.pk, 1)
        assert tpl.activities.get().title == "每天散步三十分钟"
        assert AuditEvent.objects.filter(action="careplan.template.created").exists()


class TestSavingReplansTheFuture:
    def test_version_goes_up_and_only_future_reminders_change(
        self, world: Any, admin_client: Client, own: cm.PlanTemplate, make_patient: Any
    ) -> None:
        patient = make_patient("nurse.cardiology")
        started = utc_now() - timedelta(days=3)
        enrolment = plan_services.enrol(
            world.actor("nurse.cardiology"), patient.pk, own.pk, now=started
        )
        now = utc_now()
        occ = rm.Occurrence.objects.filter(enrolment=enrolment)
        past = {o.pk: (o.local_due, o.status) for o in occ.filter(due_at__lte=now)}
        rm.Occurrence.objects.filter(pk__in=list(past)[:1]).update(status=rm.Status.ACKNOWLEDGED)
        past = {o.pk: (o.local_due, o.status) for o in occ.filter(due_at__lte=now)}
        assert len(past) >= 2 and occ.filter(due_at__gt=now).exists()

        response = admin_client.post(
            url(own), change_data(own, schedule={"rrule": "FREQ=DAILY", "times": ["09:15"]})
        )
        assert response.status_code == 302, response.content.decode()[-3000:]
        own.refresh_from_db()
        assert own.version == 2
        assert own.activities.get().schedule["times"] == ["09:15"]
        # The past is exactly as it was; every future reminder is at the new time.
        after = rm.Occurrence.objects.filter(enrolment=enrolment)
        assert {o.pk: (o.local_due, o.status) for o in after.filter(pk__in=past)} == past
        future = after.filter(due_at__gt=utc_now())
        assert future.exists()
        assert {o.local_due[11:] for o in future} == {"09:15"}
        event = AuditEvent.objects.filter(action="careplan.template.updated").latest("id")
        assert event.detail["version"] == 2 and event.actor == "admin"

    def test_saving_without_changes_keeps_the_version(
        self, world: Any, admin_client: Client, own: cm.PlanTemplate
    ) -> None:
        response = admin_client.post(url(own), change_data(own))
        assert response.status_code == 302
        own.refresh_from_db()
        assert own.version == 1
        renamed = {**change_data(own), "name": "家庭血压监测"}
        assert admin_client.post(url(own), renamed).status_code == 302
        own.refresh_from_db()
        assert (own.name, own.version) == ("家庭血压监测", 2)


class TestSharedPlans:
    @pytest.fixture
    def shared(self, world: Any) -> cm.PlanTemplate:
        plan_services.load_templates()
        return cm.PlanTemplate.objects.get(code="hypertension", organisation__isnull=True)

    def test_shared_plans_are_read_only(
        self, world: Any, admin_client: Client, shared: cm.PlanTemplate
    ) -> None:
        page = admin_client.get(url(shared))
        assert page.status_code == 200
        html = page.content.decode()
        assert 'data-testid="copy-plan"' in html
        assert 'name="_save"' not in html
        response = admin_client.post(url(shared), change_data(shared, title="改过的标题"))
        assert response.status_code == 403
        shared.refresh_from_db()
        assert shared.version == 1
        assert "改过的标题" not in {a.title for a in shared.activities.all()}

    def test_copy_to_my_organisation_then_edit(
        self, world: Any, admin_client: Client, shared: cm.PlanTemplate
    ) -> None:
        response = admin_client.post(f"/admin/careplans/plantemplate/{shared.pk}/copy/")
        copy = cm.PlanTemplate.objects.get(code="hypertension", organisation=world.org)
        assert response.status_code == 302 and response["Location"] == url(copy)
        assert copy.activities.count() == shared.activities.count()
        # The organisation now enrols in its own copy, which it may change.
        assert plan_services.templates_for(world.org.pk).get(code="hypertension") == copy
        first = copy.activities.first()
        assert first is not None
        response = admin_client.post(url(copy), change_data(copy, title="本院服药提醒"))
        assert response.status_code == 302, response.content.decode()[-3000:]
        copy.refresh_from_db()
        assert copy.version == 2
        assert shared.activities.get(code=first.code).title == first.title
        # Copying again does not make a second copy.
        admin_client.post(f"/admin/careplans/plantemplate/{shared.pk}/copy/")
        assert (
            cm.PlanTemplate.objects.filter(code="hypertension", organisation=world.org).count() == 1
        )
        assert AuditEvent.objects.filter(action="careplan.template.copy").count() == 1

    def test_another_organisations_plan_cannot_be_opened(
        self, world: Any, admin_client: Client
    ) -> None:
        theirs, _ = plan_services.save_template(
            {"code": "theirs", "name": "外院计划", "activities": [BP]}, organisation=world.other_org
        )
        listing = admin_client.get("/admin/careplans/plantemplate/").content.decode()
        assert "外院计划" not in listing
        response = admin_client.get(url(theirs))
        assert response.status_code == 302  # "does not exist" back to the list
        assert "外院计划" not in admin_client.get(response["Location"]).content.decode()


class TestEnrolmentRules:
    def test_choices_and_codes_stay_in_the_organisation(
        self, world: Any, admin_client: Client, own: cm.PlanTemplate
    ) -> None:
        theirs, _ = plan_services.save_template(
            {"code": "theirs", "name": "外院计划", "activities": [BP]}, organisation=world.other_org
        )
        page = admin_client.get("/admin/careplans/enrolmentrule/add/").content.decode()
        templates = select(page, "template")
        assert f'<option value="{own.pk}"' in templates
        assert f'<option value="{theirs.pk}"' not in templates
        departments = select(page, "departments")
        assert f'<option value="{world.cardio.pk}"' in departments
        assert f'<option value="{world.other_dept.pk}"' not in departments
        bad = admin_client.post(
            "/admin/careplans/enrolmentrule/add/",
            {
                "trigger": "condition",
                "template": own.pk,
                "icd10_prefixes": '["hypertension"]',
                "encounter_kinds": "[]",
                "active": "on",
            },
        )
        assert bad.status_code == 200 and not cm.EnrolmentRule.objects.exists()
        good = admin_client.post(
            "/admin/careplans/enrolmentrule/add/",
            {
                "trigger": "condition",
                "template": own.pk,
                "icd10_prefixes": '["i10", "I11"]',
                "encounter_kinds": "[]",
                "active": "on",
            },
        )
        assert good.status_code == 302
        rule = cm.EnrolmentRule.objects.get()
        assert (rule.organisation_id, rule.icd10_prefixes) == (world.org.pk, ["I10", "I11"])
        assert AuditEvent.objects.filter(action="careplan.rule.create").exists()
