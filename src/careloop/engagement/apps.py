from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EngagementConfig(AppConfig):
    name = "careloop.engagement"
    label = "engagement"
    verbose_name = _("Engagement and community")

    def ready(self) -> None:
        from careloop.engagement.services import on_patient_event
        from careloop.portal import events

        events.on(on_patient_event)
