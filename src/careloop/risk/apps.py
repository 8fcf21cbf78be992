from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskConfig(AppConfig):
    name = "careloop.risk"
    label = "risk"
    verbose_name = _("Risk prediction")

    def ready(self) -> None:
        from careloop.kit import periodic

        def daily() -> None:
            from careloop.risk import services

            services.run_daily()

        # Hourly look: each organisation is scored once per organisation-local day.
        periodic.register("risk.daily_scores", 3600, daily)
