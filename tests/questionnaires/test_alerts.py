"""PHQ-9 item 9, PHQ-9 ≥ 20 and post-operative red flags raise alerts the nurse sees."""

from __future__ import annotations

from typing import Any

from careloop.alerts import models as am
from careloop.questionnaires import models as qm
from tests.observations.support import care_team, join
from tests.portal.client import portal_client
from tests.questionnaires.support import answer_all, phq9_answers


def _team(world: Any, patient: Any) -> None:
    join(patient, care_team(world, world.cardio))


def test_phq9_item9_positive_raises_stat_alert_in_worklist(world, patient, send, client):
    _team(world, patient)
    assignment = send("phq-9")
    portal = portal_client(patient)
    done = answer_all(portal, assignment, phq9_answers([0, 0, 0, 0, 0, 0, 0, 0, 1]))
    assert done.status_code == 302
    response = qm.Response.objects.get(assignment=assignment)
    assert response.status == "completed" and response.score == 1 and response.band == "minimal"
    alert = am.Alert.objects.get(patient=patient, rule="phq9-item9")
    assert alert.priority == "stat" and alert.focus_type == "questionnaire_response"
    assert alert.focus_id == response.pk
    assert not am.Alert.objects.filter(patient=patient, rule="phq9-severe").exists()
    page = portal.get(done["Location"])
    assert page.status_code == 200
    assert b'data-testid="q-crisis"' in page.content
    client.force_login(world.staff["nurse.cardiology"])
    worklist = client.get("/worklist/")
    assert worklist.status_code == 200
    assert patient.name in worklist.content.decode()


def test_phq9_severe_total_raises_high_alert(world, patient, send):
    _team(world, patient)
    assignment = send("phq-9")
    answer_all(portal_client(patient), assignment, phq9_answers([3, 3, 3, 2, 2, 2, 2, 3, 0]))
    response = qm.Response.objects.get(assignment=assignment)
    assert response.score == 20 and response.band == "severe"
    alert = am.Alert.objects.get(patient=patient, rule="phq9-severe")
    assert alert.severity == "high"
    assert not am.Alert.objects.filter(patient=patient, rule="phq9-item9").exists()


def test_phq9_mild_raises_nothing(world, patient, send):
    _team(world, patient)
    assignment = send("phq-9")
    answer_all(portal_client(patient), assignment, phq9_answers([1, 1, 1, 1, 1, 0, 0, 0, 0]))
    assert qm.Response.objects.get(assignment=assignment).band == "mild"
    assert not am.Alert.objects.filter(patient=patient).exists()


def _postop(**overrides: str) -> dict[str, str]:
    data = {
        "q:pain": "3",
        "q:fever": "false",
        "q:nausea": "none",
        "q:wound-redness": "false",
        "q:wound-discharge": "none",
        "q:breathless": "false",
        "q:calf-swelling": "false",
    }
    data.update(overrides)
    return data


def test_postop_red_flag_raises_alert(world, patient, send):
    _team(world, patient)
    assignment = send("postop-symptoms")
    answer_all(
        portal_client(patient),
        assignment,
        _postop(**{"q:fever": "true", "q:temperature": "38.9", "q:wound-discharge": "pus"}),
    )
    response = qm.Response.objects.get(assignment=assignment)
    assert response.band == "red_flag"
    assert set(response.result["flags"]) == {"high_fever", "wound_pus"}
    alert = am.Alert.objects.get(patient=patient, rule="postop-red-flag")
    assert alert.priority == "urgent"


def test_postop_as_expected_raises_nothing(world, patient, send):
    _team(world, patient)
    assignment = send("postop-symptoms")
    answer_all(portal_client(patient), assignment, _postop())
    assert qm.Response.objects.get(assignment=assignment).band == "as_expected"
    assert not am.Alert.objects.filter(patient=patient).exists()


def test_second_questionnaire_streams_on_saved_state(world, patient, send):
    """The second PHQ-9 is fed to the saved engine state (no replay), and still alerts."""
    _team(world, patient)
    first = send("phq-9")
    answer_all(portal_client(patient), first, phq9_answers([0] * 9))
    assert am.RuleState.objects.filter(patient=patient).exists()
    second = send("phq-9")
    answer_all(portal_client(patient), second, phq9_answers([0] * 8 + [2]))
    assert am.Alert.objects.filter(patient=patient, rule="phq9-item9").count() == 1
