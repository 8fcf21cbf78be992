from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CarePlansConfig(AppConfig):
    name = "careloop.careplans"
    label = "careplans"
    verbose_name = _("Care plans")

    def ready(self) -> None:
        from careloop.careplans import signals
        from careloop.patients import signals as patient_signals

        patient_signals.record_changed.connect(
            signals.record_changed, dispatch_uid="careplans-record"
        )
        patient_signals.patient_changed.connect(
            signals.patient_changed, dispatch_uid="careplans-patient"
        )
