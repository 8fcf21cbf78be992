"""Urgent words: matched after normalisation, not when negated, and raised as urgent alerts
through the rule engine into the care team's worklist."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from careloop.alerts import models as am
from careloop.messaging import domain
from careloop.messaging.models import Message, MessagingSettings
from careloop.observations import models as om
from careloop.patients import models as pm
from tests.messaging.support import english


class TestMatching:
    @pytest.mark.parametrize(
        ("text", "word"),
        [
            ("今天早上胸痛得厉害", "胸痛"),
            ("胸 闷，出汗", "胸闷"),
            ("晚上呼吸困难", "呼吸困难"),
            ("走两步就喘不上气", "喘不上气"),
            ("我爸刚才晕倒了", "晕倒"),
            ("活着没意思，想死", "想死"),
            ("伤口出血不止", "出血不止"),
            ("I have CHEST PAIN since noon", "chest pain"),
            ("ＣＨＥＳＴ　ＰＡＩＮ", "chest pain"),
            ("I can’t breathe", "can't breathe"),
            ("i cannot  breathe well", "cannot breathe"),
            ("shortness of breath at night", "shortness of breath"),
            ("she fainted in the kitchen", "fainted"),
            ("thinking about suicide", "suicide"),
            ("I want to kill myself", "kill myself"),
            ("the bleeding that won't stop", "bleeding that won't stop"),
        ],
    )
    def test_urgent_words_are_found(self, text: str, word: str) -> None:
        assert word in domain.urgent_words(text)

    @pytest.mark.parametrize(
        "text",
        [
            "没有胸痛，只是有点头晕",
            "不想死，只是睡不好",
            "无呼吸困难",
            "no chest pain today",
            "I do not have shortness of breath",
            "请问降压药饭前吃还是饭后吃？",
            "my painting is finished",  # "pain" inside another word
        ],
    )
    def test_negated_or_harmless_text_is_not_urgent(self, text: str) -> None:
        assert domain.urgent_words(text) == []

    def test_a_negated_word_does_not_hide_a_later_one(self) -> None:
        assert domain.urgent_words("昨天没有胸痛，今天胸痛") == ["胸痛"]

    def test_organisation_words_are_added(self) -> None:
        assert domain.urgent_words("腿肿得厉害", ["腿肿"]) == ["腿肿"]


def _send(portal: Client, body: str, key: str) -> Any:
    return portal.post("/portal/messages/", {"body": body, "idempotency_key": key}, follow=True)


class TestAlerts:
    @pytest.mark.parametrize(
        ("body", "word"),
        [
            ("医生，我现在胸痛，出冷汗", "胸痛"),
            ("I have chest pain and can't breathe", "chest pain"),
        ],
    )
    def test_urgent_message_raises_an_alert_in_the_nurses_worklist(
        self, portal: Client, world: Any, patient: pm.Patient, body: str, word: str
    ) -> None:
        response = _send(portal, body, "key-urgent-001")
        html = response.content.decode()
        assert 'data-testid="urgent-notice"' in html
        assert "If this is an emergency call 120 now." in html
        message = Message.objects.get()
        assert message.urgent and word in message.matched_words
        alert = am.Alert.objects.get(patient=patient)
        assert alert.rule == "symptom-urgent"
        assert alert.priority == am.Priority.URGENT and alert.severity == "critical"
        assert alert.department_id == world.cardio.pk
        assert word in alert.text_en
        entry = om.SymptomEntry.objects.get(patient=patient)
        assert entry.severity == 10 and entry.source == "patient"
        assert (alert.focus_type, alert.focus_id) == ("symptom", entry.pk)

        worklist = english(world, "nurse.cardiology").get("/worklist/").content.decode()
        assert patient.name in worklist
        assert "Patient reports an urgent symptom" in worklist
        # Staff of another department do not see it.
        other = english(world, "nurse.endocrinology").get("/worklist/").content.decode()
        assert patient.name not in other

    def test_normal_text_raises_nothing(self, portal: Client, patient: pm.Patient) -> None:
        html = _send(portal, "请问降压药饭前吃还是饭后吃？", "key-normal-01").content.decode()
        assert 'data-testid="urgent-notice"' not in html
        assert not am.Alert.objects.exists() and not om.SymptomEntry.objects.exists()
        assert not Message.objects.get().urgent

    def test_a_repeated_send_raises_one_alert(self, portal: Client, patient: pm.Patient) -> None:
        _send(portal, "胸痛", "key-urgent-rep")
        again = _send(portal, "胸痛", "key-urgent-rep")
        assert 'data-testid="urgent-notice"' in again.content.decode()
        assert am.Alert.objects.count() == 1 and om.SymptomEntry.objects.count() == 1

    def test_organisation_extra_words(self, portal: Client, world: Any) -> None:
        MessagingSettings.objects.create(organisation=world.org, extra_urgent_words="腿肿\n")
        _send(portal, "这两天腿肿得很厉害", "key-extra-001")
        assert am.Alert.objects.get().rule == "symptom-urgent"
