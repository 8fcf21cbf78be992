from django.apps import AppConfig


class KitConfig(AppConfig):
    name = "careloop.kit"
    label = "kit"
