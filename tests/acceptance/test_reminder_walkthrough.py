"""The issue's walk-through with real processes and the settable clock.

A nurse's patient is enrolled in the hypertension plan; `careloop serve --with-worker
--fake-providers` runs on a clock set to 07:59 patient-local and moving ten minutes per second.
The 08:00 dose reminder reaches the fake SMS provider at 08:00; one patient confirms through the
link page; the other does not answer and is called by voice at 10:00 and put on the nurse's
worklist at the end of the day.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.fault

CARELOOP = [sys.executable, "-m", "careloop.cli"]

SETUP = """
import json
from datetime import datetime
from careloop.accounts.models import Organisation, Department
from careloop.accounts import services as accounts
from careloop.accounts.actor import Actor
from careloop.accounts.roles import Role
from careloop.careplans import services as plans
from careloop.careplans.models import PlanTemplate
from careloop.channels.models import ChannelConfig
from careloop.patients import services as patients

org = Organisation.objects.create(name="Walkthrough clinic", code="walk")
dept = Department.objects.create(organisation=org, code="cardiology", name="心内科")
nurse = accounts.create_staff(organisation_id=org.pk, username="nurse",
    password="Walk-through-2026!", role=Role.NURSE, department_ids=[dept.pk])
actor = Actor(user=nurse, source="test")
plans.load_templates()
conf = {"endpoint": "http://127.0.0.1:%(sms_port)d/", "access_key_id": "LTAIwalk",
        "access_key_secret": "walk-secret-0123456789", "sign_name": "随访",
        "template_code": "SMS_1", "tts_code": "TTS_1", "callback_token": "walk-token"}
for kind, provider in (("sms", "aliyun_sms"), ("voice", "aliyun_voice")):
    cfg = ChannelConfig(organisation=org, kind=kind, provider=provider)
    cfg.config = conf
    cfg.save()
ids = {}
for label, phone in (("answers", "13900000001"), ("silent", "13900000002")):
    p = patients.create_patient(actor, {"name": label, "sex": "female",
        "date_of_birth": "1950-01-01", "phones": [phone], "preferred_language": "zh-hans",
        "time_zone": "Asia/Shanghai", "department": dept.pk})
    for channel in ("sms", "voice"):
        patients.add_record(actor, p.pk, "consents", {"purpose": "care_reminders",
            "channel": channel, "granted": "on", "decided_on": "2026-01-01", "source": "paper"})
    patients.add_record(actor, p.pk, "medications", {"name": "氨氯地平", "dose": "5", "unit": "mg",
        "frequency": "qd", "route": "po", "status": "active"})
    tpl = PlanTemplate.objects.get(code="hypertension", organisation__isnull=True)
    plans.enrol(actor, p.pk, tpl.pk)
    ids[label] = p.pk
print("IDS=" + json.dumps(ids))
"""

STATE = """
import json
from careloop.reminders.models import Occurrence, IntakeEvent
from careloop.alerts.models import Task
out = {}
for occ in Occurrence.objects.filter(kind="medication", local_due="2026-03-02T08:00"):
    out[occ.patient.name] = {
        "status": occ.status,
        "channels": list(occ.attempts.order_by("id").values_list("channel", flat=True)),
        "intake": getattr(IntakeEvent.objects.filter(occurrence=occ).first(), "status", None),
        "tasks": list(Task.objects.filter(occurrence=occ).values_list("kind", flat=True)),
    }
print("STATE=" + json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(env: dict[str, str], *args: str, code: str | None = None) -> str:
    cmd = [*CARELOOP, *args] if code is None else [*CARELOOP, "django", "shell", "-c", code]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def state(env: dict[str, str]) -> dict:
    out = run(env, code=STATE)
    return json.loads(out.split("STATE=", 1)[1])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARELOOP_")}
    env["CARELOOP_VAR_DIR"] = str(tmp_path / "var")
    env["CARELOOP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'var' / 'walk.sqlite3'}"
    env["CARELOOP_FAKE_NOW"] = "2026-03-02T06:00:00+08:00"
    (tmp_path / "var").mkdir()
    sms_port, web_port = free_port(), free_port()
    run(env, "migrate", "--no-input", "-v", "0")
    ids = json.loads(run(env, code=SETUP % {"sms_port": sms_port}).split("IDS=", 1)[1])
    serve_env = {
        **env,
        "CARELOOP_FAKE_NOW": "2026-03-02T07:59:00+08:00",
        "CARELOOP_FAKE_SPEED": "600",
        "CARELOOP_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
    }
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(  # noqa: S603
        [*CARELOOP, "serve", "--with-worker", "--fake-providers", "--port", str(web_port)],
        env=serve_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield {
            "env": env,
            "ids": ids,
            "web": f"http://127.0.0.1:{web_port}",
            "sms_log": tmp_path / "var" / "fake-sms.jsonl",
            "log": tmp_path / "serve.log",
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def wait_for(predicate, timeout: float, what: str, log: Path) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def sent_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_dose_reminder_sent_at_0800_acknowledged_and_escalated(site: dict) -> None:
    sms_log: Path = site["sms_log"]

    def two_dose_sms() -> list[dict]:
        lines = [x for x in sent_lines(sms_log) if "03-02 08:00" in x["text"]]
        return lines if len(lines) >= 2 else []

    lines = wait_for(two_dose_sms, 60, "the 08:00 SMS", site["log"])
    assert isinstance(lines, list)
    assert {x["to"] for x in lines} == {"13900000001", "13900000002"}
    answered = next(x for x in lines if x["to"] == "13900000001")
    token = re.search(r"link=([A-Za-z0-9_-]{16,})", answered["text"])
    token = token or re.search(r"/r/([A-Za-z0-9_-]{16,})", answered["text"])
    assert token, answered["text"]

    # The patient opens the link and confirms the dose.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page_url = f"{site['web']}/r/{token.group(1)}"
    html = opener.open(page_url, timeout=10).read().decode()
    assert "按时服药" in html
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert csrf
    body = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": csrf.group(1), "answer": "taken"}
    ).encode()
    request = urllib.request.Request(page_url, data=body, headers={"Referer": page_url})  # noqa: S310
    opener.open(request, timeout=10).read()

    now = state(site["env"])
    assert now["answers"]["status"] == "acknowledged"
    assert now["answers"]["intake"] == "taken"

    # The silent patient: a voice call two hours later (fake 10:00, ~12 s real) ...
    wait_for(
        lambda: "voice" in state(site["env"])["silent"]["channels"],
        60,
        "the voice call",
        site["log"],
    )
    # ... and a call task for the nurse at the end of the patient's day (fake 20:00, ~72 s real).
    final = wait_for(
        lambda: (s := state(site["env"]))["silent"]["tasks"] and s,
        120,
        "the call task",
        site["log"],
    )
    assert isinstance(final, dict)
    assert final["silent"]["tasks"] == ["call_patient"]
    assert final["silent"]["channels"] == ["sms", "voice"]
    assert final["answers"]["channels"] == ["sms"]  # no escalation after the confirmation
    assert final["answers"]["tasks"] == []
    # Every reminder went out once. A batch shares one reference and may carry two reminders for
    # one number (08:00 and 08:30 when the server starts late), so each is told by its own link.
    sends = [(x["ref"], x["to"], x["text"]) for x in sent_lines(sms_log)]
    assert len(sends) == len(set(sends))
