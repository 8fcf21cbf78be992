"""Files of readings: CareLoop CSV, device CSV, Apple Health export, NDJSON; the import job and
`careloop import-readings`."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from careloop.kit.errors import ValidationFailed
from careloop.observations import imports, jobs
from careloop.observations import models as om
from tests.observations.support import care_team, join

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"
HEADER = "patient,code,value,systolic,diastolic,unit,effective,time_zone,source,device,context\n"


@pytest.fixture(autouse=True)
def _english() -> Any:
    """Messages in English (the services speak the default language, Chinese, otherwise)."""
    with translation.override("en"):
        yield


@pytest.fixture
def patient(world: Any, make_patient: Any) -> Any:
    p = make_patient(record_number="MRN-0042", name="王建国")
    join(p, care_team(world))
    return p


def upload(
    world: Any, fmt: str, data: bytes, *, patient: str = "", name: str = "readings.csv",
    username: str = "nurse.cardiology",
) -> om.ImportJob:  # fmt: skip
    # The job writes its report in the language of whoever uploaded the file: English here.
    world.staff[username].__class__.objects.filter(username=username).update(language="en")
    return jobs.start_import(
        world.actor(username),
        upload=SimpleUploadedFile(name, data),
        fmt=fmt,
        patient_ref=patient,
    )


def run(world: Any, fmt: str, data: bytes, **kw: Any) -> om.ImportJob:
    """Upload a file and read it as the background job does."""
    job = upload(world, fmt, data, **kw)
    jobs.run_import(job.pk)
    job.refresh_from_db()
    return job


def lines_of(job: om.ImportJob) -> list[tuple[int, str]]:
    return [(p["line"], p["field"]) for p in job.problems]


class TestCareLoopCsv:
    def test_bad_lines_reported_by_number_good_lines_kept(self, world: Any, patient: Any) -> None:
        p = patient.pk
        text = (
            "\ufeff"
            + HEADER  # Excel's byte order mark
            + f"{p},bp,,142,91,mmHg,2026-01-06T07:30,,device,OMRON-1,\n"  # 2 good
            + f'{p},glucose,"7,2",,,mmol/L,2026-01-06T07:00,,,,空腹\n'  # 3 good, decimal comma
            + f"{p},glucose,=1+1,,,mmol/L,2026-01-06T07:05,,,,fasting\n"  # 4 formula
            + f"{p},glucose,5\n"  # 5 too few cells
            + "\n"  # 6 blank: skipped
            + f"{p},bp,,400,91,mmHg,2026-01-06T08:30,,,,\n"  # 7 impossible
            + f"{p},55284-4,,128,82,mm[Hg],2026-01-07T07:30,,,,\n"  # 8 good, older panel code
            + f"{p},glucose,126,,,mg/dL,2026-01-07T07:00,,,,fasting,,\n"  # 9 good, empty extras
        ).encode() + (
            f"{p},bp,,130,80,mmHg,2026-01-08T07:30,,,\xff\xfe,\n".encode("latin-1")  # 10 not UTF-8
            + f"{p},bp,,131,80,mmHg,2026-01-08T07:31,,,\x00,\n".encode()  # 11 NUL
            + f"{p},bp,,132,80,mmHg,2026-01-09T07:30,,,,,,,,extra\n".encode()  # 12 extra cell
            + f"{p},heart_rate,72,,,/min,2026-01-09T07:30,,,,\n".encode()  # 13 good
        )
        job = run(world, "csv", text)
        assert job.status == "done", job.error
        assert (job.lines, job.accepted, job.duplicates, job.rejected) == (13, 5, 0, 6)
        assert lines_of(job) == [
            (4, "value"),
            (5, ""),
            (7, "systolic"),
            (10, ""),
            (11, ""),
            (12, ""),
        ]
        reasons = {p["line"]: p["reason"] for p in job.problems}
        assert reasons[4] == "the cell looks like a spreadsheet formula"
        assert reasons[5] == "3 cells, but the header has 11"
        assert reasons[7] == "systolic 400 mm[Hg] is not possible"
        assert reasons[10] == "the line is not UTF-8 text"
        assert reasons[11] == "the line contains a NUL byte"
        stored = om.Observation.objects.filter(patient=patient)
        assert stored.count() == 5
        glucose = sorted(stored.filter(kind="glucose").values_list("value", "context"))
        assert glucose == [(7.0, "fasting"), (7.2, "fasting")]  # 126 mg/dL is exactly 7.0 mmol/L
        device = stored.get(kind="bp", value=142)
        assert (device.source, device.device_id) == ("device", "OMRON-1")
        assert stored.get(kind="bp", value=128).code == "85354-9"

    def test_the_same_file_twice_stores_nothing_new(self, world: Any, patient: Any) -> None:
        text = (HEADER + "".join(
            f"{patient.pk},bp,,{120 + d},80,mmHg,2026-01-{d:02d}T07:30,,,,\n" for d in range(1, 21)
        )).encode()  # fmt: skip
        first = run(world, "csv", text)
        second = run(world, "csv", text)
        assert (first.accepted, first.duplicates) == (20, 0)
        assert (second.accepted, second.duplicates, second.rejected) == (0, 20, 0)
        assert om.Observation.objects.filter(patient=patient).count() == 20

    def test_a_spreadsheet_saved_on_chinese_windows(self, world: Any, patient: Any) -> None:
        """GB 18030 text, semicolons, the patient by record number, a one-patient file."""
        text = (
            "patient;code;value;unit;effective;context\n"
            "#MRN-0042;glucose;6,1;mmol/L;2026-01-06 07:00;空腹\n"
            "#MRN-0042;glucose;8,4;mmol/L;2026-01-06 09:00;餐后\n"
        ).encode("gb18030")
        job = run(world, "csv", text)
        assert (job.status, job.accepted, job.rejected) == ("done", 2, 0), job.problems
        contexts = set(om.Observation.objects.values_list("context", flat=True))
        assert contexts == {"fasting", "postprandial"}

    def test_a_file_fixed_to_one_patient_needs_no_patient_column(
        self, world: Any, patient: Any
    ) -> None:
        text = b"code,systolic,diastolic,effective\nbp,135,85,2026-01-06T07:30\n"
        job = run(world, "csv", text, patient="MRN-0042")
        assert (job.accepted, job.patient_id) == (1, patient.pk)

    def test_a_missing_quote_mark_is_named(self, world: Any, patient: Any) -> None:
        text = (
            "patient,code,value,effective\n"
            f"{patient.pk},heart_rate,60,2026-01-06T07:00\n"
            f'{patient.pk},heart_rate,"61,2026-01-06T08:00\n'
            f"{patient.pk},heart_rate,62,2026-01-06T09:00\n"
        ).encode()
        job = run(world, "csv", text)
        assert job.accepted == 1
        assert job.problems == [
            {
                "line": 3,
                "field": "",
                "reason": "3 cells, but the header has 4 "
                "(a quoted cell runs on to line 4: is a quote mark missing?)",
            }
        ]

    def test_a_wrong_header_is_refused_at_upload(self, world: Any, patient: Any) -> None:
        with pytest.raises(ValidationFailed) as caught:
            upload(world, "csv", b"patient,code,valeu,effective\n1,bp,1,2026-01-01\n")
        assert "Unknown column “valeu”" in caught.value.details["file"][0]
        with pytest.raises(ValidationFailed) as caught:
            upload(world, "csv", b"code,value\nbp,1\n")
        assert "no column “patient”" in caught.value.details["file"][0]

    def test_lines_of_other_departments_patients_are_refused(
        self, world: Any, patient: Any, make_patient: Any
    ) -> None:
        other = make_patient("nurse.endocrinology")
        text = (
            HEADER
            + f"{patient.pk},bp,,140,90,mmHg,2026-01-06T07:30,,,,\n"
            + f"{other.pk},bp,,140,90,mmHg,2026-01-06T07:30,,,,\n"
        ).encode()
        job = run(world, "csv", text)
        assert (job.accepted, job.rejected) == (1, 1)
        assert job.problems == [{"line": 3, "field": "patient", "reason": "no such patient"}]
        assert not om.Observation.objects.filter(patient=other).exists()


class TestDeviceCsv:
    def test_a_meter_export(self, world: Any, patient: Any) -> None:
        at = int(datetime(2026, 1, 6, 0, 15, tzinfo=UTC).timestamp())
        text = (
            "device_id,record_number,measured_at,type,value,unit,pulse\n"
            "OMRON-HEM-7136,MRN-0042,2026/01/06 07:30,blood_pressure,142/91,mmHg,75\n"
            f"ACCU-CHEK-1,MRN-0042,{at},glucose,126,mg/dL,\n"
            "OMRON-HEM-7136,MRN-0042,2026-01-07T07:30+08:00,blood_pressure,145,mmHg,\n"
            "XIAOMI-S400,MRN-0099,2026-01-07T07:40,weight,74.8,kg,\n"
        ).encode()
        job = run(world, "device_csv", text, name="omron.csv")
        assert (job.accepted, job.rejected) == (3, 2), job.problems
        assert lines_of(job) == [(4, "diastolic"), (5, "patient")]
        stored = {
            (o.kind, o.value, o.value2, o.device_id, o.source)
            for o in om.Observation.objects.filter(patient=patient)
        }
        assert stored == {
            ("bp", 142.0, 91.0, "OMRON-HEM-7136", "device"),
            ("heart_rate", 75.0, None, "OMRON-HEM-7136", "device"),
            ("glucose", 7.0, None, "ACCU-CHEK-1", "device"),
        }
        glucose = om.Observation.objects.get(kind="glucose")
        assert glucose.effective_at == datetime(2026, 1, 6, 0, 15, tzinfo=UTC)


class TestNdjson:
    def test_one_object_per_line(self, world: Any, patient: Any) -> None:
        good = {"patient": patient.pk, "code": "weight", "value": 165.3, "unit": "[lb_av]",
                "effective": "2026-01-06T07:40", "source": "patient"}  # fmt: skip
        text = "\n".join(
            [json.dumps(good), "{not json", "", "[1, 2]", json.dumps({**good, "value": -1})]
        ).encode()
        job = run(world, "ndjson", text, name="readings.ndjson")
        assert (job.accepted, job.rejected) == (1, 3)
        assert lines_of(job) == [(2, ""), (4, ""), (5, "value")]
        weight = om.Observation.objects.get(patient=patient)
        assert (round(weight.value, 2), weight.unit, weight.source) == (74.98, "kg", "patient")


class TestAppleHealth:
    def test_the_sample_export(self, world: Any, patient: Any) -> None:
        job = run(
            world, "apple_health", (DATA / "export.xml").read_bytes(), patient=str(patient.pk),
            name="export.xml",
        )  # fmt: skip
        assert job.status == "done", job.error
        got = {
            (o.kind, o.device_id, o.effective_at.isoformat()):
                (round(o.value, 2), o.value2, o.context)
            for o in om.Observation.objects.filter(patient=patient)
        }  # fmt: skip
        watch, omron, phone = "王建国的 Apple Watch", "欧姆龙 Connect", "王建国的 iPhone"
        expected = {
            ("heart_rate", watch, "2026-01-05T23:30:00+00:00"): (72.0, None, ""),
            ("heart_rate", watch, "2026-01-06T18:10:00+00:00"): (58.0, None, ""),
            # Systolic and diastolic of the same moment are one reading (listed twice in the
            # file: on their own and inside a Correlation element).
            ("bp", omron, "2026-01-05T23:32:00+00:00"): (142.0, 91.0, ""),
            ("bp", omron, "2026-01-06T23:31:00+00:00"): (138.0, 88.0, ""),
            ("glucose", "Health", "2026-01-05T22:55:00+00:00"): (7.0, None, "random"),
            ("glucose", "Health", "2026-01-06T01:05:00+00:00"): (9.4, None, "postprandial"),
            ("weight", "Health", "2026-01-05T23:40:00+00:00"): (74.98, None, ""),
            ("weight", "小米体脂秤", "2026-01-06T23:40:00+00:00"): (74.8, None, ""),
            ("spo2", watch, "2026-01-06T19:00:00+00:00"): (97.0, None, ""),
            ("temperature", "Health", "2026-01-06T12:00:00+00:00"): (37.0, None, ""),
            ("temperature", "Health", "2026-01-07T12:00:00+00:00"): (37.2, None, ""),
            # Steps summed per local day, sleep per night (the morning it ends on).
            ("steps", phone, "2026-01-05T16:00:00+00:00"): (5500.0, None, ""),
            ("steps", phone, "2026-01-06T16:00:00+00:00"): (4000.0, None, ""),
            ("sleep", watch, "2026-01-06T16:00:00+00:00"): (7.0, None, ""),
        }
        assert got == expected
        assert all(o.source == "device" for o in om.Observation.objects.all())
        assert lines_of(job) == [(81, "value"), (82, "diastolic")]
        assert job.bytes_read == job.size and job.lines == 85

    def test_an_export_zip(self, world: Any, patient: Any) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("apple_health_export/export_cda.xml", "<ClinicalDocument/>")
            archive.writestr("apple_health_export/export.xml", (DATA / "export.xml").read_bytes())
        job = run(world, "apple_health", buffer.getvalue(), patient="MRN-0042", name="export.zip")
        assert (job.status, job.accepted) == ("done", 14), job.error

    def test_the_patient_must_be_named(self, world: Any, patient: Any) -> None:
        with pytest.raises(ValidationFailed) as caught:
            upload(world, "apple_health", (DATA / "export.xml").read_bytes())
        assert "patient" in caught.value.details

    @pytest.mark.parametrize(
        ("doctype", "words"),
        [
            (
                '<!DOCTYPE HealthData [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>',
                "entities",
            ),
            ('<!DOCTYPE HealthData [<!ENTITY % p SYSTEM "http://x/p.dtd"> %p;]>', "entities"),
            ('<!DOCTYPE HealthData SYSTEM "file:///etc/passwd">', "external DTD"),
        ],
    )
    def test_entities_and_external_dtds_are_refused(
        self, world: Any, patient: Any, doctype: str, words: str
    ) -> None:
        text = (
            f'<?xml version="1.0"?>\n{doctype}\n<HealthData locale="en">\n'
            '<Record type="HKQuantityTypeIdentifierHeartRate" sourceName="w" unit="count/min" '
            'startDate="2026-01-06 07:30:00 +0800" endDate="2026-01-06 07:30:00 +0800" '
            'value="70"/>\n</HealthData>\n'
        ).encode()
        job = run(world, "apple_health", text, patient=str(patient.pk), name="export.xml")
        assert job.status == "failed"
        assert words in job.error
        assert not om.Observation.objects.exists()

    def test_broken_xml_keeps_the_records_before_the_break(self, world: Any, patient: Any) -> None:
        records = "".join(
            f'<Record type="HKQuantityTypeIdentifierHeartRate" sourceName="w" unit="count/min" '
            f'startDate="2026-01-06 07:{m:02d}:00 +0800" endDate="2026-01-06 07:{m:02d}:00 +0800" '
            f'value="70"/>\n'
            for m in range(5)
        )
        text = f'<?xml version="1.0"?>\n<HealthData>\n{records}<Record type=\n'.encode()
        job = run(world, "apple_health", text, patient=str(patient.pk), name="export.xml")
        assert job.status == "failed"
        assert "malformed at line 8" in job.error
        assert job.accepted == 5
        assert om.Observation.objects.filter(patient=patient).count() == 5

    def test_a_large_export_is_streamed_in_bounded_memory(
        self, world: Any, patient: Any, tmp_path: Path
    ) -> None:
        path = tmp_path / "export.xml"
        start = datetime(2025, 6, 1, tzinfo=UTC)
        with path.open("w", encoding="utf-8") as out:
            out.write((DATA / "export.xml").read_text(encoding="utf-8").split("<HealthData")[0])
            out.write('<HealthData locale="zh_CN">\n')
            for n in range(50_000):
                at = (start + timedelta(minutes=5 * n)).strftime("%Y-%m-%d %H:%M:%S +0000")
                kind = "HeartRate" if n % 2 else "ActiveEnergyBurned"
                out.write(
                    f' <Record type="HKQuantityTypeIdentifier{kind}" sourceName="Apple Watch" '
                    f'unit="count/min" creationDate="{at}" startDate="{at}" endDate="{at}" '
                    f'value="{60 + n % 40}"/>\n'
                )
            out.write("</HealthData>\n")
        size = path.stat().st_size
        assert size > 8_000_000

        # The reader alone: a few MB whatever the size of the file.
        tracemalloc.start()
        with path.open("rb") as stream:
            reader = imports.open_reader("apple_health", stream, fixed_patient=True)
            count = sum(1 for _ in reader.items())
        _now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == 25_000
        assert peak < 3 * 1024 * 1024, peak

        # Read into the database, rules and all: still a few MB.
        tracemalloc.start()
        with path.open("rb") as stream:
            outcome = jobs.read_into(
                stream, "apple_health", actor=world.actor("nurse.cardiology"),
                patient_id=patient.pk,
            )  # fmt: skip
        _now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert outcome.figures["accepted"] == 25_000 and not outcome.error
        assert peak < 6 * 1024 * 1024, (peak, size)
        assert om.Observation.objects.filter(patient=patient).count() == 25_000


class TestTheJob:
    def test_a_finished_job(self, world: Any, patient: Any) -> None:
        text = HEADER + "".join(
            f"{patient.pk},heart_rate,{60 + n % 30},,,/min,"
            f"{(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=n)).isoformat()},,,,\n"
            for n in range(2500)
        )
        job = run(world, "csv", text.encode())
        assert (job.status, job.accepted, job.lines, job.error) == ("done", 2500, 2501, "")
        assert job.bytes_read == job.size and job.finished_at is not None
        # The uploaded file is removed once read; the report stays.
        assert not job.file

    def test_progress_is_written_after_every_chunk(
        self, world: Any, patient: Any, monkeypatch: Any
    ) -> None:
        text = HEADER + "".join(
            f"{patient.pk},heart_rate,70,,,/min,"
            f"{(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=n)).isoformat()},,,,\n"
            for n in range(2500)
        )
        job = upload(world, "csv", text.encode())
        written: list[dict[str, Any]] = []
        real = jobs.read_into

        def watching(*args: Any, on_progress: Any = None, **kwargs: Any) -> Any:
            def record(figures: dict[str, Any], position: int) -> None:
                on_progress(figures, position)
                written.append(
                    om.ImportJob.objects.values("status", "accepted", "bytes_read").get(pk=job.pk)
                )

            return real(*args, on_progress=record, **kwargs)

        monkeypatch.setattr(jobs, "read_into", watching)
        jobs.run_import(job.pk)
        assert [w["accepted"] for w in written] == [1000, 2000, 2500]
        assert all(w["status"] == "running" for w in written)
        assert 0 < written[0]["bytes_read"] < written[1]["bytes_read"] <= job.size

    def test_a_failure_half_way_keeps_what_was_stored(
        self, world: Any, patient: Any, monkeypatch: Any
    ) -> None:
        good = {"patient": patient.pk, "code": "heart_rate", "value": 70}

        def breaking(self: Any) -> Any:
            for n in range(1500):
                when = (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=n)).isoformat()
                yield n + 1, {**good, "effective": when}
            raise RuntimeError("disk went away")

        monkeypatch.setattr(imports.Ndjson, "_items", breaking)
        job = run(world, "ndjson", b'{"x": 1}\n', name="r.ndjson")
        assert job.status == "failed"
        assert "RuntimeError" in job.error and "kept" in job.error
        assert job.accepted == 1000  # the first chunk was stored before the failure
        assert om.Observation.objects.filter(patient=patient).count() == 1000
        assert not job.file

    def test_a_job_runs_once(self, world: Any, patient: Any) -> None:
        text = (HEADER + f"{patient.pk},bp,,140,90,mmHg,2026-01-06T07:30,,,,\n").encode()
        job = run(world, "csv", text)
        om.ImportJob.objects.filter(pk=job.pk).update(accepted=99)
        jobs.run_import(job.pk)  # already done: nothing happens
        job.refresh_from_db()
        assert job.accepted == 99

    def test_queued_after_commit_and_run_by_the_worker(
        self, world: Any, patient: Any, django_capture_on_commit_callbacks: Any
    ) -> None:
        from django_tasks_db.models import DBTaskResult

        from careloop.web.worker import make_worker

        text = (HEADER + f"{patient.pk},bp,,140,90,mmHg,2026-01-06T07:30,,,,\n").encode()
        with django_capture_on_commit_callbacks(execute=True):
            job = upload(world, "csv", text)
        queued = DBTaskResult.objects.get()
        assert queued.args_kwargs["args"] == [job.pk]
        # What the worker loop does with a task it claims (the loop itself closes database
        # connections between tasks, which a test's transaction cannot have).
        make_worker(interval=0, batch=True).run_task(queued)
        queued.refresh_from_db()
        assert queued.status == "SUCCESSFUL"
        job.refresh_from_db()
        assert (job.status, job.accepted) == ("done", 1)

    @pytest.mark.parametrize(
        ("fmt", "data", "field", "words"),
        [
            ("csv", b"", "file", "empty"),
            ("csv", b"<?xml version='1.0'?><HealthData/>", "file", "not a text file"),
            ("ndjson", b"patient,code\n", "file", "JSON object"),
            ("apple_health", b"patient,code\n", "file", "Apple Health export"),
            ("csv", "\ufeff".encode("utf-16") + "patient".encode("utf-16-le"), "file", "UTF-16"),
            ("xlsx", b"x", "format", "format"),
        ],
    )
    def test_plainly_wrong_files_are_refused_at_upload(
        self, world: Any, patient: Any, fmt: str, data: bytes, field: str, words: str
    ) -> None:
        with pytest.raises(ValidationFailed) as caught:
            upload(world, fmt, data, patient=str(patient.pk))
        assert words in caught.value.details[field][0]
        assert not om.ImportJob.objects.exists()

    def test_size_limit(self, world: Any, patient: Any, settings: Any) -> None:
        settings.IMPORT_MAX_BYTES = 1024 * 1024
        with pytest.raises(ValidationFailed) as caught:
            upload(world, "csv", HEADER.encode() + b"x" * (1024 * 1024))
        assert "larger than 1 MB" in caught.value.details["file"][0]

    def test_the_patient_must_be_in_scope(self, world: Any, patient: Any) -> None:
        with pytest.raises(ValidationFailed) as caught:
            upload(world, "csv", HEADER.encode(), patient=str(patient.pk),
                   username="nurse.endocrinology")  # fmt: skip
        assert "patient" in caught.value.details


class TestCommand:
    def test_import_readings(self, world: Any, patient: Any, tmp_path: Path, capsys: Any) -> None:
        path = tmp_path / "r.csv"
        path.write_text(
            HEADER
            + f"{patient.pk},bp,,140,90,mmHg,2026-01-06T07:30,,,,\n"
            + f"{patient.pk},bp,,500,90,mmHg,2026-01-06T08:30,,,,\n",
            encoding="utf-8",
        )
        out = io.StringIO()
        call_command("import_readings", str(path), fmt="csv", organisation="test", stdout=out)
        text = out.getvalue()
        assert "line 3: systolic: systolic 500 mm[Hg] is not possible" in text
        assert "stored 1  already stored 0  refused 1" in text
        again = io.StringIO()
        call_command("import_readings", str(path), fmt="csv", organisation="test", stdout=again)
        assert "stored 0  already stored 1" in again.getvalue()

    def test_apple_health_for_one_patient(self, world: Any, patient: Any) -> None:
        out = io.StringIO()
        call_command(
            "import_readings", str(DATA / "export.xml"), fmt="apple_health",
            organisation="test", patient="MRN-0042", quiet=True, stdout=out,
        )  # fmt: skip
        assert "stored 14" in out.getvalue()
        with pytest.raises(CommandError, match="--patient"):
            call_command(
                "import_readings", str(DATA / "export.xml"), fmt="apple_health",
                organisation="test",
            )  # fmt: skip
        with pytest.raises(CommandError, match="no organisation"):
            call_command("import_readings", str(DATA / "export.xml"), fmt="csv", organisation="x")
