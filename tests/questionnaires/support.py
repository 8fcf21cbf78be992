"""Answering questionnaires through the portal pages, as a patient would."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from careloop.questionnaires import models as qm

PHQ_CODES = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


def phq9_answers(scores: list[int]) -> dict[str, str]:
    return {f"q:phq9-{i}": PHQ_CODES[s] for i, s in enumerate(scores, 1)}


def answer_all(client: Any, assignment: qm.Assignment, data: dict[str, Any]) -> Any:
    """Walk every screen, posting the given answers of the fields shown on each; submit last."""
    url = reverse("portal:questionnaire_answer", args=[assignment.pk])
    page = 0
    for _step in range(60):
        shown = client.get(f"{url}?page={page}")
        assert shown.status_code == 200, shown.content[:500]
        ctx = shown.context
        names = set()
        for f in ctx["fields"]:
            names.add(f.name)
            names.update(c.name for c in f.children)
        posted = {k: v for k, v in data.items() if k in names}
        last = ctx["last"]
        response = client.post(
            url, {**posted, "page": ctx["index"], "step": "submit" if last else "next"}
        )
        if last:
            return response
        assert response.status_code == 302, response.content[:3000]
        page = int(response["Location"].split("page=")[1])
    raise AssertionError("too many screens")
