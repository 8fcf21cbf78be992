"""The JSON API of the record, as an integrating system or a script would use it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from careloop.accounts import services as accounts
from careloop.patients import models as m
from careloop.patients.records import KINDS
from tests.conftest import VALID_ID, patient_data

ERROR_KEYS = {"code", "message", "details"}
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture
def patient(world, make_patient):
    return make_patient(phones=["13912345678"], address="北京市海淀区中关村1号")


# --- /api/patients ----------------------------------------------------------------------------


class TestPatients:
    def test_create_returns_201_with_the_record(self, world, api):
        r = api("nurse.cardiology").post(
            "/api/patients",
            {
                "name": "孙八",
                "sex": "female",
                "date_of_birth": "1949-12-31",
                "national_id": VALID_ID,
                "phones": ["+86 139 2222 3333"],
                "address": "上海市",
                "preferred_channels": ["wechat"],
                "contact_window_start": "09:00",
                "contact_window_end": "18:30",
            },
        )
        assert r.status_code == 201, r.content
        body = r.json()
        assert body["id"] and body["version"] == 1
        assert body["name"] == "孙八" and body["national_id"] == VALID_ID
        assert body["phones"] == ["13922223333"]
        assert body["departments"] == [world.cardio.pk]
        assert body["time_zone"] == "Asia/Shanghai"  # the organisation's default
        assert body["contact_window_end"] == "18:30:00"
        assert m.Patient.objects.get(pk=body["id"]).created_by == world.staff["nurse.cardiology"]

    def test_get_one(self, api, patient):
        r = api("nurse.cardiology").get(f"/api/patients/{patient.pk}")
        assert r.status_code == 200
        body = r.json()
        assert (body["id"], body["name"], body["phones"]) == (
            patient.pk,
            patient.name,
            ["13912345678"],
        )
        assert body["address"] == "北京市海淀区中关村1号"

    def test_unknown_and_out_of_scope_patients_are_404(self, api, patient):
        error_of(api("nurse.cardiology").get("/api/patients/999999"), 404, "not_found")
        error_of(api("nurse.endocrinology").get(f"/api/patients/{patient.pk}"), 404, "not_found")
        error_of(api("nurse.other").get(f"/api/patients/{patient.pk}"), 404, "not_found")

    def test_search(self, world, api, make_patient):
        make_patient(name="ZhouA", phones=["13800005678"])
        make_patient(name="ZhouB", phones=["13800001234"])
        make_patient("nurse.endocrinology", name="ZhouC", phones=["13800009999"])
        r = api("nurse.cardiology").get("/api/patients", data={"q": "zhou", "sort": "name"})
        assert r.status_code == 200
        body = r.json()
        assert body["total"] == 2 and body["page"] == 1 and body["size"] == 25
        assert [p["name"] for p in body["items"]] == ["ZhouA", "ZhouB"]
        assert set(body["items"][0]) == {"id", "name", "sex", "date_of_birth", "record_number"}
        assert [
            p["name"]
            for p in api("nurse.cardiology")
            .get("/api/patients", data={"q": "5678"})
            .json()["items"]
        ] == ["ZhouA"]
        page = (
            api("admin")
            .get("/api/patients", data={"q": "zhou", "size": 1, "page": 3, "sort": "name"})
            .json()
        )
        assert (page["total"], page["page"]) == (3, 3)
        assert [p["name"] for p in page["items"]] == ["ZhouC"]
        endo = api("admin").get("/api/patients", data={"department": world.endo.pk}).json()
        assert [p["name"] for p in endo["items"]] == ["ZhouC"]
        assert api("admin").get("/api/patients", data={"sort": "no_such_sort"}).status_code == 200

    def test_patch_with_version_in_body(self, api, patient):
        r = api("nurse.cardiology").patch(
            f"/api/patients/{patient.pk}", {"version": 1, "address": "新地址"}
        )
        assert r.status_code == 200, r.content
        body = r.json()
        assert (body["version"], body["address"]) == (2, "新地址")
        assert body["phones"] == ["13912345678"] and body["name"] == patient.name

    @pytest.mark.parametrize("header", ['"1"', 'W/"1"', "1"])
    def test_patch_with_if_match(self, api, patient, header):
        r = api("nurse.cardiology").patch(
            f"/api/patients/{patient.pk}", {"phones": ["0755-12345678"]}, HTTP_IF_MATCH=header
        )
        assert r.status_code == 200, r.content
        assert (r.json()["version"], r.json()["phones"]) == (2, ["0755-12345678"])

    def test_stale_patch_is_409_with_what_changed(self, api, patient):
        nurse = api("nurse.cardiology")
        assert (
            nurse.patch(f"/api/patients/{patient.pk}", {"version": 1, "name": "新名字"}).status_code
            == 200
        )
        r = api("doctor.cardiology").patch(
            f"/api/patients/{patient.pk}", {"version": 1, "address": "不该保存"}
        )
        body = error_of(r, 409, "stale_version")
        assert body["details"]["current_version"] == 2
        assert body["details"]["changed"]["name"]["now"] == "新名字"
        assert m.Patient.objects.get(pk=patient.pk).address == "北京市海淀区中关村1号"

    def test_patch_without_version_is_422(self, api, patient):
        body = error_of(
            api("nurse.cardiology").patch(f"/api/patients/{patient.pk}", {"name": "x"}),
            422,
            "invalid",
        )
        assert list(body["details"]) == ["version"]
        assert m.Patient.objects.get(pk=patient.pk).name == patient.name

    def test_create_errors_name_each_field(self, api):
        r = api("nurse.cardiology").post(
            "/api/patients",
            {"sex": "male", "date_of_birth": "1960-02-30", "phones": ["13900000000"]},
        )
        body = error_of(r, 422, "invalid")
        assert body["details"]["name"] == ["This field is required."]
        assert body["details"]["date_of_birth"] == ["Enter a valid date."]
        assert m.Patient.objects.count() == 0

    def test_form_errors_are_per_field(self, api):
        r = api("nurse.cardiology").post(
            "/api/patients",
            patient_data(
                phones=["12345"], national_id="110105194912310021", time_zone="Nowhere/City"
            ),
        )
        body = error_of(r, 422, "invalid")
        assert set(body["details"]) == {"phones", "national_id", "time_zone"}
        assert "12345" in body["details"]["phones"][0]
        assert "check digit" in body["details"]["national_id"][0]
        assert m.Patient.objects.count() == 0

    def test_duplicate_then_link(self, world, api):
        data = patient_data(national_id=VALID_ID, date_of_birth="1949-12-31", sex="female")
        first = api("nurse.cardiology").post("/api/patients", data).json()
        body = error_of(
            api("nurse.cardiology").post("/api/patients", data), 409, "duplicate_patient"
        )
        assert body["details"]["existing_id"] == first["id"]
        assert body["details"]["match"] == "national_id"
        r = api("nurse.endocrinology").post("/api/patients", {**data, "link_existing": True})
        assert r.status_code == 201
        assert r.json()["id"] == first["id"]
        assert sorted(r.json()["departments"]) == sorted([world.cardio.pk, world.endo.pk])

    def test_confirmed_duplicate(self, api):
        data = patient_data(name="吴九", date_of_birth="1955-05-05", phones=["13912121212"])
        assert api("nurse.cardiology").post("/api/patients", data).status_code == 201
        body = error_of(
            api("nurse.cardiology").post("/api/patients", data), 409, "duplicate_patient"
        )
        assert body["details"]["can_confirm"] is True
        r = api("nurse.cardiology").post("/api/patients", {**data, "allow_duplicate": True})
        assert r.status_code == 201

    def test_merge(self, world, api, make_patient):
        keep = make_patient(name="郑十", phones=["13910101010"])
        drop = make_patient("nurse.endocrinology", name="郑十", phones=["13920202020"])
        r = api("admin").post(
            f"/api/patients/{keep.pk}/merge", {"other_id": drop.pk, "other_version": 1}
        )
        assert r.status_code == 200, r.content
        assert r.json()["phones"] == ["13910101010", "13920202020"]
        assert sorted(r.json()["departments"]) == sorted([world.cardio.pk, world.endo.pk])
        old = error_of(api("nurse.endocrinology").get(f"/api/patients/{drop.pk}"), 404, "merged")
        assert old["details"] == {"merged_into": keep.pk}
        error_of(
            api("nurse.cardiology").post(
                f"/api/patients/{keep.pk}/merge", {"other_id": drop.pk, "other_version": 2}
            ),
            403,
            "forbidden",
        )

    def test_timeline(self, world, api, patient):
        doctor = api("doctor.cardiology")
        doctor.post(
            f"/api/patients/{patient.pk}/conditions",
            {"icd10_code": "I10", "display": "高血压", "status": "active"},
        )
        doctor.post(
            f"/api/patients/{patient.pk}/visits",
            {
                "kind": "outpatient",
                "department": world.cardio.pk,
                "admitted_on": "2025-01-10",
                "diagnoses": "高血压",
            },
        )
        r = doctor.get(f"/api/patients/{patient.pk}/timeline")
        assert r.status_code == 200
        events = r.json()
        assert [(e["kind"], e["change"]) for e in events] == [
            ("visits", "create"),
            ("conditions", "create"),
            ("patient", "create"),
            ("visit", "visit"),
        ]
        assert events[1]["summary"] == "高血压" and events[1]["actor"] == "doctor.cardiology"
        assert events[-1]["date"] == "2025-01-10"

    def test_auditor_is_forbidden_and_anonymous_is_unauthenticated(self, client, api, patient):
        error_of(api("auditor").get("/api/patients"), 403, "forbidden")
        error_of(client.get("/api/patients"), 401, "unauthenticated")
        error_of(
            client.get("/api/patients", HTTP_AUTHORIZATION="Bearer cl_not-a-real-token"),
            401,
            "unauthenticated",
        )

    def test_malformed_json_is_422(self, client, token):
        r = client.post(
            "/api/patients",
            data=b'{"name": "x", ',
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token('nurse.cardiology')}",
            HTTP_ACCEPT_LANGUAGE="en",
        )
        body = error_of(r, 422, "invalid")
        assert body["details"] == {"__all__": ["The body is not valid JSON."]}
        assert m.Patient.objects.count() == 0

    def test_wrong_types_are_422_not_500(self, api):
        r = api("nurse.cardiology").post(
            "/api/patients",
            {"name": ["not", "text"], "date_of_birth": 19600101, "phones": "13900000000"},
        )
        body = error_of(r, 422, "invalid")
        assert {"name", "date_of_birth", "phones"} <= set(body["details"])


# --- rows of the record: the same five routes for every kind ----------------------------------

CASES = {
    "conditions": (
        {
            "icd10_code": "I10.x00x002",
            "snomed_code": "38341003",
            "display": "高血压病",
            "onset_date": "2020-03-01",
            "status": "active",
        },
        {"status": "remission"},
    ),
    "allergies": (
        {
            "substance": "青霉素",
            "category": "medication",
            "reaction": "皮疹",
            "severity": "moderate",
            "noted_on": "2019-06-01",
        },
        {"severity": "severe"},
    ),
    "medications": (
        {
            "name": "氨氯地平片",
            "dose": "5",
            "unit": "mg",
            "route": "po",
            "frequency": "qd",
            "start_date": "2024-05-01",
            "status": "active",
        },
        {"dose": "2.5"},
    ),
    "dispenses": (
        {
            "name": "阿托伐他汀钙片",
            "code": "617312",
            "code_system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "drug_class": "statins",
            "quantity": "28",
            "quantity_unit": "片",
            "days_supply": 28,
            "when_handed_over": "2025-01-03",
            "status": "completed",
            "source": "his",
        },
        {"days_supply": 30},
    ),
    "history": (
        {"kind": "family", "description": "冠心病", "relation": "父亲"},
        {"relation": "母亲"},
    ),
    "lifestyle": (
        {
            "recorded_on": "2025-01-01",
            "smoking": "current",
            "cigarettes_per_day": 10,
            "alcohol": "occasional",
            "exercise": "light",
            "sleep_hours": "6.5",
        },
        {"smoking": "former"},
    ),
    "visits": (
        {
            "kind": "inpatient",
            "department": "CARDIO",
            "attending": "张医生",
            "diagnoses": "急性心肌梗死",
            "admitted_on": "2025-01-02",
            "discharged_on": "2025-01-09",
            "summary": "PCI 术后",
        },
        {"summary": "PCI 术后，恢复良好"},
    ),
    "reports": (
        {
            "kind": "lab",
            "title": "糖化血红蛋白",
            "reported_on": "2025-01-05",
            "results": [{"name": "HbA1c", "value": 7.2, "unit": "%"}],
        },
        {"title": "糖化血红蛋白（复查）"},
    ),
    "caregivers": (
        {
            "name": "王小明",
            "relation": "儿子",
            "phone": "+86 139 0000 1234",
            "is_emergency_contact": True,
        },
        {"relation": "女儿"},
    ),
    "consents": (
        {
            "purpose": "care_reminders",
            "channel": "sms",
            "granted": True,
            "decided_on": "2025-01-01",
            "source": "paper",
        },
        {"granted": False},
    ),
}


def test_every_kind_of_row_is_covered():
    assert set(CASES) == set(KINDS)


def _fill(data: dict, world) -> dict:
    return {k: (world.cardio.pk if v == "CARDIO" else v) for k, v in data.items()}


@pytest.mark.parametrize("kind", list(CASES))
def test_row_lifecycle(world, api, patient, kind):
    create, change = CASES[kind]
    create = _fill(create, world)
    doctor = api("doctor.cardiology")
    base = f"/api/patients/{patient.pk}/{kind}"

    r = doctor.post(base, create)
    assert r.status_code == 201, r.content
    row = r.json()
    assert row["version"] == 1
    for key, value in create.items():
        if key in ("phone", "dose", "sleep_hours"):
            continue
        assert row[key] == value, key
    rid = row["id"]

    listed = doctor.get(base)
    assert listed.status_code == 200 and [x["id"] for x in listed.json()] == [rid]
    assert doctor.get(f"{base}/{rid}").json()["id"] == rid

    r = doctor.patch(f"{base}/{rid}", {"version": 1, **change})
    assert r.status_code == 200, r.content
    assert r.json()["version"] == 2
    key, value = next(iter(change.items()))
    got = r.json()[key]
    assert (float(got) == float(value)) if key == "dose" else got == value

    r = doctor.patch(f"{base}/{rid}", {"version": 1, **change})
    error_of(r, 409, "stale_version")
    r = doctor.patch(f"{base}/{rid}", change, HTTP_IF_MATCH='W/"2"')
    assert r.status_code == 200 and r.json()["version"] == 3

    error_of(doctor.delete(f"{base}/{rid}?version=1"), 409, "stale_version")
    error_of(doctor.delete(f"{base}/{rid}"), 422, "invalid")
    r = doctor.delete(f"{base}/{rid}?version=3")
    assert r.status_code == 204
    error_of(doctor.get(f"{base}/{rid}"), 404, "not_found")
    assert doctor.get(base).json() == []
    assert KINDS[kind].model.objects.get(pk=rid).deleted_at is not None

    # Out of scope and unknown: 404, never the row.
    error_of(api("doctor.endocrinology").get(base), 404, "not_found")
    error_of(doctor.get(f"/api/patients/{patient.pk}/{kind}/999999"), 404, "not_found")


def test_row_specifics(world, api, patient):
    doctor = api("doctor.cardiology")
    base = f"/api/patients/{patient.pk}"
    caregiver = doctor.post(f"{base}/caregivers", CASES["caregivers"][0]).json()
    assert caregiver["phone"] == "13900001234"
    med = doctor.post(f"{base}/medications", CASES["medications"][0]).json()
    assert float(med["dose"]) == 5
    cond = doctor.post(
        f"{base}/conditions", {"icd10_code": "e11.9", "display": "2型糖尿病", "status": "active"}
    ).json()
    assert cond["icd10_code"] == "E11.9"


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("conditions", {"icd10_code": "Q99.9", "display": "x", "status": "active"}, "icd10_code"),
        (
            "medications",
            {
                "name": "药",
                "dose": "5",
                "unit": "mg",
                "frequency": "qd",
                "start_date": "2024-05-02",
                "end_date": "2024-05-01",
            },
            "end_date",
        ),
        ("medications", {"name": "药", "dose": "lots", "unit": "mg", "frequency": "qd"}, "dose"),
        ("allergies", {"category": "food"}, "substance"),
        (
            "visits",
            {"kind": "outpatient", "department": 999999, "admitted_on": "2025-01-01"},
            "department",
        ),
    ],
)
def test_row_errors_are_per_field(api, patient, kind, data, field):
    r = api("doctor.cardiology").post(f"/api/patients/{patient.pk}/{kind}", data)
    body = error_of(r, 422, "invalid")
    assert field in body["details"], body
    assert KINDS[kind].model.objects.count() == 0


def test_unknown_kind_is_404(api, patient):
    assert api("doctor.cardiology").get(f"/api/patients/{patient.pk}/secrets").status_code == 404


# --- report files -----------------------------------------------------------------------------


class TestReportFiles:
    @pytest.fixture
    def report(self, api, patient):
        r = api("doctor.cardiology").post(
            f"/api/patients/{patient.pk}/reports",
            {"kind": "ecg", "title": "心电图", "reported_on": "2025-01-05"},
        )
        return r.json()

    def upload(self, client, token, patient, report, name, content, version=1):
        url = f"/api/patients/{patient.pk}/reports/{report['id']}/file"
        if version is not None:
            url += f"?version={version}"
        return client.post(
            url,
            {"file": SimpleUploadedFile(name, content)},
            HTTP_AUTHORIZATION=f"Bearer {token('doctor.cardiology')}",
            HTTP_ACCEPT_LANGUAGE="en",
        )

    def test_pdf_is_accepted_and_downloadable(self, client, token, api, patient, report):
        r = self.upload(client, token, patient, report, "ecg.pdf", PDF)
        assert r.status_code == 200, r.content
        assert r.json() == {
            "id": report["id"],
            "version": 2,
            "file_name": "ecg.pdf",
            "size": len(PDF),
        }
        got = api("nurse.cardiology").get(f"/api/patients/{patient.pk}/reports/{report['id']}")
        assert got.json()["content_type"] == "application/pdf"
        assert got.json()["file"].endswith(f"/reports/{report['id']}/file")
        download = api("nurse.cardiology").get(got.json()["file"])
        assert download.status_code == 200
        assert b"".join(download.streaming_content) == PDF
        assert "attachment" in download["Content-Disposition"]
        denied = api("nurse.endocrinology").get(got.json()["file"])
        assert denied.status_code == 404

    def test_renamed_executable_is_refused(self, client, token, patient, report):
        r = self.upload(client, token, patient, report, "report.pdf", EXE)
        body = error_of(r, 422, "invalid")
        assert body["details"]["file"] == ["Only PDF, PNG and JPEG files are accepted."]
        assert not m.Report.objects.get(pk=report["id"]).file

    def test_pdf_with_wrong_extension_is_refused(self, client, token, patient, report):
        error_of(self.upload(client, token, patient, report, "report.exe", PDF), 422, "invalid")

    def test_file_over_the_limit_is_refused(self, settings, client, token, patient, report):
        settings.MAX_UPLOAD_BYTES = 1024 * 1024
        big = PDF + b"0" * (1024 * 1024)
        body = error_of(self.upload(client, token, patient, report, "big.pdf", big), 422, "invalid")
        assert "file" in body["details"]
        assert not m.Report.objects.get(pk=report["id"]).file

    def test_upload_needs_the_current_version(self, client, token, patient, report):
        error_of(
            self.upload(client, token, patient, report, "a.pdf", PDF, version=None), 422, "invalid"
        )
        error_of(
            self.upload(client, token, patient, report, "a.pdf", PDF, version=5),
            409,
            "stale_version",
        )

    def test_no_file_yet_is_404(self, api, patient, report):
        url = f"/api/patients/{patient.pk}/reports/{report['id']}/file"
        error_of(api("doctor.cardiology").get(url), 404, "not_found")


# --- languages --------------------------------------------------------------------------------


class TestLanguages:
    MISSING_NAME = {"date_of_birth": "1960-02-30", "phones": ["13900000000"]}

    def post(self, client, token, username, data, **headers):
        return client.post(
            "/api/patients",
            data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token(username)}",
            **headers,
        )

    def test_chinese_when_asked(self, client, token):
        r = self.post(
            client, token, "nurse.cardiology", self.MISSING_NAME, HTTP_ACCEPT_LANGUAGE="zh-hans"
        )
        body = error_of(r, 422, "invalid")
        assert has_cjk(body["details"]["name"][0])
        assert has_cjk(body["details"]["date_of_birth"][0])
        assert has_cjk(body["message"])

    def test_english_when_asked(self, client, token):
        accounts.set_language(accounts.staff_for_token(token("nurse.cardiology")), "zh-hans")
        r = self.post(
            client, token, "nurse.cardiology", self.MISSING_NAME, HTTP_ACCEPT_LANGUAGE="en"
        )
        body = error_of(r, 422, "invalid")
        assert body["details"]["name"] == ["This field is required."]
        assert body["details"]["date_of_birth"] == ["Enter a valid date."]

    def test_users_own_language_without_a_header(self, world, client, token):
        accounts.set_language(world.staff["doctor.cardiology"], "en")
        english = error_of(
            self.post(client, token, "doctor.cardiology", self.MISSING_NAME), 422, "invalid"
        )
        assert english["details"]["name"] == ["This field is required."]
        chinese = error_of(
            self.post(client, token, "nurse.cardiology", self.MISSING_NAME), 422, "invalid"
        )
        assert has_cjk(chinese["details"]["name"][0])

    def test_project_messages_follow_the_language(self, client, token, patient):
        auth = {"HTTP_AUTHORIZATION": f"Bearer {token('nurse.cardiology')}"}
        en = client.get("/api/patients/999999", HTTP_ACCEPT_LANGUAGE="en", **auth).json()
        assert en["message"] == "Not found."
        zh = client.get("/api/patients/999999", HTTP_ACCEPT_LANGUAGE="zh-hans", **auth).json()
        assert zh["code"] == "not_found"
        assert zh["message"] == "Not found." or has_cjk(zh["message"])


# --- the rest of the API surface --------------------------------------------------------------


def test_me(world, api):
    r = api("nurse.cardiology").get("/api/me")
    assert r.status_code == 200
    assert r.json() == {
        "username": "nurse.cardiology",
        "display_name": "nurse.cardiology",
        "role": "nurse",
        "organisation": world.org.pk,
        "departments": [world.cardio.pk],
        "language": "zh-hans",
    }
    assert api("admin").get("/api/me").json()["departments"] == []


def test_docs_and_schema_are_reachable(client):
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and b"html" in docs.content.lower()
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/patients" in paths and "/api/patients/{patient_id}" in paths
    for kind in KINDS:
        assert f"/api/patients/{{patient_id}}/{kind}/{{record_id}}" in paths
    assert "/api/me" in paths


def test_request_body_too_large(settings, api):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    r = api("nurse.cardiology").post("/api/patients", patient_data(address="长" * 2000))
    error_of(r, 413, "payload_too_large")
    assert m.Patient.objects.count() == 0
