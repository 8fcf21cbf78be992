from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _load_shipped(sender: AppConfig, **kwargs: Any) -> None:
    """The shipped questionnaires (data/*.json) are in every database after migrate."""
    from careloop.questionnaires import services

    services.load_shipped()


class QuestionnairesConfig(AppConfig):
    name = "careloop.questionnaires"
    label = "questionnaires"
    verbose_name = _("Questionnaires")

    def ready(self) -> None:
        post_migrate.connect(_load_shipped, sender=self, dispatch_uid="questionnaires-shipped")
