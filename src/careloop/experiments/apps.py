"""A/B experiments on reminder wording, channel, time and cadence, with randomised arms, a control
group, effect sizes with confidence intervals and stop rules."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExperimentsConfig(AppConfig):
    name = "careloop.experiments"
    label = "experiments"
    verbose_name = _("Experiments")

    def ready(self) -> None:
        from careloop.experiments import services
        from careloop.kit import periodic

        # Hourly: randomise and mark the reminders of the next 36 hours. The stop rules are
        # looked at hourly too, but each experiment is evaluated once per local day.
        periodic.register("experiments.apply", 3600, services.apply_job)
        periodic.register("experiments.evaluate", 3600, services.evaluate_job)
