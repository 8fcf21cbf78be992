from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

# The worker plans and learns once an hour (each run is idempotent: a reminder is routed once,
# an outcome folded once).
EVERY_SECONDS = 3600


def _hourly() -> None:
    from careloop.sendtime import services

    services.run_periodic()


class SendTimeConfig(AppConfig):
    name = "careloop.sendtime"
    label = "sendtime"
    verbose_name = _("Send-time learning")

    def ready(self) -> None:
        from careloop.kit import periodic

        periodic.register("sendtime", EVERY_SECONDS, _hourly)
