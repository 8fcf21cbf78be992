"""Attacks on the scope of the record: other departments, other organisations, wrong roles.

Each attack is a real request through the pages or the API. An out-of-scope patient answers
404 (never revealing that the record exists), nothing changes in the database, and the attempt
lands on the audit trail as `denied`.
"""

from __future__ import annotations

from typing import Any

import pytest

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.accounts.roles import Action, Role, allowed
from careloop.audit.models import AuditEvent
from careloop.patients import models as m
from careloop.patients import services as patient_services
from careloop.patients.records import KINDS
from careloop.web import access
from tests.conftest import PASSWORD, VALID_ID, patient_data
from tests.security.scenario import (
    Route,
    Scene,
    all_routes,
    body_of,
    build_scene,
    client_for,
    form_data,
    perform,
    prime,
    record_sample,
    undone,
)

# Attackers whose role allows the action: only scope stands between them and the patient.
ATTACKERS = {
    "doctor.endocrinology": Role.DOCTOR,  # same organisation, another department
    "doctor.other": Role.DOCTOR,  # another organisation
    "admin.other": Role.ORG_ADMIN,  # another organisation's admin (organisation-wide there)
}


def role_allows(rule: access.Requirement | None, role: str) -> bool:
    return isinstance(rule, tuple) and all(allowed(role, a) for a in rule)


def db_state() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the patient record."""
    tables = [
        m.Patient,
        m.PatientDepartment,
        m.PatientPhone,
        m.RecordVersion,
        *(k.model for k in KINDS.values()),
    ]
    return {t.__name__: list(t.objects.order_by("pk").values()) for t in tables}


def denied(username: str, patient_id: int) -> bool:
    return AuditEvent.objects.filter(
        actor=username, patient_id=patient_id, outcome="denied"
    ).exists()


@pytest.fixture
def outsiders(world: Any) -> dict[str, Staff]:
    doctor = accounts.create_staff(
        organisation_id=world.other_org.pk,
        username="doctor.other",
        password=PASSWORD,
        role=Role.DOCTOR,
        department_ids=[world.other_dept.pk],
    )
    world.staff["doctor.other"] = doctor
    return {u: Staff.objects.get(username=u) for u in ATTACKERS}


SCOPE_ROUTES = [
    pytest.param(route, id=route.id)
    for route in all_routes()
    if route.has_patient and any(role_allows(route.rule, role) for role in ATTACKERS.values())
]


def attack(route: Route, attacker: str, scene: Scene) -> None:
    """One outsider asks for the scene's patient through the route: 404, nothing changes, and
    the refusal is audited."""
    before = db_state()
    response = perform(route, scene, attacker)
    body = body_of(response)
    shown = f"{route.id} as {attacker}: {response.status_code} {body[:300]!r}"
    assert response.status_code == 404, shown
    if route.transport == "api":
        assert response.json()["code"] == "not_found", shown
    assert scene.patient.name.encode() not in body, shown
    assert db_state() == before, shown
    assert denied(attacker, scene.patient.pk), shown


@pytest.mark.parametrize("route", SCOPE_ROUTES)
def test_out_of_scope_patient_is_not_found(route: Route, scene: Scene, outsiders: Any) -> None:
    # Each outsider meets the same scene: what one attempt wrote is undone before the next.
    prime(route, scene)
    wrong = []
    for attacker, role in ATTACKERS.items():
        if not role_allows(route.rule, role):
            continue
        with undone():
            try:
                attack(route, attacker, scene)
            except AssertionError as failure:
                wrong.append(str(failure))
    assert not wrong, "\n".join(wrong)


class TestMergeAcrossScope:
    """Merging moves everything of one record into another: both must be in scope."""

    def _own_patient(self, world: Any, username: str) -> m.Patient:
        return patient_services.create_patient(world.actor(username), patient_data())

    @pytest.mark.parametrize("attacker", ["doctor.endocrinology", "doctor.other"])
    def test_api_cannot_pull_an_outside_record_into_ones_own(
        self, scene: Scene, outsiders: Any, attacker: str, api: Any
    ) -> None:
        own = self._own_patient(scene.world, attacker)
        before = db_state()
        response = api(attacker).post(
            f"/api/patients/{own.pk}/merge",
            {"other_id": scene.patient.pk, "other_version": scene.patient.version},
        )
        assert response.status_code == 404
        assert db_state() == before
        assert denied(attacker, scene.patient.pk)

    def test_page_cannot_pull_an_outside_record_into_ones_own(self, scene: Scene) -> None:
        attacker = "doctor.endocrinology"
        own = self._own_patient(scene.world, attacker)
        before = db_state()
        response = client_for(attacker).post(
            f"/patients/{own.pk}/merge/",
            {"other": scene.patient.pk, "confirm": "1", "version": scene.patient.version},
        )
        assert response.status_code == 200
        assert response.context["other"] is None
        assert scene.patient.name not in response.content.decode()
        assert db_state() == before
        assert denied(attacker, scene.patient.pk)

    def test_api_cannot_push_ones_own_record_into_an_outside_one(
        self, scene: Scene, api: Any
    ) -> None:
        attacker = "doctor.endocrinology"
        own = self._own_patient(scene.world, attacker)
        before = db_state()
        response = api(attacker).post(
            f"/api/patients/{scene.patient.pk}/merge",
            {"other_id": own.pk, "other_version": own.version},
        )
        assert response.status_code == 404
        assert db_state() == before


class TestBodyCannotChooseOwnerOrPatient:
    """Organisation, department, author and patient come from the signed-in context and the
    URL, never from the request body."""

    FOREIGN = (
        "organisation",
        "organisation_id",
        "patient",
        "patient_id",
        "created_by",
        "created_by_id",
        "updated_by",
    )

    def _foreign(self, scene: Scene, other: m.Patient) -> dict[str, Any]:
        intruder = scene.world.staff["admin.other"].pk
        values = {
            "organisation": scene.world.other_org.pk,
            "organisation_id": scene.world.other_org.pk,
            "patient": other.pk,
            "patient_id": other.pk,
            "created_by": intruder,
            "created_by_id": intruder,
            "updated_by": intruder,
        }
        return {k: values[k] for k in self.FOREIGN}

    def _other_patient(self, scene: Scene) -> m.Patient:
        return patient_services.create_patient(scene.world.actor("nurse.other"), patient_data())

    def _assert_owned(self, row: Any, scene: Scene, author: str) -> None:
        row.refresh_from_db()
        assert row.patient_id == scene.patient.pk
        assert row.organisation_id == scene.world.org.pk
        assert row.created_by.username in (author, "nurse.cardiology")

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_api_create_ignores_owner_fields(self, scene: Scene, api: Any, kind: str) -> None:
        other = self._other_patient(scene)
        body = {**record_sample(kind, scene.world), **self._foreign(scene, other)}
        response = api("doctor.cardiology").post(f"/api/patients/{scene.patient.pk}/{kind}", body)
        assert response.status_code == 201, response.content
        row = KINDS[kind].model.objects.get(pk=response.json()["id"])
        self._assert_owned(row, scene, "doctor.cardiology")
        assert row.created_by.username == "doctor.cardiology"
        assert not KINDS[kind].model.objects.filter(patient=other).exists()

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_api_patch_cannot_move_a_row(self, scene: Scene, api: Any, kind: str) -> None:
        other = self._other_patient(scene)
        row = scene.rows[kind]
        body = {"version": row.version, **self._foreign(scene, other)}
        response = api("doctor.cardiology").patch(
            f"/api/patients/{scene.patient.pk}/{kind}/{row.pk}", body
        )
        assert response.status_code in (200, 422), response.content
        self._assert_owned(row, scene, "doctor.cardiology")
        assert not KINDS[kind].model.objects.filter(patient=other).exists()

    @pytest.mark.parametrize("kind", list(KINDS))
    def test_page_edit_cannot_move_a_row(self, scene: Scene, kind: str) -> None:
        other = self._other_patient(scene)
        row = scene.rows[kind]
        data = {
            **form_data(record_sample(kind, scene.world)),
            "version": row.version,
            **self._foreign(scene, other),
        }
        response = client_for("doctor.cardiology").post(
            f"/patients/{scene.patient.pk}/{kind}/{row.pk}/edit/", data
        )
        assert response.status_code == 302
        self._assert_owned(row, scene, "doctor.cardiology")
        assert not KINDS[kind].model.objects.filter(patient=other).exists()

    def test_api_create_patient_ignores_organisation(self, scene: Scene, api: Any) -> None:
        body = {
            **patient_data(),
            "organisation": scene.world.other_org.pk,
            "organisation_id": scene.world.other_org.pk,
        }
        response = api("nurse.cardiology").post("/api/patients", body)
        assert response.status_code == 201
        patient = m.Patient.objects.get(pk=response.json()["id"])
        assert patient.organisation_id == scene.world.org.pk
        assert patient.created_by.username == "nurse.cardiology"
        assert list(patient.department_links.values_list("department_id", flat=True)) == [
            scene.world.cardio.pk
        ]

    @pytest.mark.parametrize("where", ["endo", "other_dept"])
    def test_api_create_patient_refuses_a_department_not_ones_own(
        self, scene: Scene, api: Any, where: str
    ) -> None:
        before = db_state()
        body = {**patient_data(), "department": getattr(scene.world, where).pk}
        response = api("nurse.cardiology").post("/api/patients", body)
        assert response.status_code == 422
        assert "department" in response.json()["details"]
        assert db_state() == before

    def test_page_create_patient_refuses_a_department_not_ones_own(self, scene: Scene) -> None:
        before = db_state()
        data = {**form_data(patient_data()), "department": scene.world.endo.pk}
        response = client_for("nurse.cardiology").post("/patients/new/", data)
        assert response.status_code == 422
        assert db_state() == before

    def test_api_patch_patient_cannot_change_organisation_or_merge(
        self, scene: Scene, api: Any
    ) -> None:
        other = self._other_patient(scene)
        body = {
            "version": scene.patient.version,
            "merged_into": other.pk,
            "departments": [scene.world.other_dept.pk],
            **self._foreign(scene, other),
        }
        response = api("doctor.cardiology").patch(f"/api/patients/{scene.patient.pk}", body)
        assert response.status_code in (200, 422)
        scene.patient.refresh_from_db()
        assert scene.patient.organisation_id == scene.world.org.pk
        assert scene.patient.merged_into_id is None
        assert list(scene.patient.department_links.values_list("department_id", flat=True)) == [
            scene.world.cardio.pk
        ]

    def test_visit_cannot_name_another_organisations_department(
        self, scene: Scene, api: Any
    ) -> None:
        before = db_state()
        body = {**record_sample("visits", scene.world), "department": scene.world.other_dept.pk}
        response = api("doctor.cardiology").post(f"/api/patients/{scene.patient.pk}/visits", body)
        assert response.status_code == 422
        assert "department" in response.json()["details"]
        assert db_state() == before


class TestSearchDoesNotRevealOtherDepartments:
    PHONE = "13912345678"

    @pytest.fixture
    def target(self, world: Any, outsiders: Any) -> m.Patient:
        nurse = world.actor("nurse.cardiology")
        patient = patient_services.create_patient(
            nurse,
            patient_data(
                name="欧阳秘密",
                sex="female",
                date_of_birth="1949-12-31",
                national_id=VALID_ID,
                phones=[self.PHONE],
            ),
        )
        patient_services.add_record(
            nurse, patient.pk, "conditions", record_sample("conditions", world)
        )
        return patient

    def searches(self, world: Any) -> list[dict[str, Any]]:
        return [
            {"q": "欧阳秘密"},
            {"q": "欧阳"},
            {"q": self.PHONE[-4:]},
            {"phone_tail": self.PHONE[-4:]},
            {"phone": self.PHONE},
            {"q": self.PHONE},
            {"national_id": VALID_ID},
            {"q": VALID_ID},
            {"q": VALID_ID.lower()},
            {"condition": "E11"},
            {"q": "E11"},
            {"department": world.cardio.pk},
            {"sex": "female", "age_min": 70},
        ]

    def _api_total(self, api: Any, user: str, query: dict[str, Any]) -> tuple[int, list[int]]:
        response = api(user).get("/api/patients", data=query)
        assert response.status_code == 200
        return response.json()["total"], [p["id"] for p in response.json()["items"]]

    def test_api_search_finds_the_patient_in_scope(
        self, world: Any, target: m.Patient, api: Any
    ) -> None:
        for query in self.searches(world):
            total, ids = self._api_total(api, "nurse.cardiology", query)
            assert target.pk in ids, query

    @pytest.mark.parametrize(
        "user",
        ["nurse.endocrinology", "head.endocrinology", "nurse.other", "admin.other", "doctor.other"],
    )
    def test_api_search_from_outside_finds_nothing(
        self, world: Any, target: m.Patient, api: Any, user: str
    ) -> None:
        for query in self.searches(world):
            total, ids = self._api_total(api, user, query)
            assert (total, ids) == (0, []), query

    @pytest.mark.parametrize("user", ["nurse.endocrinology", "nurse.other"])
    def test_page_search_from_outside_finds_nothing(
        self, world: Any, target: m.Patient, user: str
    ) -> None:
        client = client_for(user)
        for query in self.searches(world):
            for htmx in (False, True):
                headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
                response = client.get("/patients/", query, **headers)
                assert response.status_code == 200
                assert response.context["page"].total == 0, query
                assert response.context["rows"] == []
                assert f"/patients/{target.pk}/" not in response.content.decode()

    def test_page_search_finds_the_patient_in_scope(self, world: Any, target: m.Patient) -> None:
        client = client_for("nurse.cardiology")
        for query in self.searches(world):
            response = client.get("/patients/", query)
            assert target in response.context["page"].items, query

    def test_duplicate_check_does_not_point_to_an_outside_record(
        self, world: Any, target: m.Patient, api: Any
    ) -> None:
        body = patient_data(
            name="某人", sex="female", date_of_birth="1949-12-31", national_id=VALID_ID
        )
        response = api("nurse.endocrinology").post("/api/patients", body)
        assert response.status_code == 409
        assert response.json()["details"]["existing_id"] is None
        assert str(target.pk) not in response.content.decode()

    def test_another_organisation_is_a_separate_register(
        self, world: Any, target: m.Patient, api: Any
    ) -> None:
        body = patient_data(
            name="某人", sex="female", date_of_birth="1949-12-31", national_id=VALID_ID
        )
        response = api("nurse.other").post("/api/patients", body)
        assert response.status_code == 201
        assert response.json()["id"] != target.pk


PATIENT_DATA_ROUTES = [r for r in all_routes() if access.handles_patient_data(r.rule)]


class TestAuditorCannotReadClinicalData:
    @pytest.mark.parametrize("route", PATIENT_DATA_ROUTES, ids=lambda r: r.id)
    def test_refused(self, route: Route, scene: Scene) -> None:
        before = db_state()
        response = perform(route, scene, "auditor")
        body = body_of(response)
        assert response.status_code == 403
        assert scene.patient.name.encode() not in body
        assert db_state() == before
        if route.has_patient:
            assert denied("auditor", scene.patient.pk)
        else:
            assert AuditEvent.objects.filter(actor="auditor", outcome="denied").exists()

    def test_the_audit_trail_shows_ids_not_clinical_content(self, scene: Scene) -> None:
        # Clinical staff read and change the record; the auditor then exports the trail.
        for route in PATIENT_DATA_ROUTES:
            if route.method == "GET" and route.has_patient:
                perform(route, scene, "doctor.cardiology")
        response = client_for("auditor").get("/audit/export.csv")
        assert response.status_code == 200
        csv_text = body_of(response).decode()
        assert f",{scene.patient.pk}," in csv_text
        phone = scene.patient.phones.first().number
        for secret in (scene.patient.name, phone, "2型糖尿病", "青霉素", "二甲双胍", "北京"):
            assert secret not in csv_text


CLINICAL_WRITES = [
    r for r in all_routes() if isinstance(r.rule, tuple) and Action.CLINICAL_WRITE in r.rule
]


class TestOrgAdminCannotWriteClinicalRows:
    def test_there_are_clinical_writes_to_check(self) -> None:
        transports = {r.transport for r in CLINICAL_WRITES}
        assert transports == {"page", "api"}
        assert {r.method for r in CLINICAL_WRITES} >= {"POST", "PATCH", "DELETE"}

    @pytest.mark.parametrize("route", CLINICAL_WRITES, ids=lambda r: r.id)
    def test_refused(self, route: Route, scene: Scene) -> None:
        before = db_state()
        response = perform(route, scene, "admin")
        assert response.status_code == 403
        assert db_state() == before
        if route.has_patient:
            assert denied("admin", scene.patient.pk)
        else:  # a clinical library (education content): refused and audited, no patient
            assert AuditEvent.objects.filter(actor="admin", outcome="denied").exists()

    def test_but_can_record_consent(self, scene: Scene, api: Any) -> None:
        body = record_sample("consents", scene.world)
        response = api("admin").post(f"/api/patients/{scene.patient.pk}/consents", body)
        assert response.status_code == 201


def test_an_endocrinology_scene_is_out_of_reach_for_cardiology(world: Any) -> None:
    """The same attacks hold the other way round (no department is special)."""
    endo = build_scene(world, "endocrinology")
    for route in all_routes():
        if route.has_patient and route.transport == "api" and route.method == "GET":
            response = perform(route, endo, "doctor.cardiology")
            body_of(response)
            assert response.status_code == 404, route.id
    assert denied("doctor.cardiology", endo.patient.pk)
