"""Attacks on the scope of appointments: another department's or organisation's staff get
404 for every operation, nothing changes, and the attempt is audited as denied."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.accounts import services as accounts
from careloop.accounts.roles import Role
from careloop.appointments import models as am
from careloop.appointments import services
from careloop.audit.models import AuditEvent
from careloop.kit.errors import NotFound
from careloop.patients import models as pm
from tests.appointments.conftest import MON, TUE
from tests.conftest import PASSWORD
from tests.security.scenario import client_for

OUTSIDERS = ["nurse.endocrinology", "doctor.endocrinology", "nurse.other", "admin.other"]


def state() -> list[Any]:
    return [
        list(am.Appointment.objects.order_by("pk").values()),
        list(am.Slot.objects.order_by("pk").values("pk", "booked", "status")),
        list(am.QueueCounter.objects.values()),
        list(am.CallResult.objects.values()),
    ]


@pytest.fixture
def target(clinic: Any, make_patient: Any) -> am.Appointment:
    """A cardiology patient booked in Monday's clinic (today)."""
    clinic.schedule()
    patient = make_patient(name="欧阳秘密")
    return services.book(clinic.nurse, patient.pk, clinic.slot(MON, 10).pk).appointment


@pytest.fixture
def other_doctor(world: Any) -> None:
    accounts.create_staff(
        organisation_id=world.other_org.pk,
        username="doctor.other",
        password=PASSWORD,
        role=Role.DOCTOR,
        department_ids=[world.other_dept.pk],
    )


class TestServices:
    @pytest.mark.parametrize("who", OUTSIDERS)
    def test_every_operation_on_an_appointment_is_not_found(
        self, who: str, target: Any, clinic: Any
    ) -> None:
        actor = clinic.world.actor(who)
        before = state()
        tuesday = clinic.slot(TUE, 9).pk
        operations = [
            lambda: services.check_in(actor, target.pk),
            lambda: services.cancel(actor, target.pk, "x"),
            lambda: services.reschedule(actor, target.pk, tuesday, target.version),
            lambda: services.mark_no_show(actor, target.pk),
            lambda: services.complete(actor, target.pk),
            lambda: services.book(actor, target.patient_id, tuesday),
            lambda: services.record_call_result(actor, target.patient_id, "remind_later"),
            lambda: services.call_next(actor, clinic.world.cardio.pk),
        ]
        for operation in operations:
            with pytest.raises(NotFound):
                operation()
        assert state() == before
        assert AuditEvent.objects.filter(actor=who, outcome="denied").count() >= 5

    def test_a_shared_patient_cannot_be_put_into_another_departments_clinic(
        self, clinic: Any, make_patient: Any
    ) -> None:
        """The endocrinology nurse also looks after this patient, but books only into her own
        department's clinics."""
        clinic.schedule()
        patient = make_patient()
        pm.PatientDepartment.objects.create(patient=patient, department=clinic.world.endo)
        endo = clinic.world.actor("nurse.endocrinology")
        with pytest.raises(NotFound):
            services.book(endo, patient.pk, clinic.slot(TUE, 9).pk)
        assert clinic.slot(TUE, 9).booked == 0

    def test_a_department_cannot_book_a_patient_it_does_not_see(
        self, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule()
        theirs = make_patient("nurse.endocrinology")
        with pytest.raises(NotFound):
            services.book(clinic.nurse, theirs.pk, clinic.slot(TUE, 9).pk)
        assert AuditEvent.objects.filter(
            actor="nurse.cardiology", patient_id=theirs.pk, outcome="denied"
        ).exists()


class TestPagesAndApi:
    @pytest.mark.parametrize("who", ["doctor.endocrinology", "admin.other"])
    def test_pages_answer_404_without_the_name(
        self, who: str, target: Any, other_doctor: Any
    ) -> None:
        client = client_for(who)
        before = state()
        for url in (
            f"/appointments/{target.pk}/",
            f"/appointments/{target.pk}/reschedule/",
            f"/appointments/{target.pk}/cancel/",
        ):
            response = client.get(url)
            assert response.status_code == 404, url
            assert "欧阳秘密" not in response.content.decode()
        for action in ("check-in", "no-show", "complete", "cancel"):
            assert client.post(f"/appointments/{target.pk}/{action}/").status_code == 404
        assert state() == before

    @pytest.mark.parametrize("who", ["doctor.endocrinology", "doctor.other", "admin.other"])
    def test_api_answers_404(self, who: str, target: Any, api: Any, other_doctor: Any) -> None:
        client = api(who)
        before = state()
        response = client.get(f"/api/appointments/{target.pk}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        for action, body in (
            ("check-in", None),
            ("cancel", {"reason": ""}),
            ("reschedule", {"slot_id": target.slot_id, "version": 1}),
        ):
            response = client.post(f"/api/appointments/{target.pk}/{action}", body)
            assert response.status_code == 404, (action, response.content)
        response = client.post(
            "/api/appointments", {"patient_id": target.patient_id, "slot_id": target.slot_id}
        )
        assert response.status_code == 404
        assert state() == before

    def test_another_departments_queue_and_slots_are_not_found(self, target: Any, api: Any) -> None:
        client = api("nurse.endocrinology")
        cardio = target.department_id
        assert client.get(f"/api/appointments/queue?department={cardio}").status_code == 404
        assert client.get(f"/api/appointments/slots?department={cardio}").status_code == 404
        response = client_for("nurse.endocrinology").get(f"/appointments/?department={cardio}")
        assert response.status_code == 404
        assert "欧阳秘密" not in response.content.decode()
