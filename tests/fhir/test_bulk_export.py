"""FHIR Bulk Data $export: kick-off, polling, download, scope, cancel, audit and retention."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from careloop.accounts import services as accounts
from careloop.accounts.models import Staff
from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.fhir import bulk
from careloop.fhir.models import ExportJob
from careloop.fhir.registry import mapper_for
from careloop.kit.clock import utc_now
from careloop.observations import models as om
from careloop.observations import services as obs_services
from tests.fhir.conftest import FhirClient
from tests.security.scenario import ROLE_USERS

SH = ZoneInfo("Asia/Shanghai")
ASYNC = {"HTTP_ACCEPT": "application/fhir+json", "HTTP_PREFER": "respond-async"}


@pytest.fixture(autouse=True)
def _exports_in_tmp(settings: Any, tmp_path: Any) -> None:
    settings.FHIR_EXPORT_DIR = str(tmp_path / "exports")


@pytest.fixture
def readings(world: Any, cardio_patient: Any, endo_patient: Any) -> dict[str, Any]:
    """Two readings of the cardiology patient (one in blood pressure), one of endocrinology's."""
    base = datetime(2024, 3, 1, 8, 0, tzinfo=SH)
    items = [
        (cardio_patient, "nurse.cardiology", {"code": "glucose", "value": 6.1}),
        (cardio_patient, "nurse.cardiology", {"code": "bp", "systolic": 141, "diastolic": 92}),
        (endo_patient, "nurse.endocrinology", {"code": "weight", "value": 71.5}),
    ]
    for i, (patient, user, item) in enumerate(items):
        at = (base + timedelta(hours=i)).isoformat()
        report = obs_services.ingest(
            world.actor(user), [{**item, "effective": at}], patient_id=patient.pk
        )
        assert report.accepted == 1, report.as_dict()
    return {"cardio": cardio_patient, "endo": endo_patient}


def kick_off(client: FhirClient, path: str = "/fhir/$export", **params: Any) -> Any:
    return client.get(path, params or None, **ASYNC)


def key_of(response: Any) -> str:
    assert response.status_code == 202, response.content
    location = response["Content-Location"]
    assert "/fhir/$export-status/" in location
    return str(location.rsplit("/", 1)[1])


def job_of(key: str) -> ExportJob:
    return ExportJob.objects.get(key=key)


def finished(client: FhirClient, response: Any) -> dict[str, Any]:
    """Run the queued job as the worker does, then poll: the manifest."""
    key = key_of(response)
    bulk.run_export(job_of(key).pk)
    polled = client.get(f"/fhir/$export-status/{key}")
    assert polled.status_code == 200, polled.content
    return dict(polled.json())


def lines(client: FhirClient, manifest: dict[str, Any], rt: str) -> list[dict[str, Any]]:
    item = next((o for o in manifest["output"] if o["type"] == rt), None)
    if item is None:
        return []
    response = client.get(item["url"].replace("http://testserver", ""))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+ndjson"
    body = b"".join(response.streaming_content).decode()
    parsed = [json.loads(line) for line in body.splitlines()]
    assert len(parsed) == item["count"]
    assert all(r["resourceType"] == rt for r in parsed)
    return parsed


def subjects(resources: list[dict[str, Any]]) -> set[str]:
    return {r["subject"]["reference"] for r in resources}


class TestKickOffPollDownload:
    def test_system_export_of_everything_the_nurse_may_read(
        self, fhir: Any, readings: dict[str, Any]
    ) -> None:
        client = fhir("nurse.cardiology")
        response = kick_off(client)
        key = key_of(response)
        waiting = client.get(f"/fhir/$export-status/{key}")
        assert waiting.status_code == 202
        assert waiting["X-Progress"] and waiting["Retry-After"]
        manifest = finished(client, response)
        assert manifest["requiresAccessToken"] is True
        assert manifest["request"].endswith("/fhir/$export")
        assert manifest["error"] == []
        assert manifest["transactionTime"].endswith("Z")
        types = {o["type"] for o in manifest["output"]}
        assert {"Patient", "Observation", "Organization"} <= types
        cardio = readings["cardio"]
        observations = lines(client, manifest, "Observation")
        assert subjects(observations) == {f"Patient/{cardio.pk}"}
        patients = lines(client, manifest, "Patient")
        assert {p["id"] for p in patients} == {str(cardio.pk)}

    def test_the_lines_are_what_a_read_answers(self, fhir: Any, readings: dict[str, Any]) -> None:
        client = fhir("admin")
        manifest = finished(client, kick_off(client, _type="Observation"))
        exported = lines(client, manifest, "Observation")
        assert len(exported) == 3
        mapper = mapper_for("Observation")
        for resource in exported:
            row = om.Observation.objects.get(pk=int(resource["id"]))
            assert resource == mapper.read(row)

    def test_local_times_across_daylight_saving_changes(
        self, fhir: Any, readings: dict[str, Any]
    ) -> None:
        """The direct serialiser's local times equal the mapper's, also in the hour a zone's
        offset changes (Berlin at 01:00 UTC, Adelaide at 16:30 UTC)."""
        rows = list(om.Observation.objects.order_by("pk"))
        moments = [
            ("Europe/Berlin", datetime(2024, 3, 31, 0, 59, 59, tzinfo=ZoneInfo("UTC"))),
            ("Europe/Berlin", datetime(2024, 3, 31, 1, 0, 0, 250000, tzinfo=ZoneInfo("UTC"))),
            ("Australia/Adelaide", datetime(2024, 4, 6, 16, 45, tzinfo=ZoneInfo("UTC"))),
        ]
        for row, (zone, at) in zip(rows, moments, strict=True):
            om.Observation.objects.filter(pk=row.pk).update(time_zone=zone, effective_at=at)
        client = fhir("admin")
        manifest = finished(client, kick_off(client, _type="Observation"))
        mapper = mapper_for("Observation")
        exported = {r["id"]: r for r in lines(client, manifest, "Observation")}
        for row in om.Observation.objects.all():
            assert exported[str(row.pk)] == mapper.read(row)
        times = sorted(r["effectiveDateTime"] for r in exported.values())
        assert "2024-03-31T01:59:59+01:00" in times
        assert "2024-03-31T03:00:00.250000+02:00" in times

    def test_a_reading_sent_as_fhir_reads_back_as_sent(
        self, fhir: Any, cardio_patient: Any
    ) -> None:
        client = fhir("nurse.cardiology")
        sent = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{cardio_patient.pk}"},
            "effectiveDateTime": "2024-03-02T09:00:00+08:00",
            "valueQuantity": {"value": 72, "unit": "/min", "code": "/min"},
            "note": [{"text": "after a walk"}],
        }
        created = client.post("/fhir/Observation", sent)
        assert created.status_code == 201, created.content
        manifest = finished(client, kick_off(client, _type="Observation"))
        (exported,) = lines(client, manifest, "Observation")
        assert exported == created.json()
        assert exported["note"] == [{"text": "after a walk"}]

    def test_patient_level_holds_the_compartments_only(
        self, fhir: Any, readings: dict[str, Any]
    ) -> None:
        client = fhir("doctor.cardiology")
        manifest = finished(client, kick_off(client, "/fhir/Patient/$export"))
        types = {o["type"] for o in manifest["output"]}
        assert "Organization" not in types and "Practitioner" not in types
        assert subjects(lines(client, manifest, "Observation")) == {
            f"Patient/{readings['cardio'].pk}"
        }

    def test_group_of_a_department(self, fhir: Any, world: Any, readings: dict[str, Any]) -> None:
        client = fhir("admin")
        manifest = finished(client, kick_off(client, f"/fhir/Group/dept-{world.endo.pk}/$export"))
        assert subjects(lines(client, manifest, "Observation")) == {
            f"Patient/{readings['endo'].pk}"
        }

    def test_group_of_a_care_plan_cohort(
        self, fhir: Any, world: Any, readings: dict[str, Any]
    ) -> None:
        plan_services.load_templates()
        plan = cm.PlanTemplate.objects.get(code="hypertension", organisation__isnull=True)
        plan_services.enrol(world.actor("nurse.cardiology"), readings["cardio"].pk, plan.pk)
        client = fhir("admin")
        manifest = finished(client, kick_off(client, f"/fhir/Group/plan-{plan.pk}/$export"))
        patients = lines(client, manifest, "Patient")
        assert [p["id"] for p in patients] == [str(readings["cardio"].pk)]

    def test_type_and_since(self, fhir: Any, readings: dict[str, Any]) -> None:
        client = fhir("admin")
        cut = utc_now()
        late = obs_services.ingest(
            None,
            [{"code": "heart_rate", "value": 80, "effective": "2024-03-05T08:00:00+08:00"}],
            patient_id=readings["cardio"].pk,
            organisation_id=readings["cardio"].organisation_id,
        )
        assert late.accepted == 1
        since = cut.isoformat().replace("+00:00", "Z")
        manifest = finished(client, kick_off(client, _type="Observation,Patient", _since=since))
        assert {o["type"] for o in manifest["output"]} <= {"Observation", "Patient"}
        exported = lines(client, manifest, "Observation")
        assert [r["id"] for r in exported] == [str(late.ids[0])]
        assert lines(client, manifest, "Patient") == []


class TestRefusals:
    def test_without_prefer_or_accept_is_400(self, fhir: Any, readings: dict[str, Any]) -> None:
        client = fhir("admin")
        for headers in (
            {"HTTP_ACCEPT": "application/fhir+json"},
            {"HTTP_PREFER": "respond-async"},
        ):
            response = client.get("/fhir/$export", **headers)
            assert response.status_code == 400
            assert response.json()["resourceType"] == "OperationOutcome"
        assert not ExportJob.objects.exists()

    def test_unknown_type_or_parameter_is_400(self, fhir: Any) -> None:
        client = fhir("admin")
        assert kick_off(client, _type="Spaceship").status_code == 400
        assert kick_off(client, "/fhir/Patient/$export", _type="Organization").status_code == 400
        assert kick_off(client, _typeFilter="Observation?code=x").status_code == 400
        assert kick_off(client, _since="yesterday").status_code == 400
        assert kick_off(client, _outputFormat="text/csv").status_code == 400

    def test_a_nurse_cannot_export_another_departments_group(self, fhir: Any, world: Any) -> None:
        client = fhir("nurse.cardiology")
        response = kick_off(client, f"/fhir/Group/dept-{world.endo.pk}/$export")
        assert response.status_code == 404
        assert kick_off(client, "/fhir/Group/dept-999999/$export").status_code == 404
        assert kick_off(client, "/fhir/Group/anything/$export").status_code == 404

    def test_a_type_the_scopes_do_not_allow_is_403(self, fhir: Any) -> None:
        client = fhir("admin", scopes="user/Patient.rs")
        assert kick_off(client, _type="Observation").status_code == 403
        response = kick_off(client)
        manifest = finished(client, response)
        assert job_of(key_of(response)).types == ["Patient"]
        assert manifest["error"] == []

    def test_an_auditor_reads_no_patient_data(self, fhir: Any, readings: dict[str, Any]) -> None:
        client = fhir("auditor")
        assert kick_off(client, _type="Observation").status_code == 403
        assert kick_off(client, _type="Patient").status_code == 403
        response = kick_off(client, "/fhir/Patient/$export")
        if response.status_code == 202:  # types an auditor may read (their audit events)
            manifest = finished(client, response)
            kinds = {o["type"] for o in manifest["output"]}
            assert not kinds & {"Patient", "Observation", "Condition"}
        else:
            assert response.status_code == 403

    def test_a_patient_context_token_exports_its_own_patient_only(
        self, world: Any, readings: dict[str, Any]
    ) -> None:
        cardio = readings["cardio"]
        raw = accounts.issue_token(
            Staff.objects.get(username="nurse.cardiology"),
            scopes="patient/*.rs",
            patient_id=cardio.pk,
        )
        other = obs_services.ingest(
            world.actor("nurse.cardiology"),
            [{"code": "weight", "value": 80, "effective": "2024-03-03T08:00:00+08:00"}],
            patient_id=_second_patient(world).pk,
        )
        assert other.accepted == 1
        client = FhirClient(raw)
        manifest = finished(client, kick_off(client, "/fhir/Patient/$export"))
        assert subjects(lines(client, manifest, "Observation")) == {f"Patient/{cardio.pk}"}
        assert [p["id"] for p in lines(client, manifest, "Patient")] == [str(cardio.pk)]

    def test_another_user_cannot_poll_download_or_cancel(
        self, fhir: Any, readings: dict[str, Any]
    ) -> None:
        owner = fhir("doctor.cardiology")
        response = kick_off(owner, _type="Observation")
        manifest = finished(owner, response)
        key = key_of(response)
        url = manifest["output"][0]["url"].replace("http://testserver", "")
        for intruder in (fhir("nurse.cardiology"), fhir("admin"), fhir("admin.other")):
            assert intruder.get(f"/fhir/$export-status/{key}").status_code == 404
            assert intruder.get(url).status_code == 404
            assert intruder.delete(f"/fhir/$export-status/{key}").status_code == 404
        assert FhirClient(None).get(url).status_code == 401
        assert owner.get(url).status_code == 200
        denied = AuditEvent.objects.filter(action="fhir.export.status", outcome="denied")
        assert denied.count() >= 3

    def test_no_file_outside_the_export(self, fhir: Any, readings: dict[str, Any]) -> None:
        client = fhir("admin")
        response = kick_off(client, _type="Observation")
        finished(client, response)
        key = key_of(response)
        for name in ("Patient.ndjson", "..%2F..%2Fsettings.py", "Observation.json"):
            assert client.get(f"/fhir/$export-file/{key}/{name}").status_code == 404


class TestCancelAuditRetention:
    def test_cancel_a_queued_export(self, fhir: Any, readings: dict[str, Any]) -> None:
        client = fhir("admin")
        key = key_of(kick_off(client))
        job = job_of(key)
        assert client.delete(f"/fhir/$export-status/{key}").status_code == 202
        assert client.get(f"/fhir/$export-status/{key}").status_code == 404
        bulk.run_export(job.pk)  # the worker finds it cancelled: nothing is written
        assert not bulk.job_dir(job).exists()

    def test_cancel_while_running_stops_and_removes_the_files(
        self, fhir: Any, readings: dict[str, Any]
    ) -> None:
        client = fhir("admin")
        key = key_of(kick_off(client, _type="Observation"))
        job = job_of(key)
        original = bulk._progress

        def cancel_midway(job_id: int, label: str, done: int, total: int) -> None:
            ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.CANCELLED)
            original(job_id, label, done, total)

        bulk._progress = cancel_midway  # type: ignore[assignment]
        try:
            bulk.run_export(job.pk)
        finally:
            bulk._progress = original  # type: ignore[assignment]
        assert client.get(f"/fhir/$export-status/{key}").status_code == 404
        assert not bulk.job_dir(job_of(key)).exists()

    def test_a_type_that_fails_is_named_in_error_and_the_others_are_kept(
        self, fhir: Any, readings: dict[str, Any], monkeypatch: Any
    ) -> None:
        def broken(*args: Any) -> Any:
            raise RuntimeError("disk on fire")

        monkeypatch.setitem(bulk.FAST, "Observation", broken)
        client = fhir("admin")
        manifest = finished(client, kick_off(client, _type="Observation,Patient"))
        assert [o["type"] for o in manifest["output"]] == ["Patient"]
        (problem,) = manifest["error"]
        assert problem["type"] == "OperationOutcome"
        (outcome,) = lines(client, {"output": manifest["error"]}, "OperationOutcome")
        assert "Observation" in outcome["issue"][0]["diagnostics"]

    def test_one_audit_event_per_export_and_per_download(
        self, fhir: Any, readings: dict[str, Any]
    ) -> None:
        client = fhir("nurse.cardiology")
        response = kick_off(client, _type="Observation,Patient")
        manifest = finished(client, response)
        job = job_of(key_of(response))
        (event,) = AuditEvent.objects.filter(action="fhir.export")
        assert event.outcome == "success"
        assert event.actor == "nurse.cardiology"
        assert event.object_id == str(job.pk)
        assert event.detail["types"] == ["Observation", "Patient"]
        assert event.detail["counts"] == {"Observation": 2, "Patient": 1}
        assert event.detail["patients"] == [readings["cardio"].pk]
        assert event.patient_id == readings["cardio"].pk
        lines(client, manifest, "Observation")
        (download,) = AuditEvent.objects.filter(action="fhir.export.download")
        assert download.detail["type"] == "Observation"
        assert download.detail["count"] == 2

    def test_files_are_removed_after_the_retention(
        self, fhir: Any, readings: dict[str, Any]
    ) -> None:
        client = fhir("admin")
        response = kick_off(client, _type="Observation")
        manifest = finished(client, response)
        job = job_of(key_of(response))
        assert job.expires_at is not None
        directory = bulk.job_dir(job)
        assert (directory / "Observation.ndjson").is_file()
        bulk.purge_job(job.pk)  # too early: kept
        assert directory.exists()
        assert bulk.purge_expired(job.expires_at + timedelta(seconds=1)) == 1
        assert not directory.exists()
        assert not ExportJob.objects.filter(pk=job.pk).exists()
        url = manifest["output"][0]["url"].replace("http://testserver", "")
        assert client.get(url).status_code == 404


class TestEveryRole:
    """The kick-offs as every caller of the route matrix (which cannot send Prefer)."""

    @pytest.mark.parametrize("role", list(ROLE_USERS))
    def test_kick_off_answers_each_role(
        self, role: str, world: Any, readings: dict[str, Any]
    ) -> None:
        username = ROLE_USERS[role]
        paths = [
            "/fhir/$export",
            "/fhir/Patient/$export",
            f"/fhir/Group/dept-{world.cardio.pk}/$export",
        ]
        for path in paths:
            if username is None or role == "patient":
                response = Client().get(path, **ASYNC)
                assert response.status_code == 401, path
                continue
            client = Client()
            client.force_login(Staff.objects.get(username=username))
            response = client.get(path, **ASYNC)
            if role == "auditor":
                # An auditor reads no patient data; the group is no department of theirs.
                assert response.status_code in (202, 403, 404), (path, response.content)
                if response.status_code == 202:
                    types = set(job_of(key_of(response)).types)
                    assert not types & {"Patient", "Observation", "Condition"}
            else:
                assert response.status_code == 202, (path, response.content)


def _second_patient(world: Any) -> Any:
    from careloop.patients import services as patient_services
    from tests.conftest import patient_data

    return patient_services.create_patient(world.actor("nurse.cardiology"), patient_data())
