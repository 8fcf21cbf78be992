"""The staff pages of reading imports: upload, progress by htmx polling, the line report."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from careloop.accounts.models import Staff
from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now
from careloop.observations import jobs
from careloop.observations import models as om
from tests.observations.support import care_team, join

pytestmark = pytest.mark.django_db

HEADER = "patient,code,value,systolic,diastolic,unit,effective,time_zone,source,device,context\n"


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    p = make_patient(record_number="MRN-0042", name="王建国")
    join(p, care_team(world))
    return p


def browser(username: str) -> Client:
    """A signed-in staff member who reads the pages in English."""
    Staff.objects.filter(username=username).update(language="en")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(Staff.objects.get(username=username))
    return client


def csv_file(patient: Any, name: str = "clinic-readings.csv") -> SimpleUploadedFile:
    text = (
        HEADER
        + f"{patient.pk},bp,,142,91,mmHg,2026-01-06T07:30,,device,OMRON-1,\n"
        + f"{patient.pk},bp,,400,91,mmHg,2026-01-06T08:30,,,,\n"
        + f"{patient.pk},glucose,abc,,,mmol/L,2026-01-06T07:00,,,,fasting\n"
    )
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def finished_job(world: Any, problems: int, username: str = "nurse.cardiology") -> om.ImportJob:
    return om.ImportJob.objects.create(
        organisation=world.org,
        format="csv",
        file="",
        file_name="big.csv",
        size=1000,
        bytes_read=1000,
        status=om.ImportJob.Status.DONE,
        lines=problems + 1,
        rejected=problems,
        problems=[
            {"line": n + 2, "field": "value", "reason": f"value {n} is not possible"}
            for n in range(problems)
        ],
        created_by=world.staff[username],
        finished_at=utc_now(),
    )


class TestUpload:
    def test_upload_follow_progress_then_read_the_report(self, world: Any, patient: Any) -> None:
        nurse = browser("nurse.cardiology")
        page = nurse.get("/observations/imports/")
        assert page.status_code == 200
        assert b'data-testid="import-form"' in page.content
        assert b'data-testid="no-imports"' in page.content

        response = nurse.post(
            "/observations/imports/upload/", {"format": "csv", "file": csv_file(patient)}
        )
        job = om.ImportJob.objects.get()
        assert response.status_code == 302
        assert response["Location"] == f"/observations/imports/{job.pk}/"
        assert (job.status, job.file_name, job.created_by.username) == (
            "queued",
            "clinic-readings.csv",
            "nurse.cardiology",
        )

        detail = nurse.get(f"/observations/imports/{job.pk}/")
        html = detail.content.decode()
        assert "clinic-readings.csv is uploaded" in html
        assert 'hx-trigger="every 2s"' in html  # polls until the job is finished
        assert "Waiting for the background worker" in html

        jobs.run_import(job.pk)
        poll = nurse.get(f"/observations/imports/{job.pk}/", HTTP_HX_REQUEST="true")
        part = poll.content.decode()
        assert "<html" not in part and "hx-trigger" not in part  # the last poll: it stops
        assert 'data-status="done"' in part
        assert 'value="100"' in part
        assert "systolic 400 mm[Hg] is not possible" in part
        assert "value is not a number: &#x27;abc&#x27;" in part
        rows = part.count('data-testid="problem-row"')
        assert rows == 2

        listing = nurse.get("/observations/imports/").content.decode()
        assert "clinic-readings.csv" in listing and f'data-import="{job.pk}"' in listing

    def test_a_refused_upload_says_why(self, world: Any, patient: Any) -> None:
        nurse = browser("nurse.cardiology")
        xml = SimpleUploadedFile("export.xml", b"<?xml version='1.0'?><HealthData/>")
        response = nurse.post("/observations/imports/upload/", {"format": "csv", "file": xml})
        assert response.status_code == 422
        assert b"This is not a text file of readings" in response.content
        apple = SimpleUploadedFile("export.xml", b"<HealthData></HealthData>")
        response = nurse.post(
            "/observations/imports/upload/", {"format": "apple_health", "file": apple}
        )
        assert response.status_code == 422
        assert b"name the patient" in response.content
        assert not om.ImportJob.objects.exists()

    def test_the_patient_can_be_given_in_the_address(self, world: Any, patient: Any) -> None:
        page = browser("nurse.cardiology").get(f"/observations/imports/?patient={patient.pk}")
        assert f'value="{patient.pk}"'.encode() in page.content

    def test_an_auditor_may_not(self, world: Any, patient: Any) -> None:
        auditor = browser("auditor")
        assert auditor.get("/observations/imports/").status_code == 403
        response = auditor.post(
            "/observations/imports/upload/", {"format": "csv", "file": csv_file(patient)}
        )
        assert response.status_code == 403
        assert not om.ImportJob.objects.exists()


class TestReport:
    def test_problems_are_paginated(self, world: Any) -> None:
        job = finished_job(world, 120)
        nurse = browser("nurse.cardiology")
        first = nurse.get(f"/observations/imports/{job.pk}/").content.decode()
        assert first.count('data-testid="problem-row"') == 50
        assert "Page 1 of 3" in first
        third = nurse.get(f"/observations/imports/{job.pk}/?page=3").content.decode()
        assert third.count('data-testid="problem-row"') == 20
        assert "value 119 is not possible" in third and "value 0 is not" not in third

    def test_problems_as_csv(self, world: Any) -> None:
        job = finished_job(world, 2)
        job.problems.append({"line": 9, "field": "device", "reason": '=HYPERLINK("x")'})
        job.save()
        response = browser("doctor.cardiology").get(f"/observations/imports/{job.pk}/problems.csv")
        assert response.status_code == 200
        assert response["Content-Disposition"] == (
            f'attachment; filename="import-{job.pk}-problems.csv"'
        )
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0] == ["Line", "Field", "Reason"]
        assert rows[1] == ["2", "value", "value 0 is not possible"]
        assert rows[3] == ["9", "device", '\'=HYPERLINK("x")']  # not run by a spreadsheet
        assert AuditEvent.objects.filter(action="observation_import.export").exists()

    def test_a_failed_import_shows_its_reason(self, world: Any) -> None:
        job = finished_job(world, 0)
        om.ImportJob.objects.filter(pk=job.pk).update(
            status="failed", error="The XML declares entities; such files are refused."
        )
        html = browser("nurse.cardiology").get(f"/observations/imports/{job.pk}/").content
        assert b'data-testid="import-error"' in html and b"declares entities" in html


class TestScope:
    def test_colleagues_see_it_other_departments_do_not(self, world: Any) -> None:
        job = finished_job(world, 1)
        assert (
            browser("doctor.cardiology").get(f"/observations/imports/{job.pk}/").status_code == 200
        )
        for outsider in ("doctor.endocrinology", "nurse.other"):
            client = browser(outsider)
            assert client.get(f"/observations/imports/{job.pk}/").status_code == 404
            assert client.get(f"/observations/imports/{job.pk}/problems.csv").status_code == 404
            assert b"big.csv" not in client.get("/observations/imports/").content

    def test_a_one_patient_import_follows_the_patients_scope(
        self, world: Any, patient: Any
    ) -> None:
        job = finished_job(world, 0, username="nurse.endocrinology")
        om.ImportJob.objects.filter(pk=job.pk).update(patient=patient)
        # The endocrinology nurse uploaded it, but the patient is cardiology's only.
        assert (
            browser("nurse.endocrinology").get(f"/observations/imports/{job.pk}/").status_code
            == 404
        )
