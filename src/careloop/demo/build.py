"""Build the demo organisation through the same services the product uses."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction

from careloop.accounts import services as accounts
from careloop.accounts.actor import Actor
from careloop.accounts.models import CareTeam, CareTeamMember, Department, Organisation, Staff
from careloop.accounts.roles import Role
from careloop.appointments import models as appointment_models
from careloop.appointments import selectors as appointment_selectors
from careloop.appointments import services as appointment_services
from careloop.careplans import services as plan_services
from careloop.channels.models import ChannelConfig
from careloop.demo import history as demo_history
from careloop.demo import insights as demo_insights
from careloop.demo import people
from careloop.demo import readings as demo_readings
from careloop.kit.clock import utc_now
from careloop.kit.errors import Conflict
from careloop.patients import models as pm
from careloop.patients import services as patient_services
from careloop.reminders import services as reminder_services

DEPARTMENTS = [
    ("cardiology", "心内科", "Cardiology"),
    ("endocrinology", "内分泌科", "Endocrinology"),
]

PROFILES: dict[str, dict[str, Any]] = {
    "hypertension": {
        "dept": "cardiology",
        "ages": (45, 85),
        "conditions": [("I10", "38341003", "原发性高血压")],
        "meds": [
            ("氨氯地平片", "5", "mg", "qd"),
            ("缬沙坦胶囊", "80", "mg", "qd"),
            ("美托洛尔缓释片", "47.5", "mg", "qd"),
            ("阿司匹林肠溶片", "100", "mg", "qd"),
        ],
    },
    "post_pci": {
        "dept": "cardiology",
        "ages": (50, 80),
        "conditions": [
            ("I25.1", "53741008", "冠状动脉粥样硬化性心脏病"),
            ("Z95.5", "", "冠状动脉支架植入术后"),
        ],
        "meds": [
            ("阿司匹林肠溶片", "100", "mg", "qd"),
            ("氯吡格雷片", "75", "mg", "qd"),
            ("阿托伐他汀钙片", "20", "mg", "qn"),
        ],
    },
    "diabetes": {
        "dept": "endocrinology",
        "ages": (35, 80),
        "conditions": [("E11.9", "44054006", "2型糖尿病")],
        "meds": [
            ("二甲双胍片", "0.5", "g", "tid"),
            ("格列美脲片", "2", "mg", "qd"),
            ("阿卡波糖片", "50", "mg", "tid"),
            ("甘精胰岛素注射液", "12", "U", "qn"),
        ],
    },
    "both": {
        "dept": "both",
        "ages": (50, 85),
        "conditions": [("I10", "38341003", "原发性高血压"), ("E11.9", "44054006", "2型糖尿病")],
        "meds": [("二甲双胍片", "0.5", "g", "bid"), ("氨氯地平片", "5", "mg", "qd")],
    },
}
ALLERGENS = [
    ("青霉素", "medication", "皮疹", "moderate"),
    ("磺胺类药物", "medication", "荨麻疹", "mild"),
    ("头孢类抗生素", "medication", "过敏性休克", "severe"),
    ("海鲜", "food", "瘙痒", "mild"),
    ("花粉", "environment", "鼻炎", "mild"),
]
FAMILY = [("父亲", "高血压"), ("母亲", "2型糖尿病"), ("父亲", "冠心病"), ("母亲", "脑卒中")]


@dataclass
class DemoResult:
    organisation: Organisation
    logins: list[tuple[str, str, str]] = field(default_factory=list)
    patients: int = 0
    example: dict[str, str] = field(default_factory=dict)


def build(patients: int = 200, seed: int = 7) -> DemoResult:
    rng = random.Random(seed)
    today = utc_now().date()
    with transaction.atomic():
        org = Organisation.objects.create(
            name="示范医院 (CareLoop Demo Hospital)", code="demo", time_zone="Asia/Shanghai"
        )
        depts = {
            code: Department.objects.create(organisation=org, code=code, name=zh, name_en=en)
            for code, zh, en in DEPARTMENTS
        }
        result = DemoResult(organisation=org)
        staff: dict[str, Staff] = {}

        def person(username: str, role: Role, dept_codes: list[str], display: str) -> Staff:
            password = secrets.token_urlsafe(9)
            user = accounts.create_staff(
                organisation_id=org.pk,
                username=username,
                password=password,
                role=role,
                department_ids=[depts[c].pk for c in dept_codes],
                display_name=display,
            )
            result.logins.append((username, password, str(role)))
            staff[username] = user
            return user

        person("admin", Role.ORG_ADMIN, [], "系统管理员")
        person("auditor", Role.AUDITOR, [], "审计员")
        for code, zh, _en in DEPARTMENTS:
            person(f"head.{code}", Role.DEPT_HEAD, [code], f"{zh}主任")
            person(f"doctor.{code}", Role.DOCTOR, [code], people.chinese_name(rng, "male") + "医生")
            person(f"nurse.{code}", Role.NURSE, [code], people.chinese_name(rng, "female") + "护士")
        teams = {}
        for code, zh, _en in DEPARTMENTS:
            team = CareTeam.objects.create(
                department=depts[code],
                name=f"{zh}随访组",
                responsible_doctor=staff[f"doctor.{code}"],
            )
            CareTeamMember.objects.create(
                team=team, staff=staff[f"doctor.{code}"], team_role=CareTeamMember.TeamRole.DOCTOR
            )
            CareTeamMember.objects.create(
                team=team, staff=staff[f"nurse.{code}"], team_role=CareTeamMember.TeamRole.NURSE
            )
            teams[code] = team

    actors = {
        code: Actor(user=staff[f"head.{code}"], source="demo", channel="demo")
        for code, _zh, _en in DEPARTMENTS
    }
    setup_reminders(org)
    kinds = list(PROFILES)
    weights = [4, 2, 4, 2]
    for i in range(patients):
        profile_key = rng.choices(kinds, weights)[0]
        _one_patient(rng, i, profile_key, today, actors, depts, teams, result)
    # Enrolment rules come last, so that each patient is enrolled once with a complete record.
    plan_services.install_default_rules(org)
    for patient in pm.Patient.objects.filter(organisation=org):
        plan_services.apply_rules(patient)
    # Home readings come after the plans, so that the rules see the patients as enrolled.
    demo_readings.on_call_rota(org)
    # The past year's readings and dose answers go to the rules before the last 90 days do.
    local_today = utc_now().astimezone(ZoneInfo(org.time_zone)).date()
    demo_history.add_clinical_history(org, seed, local_today)
    demo_readings.add_readings(org, seed)
    demo_readings.missed_follow_ups(org, seed)
    _clinics(rng, depts, staff, actors)
    _portal_content(org, seed, staff, result)
    demo_history.add_history(org, seed, local_today)
    demo_insights.add_insights(org, seed)
    return result


def _portal_content(
    org: Organisation, seed: int, staff: dict[str, Staff], result: DemoResult
) -> None:
    """What the patient portal shows: the education library, rewards and communities, and for
    the example patient a questionnaire to answer and a conversation with the care team."""
    from careloop.education import demo as education_demo
    from careloop.engagement import demo as engagement_demo
    from careloop.messaging import services as messaging
    from careloop.portal.context import PortalActor
    from careloop.questionnaires import models as questionnaire_models
    from careloop.questionnaires import services as questionnaires

    education_demo.build(org, seed)
    engagement_demo.build(org, seed)
    if not result.example.get("patient_id"):
        return
    patient_id = int(result.example["patient_id"])
    doctor = Actor(user=staff["doctor.cardiology"], source="demo", channel="demo")
    nurse = Actor(user=staff["nurse.cardiology"], source="demo", channel="demo")
    satisfaction = questionnaire_models.Questionnaire.objects.filter(
        instrument="satisfaction", status="active"
    ).first()
    if satisfaction is not None:
        questionnaires.assign(
            doctor, patient_id=patient_id, questionnaire_id=satisfaction.pk, notify=False
        )
    patient = PortalActor(patient_id=patient_id, organisation_id=org.pk, session_id=0,
                          source="demo")  # fmt: skip
    sent = messaging.start_thread(
        patient,
        subject="降压药的服用时间",
        body="医生您好，早上的降压药可以晚饭后再吃吗？",
    )
    messaging.reply(
        nurse,
        sent.message.thread_id,
        body="您好，请尽量每天同一时间服用，早上服用更好。如有头晕请及时告诉我们。",
    )


def _clinics(
    rng: random.Random,
    depts: dict[str, Department],
    staff: dict[str, Staff],
    actors: dict[str, Actor],
) -> None:
    """A weekday clinic per department, and a few of its patients booked in the coming days."""
    for code, zh, _en in DEPARTMENTS:
        head = actors[code]
        appointment_services.save_schedule(
            head,
            {
                "name": f"{zh}专家门诊",
                "department": depts[code].pk,
                "doctor": staff[f"doctor.{code}"].pk,
                "weekdays": ["1", "2", "3", "4", "5"],
                "sessions": "08:00-11:30, 13:30-16:30",
                "slot_minutes": 30,
                "capacity": 3,
                "valid_from": appointment_selectors.today_for(head).isoformat(),
                "active": "on",
            },
        )
        upcoming = appointment_models.Slot.objects.filter(
            department=depts[code], starts_at__gt=utc_now()
        )
        slots = list(upcoming.order_by("starts_at")[:40])
        patients = list(
            pm.Patient.objects.filter(department_links__department=depts[code]).order_by("pk")[:30]
        )
        for patient in rng.sample(patients, k=min(10, len(patients))):
            if not slots:
                break
            try:
                appointment_services.book(
                    head,
                    patient.pk,
                    rng.choice(slots).pk,
                    kind=rng.choice(["revisit", "revisit", "consultation"]),
                    reason=rng.choice(["定期复查", "复查血压", "调整用药", "复查血糖", ""]),
                )
            except Conflict:
                continue


DEMO_SMS_PORT = 8765


def setup_reminders(org: Organisation) -> None:
    """Plan templates, reminder settings, and SMS/voice channels pointing at the local fake."""
    plan_services.load_templates()
    reminder_services.settings_for(org.pk)
    credentials = {
        "endpoint": f"http://127.0.0.1:{DEMO_SMS_PORT}/",
        "access_key_id": "LTAIdemo" + secrets.token_hex(4),
        "access_key_secret": secrets.token_urlsafe(18),
        "sign_name": "示范医院",
        "template_code": "SMS_0000001",
        "tts_code": "TTS_0000001",
        "callback_token": secrets.token_urlsafe(18),
        "timeout": 5,
    }
    for kind, provider in (("sms", "aliyun_sms"), ("voice", "aliyun_voice")):
        cfg = ChannelConfig(organisation=org, kind=kind, provider=provider)
        cfg.config = credentials
        cfg.save()


def _one_patient(
    rng: random.Random,
    i: int,
    profile_key: str,
    today: date,
    actors: dict[str, Actor],
    depts: dict[str, Department],
    teams: dict[str, CareTeam],
    result: DemoResult,
) -> None:
    profile = PROFILES[profile_key]
    sex = rng.choice(["male", "female"])
    born = people.birth_date(rng, today, *profile["ages"])
    home = profile["dept"] if profile["dept"] != "both" else "cardiology"
    actor = actors[home]
    phones = [people.mobile(rng)]
    if rng.random() < 0.25:
        phones.append(people.mobile(rng))
    data = {
        "name": people.chinese_name(rng, sex),
        "sex": sex,
        "date_of_birth": born.isoformat(),
        "national_id": people.resident_id(rng, born, sex, serial=i),
        "phones": phones,
        "record_number": f"MZ{2024000000 + i * 7:010d}",
        "address": people.address(rng),
        "preferred_language": "zh-hans",
        "time_zone": "Asia/Shanghai",
        "preferred_channels": rng.choice([["sms"], ["wechat"], ["wechat", "sms"], ["voice"]]),
        "contact_window_start": time(9, 0).isoformat(),
        "contact_window_end": time(20, 0).isoformat(),
        "quiet_hours_start": time(22, 0).isoformat(),
        "quiet_hours_end": time(7, 0).isoformat(),
    }
    patient = patient_services.create_patient(
        actor, data, department_id=depts[home].pk, allow_duplicate=True
    )
    pm.PatientDepartment.objects.filter(patient=patient, department=depts[home]).update(
        care_team=teams[home]
    )
    if profile["dept"] == "both":
        pm.PatientDepartment.objects.create(
            patient=patient,
            department=depts["endocrinology"],
            care_team=teams["endocrinology"],
            since=today - timedelta(days=rng.randint(10, 80)),
        )
    result.patients += 1
    for icd, snomed, display in profile["conditions"]:
        onset = today - timedelta(days=rng.randint(400, 4000))
        patient_services.add_record(
            actor,
            patient.pk,
            "conditions",
            {
                "icd10_code": icd,
                "snomed_code": snomed,
                "display": display,
                "onset_date": onset.isoformat(),
                "status": "active",
            },
        )
    for name, dose, unit, freq in rng.sample(profile["meds"], k=min(len(profile["meds"]), 2)):
        patient_services.add_record(
            actor,
            patient.pk,
            "medications",
            {
                "name": name,
                "dose": dose,
                "unit": unit,
                "route": "sc" if "胰岛素" in name else "po",
                "frequency": freq,
                "start_date": (today - timedelta(days=rng.randint(30, 700))).isoformat(),
                "prescriber": str(actor.user),
                "status": "active",
            },
        )
    if rng.random() < 0.3:
        substance, category, reaction, severity = rng.choice(ALLERGENS)
        patient_services.add_record(
            actor,
            patient.pk,
            "allergies",
            {
                "substance": substance,
                "category": category,
                "reaction": reaction,
                "severity": severity,
                "noted_on": (today - timedelta(days=rng.randint(100, 3000))).isoformat(),
            },
        )
        if not result.example and home == "cardiology":
            # The patient the printed hint points to has an allergy to look at and edit.
            result.example = {"name": patient.name, "tail": phones[0][-4:], "department": "心内科"}
            result.example["patient_id"] = str(patient.pk)
    if rng.random() < 0.5:
        relation, disease = rng.choice(FAMILY)
        patient_services.add_record(
            actor,
            patient.pk,
            "history",
            {"kind": "family", "description": disease, "relation": relation},
        )
    if profile_key == "post_pci":
        patient_services.add_record(
            actor,
            patient.pk,
            "history",
            {
                "kind": "surgical",
                "description": "经皮冠状动脉介入治疗（PCI）+支架植入",
                "year": today.year - rng.randint(0, 3),
            },
        )
    smoking = rng.choices(["never", "former", "current"], [5, 3, 2])[0]
    patient_services.add_record(
        actor,
        patient.pk,
        "lifestyle",
        {
            "recorded_on": (today - timedelta(days=rng.randint(0, 90))).isoformat(),
            "smoking": smoking,
            "cigarettes_per_day": rng.randint(5, 20) if smoking == "current" else "",
            "alcohol": rng.choice(["none", "occasional", "regular"]),
            "exercise": rng.choice(["none", "light", "moderate"]),
            "exercise_minutes_per_week": rng.choice([0, 60, 150, 210]),
            "diet": rng.choice(["低盐饮食", "糖尿病饮食", "普通饮食", "清淡饮食"]),
            "sleep_hours": str(Decimal(rng.randint(10, 16)) / 2),
        },
    )
    # Visits spread over the last 90 days.
    for _ in range(rng.randint(1, 3)):
        visit = today - timedelta(days=rng.randint(0, 90))
        inpatient = profile_key == "post_pci" and rng.random() < 0.4
        patient_services.add_record(
            actor,
            patient.pk,
            "visits",
            {
                "kind": "inpatient" if inpatient else rng.choice(["outpatient", "follow_up"]),
                "department": depts[home].pk,
                "attending": str(teams[home].responsible_doctor or ""),
                "diagnoses": "、".join(c[2] for c in profile["conditions"]),
                "admitted_on": visit.isoformat(),
                "discharged_on": (visit + timedelta(days=rng.randint(3, 7))).isoformat()
                if inpatient and visit + timedelta(days=7) <= today
                else "",
                "summary": "病情稳定，继续目前治疗方案，按时复诊。",
            },
        )
    if profile_key in ("diabetes", "both"):
        patient_services.add_record(
            actor,
            patient.pk,
            "reports",
            {
                "kind": "lab",
                "title": "糖化血红蛋白",
                "reported_on": (today - timedelta(days=rng.randint(0, 90))).isoformat(),
                "results": [
                    {
                        "name": "HbA1c",
                        "code": "4548-4",
                        "value": round(rng.uniform(5.8, 9.8), 1),
                        "unit": "%",
                    }
                ],
            },
        )
    for purpose, channel in (
        ("care_reminders", data["preferred_channels"][0]),
        ("care_reminders", "sms"),
        ("education", data["preferred_channels"][0]),
    ):
        first = data["preferred_channels"][0]
        if purpose == "care_reminders" and channel == "sms" and first == "sms":
            continue  # already recorded as the preferred channel
        patient_services.add_record(
            actor,
            patient.pk,
            "consents",
            {
                "purpose": purpose,
                "channel": channel,
                "granted": "on",
                "decided_on": (today - timedelta(days=rng.randint(0, 90))).isoformat(),
                "source": "paper",
            },
        )
