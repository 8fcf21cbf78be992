from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _record_changed(sender: Any, **kwargs: Any) -> None:
    from careloop.education import services

    services.on_record_changed(
        actor=kwargs.get("actor"),
        patient=kwargs["patient"],
        kind=kwargs["kind"],
        row=kwargs.get("row"),
        change=kwargs.get("change", ""),
    )


class EducationConfig(AppConfig):
    name = "careloop.education"
    label = "education"
    verbose_name = _("Health education")

    def ready(self) -> None:
        from careloop.patients import signals as patient_signals

        patient_signals.record_changed.connect(_record_changed, dispatch_uid="education-record")
