"""Every public sample parses; ADT A01/A04/A08/A03/A40 and ORU^R01 apply; the rest get AR."""

from __future__ import annotations

import json
from typing import Any

import pytest

from careloop.hl7v2 import models as hm
from careloop.hl7v2 import services
from careloop.hl7v2.parser import parse
from careloop.observations import models as om
from careloop.patients import models as pm
from tests.hl7v2.helpers import EXPECTED, MESSAGES, SAMPLES, msa, sample

pytestmark = pytest.mark.skipif(not MESSAGES.is_dir(), reason="the shared corpus is not here")

ADT = {"ADT^A01", "ADT^A04", "ADT^A08", "ADT^A03"}


def _type(name: str) -> str:
    return parse(sample(name)).type_code


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_parses(name: str) -> None:
    msg = parse(sample(name))
    assert msg.msh.name == "MSH"
    assert msg.control_id
    assert all(len(s.name) == 3 for s in msg.segments)


def _seed(world: Any, ids: list[tuple[str, str]]) -> pm.Patient:
    """A patient known by the record number of these identifiers (registered by an A04)."""
    number = services.record_number_of(ids)
    raw = (
        "MSH|^~\\&|HIS|H|CL|C|20240101120000||ADT^A04|SEED" + number + "|P|2.5\r"
        f"PID|1||{number}^^^H^MR||Seed^Person||19600101|M\r"
    ).encode()
    answer, log = services.receive(raw, world.org, channel="file")
    assert msa(answer)[0] == "AA", log.reason
    assert log.patient is not None
    return log.patient


@pytest.mark.parametrize("name", [n for n in SAMPLES if _type(n) in ADT])
def test_adt_samples_are_applied(world: Any, name: str) -> None:
    answer, log = services.receive(sample(name), world.org, channel="file")
    code, control_id, text = msa(answer)
    assert (code, text) == ("AA", ""), log.reason
    assert control_id == parse(sample(name)).control_id
    assert log.status == hm.Status.APPLIED
    patient = log.patient
    assert patient is not None and patient.organisation_id == world.org.pk
    pid = parse(sample(name)).first("PID")
    assert pid is not None
    assert patient.record_number == services.record_number_of(services.identifiers(pid))
    if _type(name) in ("ADT^A01", "ADT^A03"):
        visit = pm.Encounter.objects.get(patient=patient)
        assert (visit.discharged_on is not None) == (_type(name) == "ADT^A03")


@pytest.mark.parametrize("name", [n for n in SAMPLES if _type(n) == "ADT^A40"])
def test_merge_samples(world: Any, name: str) -> None:
    msg = parse(sample(name))
    pid, mrg = msg.first("PID"), msg.first("MRG")
    assert pid is not None and mrg is not None
    # Unknown patients: an application error naming the identifier (nothing to merge).
    answer, log = services.receive(sample(name), world.org, channel="file")
    code, _, text = msa(answer)
    assert code == "AE" and "MRG-1" in text
    log.delete()
    keep = _seed(world, services.identifiers(pid))
    drop = _seed(world, [(mrg.component(1, 5), mrg.component(1, 1))])
    answer, log = services.receive(sample(name), world.org, channel="file")
    assert msa(answer)[0] == "AA", log.reason
    drop.refresh_from_db()
    assert drop.merged_into_id == keep.pk
    assert pm.RecordVersion.objects.filter(patient=keep, change="merge").exists()


@pytest.mark.parametrize("name", [n for n in SAMPLES if _type(n) == "ORU^R01"])
def test_result_samples(world: Any, name: str) -> None:
    msg = parse(sample(name))
    pid = msg.first("PID")
    assert pid is not None
    answer, _log = services.receive(sample(name), world.org, channel="file")
    code, _, text = msa(answer)
    assert code == "AE" and "unknown patient" in text  # no such patient yet
    _log.delete()
    patient = _seed(world, services.identifiers(pid))
    answer, log = services.receive(sample(name), world.org, channel="file")
    assert msa(answer)[0] == "AA", log.reason
    assert log.patient_id == patient.pk
    stored = om.Observation.objects.filter(patient=patient)
    assert all(o.source == "his" for o in stored)


@pytest.mark.parametrize(
    "name", [n for n in SAMPLES if _type(n) not in ADT | {"ADT^A40", "ORU^R01"}]
)
def test_other_types_are_rejected_with_a_reason(world: Any, name: str) -> None:
    answer, log = services.receive(sample(name), world.org, channel="file")
    code, control_id, text = msa(answer)
    assert code == "AR"
    assert "unsupported message type" in text
    assert control_id == parse(sample(name)).control_id
    assert log.status == hm.Status.REJECTED


def _expected(folder: str, name: str) -> dict[str, Any]:
    path = EXPECTED / folder / name.replace(".hl7", "-expected.json")
    return json.loads(path.read_text(encoding="utf-8-sig"))


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == kind]


@pytest.mark.parametrize(
    "folder,name",
    [
        (f.name, p.name.replace("-expected.json", ".hl7"))
        for f in sorted(EXPECTED.glob("ADT_A0*"))
        for p in sorted(f.glob("*-expected.json"))
        if (MESSAGES / p.name.replace("-expected.json", ".hl7")).is_file()
    ],
)
def test_patients_match_the_vendor_bundles(world: Any, folder: str, name: str) -> None:
    answer, log = services.receive(sample(name), world.org, channel="file")
    assert msa(answer)[0] == "AA", log.reason
    patient = log.patient
    assert patient is not None
    fhir = _resources(_expected(folder, name), "Patient")[0]
    if fhir.get("birthDate"):
        assert patient.date_of_birth.isoformat() == fhir["birthDate"][:10]
    values = {i.get("value") for i in fhir.get("identifier", [])}
    assert patient.record_number in values
    gender = {"male": "male", "female": "female"}.get(fhir.get("gender", ""), "unknown")
    assert patient.sex == gender
    # CareLoop keeps one name: the legal one (PID-5 type L) when marked, else the first.
    families = [n.get("family", "").split(" ")[0] for n in fhir.get("name", [])]
    if any(families):
        assert any(f and f in patient.name for f in families)
