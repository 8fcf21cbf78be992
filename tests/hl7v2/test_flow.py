"""A Chinese HIS feed end to end: GB18030 text, admission, discharge → enrolment, results."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.accounts.models import Department
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.hl7v2 import models as hm
from careloop.hl7v2 import services
from careloop.hl7v2.parser import parse
from careloop.kit.clock import utc_now
from careloop.observations import models as om
from careloop.patients import models as pm
from tests.hl7v2.helpers import msa


def _days_ago(n: int) -> str:
    local = utc_now().astimezone(ZoneInfo("Asia/Shanghai")) - timedelta(days=n)
    return local.strftime("%Y%m%d%H%M%S")


def message(kind: str, control_id: str, *segments: str, charset: str = "") -> str:
    msh = (
        f"MSH|^~\\&|HIS|RMYY|CareLoop|CL|{_days_ago(0)}||{kind}|{control_id}|P|2.5"
        f"|||||CHN|{charset}"
    )
    return "\r".join([msh, *segments]) + "\r"


PID = "PID|1||ZY0001^^^RMYY^MR||王^小明||19580312|M|||人民路1号^^杭州^浙江||13812345678"


@pytest.fixture
def surgery(world: Any) -> Department:
    return Department.objects.create(organisation=world.org, code="surgery", name="外科")


def test_gb18030_admission_and_surgical_discharge_enrol_post_discharge(
    world: Any, surgery: Department
) -> None:
    plan_services.load_templates()
    plan_services.install_default_rules(world.org)
    # PV1-2 I (inpatient), PV1-3 point of care, PV1-10 hospital service, PV1-44 admitted.
    pv1 = "PV1|1|I|SURGERY^301^2||||1234^李^医生|||surgery|||||||||V01" + "|" * 25 + _days_ago(5)
    admit = message("ADT^A01^ADT_A01", "C1", "EVN|A01", PID, pv1, charset="GB18030")
    answer, log = services.receive(admit.encode("gb18030"), world.org)
    assert msa(answer)[0] == "AA", log.reason
    patient = log.patient
    assert patient is not None and patient.name == "王小明"
    assert patient.record_number == "ZY0001"
    visit = pm.Encounter.objects.get(patient=patient)
    assert visit.kind == "inpatient" and visit.department_id == surgery.pk
    assert visit.discharged_on is None
    pv1_out = pv1 + f"|{_days_ago(1)}"
    discharge = message("ADT^A03^ADT_A03", "C2", "EVN|A03", PID, pv1_out, charset="GB18030")
    answer, log = services.receive(discharge.encode("gb18030"), world.org)
    assert msa(answer)[0] == "AA", log.reason
    visit.refresh_from_db()
    assert visit.discharged_on is not None
    enrolment = cm.Enrolment.objects.get(patient=patient)
    assert enrolment.template.code == "post-discharge"
    assert enrolment.anchor_date == visit.discharged_on


def test_update_and_unknown_patient_results(world: Any) -> None:
    services.receive(message("ADT^A04", "R1", PID).encode(), world.org)
    renamed = PID.replace("王^小明", "王^晓明")
    answer, log = services.receive(message("ADT^A08", "R2", renamed).encode(), world.org)
    assert msa(answer)[0] == "AA"
    assert log.patient is not None and log.patient.name == "王晓明"
    assert pm.Patient.objects.filter(organisation=world.org).count() == 1
    stranger = PID.replace("ZY0001", "ZY9999")
    oru = message("ORU^R01", "R3", stranger, "OBR|1", "OBX|1|NM|8867-4^HR^LN||72|/min|||||F")
    answer, log = services.receive(oru.encode(), world.org)
    code, control_id, text = msa(answer)
    assert (code, control_id) == ("AE", "R3")
    assert "unknown patient" in text and "ZY9999" in text
    assert log.status == hm.Status.ERROR


def test_results_become_readings_in_canonical_units(world: Any) -> None:
    services.receive(message("ADT^A04", "O1", PID).encode(), world.org)
    at = _days_ago(1)
    oru = message(
        "ORU^R01^ORU_R01",
        "O2",
        PID,
        f"OBR|1|||BP^Vitals|||{at}",
        "OBX|1|NM|8480-6^Systolic^LN||182|mm[Hg]|||||F",
        "OBX|2|NM|8462-4^Diastolic^LN||95|mm[Hg]|||||F",
        "OBX|3|NM|2345-7^Glucose^LN||126|mg/dL|||||F",
        "OBX|4|NM|2160-0^Creatinine^LN||88|umol/L|||||F",
        "OBX|5|ST|8867-4^HR^LN||72||||||D",
    )
    answer, log = services.receive(oru.encode(), world.org)
    code, _, text = msa(answer)
    assert code == "AA", log.reason
    assert "2160-0" in text  # not followed by CareLoop: said so, not stored
    readings = {o.kind: o for o in om.Observation.objects.filter(patient=log.patient)}
    assert set(readings) == {"bp", "glucose"}
    assert (readings["bp"].value, readings["bp"].value2) == (182, 95)
    assert readings["glucose"].unit == "mmol/L"
    assert round(readings["glucose"].value, 1) == 7.0
    assert all(o.source == "his" for o in readings.values())


def test_resend_is_not_applied_twice_and_replay_reapplies(world: Any) -> None:
    raw = message("ADT^A04", "D1", PID).encode()
    first, log = services.receive(raw, world.org)
    again, same = services.receive(raw, world.org)
    assert again == first and same.pk == log.pk
    assert hm.Message.objects.count() == 1
    assert pm.Patient.objects.filter(organisation=world.org).count() == 1
    other = message("ADT^A04", "D1", PID.replace("ZY0001", "ZY0002")).encode()
    answer, _ = services.receive(other, world.org)
    code, _, text = msa(answer)
    assert code == "AR" and "already used" in text
    # A result for a patient not yet known fails; once registered, replay applies it.
    oru = message(
        "ORU^R01", "D2", PID.replace("ZY0001", "ZY0003"), "OBX|1|NM|8867-4^HR^LN||72|/min"
    )
    _, failed = services.receive(oru.encode(), world.org)
    assert failed.status == hm.Status.ERROR
    services.receive(message("ADT^A04", "D3", PID.replace("ZY0001", "ZY0003")).encode(), world.org)
    services.replay(failed)
    failed.refresh_from_db()
    assert failed.status == hm.Status.APPLIED and failed.replay_count == 1
    assert om.Observation.objects.filter(patient=failed.patient, kind="heart_rate").count() == 1


def test_parser_edges() -> None:
    text = (
        "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X1|P|2.5\n"
        "OBX|1|ST|c^d||a\\S\\b\\T\\c \\F\\ \\E\\ \\R\\~two||"
    )
    for raw in (
        text.encode(),
        text.replace("\n", "\r\n").encode(),
        b"\xef\xbb\xbf" + text.encode(),
    ):
        msg = parse(raw)
        obx = msg.first("OBX")
        assert obx is not None
        assert obx.component(5) == "a^b&c | \\ ~"
        assert obx.component(5, rep=1) == "two"
    custom = parse("MSH#*%!@#A#B#C#D#2024##ADT*A04#Z#P#2.5\rPID#1##7****MR%8****NI")
    assert custom.type_code == "ADT^A04"
    assert custom.first("PID").component(3, 5) == "MR"  # type: ignore[union-attr]
    assert custom.first("PID").component(3, 1, rep=1) == "8"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw,why",
    [
        (b"hello", "does not start with an MSH"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A04||P|2.5\r", "MSH-10"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A04|1|P|2.5|||||CHN|UNICODE UTF-8\r\xff\xfe", "UNICODE"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A04|1|P|2.5|||||CHN|EBCDIC\r", "character set"),
    ],
)
def test_invalid_messages_are_rejected_and_kept(world: Any, raw: bytes, why: str) -> None:
    answer, log = services.receive(raw, world.org)
    code, _, text = msa(answer)
    assert code == "AR" and why in text
    assert bytes(log.raw) == raw and log.status == hm.Status.REJECTED
