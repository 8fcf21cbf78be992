"""`careloop import fhir`: Synthea Bundles, NDJSON and folders imported through the mappers.

The 32 Synthea transaction Bundles of the shared corpus all import with per-type figures that
add up to their entries; a patient with hypertension ends up in the hypertension plan and with
their blood pressure on the 360 page; re-runs, interruptions and broken files lose nothing and
duplicate nothing.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import translation

from careloop.accounts.models import Staff
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.fhir import importer
from careloop.fhir.resources.condition import snomed_icd10
from careloop.kit.identifiers import icd10_category
from careloop.observations import models as om
from careloop.onboarding.models import FhirImportFile, FhirSourceLink
from careloop.patients import models as pm
from tests.corpus import CORPUS

SYNTHEA = CORPUS / "synthea-r4-smart-generated-sample-data"
LIZ = next(SYNTHEA.glob("Liz_Conn_*.json"), SYNTHEA / "missing")  # hypertension, alive
KERMIT = next(SYNTHEA.glob("Kermit_Trantow_*.json"), SYNTHEA / "missing")

pytestmark = pytest.mark.skipif(not SYNTHEA.is_dir(), reason="shared corpus not present")


def bundle(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def types_in(path: Path) -> Counter[str]:
    return Counter(e["resource"]["resourceType"] for e in bundle(path)["entry"])


def rows() -> dict[str, int]:
    return {
        "patients": pm.Patient.objects.count(),
        "encounters": pm.Encounter.objects.count(),
        "conditions": pm.Condition.objects.count(),
        "medications": pm.Medication.objects.count(),
        "readings": om.Observation.objects.count(),
    }


def signed_in(username: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    user = Staff.objects.get(username=username)
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


@pytest.fixture
def plans(world: Any) -> Any:
    plan_services.load_templates()
    plan_services.install_default_rules(world.org)
    return world


def run(world: Any, path: Path, **kw: Any) -> list[importer.FileReport]:
    with translation.override("en"):
        return importer.Importer(world.org, department=world.cardio, **kw).run(path)


def test_every_synthea_bundle_imports_with_figures_that_add_up(plans: Any) -> None:
    started = time.monotonic()
    reports = run(plans, SYNTHEA)
    seconds = time.monotonic() - started
    files = sorted(SYNTHEA.glob("*.json"))
    assert len(reports) == len(files) == 32
    entries = 0
    for report in reports:
        path = Path(report.path)
        expected = types_in(path)
        entries += sum(expected.values())
        assert report.status == "imported", (path.name, report.error)
        assert report.entries == sum(expected.values())
        assert {t: f.total for t, f in report.types.items()} == dict(expected), path.name
        for rtype, figures in report.types.items():
            assert figures.counted() == figures.total, (path.name, rtype, figures)
            assert sum(figures.skip_reasons.values()) == figures.skipped
            assert sum(figures.refusals.values()) == figures.refused
        assert report.counted() == report.entries
        # The patient and every visit are kept; types CareLoop has no table for are skipped.
        assert report.types["Patient"].imported == 1
        assert report.types["Encounter"].imported == expected["Encounter"]
        assert report.types["Claim"].skip_reasons == {
            "CareLoop does not keep Claim resources.": expected["Claim"]
        }
    print(
        f"\nimported {entries} entries of 32 bundles in {seconds:.1f}s: {entries / seconds:.0f}/s"
    )
    totals = rows()
    assert totals["patients"] == 32
    assert totals["encounters"] == sum(types_in(Path(r.path))["Encounter"] for r in reports)
    assert totals["conditions"] > 0 and totals["readings"] > 0
    # Every patient was registered in the chosen department, without a (US) phone number.
    assert pm.PatientDepartment.objects.filter(department=plans.cardio).count() == 32
    assert not pm.PatientPhone.objects.exists()
    # Each stored row is remembered against its urn:uuid source id.
    assert FhirSourceLink.objects.filter(resource_type="Patient", source="urn:uuid").count() == 32

    # Running the folder again touches nothing: every file is already imported.
    again = run(plans, SYNTHEA)
    assert {r.status for r in again} == {"already-imported"}
    assert rows() == totals

    # Forcing a file again finds every resource already present, and duplicates none.
    forced = run(plans, LIZ, again=True)[0]
    assert forced.status == "imported"
    assert forced.total("imported") == forced.total("updated") == 0
    assert forced.total("present") + forced.total("skipped") + forced.total("refused") == (
        forced.entries
    )
    assert rows() == totals


def test_hypertension_enrols_the_patient_and_their_bp_shows_on_the_360_page(plans: Any) -> None:
    report = run(plans, LIZ)[0]
    assert report.types["Condition"].imported == 1
    patient = pm.Patient.objects.get(record_number="27c911c6-f045-4ffa-af5d-6eba57ac94b2")
    assert patient.name == "Liz Conn"
    condition = pm.Condition.objects.get(patient=patient)
    assert (condition.icd10_code, condition.snomed_code) == ("I10", "38341003")
    # The enrolment rule fired exactly as if staff had recorded the diagnosis.
    enrolment = cm.Enrolment.objects.get(patient=patient, template__code="hypertension")
    assert (enrolment.source, enrolment.status) == ("rule", "active")
    readings = om.Observation.objects.filter(patient=patient, kind="bp")
    assert readings.count() == 3

    nurse = signed_in("nurse.cardiology")
    assert "Liz Conn" in nurse.get("/patients/?q=Liz").content.decode()
    page = nurse.get(f"/patients/{patient.pk}/")
    assert page.status_code == 200
    assert "Hypertension" in page.content.decode()
    vitals = nurse.get(f"/patients/{patient.pk}/tab/vitals/").content.decode()
    assert "165/105" in vitals and "181/108" in vitals and "152/95" in vitals
    # Another department's nurse does not see the imported patient.
    assert signed_in("nurse.endocrinology").get(f"/patients/{patient.pk}/").status_code == 404


def test_the_snomed_map_names_only_codes_of_the_loaded_terminology(world: Any) -> None:
    mapped = snomed_icd10()
    assert mapped["59621000"] == "I10" and mapped["38341003"] == "I10"
    known = set(pm.Concept.objects.filter(system="icd10").values_list("code", flat=True))
    for snomed, icd in mapped.items():
        assert icd10_category(icd) in known, (snomed, icd)
    # The chronic conditions of the Synthea sample are all mapped.
    for snomed in ("15777000", "162864005", "53741008", "22298006", "44054006", "230690007"):
        assert snomed in mapped


def test_an_unmapped_snomed_condition_is_skipped_with_its_code(plans: Any) -> None:
    report = run(plans, KERMIT)[0]
    skipped = report.types["Condition"].skip_reasons
    codes = {
        e["resource"]["code"]["coding"][0]["code"]
        for e in bundle(KERMIT)["entry"]
        if e["resource"]["resourceType"] == "Condition"
    }
    unmapped = sorted(c for c in codes if c not in snomed_icd10())
    assert unmapped
    for code in unmapped:
        assert f"Condition.code: no ICD-10 mapping for SNOMED {code}" in skipped
    # Readings of kinds CareLoop does not record are counted as skipped, not lost silently.
    assert report.types["Observation"].skipped > 0
    assert report.types["Observation"].imported > 0


def test_an_interrupted_import_resumes_without_duplicates(plans: Any, tmp_path: Path) -> None:
    full = bundle(LIZ)
    half = dict(full, entry=full["entry"][: len(full["entry"]) // 2])
    file = tmp_path / "liz.json"
    file.write_text(json.dumps(half), encoding="utf-8")
    first = run(plans, file)[0]
    assert first.status == "imported" and first.total("imported") > 0
    stored = rows()

    file.write_text(json.dumps(full), encoding="utf-8")
    second = run(plans, file)[0]
    assert second.status == "imported"
    assert second.total("present") == first.total("imported") + first.total("present")
    assert second.counted() == len(full["entry"])

    # The same outcome as one uninterrupted run: one patient, every visit and reading once.
    after = rows()
    assert after["patients"] == stored["patients"] == 1
    assert after["encounters"] == types_in(LIZ)["Encounter"]
    assert om.Observation.objects.filter(kind="bp").count() == 3
    assert cm.Enrolment.objects.filter(template__code="hypertension").count() == 1


def test_a_run_stopped_mid_file_is_picked_up_by_the_next_run(plans: Any) -> None:
    def stop_at_40(progress: importer.Progress) -> None:
        if progress.resources_done == 40:
            raise importer.Interrupted

    stopped = run(plans, LIZ, on_progress=stop_at_40)[0]
    assert stopped.status == "failed" and "resume" in stopped.error
    record = FhirImportFile.objects.get()
    assert record.status == FhirImportFile.Status.FAILED
    partial = rows()
    assert partial["patients"] == 1

    resumed = run(plans, LIZ)[0]
    assert resumed.status == "imported"
    assert resumed.counted() == resumed.entries
    # What was stored before the stop is found again, the rest is imported now.
    assert resumed.total("present") == stopped.total("imported") > 0
    final = rows()
    assert sum(final.values()) > sum(partial.values())
    assert final["patients"] == 1
    assert final["encounters"] == types_in(LIZ)["Encounter"]
    assert om.Observation.objects.filter(kind="bp").count() == 3
    record.refresh_from_db()
    assert record.status == FhirImportFile.Status.DONE


def test_a_changed_resource_updates_the_row_it_became(plans: Any, tmp_path: Path) -> None:
    data = bundle(LIZ)
    file = tmp_path / "liz.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    run(plans, file)
    condition = pm.Condition.objects.get()
    for entry in data["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"]["clinicalStatus"]["coding"][0]["code"] = "resolved"
    file.write_text(json.dumps(data), encoding="utf-8")
    report = run(plans, file)[0]
    assert report.types["Condition"].updated == 1
    assert pm.Condition.objects.get().pk == condition.pk
    condition.refresh_from_db()
    assert (condition.status, condition.version) == ("resolved", 2)


def synthea_as_ndjson(folder: Path) -> tuple[str, int]:
    """Liz's patient and readings as bulk-data NDJSON files referring to each other by id."""
    folder.mkdir()
    entries = bundle(LIZ)["entry"]
    patient = entries[0]["resource"]
    readings = []
    for e in entries:
        r = e["resource"]
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "55284-4":
            r = dict(r, subject={"reference": f"Patient/{patient['id']}"})
            r.pop("encounter", None)
            readings.append(r)
    # Written so the observations come first by name: the Patient file is still read first.
    (folder / "Observation.ndjson").write_text(
        "\n".join(json.dumps(r) for r in readings) + "\n", encoding="utf-8"
    )
    (folder / "Patient.ndjson").write_text(json.dumps(patient) + "\n", encoding="utf-8")
    return patient["id"], len(readings)


def test_ndjson_files_in_a_folder_refer_to_each_other(plans: Any, tmp_path: Path) -> None:
    source_id, count = synthea_as_ndjson(tmp_path / "export")
    reports = run(plans, tmp_path / "export")
    assert [Path(r.path).name for r in reports] == ["Patient.ndjson", "Observation.ndjson"]
    assert reports[1].types["Observation"].imported == count == 3
    patient = pm.Patient.objects.get()
    assert om.Observation.objects.filter(patient=patient, kind="bp").count() == 3
    link = FhirSourceLink.objects.get(resource_type="Patient")
    assert (link.source, link.source_id, link.local_id) == (
        "file:export",
        source_id,
        str(patient.pk),
    )

    # A single NDJSON file of the same source resolves through the remembered ids too.
    single = tmp_path / "more.ndjson"
    single.write_text((tmp_path / "export" / "Observation.ndjson").read_text(), encoding="utf-8")
    report = run(plans, single, source="file:export")[0]
    assert report.types["Observation"].present == 3
    assert om.Observation.objects.count() == 3


def test_a_reference_to_a_patient_not_imported_is_refused_not_guessed(
    plans: Any, cardio_patient: Any, tmp_path: Path
) -> None:
    """``Patient/<n>`` in a file names the sender's patient n, never CareLoop's patient n."""
    reading = next(
        e["resource"]
        for e in bundle(LIZ)["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "55284-4"
    )
    reading = dict(reading, subject={"reference": f"Patient/{cardio_patient.pk}"})
    file = tmp_path / "readings.ndjson"
    file.write_text(json.dumps(reading) + "\n", encoding="utf-8")
    report = run(plans, file)[0]
    assert report.types["Observation"].refused == 1
    (message,) = report.types["Observation"].refusals
    assert f"Patient/{cardio_patient.pk}, which has not been imported" in message
    assert not om.Observation.objects.exists()


def test_a_broken_file_is_reported_and_the_others_import(
    plans: Any, tmp_path: Path, capsys: Any
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "liz.json").write_text(LIZ.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "broken.json").write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    (folder / "lines.ndjson").write_text(
        '{"resourceType": "Patient"}\nnot json\n', encoding="utf-8"
    )
    out = io.StringIO()
    with translation.override("en"), pytest.raises(SystemExit) as exit_info:
        call_command(
            "import_fhir", str(folder), "--organisation", "test", "--json", "--progress", stdout=out
        )
    assert exit_info.value.code == 1
    summary = json.loads(out.getvalue())
    by_name = {Path(f["path"]).name: f for f in summary["files"]}
    assert by_name["broken.json"]["status"] == "failed"
    assert "not valid JSON" in by_name["broken.json"]["error"]
    assert by_name["lines.ndjson"]["status"] == "failed"
    assert "Line 2 is not valid JSON" in by_name["lines.ndjson"]["error"]
    assert by_name["liz.json"]["status"] == "imported"
    assert summary["failed_files"] == 2
    assert summary["imported"] == by_name["liz.json"]["imported"] > 0
    # Nothing of the broken files was stored; the good one is whole.
    assert pm.Patient.objects.count() == 1
    assert om.Observation.objects.filter(kind="bp").count() == 3
    # The progress bar went to stderr.
    err = capsys.readouterr().err
    assert "files 3/3" in err and "resources" in err and "/s" in err


def test_the_command_prints_a_report_and_skips_a_finished_file(plans: Any) -> None:
    out = io.StringIO()
    with translation.override("en"):
        call_command("import_fhir", str(LIZ), "--organisation", "test", stdout=out)
    text = out.getvalue()
    assert f"{LIZ.name}: {sum(types_in(LIZ).values())} entries" in text
    assert "Claim" in text and "CareLoop does not keep Claim resources." in text
    assert "0 files failed" in text
    out = io.StringIO()
    with translation.override("en"):
        call_command("import_fhir", str(LIZ), "--organisation", "test", stdout=out)
    assert "already imported" in out.getvalue()
    assert pm.Patient.objects.count() == 1


def test_the_cli_routes_import_fhir_to_its_command(monkeypatch: Any) -> None:
    from careloop import cli

    seen: list[list[str]] = []
    monkeypatch.setattr(
        "django.core.management.execute_from_command_line", lambda argv: seen.append(argv)
    )
    cli.main(["import", "fhir", "some/folder", "--json"])
    cli.main(["import", "patients", "list.csv", "--user", "u"])
    assert seen == [
        ["careloop", "import_fhir", "some/folder", "--json"],
        ["careloop", "import_patients", "patients", "list.csv", "--user", "u"],
    ]


def test_an_admin_imports_a_bundle_from_the_onboarding_page(plans: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from careloop.onboarding import fhir_jobs
    from careloop.onboarding.models import FhirImportJob

    admin = signed_in("admin")
    assert 'data-testid="fhir-import-link"' in admin.get("/onboarding/").content.decode()
    upload = SimpleUploadedFile("liz.json", LIZ.read_bytes(), content_type="application/json")
    response = admin.post(
        "/onboarding/fhir/upload/", {"file": upload, "department": plans.cardio.pk}
    )
    job = FhirImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/onboarding/fhir/{job.pk}/"
    assert job.status == FhirImportJob.Status.QUEUED
    queued = admin.get(f"/onboarding/fhir/{job.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in queued  # the page refreshes its progress

    fhir_jobs.run(job.pk)  # what `careloop worker` does with the queued task
    job.refresh_from_db()
    assert job.status == FhirImportJob.Status.DONE
    assert job.processed == job.total == sum(types_in(LIZ).values())
    assert not job.file  # the uploaded patient data is not kept
    page = admin.get(f"/onboarding/fhir/{job.pk}/").content.decode()
    assert 'data-type="Observation"' in page and "CareLoop does not keep Claim" in page
    patient = pm.Patient.objects.get()
    assert pm.PatientDepartment.objects.filter(patient=patient, department=plans.cardio).exists()
    assert cm.Enrolment.objects.filter(patient=patient, template__code="hypertension").exists()

    # Staff who are not organisation admins can neither see nor start imports.
    nurse = signed_in("nurse.cardiology")
    assert nurse.get("/onboarding/fhir/").status_code == 403
    assert nurse.get(f"/onboarding/fhir/{job.pk}/").status_code == 403
    assert 'data-testid="fhir-import-link"' not in nurse.get("/onboarding/").content.decode()
    # Another organisation's admin gets nothing.
    assert signed_in("admin.other").get(f"/onboarding/fhir/{job.pk}/").status_code == 404
