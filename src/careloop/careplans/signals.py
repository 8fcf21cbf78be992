"""Reactions to changes in the patient record (connected in apps.ready)."""

from __future__ import annotations

from typing import Any

from careloop.careplans import services


def record_changed(sender: Any, *, patient: Any, kind: str, **kwargs: Any) -> None:
    services.on_record_changed(patient, kind)


def patient_changed(sender: Any, *, patient: Any, fields: Any, **kwargs: Any) -> None:
    services.on_patient_changed(patient, fields)
