"""The send-time learning pages (included at /sendtime/; access rules in careloop.web.access)."""

from django.urls import path

from careloop.sendtime import views

app_name = "sendtime"

urlpatterns = [
    path("", views.report_view, name="report"),
    path("settings/", views.settings_view, name="settings"),
]
