"""Attacks with scoped API tokens: a token never does more than its scopes, nor than its user.

Each attack is a real request to the JSON API with a bearer token issued through the same
service as the CLI and the tokens page.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.accounts import services as accounts
from careloop.accounts.models import ApiToken, Staff
from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now
from careloop.kit.errors import ValidationFailed
from careloop.observations import models as om
from careloop.web import access
from careloop.web.api_scopes import API_RESOURCES
from tests.security.scenario import api_operations


def issue(username: str, scopes: str = "", **kw: Any) -> str:
    return accounts.issue_token(Staff.objects.get(username=username), scopes=scopes, **kw)


class Caller:
    def __init__(self, client: Any, raw: str) -> None:
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}", "HTTP_ACCEPT_LANGUAGE": "en"}

    def get(self, path: str) -> Any:
        return self.client.get(path, **self.headers)

    def post(self, path: str, data: Any) -> Any:
        return self.client.post(path, data, content_type="application/json", **self.headers)


def reading(patient: Any, systolic: int = 142) -> dict[str, Any]:
    return {
        "patient": patient.pk,
        "code": "85354-9",
        "systolic": systolic,
        "diastolic": 91,
        "effective": "2026-01-06T07:30",
    }


@pytest.fixture
def two(make_patient: Any) -> tuple[Any, Any]:
    return make_patient(), make_patient()


class TestTheTable:
    def test_every_api_operation_has_a_resource_and_interaction(self) -> None:
        assert sorted(k for k in access.API if k not in API_RESOURCES) == []
        assert sorted(k for k in API_RESOURCES if k not in access.API) == []
        assert [f"{m} {p}" for m, p in api_operations() if f"{m} {p}" not in API_RESOURCES] == []

    def test_interactions_are_single_letters_of_cruds(self) -> None:
        for operation in API_RESOURCES.values():
            assert operation is None or (len(operation[1]) == 1 and operation[1] in "cruds")


class TestUnscopedTokens:
    def test_a_token_without_scopes_is_its_users_role(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("nurse.cardiology"))
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 200
        assert me.post("/api/observations", reading(two[0])).status_code == 201


class TestScopesNarrow:
    def test_read_scope_cannot_post(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("nurse.cardiology", "user/Observation.rs user/Patient.rs"))
        assert me.get(f"/api/patients/{two[0].pk}/observations").status_code == 200
        refused = me.post("/api/observations", reading(two[0]))
        assert refused.status_code == 403
        assert "create" in refused.json()["message"]
        assert "Observation" in refused.json()["message"]
        assert not om.Observation.objects.exists()
        assert AuditEvent.objects.filter(
            actor="nurse.cardiology", action="token.scope", outcome="denied"
        ).exists()

    def test_create_scope_can_post(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("nurse.cardiology", "user/Observation.c"))
        assert me.post("/api/observations", reading(two[0])).status_code == 201
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 403

    def test_other_types_are_refused(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("nurse.cardiology", "user/Observation.rs"))
        assert me.get(f"/api/patients/{two[0].pk}/conditions").status_code == 403
        assert me.get(f"/api/patients/{two[0].pk}/allergies").status_code == 403
        assert me.get("/api/patients").status_code == 403
        # The timeline shows every kind of row: only a wildcard scope reaches it.
        assert me.get(f"/api/patients/{two[0].pk}/timeline").status_code == 403
        wide = Caller(client, issue("nurse.cardiology", "user/*.rs"))
        assert wide.get(f"/api/patients/{two[0].pk}/timeline").status_code == 200

    def test_me_needs_no_scope(self, client: Any, world: Any) -> None:
        me = Caller(client, issue("nurse.cardiology", "user/Observation.rs"))
        assert me.get("/api/me").json()["username"] == "nurse.cardiology"


class TestNeverBeyondTheUser:
    def test_widest_scope_cannot_do_what_a_nurse_cannot(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("nurse.cardiology", "user/*.cruds"))
        merge = me.post(
            f"/api/patients/{two[0].pk}/merge", {"other_id": two[1].pk, "other_version": 1}
        )
        assert merge.status_code == 403  # nurses do not merge
        assert me.get("/api/audit/events").status_code == 403
        assert me.get("/api/operations").status_code == 403

    def test_widest_scope_stays_in_the_users_departments(
        self, client: Any, make_patient: Any
    ) -> None:
        endo = make_patient("nurse.endocrinology")
        me = Caller(client, issue("nurse.cardiology", "system/*.cruds"))
        assert me.get(f"/api/patients/{endo.pk}").status_code == 404
        assert me.get("/api/patients").json()["total"] == 0

    def test_auditor_scope_reads_no_patients(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("auditor", "user/*.cruds"))
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 403
        assert me.get("/api/audit/events").status_code == 200

    def test_a_reduced_role_takes_effect_at_once(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("doctor.cardiology", "user/*.cruds"))
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 200
        Staff.objects.filter(username="doctor.cardiology").update(role="auditor")
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 403

    def test_a_removed_department_takes_effect_at_once(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("doctor.cardiology", "user/*.rs"))
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 200
        Staff.objects.get(username="doctor.cardiology").memberships.all().delete()
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 404

    def test_a_disabled_user_loses_the_token(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("doctor.cardiology", "user/*.rs"))
        Staff.objects.filter(username="doctor.cardiology").update(is_active=False)
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 401


class TestPatientContext:
    def test_bound_token_reaches_only_its_patient(self, client: Any, two: Any) -> None:
        mine, other = two
        me = Caller(client, issue("nurse.cardiology", "patient/*.rs", patient_id=mine.pk))
        assert me.get(f"/api/patients/{mine.pk}").status_code == 200
        assert me.get(f"/api/patients/{mine.pk}/conditions").status_code == 200
        # Another patient of the same department, by id: as if it did not exist.
        assert me.get(f"/api/patients/{other.pk}").status_code == 404
        assert me.get(f"/api/patients/{other.pk}/conditions").status_code == 404
        assert me.get(f"/api/patients/{other.pk}/observations").status_code == 404
        assert me.get(f"/api/questionnaires/patients/{other.pk}/responses").status_code == 404
        assert AuditEvent.objects.filter(
            actor="nurse.cardiology", patient_id=other.pk, outcome="denied"
        ).exists()
        # ... and by list.
        listed = me.get("/api/patients").json()
        assert [p["id"] for p in listed["items"]] == [mine.pk]

    @pytest.mark.parametrize("pid", ["99999999999999999999", "abc", "0"])
    def test_odd_patient_ids_answer_404(self, client: Any, two: Any, pid: str) -> None:
        me = Caller(client, issue("nurse.cardiology", "patient/*.rs", patient_id=two[0].pk))
        assert me.get(f"/api/patients/{pid}/conditions").status_code == 404

    def test_bound_token_writes_only_for_its_patient(self, client: Any, two: Any) -> None:
        mine, other = two
        me = Caller(
            client, issue("nurse.cardiology", "patient/Observation.crs", patient_id=mine.pk)
        )
        assert me.post("/api/observations", reading(mine)).status_code == 201
        refused = me.post("/api/observations", reading(other))
        assert refused.status_code in (404, 422)
        assert not om.Observation.objects.filter(patient=other).exists()

    def test_bound_token_cannot_use_lists_that_span_patients(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("nurse.cardiology", "patient/*.cruds", patient_id=two[0].pk))
        for path in ("/api/alerts", "/api/worklist", "/api/messages", "/api/appointments/overdue"):
            assert me.get(path).status_code == 403, path
        assert me.post("/api/patients", {"name": "x"}).status_code == 403

    def test_a_user_scope_beside_a_patient_scope_reaches_further(
        self, client: Any, two: Any
    ) -> None:
        mine, other = two
        raw = issue(
            "nurse.cardiology", "patient/Observation.rs user/Patient.rs", patient_id=mine.pk
        )
        me = Caller(client, raw)
        assert me.get(f"/api/patients/{other.pk}").status_code == 200
        assert me.get(f"/api/patients/{other.pk}/observations").status_code == 404


class TestDeadTokens:
    def test_expired_token_is_refused(self, client: Any, two: Any) -> None:
        raw = issue("nurse.cardiology", "user/*.rs", expires_at=utc_now() + timedelta(hours=1))
        me = Caller(client, raw)
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 200
        ApiToken.objects.update(expires_at=utc_now() - timedelta(seconds=1))
        response = me.get(f"/api/patients/{two[0].pk}")
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"

    def test_revoked_token_is_refused(self, client: Any, two: Any) -> None:
        me = Caller(client, issue("nurse.cardiology", "user/*.rs"))
        call_command("token", "revoke", str(ApiToken.objects.get().pk), stdout=StringIO())
        assert me.get(f"/api/patients/{two[0].pk}").status_code == 401


class TestIssuing:
    @pytest.mark.parametrize(
        ("scopes", "named"),
        [
            ("user/Observation.sr", "user/Observation.sr"),
            ("user/Observation.rs?category=vital-signs", "?category"),
            ("nurse/*.rs", "nurse/*.rs"),
            ("openid", "no resource scope"),
        ],
    )
    def test_malformed_scopes_are_refused_with_their_name(
        self, world: Any, scopes: str, named: str
    ) -> None:
        with pytest.raises(ValidationFailed) as caught:
            issue("nurse.cardiology", scopes)
        assert named in " ".join(caught.value.as_dict()["details"]["scopes"])
        assert not ApiToken.objects.exists()

    def test_patient_scopes_need_a_patient_in_the_users_scope(
        self, world: Any, make_patient: Any
    ) -> None:
        endo = make_patient("nurse.endocrinology")
        with pytest.raises(ValidationFailed) as caught:
            issue("nurse.cardiology", "patient/*.rs")
        assert "patient" in caught.value.as_dict()["details"]
        with pytest.raises(ValidationFailed) as caught:
            issue("nurse.cardiology", "patient/*.rs", patient_id=endo.pk)
        assert "within your scope" in caught.value.as_dict()["details"]["patient"][0]
        with pytest.raises(ValidationFailed):
            issue("nurse.cardiology", "user/*.rs", patient_id=make_patient().pk)
        assert not ApiToken.objects.exists()

    def test_expiry_in_the_past_is_refused(self, world: Any) -> None:
        with pytest.raises(ValidationFailed) as caught:
            issue("nurse.cardiology", "user/*.rs", expires_at=utc_now() - timedelta(days=1))
        assert "expires_at" in caught.value.as_dict()["details"]

    def test_cli_issues_a_scoped_token_once(self, client: Any, two: Any) -> None:
        out = StringIO()
        call_command(
            "token", "issue", "--user", "nurse.cardiology", "--scopes", "patient/Observation.rs",
            "--patient", str(two[0].pk), "--expires-in", "30d", "--label", "glucose app",
            stdout=out,
        )  # fmt: skip
        raw = out.getvalue().strip()
        token = ApiToken.objects.get()
        assert raw.startswith("cl_") and token.digest == ApiToken.digest_of(raw)
        assert (token.scopes, token.patient_id, token.label) == (
            "patient/Observation.rs",
            two[0].pk,
            "glucose app",
        )
        assert token.expires_at is not None
        assert timedelta(days=29) < token.expires_at - utc_now() <= timedelta(days=30)
        assert AuditEvent.objects.filter(action="token.issue", actor="nurse.cardiology").exists()
        me = Caller(client, raw)
        assert me.get(f"/api/patients/{two[0].pk}/observations").status_code == 200
        assert me.get(f"/api/patients/{two[1].pk}/observations").status_code == 404

    @pytest.mark.parametrize(
        ("args", "words"),
        [
            (["--scopes", "user/Observation.xyz"], "user/Observation.xyz"),
            (["--scopes", "user/*.rs", "--expires-in", "soon"], "expires-in"),
            (["--scopes", "patient/*.rs"], "patient"),
        ],
    )
    def test_cli_refuses_bad_input(self, world: Any, args: list[str], words: str) -> None:
        with pytest.raises(CommandError, match=words.replace("*", r"\*").replace(".", r"\.")):
            call_command("token", "issue", "--user", "nurse.cardiology", *args, stdout=StringIO())
        assert not ApiToken.objects.exists()


def signed_in(client: Any, username: str) -> Any:
    client.force_login(Staff.objects.get(username=username))
    return client


class TestTokensPage:
    def test_issue_shows_the_token_once_and_it_works(self, client: Any, two: Any) -> None:
        page = signed_in(client, "nurse.cardiology")
        data = {"label": "BP app", "scopes": "patient/Observation.rs", "patient": two[0].pk}
        response = page.post("/tokens/", {**data, "days": "30"}, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 200
        raw = response.context["issued"]
        assert raw.startswith("cl_") and raw in response.content.decode()
        token = ApiToken.objects.get()
        assert (token.scopes, token.patient_id, token.label) == (
            data["scopes"],
            two[0].pk,
            "BP app",
        )
        issued = AuditEvent.objects.get(action="token.issue")
        assert (issued.actor, issued.patient_id, issued.detail["via"]) == (
            "nurse.cardiology",
            two[0].pk,
            "web",
        )
        # Listed afterwards by its prefix only.
        listing = page.get("/tokens/").content.decode()
        assert token.prefix in listing and raw not in listing
        api = Caller(client, raw)
        assert api.get(f"/api/patients/{two[0].pk}/observations").status_code == 200
        assert api.get(f"/api/patients/{two[1].pk}/observations").status_code == 404

    def test_bad_scope_is_named_and_nothing_is_lost(self, client: Any, world: Any) -> None:
        page = signed_in(client, "nurse.cardiology")
        sent = {"label": "x", "scopes": "user/Patient.rs user/Observation.sr", "days": "7"}
        response = page.post("/tokens/", sent, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 422
        body = response.content.decode()
        assert "user/Observation.sr" in body
        assert 'value="user/Patient.rs user/Observation.sr"' in body  # the input is kept
        assert not ApiToken.objects.exists()

    def test_a_patient_of_another_department_cannot_be_bound(
        self, client: Any, make_patient: Any
    ) -> None:
        endo = make_patient("nurse.endocrinology")
        Staff.objects.filter(username="nurse.cardiology").update(language="en")
        page = signed_in(client, "nurse.cardiology")
        sent = {"scopes": "patient/*.rs", "patient": str(endo.pk)}
        response = page.post("/tokens/", sent)
        assert response.status_code == 422
        assert "within your scope" in response.content.decode()
        assert endo.name not in response.content.decode()
        assert not ApiToken.objects.exists()

    def test_revoke_asks_first_then_revokes(self, client: Any, two: Any) -> None:
        raw = issue("nurse.cardiology", "user/*.rs")
        token = ApiToken.objects.get()
        page = signed_in(client, "nurse.cardiology")
        confirm = page.get(f"/tokens/revoke/?token={token.pk}")
        assert confirm.status_code == 200 and b"confirm-revoke" in confirm.content
        token.refresh_from_db()
        assert token.revoked_at is None
        assert page.post("/tokens/revoke/", {"token": token.pk}).status_code == 302
        token.refresh_from_db()
        assert token.revoked_at is not None
        assert Caller(client, raw).get(f"/api/patients/{two[0].pk}").status_code == 401
        assert AuditEvent.objects.filter(action="token.revoke", actor="nurse.cardiology").exists()

    def test_users_cannot_see_or_revoke_each_others_tokens(self, client: Any, world: Any) -> None:
        issue("doctor.cardiology", "user/*.rs")
        token = ApiToken.objects.get()
        page = signed_in(client, "nurse.cardiology")
        assert token.prefix not in page.get("/tokens/").content.decode()
        assert page.post("/tokens/revoke/", {"token": token.pk}).status_code == 404
        token.refresh_from_db()
        assert token.revoked_at is None

    def test_admin_sees_and_revokes_the_organisations_tokens_only(
        self, client: Any, world: Any
    ) -> None:
        issue("doctor.cardiology", "user/*.rs")
        issue("nurse.other", "user/*.rs")
        ours, theirs = ApiToken.objects.order_by("pk")
        page = signed_in(client, "admin")
        listing = page.get("/tokens/").content.decode()
        assert ours.prefix in listing and theirs.prefix not in listing
        assert page.post("/tokens/revoke/", {"token": theirs.pk}).status_code == 404
        assert page.post("/tokens/revoke/", {"token": ours.pk}).status_code == 302
        ours.refresh_from_db()
        theirs.refresh_from_db()
        assert ours.revoked_at is not None and theirs.revoked_at is None

    def test_auditors_have_no_tokens_page(self, client: Any, world: Any) -> None:
        assert signed_in(client, "auditor").get("/tokens/").status_code == 403
