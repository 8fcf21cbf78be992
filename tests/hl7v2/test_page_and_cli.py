"""The message log page (admins only), replay from it, and `careloop hl7 load|replay`."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from careloop.audit.models import AuditEvent
from careloop.hl7v2 import models as hm
from careloop.hl7v2 import services
from careloop.patients import models as pm

PID = "PID|1||P77^^^RMYY^MR||Zhou^Yu||19600101|F"


def _raw(kind: str, control_id: str, *segments: str) -> bytes:
    msh = f"MSH|^~\\&|HIS|RMYY|CareLoop|CL|20240101120000||{kind}|{control_id}|P|2.5"
    return ("\r".join([msh, *segments]) + "\r").encode()


def test_nurse_is_refused_and_admin_sees_the_log(client: Any, world: Any) -> None:
    services.receive(_raw("ADT^A04", "LOG-ONE", PID), world.org)
    services.receive(_raw("SIU^S12", "LOG-TWO", PID), world.org)
    services.receive(_raw("ADT^A04", "LOG-THREE", PID), world.other_org)
    client.force_login(world.staff["nurse.cardiology"])
    assert client.get(reverse("hl7v2:list")).status_code == 403
    client.force_login(world.staff["admin"])
    page = client.get(reverse("hl7v2:list"))
    assert page.status_code == 200
    text = page.content.decode()
    # Own organisation only.
    assert ">LOG-ONE<" in text and ">LOG-TWO<" in text and ">LOG-THREE<" not in text
    rejected = client.get(reverse("hl7v2:list"), {"status": "rejected"}).content.decode()
    assert ">LOG-TWO<" in rejected and ">LOG-ONE<" not in rejected
    assert AuditEvent.objects.filter(action="hl7v2.list").exists()


def test_replay_button(client: Any, world: Any) -> None:
    oru = _raw("ORU^R01", "P4", PID, "OBX|1|NM|8867-4^HR^LN||70|/min|||||F")
    _, log = services.receive(oru, world.org)
    assert log.status == hm.Status.ERROR
    services.receive(_raw("ADT^A04", "P5", PID), world.org)
    client.force_login(world.staff["nurse.cardiology"])
    assert client.post(reverse("hl7v2:replay", args=[log.pk])).status_code == 403
    client.force_login(world.staff["admin.other"])
    assert client.post(reverse("hl7v2:replay", args=[log.pk])).status_code == 404
    client.force_login(world.staff["admin"])
    response = client.post(reverse("hl7v2:replay", args=[log.pk]))
    assert response.status_code == 302
    log.refresh_from_db()
    assert log.status == hm.Status.APPLIED and log.replay_count == 1
    assert AuditEvent.objects.filter(action="hl7v2.replay").exists()


def test_load_and_replay_commands(world: Any, tmp_path: Path) -> None:
    path = tmp_path / "feed.hl7"
    oru = _raw("ORU^R01", "L2", PID, "OBX|1|NM|8867-4^HR^LN||70|/min|||||F")
    path.write_bytes(b"\xef\xbb\xbf" + oru + _raw("ADT^A04", "L1", PID).replace(b"\r", b"\n"))
    out = StringIO()
    call_command("hl7", "load", str(path), organisation="test", stdout=out)
    assert "ORU^R01 L2 AE" in out.getvalue()
    assert "ADT^A04 L1 AA" in out.getvalue()
    assert pm.Patient.objects.filter(organisation=world.org, record_number="P77").count() == 1
    out = StringIO()
    call_command("hl7", "replay", failed=True, organisation="test", stdout=out)
    assert "L2 applied" in out.getvalue()


def test_the_only_organisation_is_the_default(world: Any) -> None:
    with pytest.raises(ValueError, match="--organisation"):
        services.organisation_for(None)
    assert services.organisation_for("test") == world.org
