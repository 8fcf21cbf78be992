"""Onboarding a clinic's patient list: mapping, dry run, real run, reports, CLI and access."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from openpyxl import Workbook, load_workbook

from careloop.accounts.models import Staff
from careloop.audit.models import AuditEvent
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.kit.identifiers import resident_id_check_char
from careloop.onboarding import reading, services
from careloop.onboarding.checks import parse_date
from careloop.onboarding.models import PatientListJob
from careloop.patients import models as pm
from careloop.patients import services as patient_services

pytestmark = pytest.mark.django_db

HOSTILE = '=HYPERLINK("http://x")'


def resident_id(birth: str, seq: str) -> str:
    """A valid ID number for a birth date (YYYYMMDD); an odd last sequence digit is a man."""
    first = f"110105{birth}{seq}"
    return first + resident_id_check_char(first)


MAN_1960 = resident_id("19600305", "001")
WOMAN_1955 = resident_id("19551120", "002")

HEADER_ZH = ["姓名", "性别", "出生日期", "身份证号", "病历号", "手机", "科室", "诊断编码", "诊断"]


def good_rows() -> list[list[str]]:
    return [
        ["王建国", "男", "1960/3/5", MAN_1960, "MRN-1", "13900001111", "心内科", "I10", "高血压"],
        ["李秀英", "女", "1955年11月20日", WOMAN_1955, "MRN-2", "13900002222", "", "", ""],
    ]


def csv_bytes(
    rows: list[list[str]], header: list[str] = HEADER_ZH, enc: str = "utf-8-sig"
) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode(enc)


def xlsx_bytes(rows: list[list[Any]], header: list[str] = HEADER_ZH) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["某某医院 患者名单"])  # a title row above the header
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def browser(username: str) -> Client:
    Staff.objects.filter(username=username).update(language="en")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(Staff.objects.get(username=username))
    return client


def upload(client: Client, body: bytes, name: str = "patients.csv") -> PatientListJob:
    response = client.post(
        "/onboarding/upload/", {"file": SimpleUploadedFile(name, body)}, follow=False
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return PatientListJob.objects.latest("pk")


def check(client: Client, job: PatientListJob) -> PatientListJob:
    data = {f"col_{k}": v for k, v in job.mapping.items()}
    response = client.post(f"/onboarding/{job.pk}/mapping/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    job.refresh_from_db()
    return job


def run(client: Client, job: PatientListJob) -> PatientListJob:
    response = client.post(f"/onboarding/{job.pk}/run/", {"confirm": "yes"})
    assert response.status_code == 302
    services.run(job.pk)  # what the worker does with the queued job
    job.refresh_from_db()
    return job


def outcomes(job: PatientListJob) -> dict[int, str]:
    return {r["row"]: r["outcome"] for r in job.results}


def reasons(job: PatientListJob, row: int) -> str:
    return " | ".join(m["reason"] for r in job.results if r["row"] == row for m in r["messages"])


# --- reading --------------------------------------------------------------------------------


def test_mapping_is_proposed_from_chinese_and_english_headers() -> None:
    assert reading.propose(HEADER_ZH) == {
        "0": "name", "1": "sex", "2": "date_of_birth", "3": "national_id", "4": "record_number",
        "5": "phone", "6": "department", "7": "icd10_code", "8": "diagnosis",
    }  # fmt: skip
    english = ["Name", "Sex", "Date of birth", "ID number", "Record number", "Mobile",
               "Dept", "ICD-10", "Diagnosis", "Doctor", "Notes"]  # fmt: skip
    proposed = reading.propose(english)
    assert proposed["3"] == "national_id" and proposed["7"] == "icd10_code"
    assert proposed["9"] == "doctor" and "10" not in proposed


def test_dates_in_the_forms_clinics_write() -> None:
    for text in (
        "1960-03-05",
        "1960/3/5",
        "1960.3.5",
        "1960年3月5日",
        "19600305",
        "1960-03-05 00:00:00",
    ):
        assert parse_date(text) is not None and parse_date(text).isoformat() == "1960-03-05"
    assert parse_date("1960/2/30") is None and parse_date("5/3/1960") is None


# --- dry run --------------------------------------------------------------------------------


def test_dry_run_reports_every_row_and_writes_nothing(world: Any, make_patient: Any) -> None:
    existing = make_patient(name="赵六", record_number="MRN-9", phones=["13900009999"])
    bad_check = MAN_1960[:17] + ("0" if MAN_1960[17] != "0" else "1")
    rows = [
        *good_rows(),
        ["张三", "男", "1960-03-05", MAN_1960, "", "13900003333", "", "", ""],  # same ID as row 2
        ["钱七", "", "1970-01-01", bad_check, "", "13900004444", "", "", ""],
        ["孙八", "男", "1961-01-01", MAN_1960.replace("1960", "1962", 1), "", "12345", "", "", ""],
        ["周九", "男", "1/2/1960", "", "", "13900005555", "牙科", "X99999", ""],
        ["赵六", "", "1960-05-01", "", "MRN-9", "13900009999", "", "", ""],  # already registered
        ["", "男", "1960-05-01", "", "", "13900006666", "", "", ""],
    ]
    client = browser("nurse.cardiology")
    before = (
        pm.Patient.objects.count(),
        AuditEvent.objects.filter(action="patient.create").count(),
    )
    job = check(client, upload(client, csv_bytes(rows)))
    assert job.status == "checked"
    assert (
        pm.Patient.objects.count(),
        AuditEvent.objects.filter(action="patient.create").count(),
    ) == before
    got = outcomes(job)
    assert got[2] == got[3] == "create"
    assert got[4] == "refused" and "Same ID number as row 2" in reasons(job, 4)
    assert "check character" in reasons(job, 5)
    assert "mobile" in reasons(job, 6)  # phone; the ID's own checksum may also be wrong
    assert "not a date" in reasons(job, 7) and "no department" in reasons(job, 7)
    assert "not an ICD-10 code" in reasons(job, 7)
    assert got[8] == "unchanged"
    assert "name is missing" in reasons(job, 9)
    assert (job.created, job.unchanged, job.rejected) == (2, 1, 5)
    page = client.get(f"/onboarding/{job.pk}/").content.decode()
    assert "Same ID number as row 2" in page and 'data-testid="run-confirm"' in page
    existing.refresh_from_db()
    assert existing.version == 1


def test_id_number_must_agree_with_birth_date_and_sex(world: Any) -> None:
    rows = [["王建国", "女", "1960-03-06", MAN_1960, "", "13900001111", "", "", ""]]
    client = browser("nurse.cardiology")
    job = check(client, upload(client, csv_bytes(rows)))
    text = reasons(job, 2)
    assert "differs from the one in the ID number (1960-03-05)" in text
    assert "sex differs" in text


# --- real run -------------------------------------------------------------------------------


def test_run_creates_patients_with_audit_and_hypertension_enrolment(world: Any) -> None:
    plan_services.load_templates()
    plan_services.install_default_rules(world.org)
    client = browser("nurse.cardiology")
    blank = [""] * 9
    bad = ["坏行", "", "", "", "", "1", "", "", ""]
    job = check(client, upload(client, csv_bytes([*good_rows(), blank, bad])))
    assert client.post(f"/onboarding/{job.pk}/run/", {}).status_code == 302  # unconfirmed
    job.refresh_from_db()
    assert job.status == "checked"
    job = run(client, job)
    assert job.status == "done" and (job.created, job.rejected) == (2, 1)
    wang = pm.Patient.objects.get(record_number="MRN-1")
    assert (wang.name, wang.sex, wang.date_of_birth.isoformat()) == ("王建国", "male", "1960-03-05")
    assert wang.national_id == MAN_1960 and [p.number for p in wang.phones.all()] == ["13900001111"]
    assert AuditEvent.objects.filter(action="patient.create", patient_id=wang.pk).exists()
    assert pm.Condition.objects.get(patient=wang).icd10_code == "I10"
    assert cm.Enrolment.objects.get(patient=wang).template.code == "hypertension"
    li = pm.Patient.objects.get(record_number="MRN-2")
    assert li.sex == "female" and not cm.Enrolment.objects.filter(patient=li).exists()
    assert not job.file


def test_running_the_same_file_again_creates_no_duplicates(world: Any) -> None:
    client = browser("nurse.cardiology")
    body = csv_bytes(good_rows())
    run(client, check(client, upload(client, body)))
    count = pm.Patient.objects.count()
    again = check(client, upload(client, body))
    assert set(outcomes(again).values()) == {"unchanged"}
    again = run(client, again)
    assert pm.Patient.objects.count() == count and again.unchanged == 2
    assert pm.Condition.objects.filter(icd10_code="I10").count() == 1
    # A changed address on the second run updates (and versions) the same patient.
    rows = good_rows()
    third = check(client, upload(client, csv_bytes([[*rows[0], "北京市"]], [*HEADER_ZH, "地址"])))
    assert outcomes(third) == {2: "update"}
    run(client, third)
    wang = pm.Patient.objects.get(record_number="MRN-1")
    assert wang.address == "北京市" and wang.version == 2
    assert pm.Patient.objects.count() == count


def test_gb18030_csv_and_xlsx_are_read(world: Any) -> None:
    client = browser("nurse.cardiology")
    gb = check(client, upload(client, csv_bytes(good_rows(), enc="gb18030")))
    assert gb.headers == HEADER_ZH and set(outcomes(gb).values()) == {"create"}
    rows: list[list[Any]] = [list(r) for r in good_rows()]
    rows[0][5] = 13900001111  # a phone typed as a number
    job = upload(client, xlsx_bytes(rows), name="名单.xlsx")
    assert job.kind == "xlsx" and job.header_row == 2
    job = check(client, job)
    assert outcomes(job) == {3: "create", 4: "create"}


# --- reports ---------------------------------------------------------------------------------


def test_report_downloads_are_formula_safe(world: Any) -> None:
    client = browser("nurse.cardiology")
    rows = [[HOSTILE, "男", "1960-03-05", "", "", "13900001111", "", "", ""]]
    job = run(client, check(client, upload(client, csv_bytes(rows))))
    assert job.created == 1
    body = client.get(f"/onboarding/{job.pk}/report.csv").content.decode("utf-8-sig")
    cells = [row for row in csv.reader(io.StringIO(body)) if len(row) > 3]
    assert cells[1][3] == "'" + HOSTILE
    response = client.get(f"/onboarding/{job.pk}/report.xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    cell = sheet.cell(row=2, column=4)
    assert cell.value == HOSTILE and cell.data_type == "s"
    assert client.get(f"/onboarding/{job.pk}/report.exe").status_code == 404
    assert AuditEvent.objects.filter(action="onboarding.export").count() == 2


# --- access ----------------------------------------------------------------------------------


def test_a_role_without_patient_creation_is_refused(world: Any) -> None:
    client = browser("auditor")
    assert client.get("/onboarding/").status_code == 403
    response = client.post(
        "/onboarding/upload/", {"file": SimpleUploadedFile("a.csv", csv_bytes(good_rows()))}
    )
    assert response.status_code == 403 and not PatientListJob.objects.exists()


def test_lists_and_patients_of_others_are_out_of_reach(world: Any) -> None:
    other_actor = world.actor("nurse.other")
    twin = patient_services.create_patient(
        other_actor,
        {"name": "王建国", "sex": "male", "date_of_birth": "1960-03-05", "national_id": MAN_1960,
         "record_number": "MRN-1", "phones": ["13900001111"]},
    )  # fmt: skip
    client = browser("nurse.cardiology")
    job = check(client, upload(client, csv_bytes(good_rows())))
    assert outcomes(job)[2] == "create"  # the other organisation's record is not a match
    for name in ("nurse.other", "admin.other", "nurse.endocrinology"):
        outsider = browser(name)
        assert outsider.get(f"/onboarding/{job.pk}/").status_code == 404
        assert outsider.get(f"/onboarding/{job.pk}/report.csv").status_code == 404
        assert outsider.post(f"/onboarding/{job.pk}/run/", {"confirm": "yes"}).status_code == 404
    assert browser("admin").get(f"/onboarding/{job.pk}/").status_code == 200
    run(client, job)
    twin.refresh_from_db()
    assert twin.version == 1 and twin.organisation_id == world.other_org.pk
    assert (
        pm.Patient.objects.filter(
            organisation=world.org, national_id_index=twin.national_id_index
        ).count()
        == 1
    )


def test_a_department_outside_the_staff_members_own_is_refused(world: Any) -> None:
    rows = [["王建国", "男", "1960-03-05", "", "", "13900001111", "endocrinology", "", ""]]
    client = browser("nurse.cardiology")
    job = check(client, upload(client, csv_bytes(rows)))
    assert "not one of your departments" in reasons(job, 2)


# --- command line ----------------------------------------------------------------------------


def test_cli_dry_run_then_import(world: Any, tmp_path: Any) -> None:
    path = tmp_path / "list.csv"
    header = ["Patient", "Sex", "DOB", "Mobile", "Dept"]
    path.write_bytes(csv_bytes([["王建国", "M", "1960-03-05", "13900001111", ""]], header))
    out = io.StringIO()
    call_command(
        "import_patients", "patients", str(path), "--user", "nurse.cardiology",
        "--mapping", "Patient=name", "--dry-run", "--department", "cardiology", stdout=out,
    )  # fmt: skip
    assert "would create 1" in out.getvalue() and not pm.Patient.objects.exists()
    call_command("import_patients", "patients", str(path), "--user", "nurse.cardiology",
                 "--mapping", "1=name", stdout=out)  # fmt: skip
    assert pm.Patient.objects.get().name == "王建国"
    with pytest.raises(CommandError, match="not allowed"):
        call_command("import_patients", "patients", str(path), "--user", "auditor", stdout=out)
