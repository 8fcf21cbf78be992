"""Search: each parameter's results equal a plain Python filter of the same rows; paging links;
_sort allow-list; _include; unknown parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import pytest

from careloop.audit.models import AuditEvent
from careloop.fhir.search import parse_date
from careloop.observations import models as om
from careloop.observations import services as obs_services
from careloop.patients import services as patient_services
from tests.conftest import patient_data

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def readings(world: Any, cardio_patient: Any, endo_patient: Any) -> list[om.Observation]:
    """Readings at different precisions' edges for two visible patients and one outside."""
    other = patient_services.create_patient(world.actor("nurse.cardiology"), patient_data())
    items = []
    base = datetime(2024, 1, 31, 23, 30, tzinfo=SH)
    for i in range(6):
        at = base + timedelta(days=15 * i)
        items.append(
            (cardio_patient.pk, {"code": "glucose", "value": 5 + i, "effective": at.isoformat()})
        )
        items.append((other.pk, {"code": "weight", "value": 60 + i, "effective": at.isoformat()}))
        items.append(
            (endo_patient.pk, {"code": "heart_rate", "value": 70 + i, "effective": at.isoformat()})
        )
    for pid, item in items:
        report = obs_services.ingest(
            world.actor("head.endocrinology" if pid == endo_patient.pk else "nurse.cardiology"),
            [item],
            patient_id=pid,
        )
        assert report.accepted == 1, report.as_dict()
    return list(om.Observation.objects.all())


def ids(response: Any, mode: str = "match") -> set[str]:
    assert response.status_code == 200, response.content
    return {
        e["resource"]["id"]
        for e in response.json()["entry"]
        if e.get("search", {}).get("mode") == mode
    }


def visible_to_cardiology(rows: list[om.Observation], cardio_ids: set[int]) -> list[om.Observation]:
    return [r for r in rows if r.patient_id in cardio_ids]


@pytest.mark.parametrize(
    "value",
    ["2024", "2024-02", "2024-02-01", "ge2024-02-15", "gt2024-02", "lt2024-03-16", "le2024-03",
     "ne2024-02", "eq2024-01-31", "ge2024-02-01T00:00:00+08:00", "lt2024-02-29T12:00:00Z"],
)  # fmt: skip
def test_date_prefixes_match_a_brute_force_filter(
    fhir: Any, readings: list[om.Observation], cardio_patient: Any, value: str
) -> None:
    cardio = {p.patient_id for p in readings if p.kind in ("glucose", "weight")}
    wanted = parse_date(value, SH, "date")
    expected = {
        str(r.pk) for r in visible_to_cardiology(readings, cardio) if wanted.matches(r.effective_at)
    }
    got = ids(fhir("doctor.cardiology").get("/fhir/Observation", {"date": value, "_count": "200"}))
    assert got == expected


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        ({"code": "http://loinc.org|15074-8"}, {"glucose"}),
        ({"code": "|29463-7"}, {"weight"}),
        ({"code": "29463-7,15074-8"}, {"weight", "glucose"}),
        ({"code": "http://snomed.info/sct|15074-8"}, set()),
        ({"code": "8867-4"}, set()),  # endocrinology's heart rates are out of scope
    ],
)
def test_code_tokens(
    fhir: Any, readings: list[om.Observation], query: dict[str, str], kinds: set[str]
) -> None:
    expected = {str(r.pk) for r in readings if r.kind in kinds}
    assert (
        ids(fhir("doctor.cardiology").get("/fhir/Observation", {**query, "_count": "200"}))
        == expected
    )


def test_patient_and_subject(
    fhir: Any, readings: list[om.Observation], cardio_patient: Any, endo_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    expected = {str(r.pk) for r in readings if r.patient_id == cardio_patient.pk}
    assert ids(client.get(f"/fhir/Observation?patient={cardio_patient.pk}")) == expected
    assert ids(client.get(f"/fhir/Observation?subject=Patient/{cardio_patient.pk}")) == expected
    assert ids(client.get(f"/fhir/Observation?subject=Patient/{endo_patient.pk}")) == set()
    assert ids(client.get(f"/fhir/Observation?_id={readings[0].pk}")) <= {str(readings[0].pk)}


def test_paging_links_walk_every_result_once(fhir: Any, readings: list[om.Observation]) -> None:
    client = fhir("doctor.cardiology")
    url = "/fhir/Observation?_count=5&_sort=date"
    seen: list[str] = []
    dates: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        body = response.json()
        assert body["total"] == 12
        seen += [e["resource"]["id"] for e in body["entry"]]
        dates += [e["resource"]["effectiveDateTime"] for e in body["entry"]]
        links = {link["relation"]: link["url"] for link in body["link"]}
        assert "self" in links
        if pages:
            assert "previous" in links
        nxt = links.get("next")
        url = f"{urlparse(nxt).path}?{urlparse(nxt).query}" if nxt else ""
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 12
    assert [datetime.fromisoformat(d) for d in dates] == sorted(
        datetime.fromisoformat(d) for d in dates
    )


def test_count_is_clamped_and_sort_allow_listed(fhir: Any, readings: list[om.Observation]) -> None:
    client = fhir("doctor.cardiology")
    body = client.get("/fhir/Observation?_count=5000").json()
    assert "_count=200" in body["link"][0]["url"]
    refused = client.get("/fhir/Observation?_sort=value")
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["expression"] == ["_sort"]
    newest = client.get("/fhir/Observation?_sort=-date&_count=1").json()["entry"][0]["resource"]
    latest = max(r.effective_at for r in readings if r.kind in ("glucose", "weight"))
    assert datetime.fromisoformat(newest["effectiveDateTime"]) == latest


def test_unknown_parameter_is_refused_or_ignored_when_lenient(fhir: Any, readings: Any) -> None:
    client = fhir("doctor.cardiology")
    strict = client.get("/fhir/Observation?colour=red")
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["expression"] == ["colour"]
    lenient = client.get("/fhir/Observation?colour=red", HTTP_PREFER="handling=lenient")
    assert lenient.status_code == 200
    assert lenient.json()["total"] == 12


def test_include_adds_only_visible_patients(
    fhir: Any, readings: list[om.Observation], cardio_patient: Any
) -> None:
    body = (
        fhir("doctor.cardiology")
        .get("/fhir/Observation?_include=Observation:patient&_count=200")
        .json()
    )
    included = [e["resource"] for e in body["entry"] if e["search"]["mode"] == "include"]
    patients = {r.patient_id for r in readings if r.kind in ("glucose", "weight")}
    assert {int(p["id"]) for p in included} == patients
    event = AuditEvent.objects.filter(action="fhir.search").latest("id")
    assert set(event.detail["patients"]) == patients


def test_patient_search_parameters(
    fhir: Any, world: Any, cardio_patient: Any, endo_patient: Any
) -> None:
    client = fhir("nurse.cardiology")
    assert ids(client.get("/fhir/Patient?identifier=urn:careloop:record-number|MRN-C1")) == {
        str(cardio_patient.pk)
    }
    assert ids(client.get("/fhir/Patient?identifier=MRN-E1")) == set()
    assert ids(client.get(f"/fhir/Patient?name={cardio_patient.name}")) == {str(cardio_patient.pk)}
    assert ids(client.get("/fhir/Patient?birthdate=1960-05")) == {str(cardio_patient.pk)}
    assert ids(client.get("/fhir/Patient?birthdate=lt1960")) == set()
    assert ids(client.get("/fhir/Patient?gender=male")) == {str(cardio_patient.pk)}
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(client.get(f"/fhir/Patient?_lastUpdated=ge{since}")) == {str(cardio_patient.pk)}
    with_id = patient_services.create_patient(
        world.actor("nurse.cardiology"),
        patient_data(national_id="11010519491231002X", sex="female", date_of_birth="1949-12-31"),
    )
    found = client.get("/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.1|11010519491231002X")
    assert ids(found) == {str(with_id.pk)}
    assert ids(client.get("/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.1|MRN-C1")) == set()


def test_observation_status_follows_what_was_sent(
    fhir: Any, readings: Any, cardio_patient: Any
) -> None:
    client = fhir("doctor.cardiology")
    sent = {
        "resourceType": "Observation",
        "status": "amended",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{cardio_patient.pk}"},
        "effectiveDateTime": "2023-06-01T08:00:00+08:00",
        "valueQuantity": {"value": 71.5, "unit": "kg", "code": "kg"},
    }
    created = client.post("/fhir/Observation", sent)
    assert created.status_code == 201, created.content
    amended = ids(client.get("/fhir/Observation?status=amended"))
    assert amended == {created.json()["id"]}
    final = ids(client.get("/fhir/Observation?status=final&_count=200"))
    visible = {str(r.pk) for r in readings if r.kind in ("glucose", "weight")}
    assert final == visible
    lab = ids(client.get("/fhir/Observation?category=laboratory&_count=200"))
    assert lab == {str(r.pk) for r in readings if r.kind == "glucose"}
