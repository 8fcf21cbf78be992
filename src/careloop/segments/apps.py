"""Patient segments: rule-defined groups recomputed daily, with membership history and a strategy
that changes the member's care plan instances (精准分层)."""

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

RECOMPUTE_EVERY = 3600  # seconds: each organisation is recomputed once its local day changes


def _load_defaults(sender: AppConfig, **kwargs: Any) -> None:
    """The shipped segments (data/segments/*.json) are in every database after migrate."""
    from careloop.segments import services

    services.load_defaults()


def _recompute_due() -> int:
    from careloop.segments import services

    return services.run_due()


class SegmentsConfig(AppConfig):
    name = "careloop.segments"
    label = "segments"
    verbose_name = _("Segments")

    def ready(self) -> None:
        from careloop.analytics import registry
        from careloop.kit import periodic
        from careloop.segments import services

        registry.SEGMENT_FILTERS["default"] = services.filter_patients
        periodic.register("segments.recompute", RECOMPUTE_EVERY, _recompute_due)
        post_migrate.connect(_load_defaults, sender=self, dispatch_uid="segments-defaults")
