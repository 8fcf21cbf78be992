"""The experiments pages and the command line: roles, validation, start/stop, results, CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from careloop.accounts.models import Staff
from careloop.audit.models import AuditEvent
from careloop.experiments import design
from careloop.experiments.models import Assignment, Experiment, Status
from careloop.kit.clock import utc_now
from tests.experiments.scene import form
from tests.reminders.factories import attempt, occurrence

pytestmark = pytest.mark.django_db


CONTROL = {"code": "a", "control": True, "params": {}}


def tone(text: str) -> dict[str, Any]:
    return {"code": "b", "params": {"wording": {"zh-hans": text}}}


TONE = tone("{link}")


def client_as(username: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(Staff.objects.get(username=username))
    return client


def draft(org: Any, code: str = "d1", **fields: Any) -> Experiment:
    values: dict[str, Any] = {
        "organisation": org,
        "code": code,
        "name": "Draft",
        "factor": "wording",
        "kinds": ["medication"],
        "arms": design.example_arms("wording"),
        "min_per_arm": 5,
        "max_per_arm": 50,
        "seed": 3,
    }
    values.update(fields)
    return Experiment.objects.create(**values)


class TestCreate:
    def test_admin_creates_a_draft(self, world: Any) -> None:
        client = client_as("admin")
        assert client.get("/experiments/new/?factor=time").status_code == 200
        response = client.post("/experiments/new/", form("tone"))
        exp = Experiment.objects.get(code="tone")
        assert response.status_code == 302 and response["Location"] == f"/experiments/{exp.pk}/"
        assert exp.status == Status.DRAFT and exp.organisation == world.org
        assert exp.kinds == ["medication", "measurement"] and exp.seed == 5
        assert [a["control"] for a in exp.arms] == [True, False]
        assert AuditEvent.objects.filter(action="experiment.save", object_id=str(exp.pk)).exists()

    def test_a_seed_is_drawn_when_left_empty(self, world: Any) -> None:
        client_as("admin").post("/experiments/new/", {**form("s"), "seed": ""})
        assert Experiment.objects.get(code="s").seed >= 0

    @pytest.mark.parametrize(
        ("arms", "message"),
        [
            ([CONTROL, {**CONTROL, "code": "b"}], "exactly one arm as the control"),
            ([CONTROL, {**TONE, "weight": 0}], "weight must be a whole number"),
            ([CONTROL, tone("{name} {patient.id} {link}")], "unknown placeholders {patient.id}"),
            ([CONTROL, tone("{name}")], "must contain {link}"),
            ([CONTROL], "from 2 to 6 arms"),
        ],
    )
    def test_bad_arms_answer_400_and_keep_the_input(
        self, world: Any, arms: Any, message: str
    ) -> None:
        text = json.dumps(arms, ensure_ascii=False)
        response = client_as("admin").post("/experiments/new/", {**form("bad"), "arms": text})
        assert response.status_code == 400
        body = response.content.decode()
        assert message in body.replace("&#x27;", "'").replace("&quot;", '"')
        assert "bad" in body  # the code typed is still there
        assert not Experiment.objects.filter(code="bad").exists()

    def test_time_in_quiet_hours_and_broken_json(self, world: Any) -> None:
        client = client_as("admin")
        arms = [{"code": "c", "control": True}, {"code": "late", "params": {"hour": 22}}]
        response = client.post(
            "/experiments/new/", {**form("t"), "factor": "time", "arms": json.dumps(arms)}
        )
        assert response.status_code == 400 and "quiet hours" in response.content.decode()
        response = client.post("/experiments/new/", {**form("t"), "arms": "[{"})
        assert response.status_code == 400 and "not valid JSON" in response.content.decode()

    def test_population_needs_its_department_and_codes_are_unique(self, world: Any) -> None:
        client = client_as("admin")
        response = client.post("/experiments/new/", {**form("p"), "population": "department"})
        assert response.status_code == 400 and "Choose the department" in response.content.decode()
        draft(world.org, "taken")
        response = client.post("/experiments/new/", form("taken"))
        assert response.status_code == 400 and "already has this code" in response.content.decode()

    def test_only_organisation_admins_design(self, world: Any) -> None:
        assert client_as("head.cardiology").get("/experiments/new/").status_code == 403
        assert client_as("nurse.cardiology").post("/experiments/new/", form("n")).status_code == 403


class TestLifecycle:
    def test_edit_start_stop(self, world: Any) -> None:
        exp = draft(world.org)
        client = client_as("admin")
        assert client.get(f"/experiments/{exp.pk}/edit/").status_code == 200
        response = client.post(f"/experiments/{exp.pk}/edit/", {**form("d1"), "name": "Renamed"})
        assert response.status_code == 302
        exp.refresh_from_db()
        assert exp.name == "Renamed" and exp.version == 2
        page = client.get(f"/experiments/{exp.pk}/").content.decode()
        assert 'data-testid="start"' in page and "data-confirm" in page
        assert client.post(f"/experiments/{exp.pk}/start/").status_code == 302
        exp.refresh_from_db()
        assert exp.status == Status.RUNNING and exp.started_at is not None
        # A running experiment cannot be changed or started again.
        assert client.get(f"/experiments/{exp.pk}/edit/").status_code == 409
        assert client.post(f"/experiments/{exp.pk}/start/").status_code == 409
        assert (
            client.post(f"/experiments/{exp.pk}/stop/", {"note": "pilot over"}).status_code == 302
        )
        exp.refresh_from_db()
        assert (exp.status, exp.stop_note) == (Status.STOPPED, "pilot over")
        actions = set(
            AuditEvent.objects.filter(object_id=str(exp.pk)).values_list("action", flat=True)
        )
        assert {"experiment.save", "experiment.start", "experiment.stop"} <= actions
        assert client.post(f"/experiments/{exp.pk}/stop/").status_code == 409

    def test_start_refuses_a_past_last_day(self, world: Any) -> None:
        exp = draft(world.org, end_date=(utc_now() - timedelta(days=3)).date())
        response = client_as("admin").post(f"/experiments/{exp.pk}/start/", follow=True)
        assert "The last day has passed" in response.content.decode()
        exp.refresh_from_db()
        assert exp.status == Status.DRAFT

    def test_another_organisations_experiment_is_not_found(self, world: Any) -> None:
        exp = draft(world.other_org)
        client = client_as("admin")
        assert client.get(f"/experiments/{exp.pk}/").status_code == 404
        assert client.post(f"/experiments/{exp.pk}/stop/").status_code == 404
        exp.refresh_from_db()
        assert exp.status == Status.DRAFT


class TestResultsPages:
    def _running(self, world: Any, make_patient: Any) -> Experiment:
        started = utc_now() - timedelta(days=3)
        exp = draft(world.org, "run", status=Status.RUNNING, started_at=started)
        for arm, acked in (("control", 1), ("b", 2)):
            p = make_patient()
            Assignment.objects.create(experiment=exp, patient=p, arm=arm)
            for i in range(3):
                occ = occurrence(
                    p,
                    started + timedelta(days=1),
                    status="sent",
                    payload={"experiment": {"id": exp.pk, "arm": arm}},
                )
                attempt(occ, "sms", "accepted", started + timedelta(days=1))
                if i < acked:
                    type(occ).objects.filter(pk=occ.pk).update(
                        acknowledged_at=started + timedelta(days=1, hours=1)
                    )
        return exp

    def test_list_and_results(self, world: Any, make_patient: Any) -> None:
        exp = self._running(world, make_patient)
        client = client_as("nurse.cardiology")
        listing = client.get("/experiments/?status=running").content.decode()
        assert "run" in listing and 'data-testid="new-experiment"' not in listing
        assert client.get("/experiments/?status=nonsense").status_code == 400
        page = client.get(f"/experiments/{exp.pk}/").content.decode()
        assert "1/3" in page and "2/3" in page  # acknowledged / sent per arm
        assert 'data-testid="comparison-b-ack_rate"' in page and "data-experiment-chart" in page
        assert 'data-testid="stop"' not in page  # a nurse cannot stop it
        assert AuditEvent.objects.filter(
            action="experiment.results", actor_id=world.staff["nurse.cardiology"].pk
        ).exists()

    def test_csv(self, world: Any, make_patient: Any) -> None:
        exp = self._running(world, make_patient)
        response = client_as("head.cardiology").get(f"/experiments/{exp.pk}/export/?format=csv")
        assert response.status_code == 200
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        header, body = rows[0], rows[1:]
        assert len(header) == 19  # the user's language names the columns
        control = next(r for r in body if r[0] == "control")
        assert control[3:6] == ["3", "1", str(round(1 / 3, 6))]
        ack = next(r for r in body if r[0] == "b" and r[11] == "ack_rate")
        assert float(ack[12]) == pytest.approx(1 / 3, abs=1e-6)
        assert (
            client_as("head.cardiology")
            .get(f"/experiments/{exp.pk}/export/?format=pdf")
            .status_code
            == 404
        )

    def test_auditor_sees_nothing(self, world: Any) -> None:
        assert client_as("auditor").get("/experiments/").status_code == 403


class TestCommand:
    def test_list_results_evaluate_stop(self, world: Any, capsys: Any) -> None:
        exp = draft(world.org, "cli", status=Status.RUNNING, started_at=utc_now())
        out = io.StringIO()
        call_command("experiments", "list", stdout=out)
        assert "test\tcli\trunning\twording" in out.getvalue()
        out = io.StringIO()
        call_command("experiments", "results", "cli", stdout=out)
        assert json.loads(out.getvalue())["experiment"] == "cli"
        out = io.StringIO()
        call_command("experiments", "evaluate", "--organisation", "test", stdout=out)
        assert "cli: no analysis due" in out.getvalue()
        out = io.StringIO()
        call_command("experiments", "stop", "cli", "--reason", "done", stdout=out)
        exp.refresh_from_db()
        assert exp.status == Status.STOPPED and exp.stop_note == "done"
        with pytest.raises(CommandError):
            call_command("experiments", "stop", "cli")
        with pytest.raises(CommandError):
            call_command("experiments", "results", "missing")
