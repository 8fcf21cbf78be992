"""The audit trail: complete, chained, tamper-evident, and readable only within one organisation."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.db.models import Max
from django.test import Client

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.accounts.roles import Role
from careloop.audit import services as audit
from careloop.audit.domain import chain_hash, hashed_fields
from careloop.audit.models import AuditEvent
from careloop.patients import models as m
from careloop.patients import services as patient_services
from careloop.web import access
from tests.conftest import PASSWORD, patient_data
from tests.security.scenario import Route, Scene, all_routes, body_of, client_for, perform

# --- completeness -----------------------------------------------------------------------------

# The blank registration form shows no patient's data, so there is nothing to audit.
NO_PATIENT_DATA_SHOWN = {"GET patients:create"}
PATIENT_DATA_ROUTES = [
    r
    for r in all_routes()
    if access.handles_patient_data(r.rule) and r.id not in NO_PATIENT_DATA_SHOWN
]
CLINICIANS = ["doctor.cardiology", "nurse.cardiology", "head.cardiology", "admin"]
CREATES_PATIENT = {"POST patients:create", "POST /api/patients"}


def last_id() -> int:
    return AuditEvent.objects.aggregate(n=Max("id"))["n"] or 0


def first_allowed(route: Route, world: Any) -> str:
    for username in CLINICIANS:
        if access.permits(route.rule, world.staff[username]):  # type: ignore[arg-type]
            return username
    raise AssertionError(f"no clinician may use {route.id}")


def test_the_patient_data_routes_are_found() -> None:
    names = {r.name for r in PATIENT_DATA_ROUTES}
    assert {
        "patients:detail",
        "patients:tab",
        "patients:report_file",
        "patients:list",
        "GET /api/patients/{patient_id}",
        "GET /api/patients/{patient_id}/timeline",
        "DELETE /api/patients/{patient_id}/consents/{record_id}",
    } <= names
    assert not {"login", "healthz", "audit:list", "GET /api/me"} & names
    assert NO_PATIENT_DATA_SHOWN <= {r.id for r in all_routes()}


@pytest.mark.parametrize("route", PATIENT_DATA_ROUTES, ids=lambda r: r.id)
def test_every_patient_data_endpoint_is_audited(route: Route, scene: Scene) -> None:
    username = first_allowed(route, scene.world)
    user = scene.user(username)
    since = last_id()
    response = perform(route, scene, username)
    body_of(response)
    assert 200 <= response.status_code < 400, (route.id, response.status_code)

    # (Signing the test client in writes its own auth.login row, without an address.)
    mine = list(
        AuditEvent.objects.filter(id__gt=since, actor_id=user.pk).exclude(
            action__startswith="auth."
        )
    )
    assert mine, f"{route.id} wrote no audit record"
    for event in mine:
        assert event.actor == username
        assert event.organisation_id == scene.world.org.pk
        assert event.source == "127.0.0.1"
        assert event.detail["via"] == ("api" if route.transport == "api" else "web")
    successes = [e for e in mine if e.outcome == "success"]
    if route.has_patient:
        assert scene.patient.pk in {e.patient_id for e in successes}, route.id
    elif route.id in CREATES_PATIENT:
        created = m.Patient.objects.latest("id")
        assert ("patient.create", created.pk) in {(e.action, e.patient_id) for e in successes}
    else:
        assert successes, route.id


class TestLoginsAreAudited:
    def test_success_failure_and_logout(self, world: Any) -> None:
        nurse = Staff.objects.get(username="nurse.cardiology")
        client = Client(REMOTE_ADDR="10.1.2.3")
        client.post("/login/", {"username": "nurse.cardiology", "password": "guess-1"})
        client.post("/login/", {"username": "nobody.here", "password": "guess-2"})
        client.post("/login/", {"username": "nurse.cardiology", "password": PASSWORD})
        client.post("/logout/")
        rows = list(
            AuditEvent.objects.filter(action__startswith="auth.")
            .order_by("id")
            .values_list("action", "outcome", "actor", "actor_id", "source")
        )
        assert rows == [
            ("auth.login", "failure", "nurse.cardiology", None, "10.1.2.3"),
            ("auth.login", "failure", "nobody.here", None, "10.1.2.3"),
            ("auth.login", "success", "nurse.cardiology", nurse.pk, "10.1.2.3"),
            ("auth.logout", "success", "nurse.cardiology", nurse.pk, "10.1.2.3"),
        ]
        for event in AuditEvent.objects.all():
            stored = json.dumps(event.detail) + event.actor + event.object_id
            assert "guess-" not in stored and PASSWORD not in stored


# --- the hash chain ---------------------------------------------------------------------------


def realistic_day(scene: Scene) -> None:
    """Logins, searches, reads, writes, denials and a merge, through pages and the API."""
    world = scene.world
    for username in ("nurse.cardiology", "doctor.cardiology"):
        Client().post("/login/", {"username": username, "password": PASSWORD})
    Client().post("/login/", {"username": "doctor.cardiology", "password": "wrong"})
    for route in all_routes():
        if route.has_patient and route.method == "GET":
            body_of(perform(route, scene, "doctor.cardiology"))
    body_of(
        perform(
            next(r for r in all_routes() if r.id == "GET patients:detail"),
            scene,
            "nurse.endocrinology",
        )
    )
    other = patient_services.create_patient(world.actor("nurse.other"), patient_data())
    patient_services.add_record(
        world.actor("nurse.other"),
        other.pk,
        "allergies",
        {"substance": "花粉", "category": "environment", "severity": "mild"},
    )
    for route in all_routes():
        if route.id in (
            "POST /api/patients/{patient_id}/merge",
            "PATCH /api/patients/{patient_id}/conditions/{record_id}",
            "POST patients:record_create[medications]",
        ):
            body_of(perform(route, scene, "doctor.cardiology"))


def verify_output() -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("audit", "verify", stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


class TestChain:
    def test_a_realistic_day_verifies(self, scene: Scene) -> None:
        realistic_day(scene)
        result = audit.verify()
        assert result.ok, result.problems
        assert result.checked == AuditEvent.objects.count() > 50
        assert result.chains == len({e.chain for e in AuditEvent.objects.all()}) >= 3
        output, error = verify_output()
        assert error is None
        assert "intact" in output

    def test_each_organisation_has_its_own_unbroken_sequence(self, scene: Scene) -> None:
        realistic_day(scene)
        for chain in AuditEvent.objects.values_list("chain", flat=True).distinct():
            events = list(AuditEvent.objects.filter(chain=chain).order_by("seq"))
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
            orgs = {e.organisation_id for e in events}
            assert len(orgs) == 1

    def test_a_batch_interleaving_organisations_extends_each_chain_in_order(
        self, world: Any
    ) -> None:
        org_a, org_b = world.org.pk, world.other_org.pk
        audit.append(action="before", organisation_id=org_a)
        entries = [
            audit.Entry(action=f"batch {n}", organisation_id=org, patient_id=n, object_id=n)
            for n, org in enumerate([org_a, org_b, org_a, None, org_a])
        ]
        events = audit.append_many(entries)
        assert [e.action for e in events] == [f"batch {n}" for n in range(5)]
        mine = list(AuditEvent.objects.filter(organisation_id=org_a).order_by("seq"))
        assert [e.action for e in mine[-4:]] == ["before", "batch 0", "batch 2", "batch 4"]
        assert [e.seq for e in mine[-3:]] == [mine[-4].seq + 1, mine[-4].seq + 2, mine[-4].seq + 3]
        assert events[3].chain == "system" and events[1].organisation_id == org_b
        assert audit.append_many([]) == []
        assert audit.verify().ok


def drop_append_only_triggers() -> None:
    """What a database superuser could do; the test transaction restores them afterwards."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")
        elif connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER audit_event_append_only ON audit_auditevent")
        else:
            pytest.skip(f"no triggers to drop on {connection.vendor}")


def raw(sql: str, *params: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class TestTamperDetection:
    @pytest.fixture
    def trail(self, scene: Scene) -> tuple[str, list[AuditEvent]]:
        realistic_day(scene)
        chain = audit.chain_for(scene.world.org.pk)
        drop_append_only_triggers()
        return chain, list(AuditEvent.objects.filter(chain=chain).order_by("seq"))

    def _detected(self, *expected: str) -> str:
        output, error = verify_output()
        assert error is not None, output
        assert error.returncode == 1
        for text in expected:
            assert text in output, output
        return output

    @pytest.mark.parametrize(
        ("column", "value"),
        [
            ("actor", "someone.else"),
            ("outcome", "success"),
            ("patient_id", 424242),
            ("action", "patient.search"),
            ("source", "10.9.9.9"),
            ("detail", json.dumps({"via": "api", "reason": "edited"})),
        ],
    )
    def test_an_edited_row_is_named(self, trail: Any, column: str, value: Any) -> None:
        chain, events = trail
        if column == "outcome":  # hiding a refusal
            target = next(e for e in events if e.outcome == "denied")
        else:
            target = events[len(events) // 2]
        raw(f"UPDATE audit_auditevent SET {column} = %s WHERE id = %s", value, target.pk)  # noqa: S608
        self._detected(f"{chain} #{target.seq}: row was altered")

    def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(self, trail: Any) -> None:
        chain, events = trail
        target, following = events[len(events) // 2], events[len(events) // 2 + 1]
        fields = hashed_fields(
            chain=target.chain,
            seq=target.seq,
            at=target.at,
            actor_id=target.actor_id,
            actor="someone.else",
            organisation_id=target.organisation_id,
            action=target.action,
            patient_id=target.patient_id,
            object_type=target.object_type,
            object_id=target.object_id,
            outcome=target.outcome,
            source=target.source,
            detail=target.detail,
        )
        raw(
            "UPDATE audit_auditevent SET actor = %s, hash = %s WHERE id = %s",
            "someone.else",
            chain_hash(target.prev_hash, fields),
            target.pk,
        )
        self._detected(f"{chain} #{following.seq}: link to the previous row is broken")

    def test_a_deleted_middle_row_is_detected(self, trail: Any) -> None:
        chain, events = trail
        target = events[len(events) // 2]
        raw("DELETE FROM audit_auditevent WHERE id = %s", target.pk)
        self._detected(f"{chain}: rows {target.seq}..{target.seq} are missing")

    def test_a_deleted_last_row_is_detected(self, trail: Any) -> None:
        chain, events = trail
        last = events[-1]
        raw("DELETE FROM audit_auditevent WHERE id = %s", last.pk)
        self._detected(f"{chain}: rows after #{last.seq - 1} are missing (head is at #{last.seq})")

    def test_an_untouched_trail_still_verifies_without_triggers(self, trail: Any) -> None:
        output, error = verify_output()
        assert error is None and "intact" in output


class TestAppendOnly:
    @pytest.fixture
    def event(self, scene: Scene) -> AuditEvent:
        return AuditEvent.objects.filter(organisation_id=scene.world.org.pk).order_by("seq")[2]

    def test_raw_update_is_refused(self, event: AuditEvent) -> None:
        with pytest.raises(DatabaseError), transaction.atomic():
            raw("UPDATE audit_auditevent SET actor = %s WHERE id = %s", "someone.else", event.pk)
        event.refresh_from_db()
        assert event.actor != "someone.else"

    def test_raw_delete_is_refused(self, event: AuditEvent) -> None:
        with pytest.raises(DatabaseError), transaction.atomic():
            raw("DELETE FROM audit_auditevent WHERE id = %s", event.pk)
        assert AuditEvent.objects.filter(pk=event.pk).exists()

    def test_orm_update_and_delete_are_refused(self, event: AuditEvent) -> None:
        count = AuditEvent.objects.count()
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(outcome="success")
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.all().delete()
        assert AuditEvent.objects.count() == count
        assert audit.verify().ok

    def test_truncate_is_refused_on_postgresql(self, event: AuditEvent) -> None:
        if connection.vendor != "postgresql":
            pytest.skip("SQLite has no TRUNCATE")
        with pytest.raises(DatabaseError), transaction.atomic():
            raw("TRUNCATE audit_auditevent")
        assert AuditEvent.objects.filter(pk=event.pk).exists()


# --- the auditor's viewer ---------------------------------------------------------------------


@pytest.fixture
def two_orgs(scene: Scene) -> dict[str, Any]:
    """Activity in both organisations, and an auditor in each."""
    world = scene.world
    realistic_day(scene)
    auditor_other = accounts.create_staff(
        organisation_id=world.other_org.pk,
        username="auditor.other",
        password=PASSWORD,
        role=Role.AUDITOR,
    )
    other_patient = m.Patient.objects.filter(organisation=world.other_org).first()
    assert other_patient is not None
    return {"scene": scene, "auditor_other": auditor_other, "other_patient": other_patient}


def page_events(username: str, **query: Any) -> list[AuditEvent]:
    """Every event the viewer lists for a query, page after page."""
    client = client_for(username)
    events: list[AuditEvent] = []
    page_number = 1
    while True:
        response = client.get("/audit/", {**query, "page": page_number})
        assert response.status_code == 200
        page = response.context["page"]
        events += page.items
        if not page.has_next:
            return events
        page_number += 1


def export_rows(username: str, **query: Any) -> list[dict[str, str]]:
    response = client_for(username).get("/audit/export.csv", query)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(body_of(response).decode("utf-8-sig"))))


def org_day(world: Any, days: int = 0) -> str:
    return (datetime.now(ZoneInfo(world.org.time_zone)) + timedelta(days=days)).date().isoformat()


class TestViewer:
    def test_everything_listed_belongs_to_the_auditors_organisation(self, two_orgs: Any) -> None:
        world = two_orgs["scene"].world
        listed = page_events("auditor")
        assert listed
        assert {e.organisation_id for e in listed} == {world.org.pk}
        in_org = set(
            AuditEvent.objects.filter(organisation_id=world.org.pk).values_list("pk", flat=True)
        )
        # Everything of the organisation up to the viewer's own search is there.
        assert {e.pk for e in listed} == {pk for pk in in_org if pk <= max(e.pk for e in listed)}

    def test_the_other_auditor_sees_only_the_other_organisation(self, two_orgs: Any) -> None:
        world = two_orgs["scene"].world
        listed = page_events("auditor.other")
        assert listed and {e.organisation_id for e in listed} == {world.other_org.pk}
        assert "nurse.other" in {e.actor for e in listed}

    def test_filter_by_patient(self, two_orgs: Any) -> None:
        scene = two_orgs["scene"]
        listed = page_events("auditor", patient=scene.patient.pk)
        assert listed and {e.patient_id for e in listed} == {scene.patient.pk}
        assert {"patient.create", "patient.read", "conditions.update"} <= {e.action for e in listed}
        assert page_events("auditor", patient=two_orgs["other_patient"].pk) == []

    def test_filter_by_actor(self, two_orgs: Any) -> None:
        listed = page_events("auditor", actor="Doctor.Cardiology")
        assert listed and {e.actor for e in listed} == {"doctor.cardiology"}
        assert page_events("auditor", actor="nurse.other") == []

    def test_filter_by_action_and_outcome(self, two_orgs: Any) -> None:
        scene = two_orgs["scene"]
        listed = page_events("auditor", action="patient")
        assert listed and all(e.action.startswith("patient.") for e in listed)
        exact = page_events("auditor", action="conditions.update")
        assert exact and {e.action for e in exact} == {"conditions.update"}
        refused = page_events("auditor", outcome="denied")
        assert refused and {e.outcome for e in refused} == {"denied"}
        assert ("nurse.endocrinology", scene.patient.pk) in {
            (e.actor, e.patient_id) for e in refused
        }

    def test_filter_by_date_range(self, two_orgs: Any) -> None:
        world = two_orgs["scene"].world
        today, yesterday, tomorrow = org_day(world), org_day(world, -1), org_day(world, 1)
        assert page_events("auditor", **{"from": today, "to": today})
        assert page_events("auditor", to=yesterday) == []
        assert page_events("auditor", **{"from": tomorrow}) == []

    def test_an_unreadable_date_is_reported_not_crashed(self, two_orgs: Any) -> None:
        response = client_for("auditor").get("/audit/", {"from": "2024-13-45"})
        assert response.status_code == 200
        assert response.context["problems"] == ["from"]

    def test_export_follows_the_filters_and_the_organisation(self, two_orgs: Any) -> None:
        scene = two_orgs["scene"]
        world = scene.world
        rows = export_rows("auditor", patient=scene.patient.pk, action="patient")
        assert rows
        assert {r["patient_id"] for r in rows} == {str(scene.patient.pk)}
        assert all(r["action"].startswith("patient.") for r in rows)
        everything = export_rows("auditor")
        chain = AuditEvent.objects.filter(organisation_id=world.org.pk)
        assert {int(r["seq"]) for r in everything} == set(chain.values_list("seq", flat=True))
        assert "nurse.other" not in {r["actor"] for r in everything}
        assert export_rows("auditor", patient=two_orgs["other_patient"].pk) == []

    def test_viewing_and_exporting_are_audited(self, two_orgs: Any) -> None:
        page_events("auditor", actor="nurse.cardiology")
        export_rows("auditor")
        actions = list(AuditEvent.objects.filter(actor="auditor").values_list("action", flat=True))
        assert "audit.search" in actions and "audit.export" in actions

    def test_api_follows_the_same_rules(self, two_orgs: Any, api: Any) -> None:
        scene = two_orgs["scene"]
        response = api("auditor").get(
            "/api/audit/events", data={"patient": scene.patient.pk, "size": 200}
        )
        assert response.status_code == 200
        items = response.json()["items"]
        assert items and {i["patient_id"] for i in items} == {scene.patient.pk}
        response = api("auditor").get("/api/audit/events", data={"actor": "nurse.other"})
        assert response.json()["total"] == 0
