"""The simulated organisation: departments, staff, channels, the plan, patients enrolled."""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction

from careloop.accounts import services as accounts
from careloop.accounts.actor import Actor
from careloop.accounts.models import CareTeam, CareTeamMember, Department, Organisation, Staff
from careloop.accounts.roles import Role
from careloop.appointments import services as appointment_services
from careloop.careplans import models as cm
from careloop.careplans import services as plan_services
from careloop.channels.models import ChannelConfig
from careloop.demo import people
from careloop.patients import services as patient_services
from careloop.reminders import services as reminder_services
from careloop.simulator import population, provider

DATA_DIR = Path(__file__).parent / "data"
TIME_ZONE = "Asia/Shanghai"
DEPARTMENTS = [("cardiology", "心内科", "Cardiology"), ("general", "全科", "General practice")]
SOURCE = "simulator"


class SimulationError(Exception):
    """The simulation cannot run as asked (e.g. its organisation exists already)."""


@dataclass
class World:
    org: Organisation
    departments: dict[str, Department]
    heads: dict[str, Actor]
    nurses: dict[str, list[Actor]]
    template: cm.PlanTemplate
    admin: Actor
    patients: list[population.SimPatient] = field(default_factory=list)
    by_pid: dict[int, population.SimPatient] = field(default_factory=dict)


def organisation_code(seed: int) -> str:
    return f"sim-{seed}"


def build(
    rng: random.Random, *, patients: int, days: int, seed: int, start: datetime, start_day: date
) -> World:
    code = organisation_code(seed)
    if Organisation.objects.filter(code=code).exists():
        raise SimulationError(
            f"an organisation {code!r} exists already in this database; choose another --seed"
        )
    org = Organisation.objects.create(
        name=f"模拟医院 {seed} (CareLoop simulation)", code=code, time_zone=TIME_ZONE
    )
    departments = {
        key: Department.objects.create(organisation=org, code=key, name=zh, name_en=en)
        for key, zh, en in DEPARTMENTS
    }

    def staff(username: str, role: Role, dept: str | None, display: str) -> Staff:
        return accounts.create_staff(
            organisation_id=org.pk,
            username=f"{code}.{username}",
            password=secrets.token_urlsafe(12),
            role=role,
            department_ids=[departments[dept].pk] if dept else [],
            display_name=display,
        )

    admin = Actor(
        user=staff("admin", Role.ORG_ADMIN, None, "系统管理员"), source=SOURCE, channel=SOURCE
    )
    heads: dict[str, Actor] = {}
    nurses: dict[str, list[Actor]] = {}
    per_dept = max(1, math.ceil(patients / len(DEPARTMENTS) / 250))
    for key, zh, _en in DEPARTMENTS:
        head = staff(f"head.{key}", Role.DEPT_HEAD, key, f"{zh}主任")
        doctor = staff(f"doctor.{key}", Role.DOCTOR, key, people.chinese_name(rng, "male") + "医生")
        team = CareTeam.objects.create(
            department=departments[key], name=f"{zh}随访组", responsible_doctor=doctor
        )
        CareTeamMember.objects.create(
            team=team, staff=doctor, team_role=CareTeamMember.TeamRole.DOCTOR
        )
        nurses[key] = []
        for n in range(per_dept):
            nurse = staff(
                f"nurse{n + 1}.{key}", Role.NURSE, key, people.chinese_name(rng, "female") + "护士"
            )
            CareTeamMember.objects.create(
                team=team, staff=nurse, team_role=CareTeamMember.TeamRole.NURSE
            )
            nurses[key].append(Actor(user=nurse, source=SOURCE, channel=SOURCE))
        heads[key] = Actor(user=head, source=SOURCE, channel=SOURCE)

    reminder_services.settings_for(org.pk)
    for kind, name in provider.PROVIDERS.items():
        cfg = ChannelConfig(organisation=org, kind=str(kind), provider=name)
        cfg.config = {}
        cfg.save()
    spec = plan_services.read_template_file(DATA_DIR / "sim-hypertension.toml")
    template, _outcome = plan_services.save_template(spec, organisation=org, now=start)
    world = World(org, departments, heads, nurses, template, admin)
    _clinics(world, patients, start_day)
    for first in range(0, patients, 100):
        with transaction.atomic():  # a hundred patients a commit
            for index in range(first, min(patients, first + 100)):
                sim = population.draw(rng, index, days)
                sim.department = DEPARTMENTS[index % len(DEPARTMENTS)][0]
                _patient(rng, world, sim, start, start_day)
                world.patients.append(sim)
                world.by_pid[sim.pid] = sim
    return world


def _clinics(world: World, patients: int, start_day: date) -> None:
    """A clinic every day but Sunday in each department, big enough for monthly revisits."""
    sessions = "08:00-11:30, 13:30-16:30"
    slots_a_day = 13
    monthly = patients / len(DEPARTMENTS) / 26  # visits per clinic day
    capacity = max(2, math.ceil(monthly / slots_a_day * 1.6))
    for key, zh, _en in DEPARTMENTS:
        doctor = Staff.objects.get(username=f"{world.org.code}.doctor.{key}")
        appointment_services.save_schedule(
            world.heads[key],
            {
                "name": f"{zh}复诊门诊",
                "department": world.departments[key].pk,
                "doctor": doctor.pk,
                "weekdays": ["1", "2", "3", "4", "5", "6"],
                "sessions": sessions,
                "slot_minutes": 30,
                "capacity": capacity,
                "valid_from": start_day.isoformat(),
                "active": "on",
            },
        )


def _patient(
    rng: random.Random,
    world: World,
    sim: population.SimPatient,
    start: datetime,
    start_day: date,
) -> None:
    actor = world.heads[sim.department]
    sex = rng.choice(["male", "female"])
    born = people.birth_date(rng, start_day, 40, 85)
    language = "zh-hans" if rng.random() < 0.95 else "en"
    data: dict[str, Any] = {
        "name": people.chinese_name(rng, sex),
        "sex": sex,
        "date_of_birth": born.isoformat(),
        "phones": [f"19{world.org.pk % 10}{sim.index:08d}"],
        "record_number": f"SIM{world.org.pk:03d}{sim.index:07d}",
        "preferred_language": language,
        "time_zone": TIME_ZONE,
        "quiet_hours_start": time(22, 0).isoformat(),
        "quiet_hours_end": time(7, 0).isoformat(),
    }
    patient = patient_services.create_patient(
        actor, data, department_id=world.departments[sim.department].pk, allow_duplicate=True
    )
    sim.pid = patient.pk
    sim.language = language
    onset = start_day - timedelta(days=rng.randint(200, 4000))
    patient_services.add_record(
        actor,
        patient.pk,
        "conditions",
        {
            "icd10_code": "I10",
            "snomed_code": "38341003",
            "display": "原发性高血压",
            "status": "active",
            "onset_date": onset.isoformat(),
        },
    )
    patient_services.add_record(
        actor,
        patient.pk,
        "medications",
        {
            "name": rng.choice(["氨氯地平片", "缬沙坦胶囊", "厄贝沙坦片"]),
            "dose": "5",
            "unit": "mg",
            "frequency": "qd",
            "route": "po",
            "start_date": (start_day - timedelta(days=rng.randint(30, 700))).isoformat(),
            "status": "active",
        },
    )
    for channel in ("wechat", "sms", "voice"):
        patient_services.add_record(
            actor,
            patient.pk,
            "consents",
            {
                "purpose": "care_reminders",
                "channel": channel,
                "granted": "on",
                "decided_on": (start_day - timedelta(days=30)).isoformat(),
                "source": "paper",
            },
        )
    cm.ReminderPreference.objects.update_or_create(
        patient=patient, defaults={"wechat_openid": f"sim-openid-{world.org.pk}-{sim.index}"}
    )
    plan_services.enrol(actor, patient.pk, world.template.pk, now=start)
