"""Alert rules, personal thresholds and the on-call rota in the Django admin."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from careloop.alerts import evaluation
from careloop.alerts import models as am
from careloop.audit.models import AuditEvent

CRISIS = {
    "kind": "threshold",
    "event": "bp",
    "condition": "value >= sys or value2 >= dia",
    "params": {"sys": 170, "dia": 105},
    "severity": "critical",
    "priority": "urgent",
    "route": "doctor",
    "sla": "15m",
    "dedupe": "12h",
    "text": {"zh-hans": "血压 {value}/{value2}", "en": "Blood pressure {value}/{value2}"},
}


@pytest.fixture
def admin_client(world: Any) -> Client:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(world.staff["admin"])
    return client


def post_rule(client: Client, definition: Any, code: str = "bp-crisis", **extra: Any) -> Any:
    data = {"code": code, "definition": json.dumps(definition), "enabled": "on", **extra}
    return client.post("/admin/alerts/ruledefinition/add/", data)


class TestRuleDefinitions:
    def test_an_edited_rule_replaces_the_file_rule_for_the_organisation(
        self, world: Any, admin_client: Client
    ) -> None:
        before = evaluation.ruleset_for(world.org.pk)
        response = post_rule(admin_client, CRISIS)
        assert response.status_code == 302, response.content.decode()[:3000]
        row = am.RuleDefinition.objects.get(code="bp-crisis")
        assert row.organisation_id == world.org.pk
        after = evaluation.ruleset_for(world.org.pk)
        assert after is not before
        assert after.version != before.version
        # The other organisation keeps the file rule.
        assert evaluation.ruleset_for(world.other_org.pk).version == before.version
        event = AuditEvent.objects.get(action="alert.rule.create")
        assert event.detail["code"] == "bp-crisis"

    def test_an_invalid_rule_names_the_field(self, world: Any, admin_client: Client) -> None:
        response = post_rule(admin_client, {**CRISIS, "condition": "__import__('os')"})
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert "condition" in errors["definition"][0]
        assert not am.RuleDefinition.objects.exists()

    @pytest.mark.parametrize(
        ("definition", "field"),
        [
            ({**CRISIS, "sla": "soon"}, "sla"),
            ({**CRISIS, "route": "janitor"}, "route"),
            ({**CRISIS, "text": {"en": "{nonsense}"}}, "text.en"),
            ({k: v for k, v in CRISIS.items() if k != "kind"}, "kind"),
        ],
    )
    def test_each_bad_field_is_named(
        self, world: Any, admin_client: Client, definition: Any, field: str
    ) -> None:
        response = post_rule(admin_client, definition)
        assert response.status_code == 200
        message = response.context["adminform"].form.errors["definition"][0]
        assert f"“{field}”" in message  # 字段“sla” or field “sla”

    def test_not_an_object(self, world: Any, admin_client: Client) -> None:
        response = post_rule(admin_client, ["not", "a", "rule"])
        assert response.status_code == 200
        assert "definition" in response.context["adminform"].form.errors

    def test_the_list_shows_only_the_own_organisation(
        self, world: Any, admin_client: Client
    ) -> None:
        am.RuleDefinition.objects.create(
            organisation=world.other_org, code="their-rule", definition=CRISIS
        )
        am.RuleDefinition.objects.create(organisation=world.org, code="our-rule", definition=CRISIS)
        page = admin_client.get("/admin/alerts/ruledefinition/").content.decode()
        assert "our-rule" in page
        assert "their-rule" not in page

    def test_editing_shows_the_file_default_and_keeps_the_code(
        self, world: Any, admin_client: Client
    ) -> None:
        row = am.RuleDefinition.objects.create(
            organisation=world.org, code="bp-crisis", definition=CRISIS
        )
        url = f"/admin/alerts/ruledefinition/{row.pk}/change/"
        page = admin_client.get(url).content.decode()
        assert "value &lt; 160 and value2 &lt; 100" in page  # the file rule's resolve condition
        disabled = {"definition": json.dumps(CRISIS), "code": "other-code"}
        response = admin_client.post(url, disabled)
        assert response.status_code == 302
        row.refresh_from_db()
        assert (row.code, row.enabled) == ("bp-crisis", False)
        assert "bp-crisis" not in {
            r.code for r in evaluation.ruleset_for(world.org.pk).rules() if r.enabled
        }

    def test_a_nurse_cannot_enter(self, world: Any) -> None:
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(world.staff["nurse.cardiology"])
        assert client.get("/admin/alerts/ruledefinition/").status_code == 302


class TestPersonalThresholds:
    def test_read_only_and_scoped(
        self, world: Any, admin_client: Client, make_patient: Any
    ) -> None:
        ours = make_patient()
        theirs = make_patient(username="nurse.other")
        am.PersonalThreshold.objects.create(patient=ours, rule="bp-crisis", params={"sys": 170})
        am.PersonalThreshold.objects.create(patient=theirs, rule="hr-night-high-3", params={})
        page = admin_client.get("/admin/alerts/personalthreshold/")
        assert page.status_code == 200
        text = page.content.decode()
        assert "bp-crisis" in text and "hr-night-high-3" not in text
        assert admin_client.get("/admin/alerts/personalthreshold/add/").status_code == 403
        assert AuditEvent.objects.filter(action="personal_threshold.list").exists()


class TestOnCall:
    def shift(self, world: Any, **overrides: Any) -> dict[str, Any]:
        data = {
            "department": world.cardio.pk,
            "staff": world.staff["head.cardiology"].pk,
            "starts_at_0": "2026-03-01",
            "starts_at_1": "08:00:00",
            "ends_at_0": "2026-04-01",
            "ends_at_1": "08:00:00",
            "phone": "139 0000 0001",
            "email": "head@hospital.example",
        }
        data.update(overrides)
        return data

    def test_a_shift_is_added_and_audited(self, world: Any, admin_client: Client) -> None:
        response = admin_client.post("/admin/alerts/oncall/add/", self.shift(world))
        assert response.status_code == 302, response.content.decode()[:3000]
        shift = am.OnCall.objects.get()
        assert (shift.staff.username, shift.phone) == ("head.cardiology", "13900000001")
        assert AuditEvent.objects.filter(action="oncall.create").exists()

    def test_other_organisations_departments_are_not_offered(
        self, world: Any, admin_client: Client
    ) -> None:
        form = admin_client.get("/admin/alerts/oncall/add/").context["adminform"].form
        assert world.cardio in form.fields["department"].queryset
        assert world.other_dept not in form.fields["department"].queryset
        assert world.staff["nurse.other"] not in form.fields["staff"].queryset
        response = admin_client.post(
            "/admin/alerts/oncall/add/", self.shift(world, department=world.other_dept.pk)
        )
        assert response.status_code == 200
        assert not am.OnCall.objects.exists()

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"ends_at_0": "2026-02-01"}, "ends_at"),
            ({"phone": "call me"}, "phone"),
        ],
    )
    def test_bad_shifts(
        self, world: Any, admin_client: Client, overrides: dict[str, str], field: str
    ) -> None:
        response = admin_client.post("/admin/alerts/oncall/add/", self.shift(world, **overrides))
        assert response.status_code == 200
        assert field in response.context["adminform"].form.errors
