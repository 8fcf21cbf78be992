from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubscriptionsConfig(AppConfig):
    name = "careloop.subscriptions"
    label = "subscriptions"
    verbose_name = _("FHIR subscriptions")

    def ready(self) -> None:
        from careloop.subscriptions import signals

        signals.connect()
