from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class Hl7v2Config(AppConfig):
    name = "careloop.hl7v2"
    label = "hl7v2"
    verbose_name = _("HL7 v2 interface")
