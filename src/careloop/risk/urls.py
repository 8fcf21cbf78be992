"""The risk pages (included at /risk/; access rules in careloop.web.access)."""

from django.urls import path

from careloop.risk import views

app_name = "risk"

urlpatterns = [
    path("", views.card, name="card"),
    path("worklist/", views.worklist, name="worklist"),
    path("worklist/export/", views.worklist_export, name="worklist_export"),
    path("patients/<int:patient_id>/call-task/", views.call_task, name="call_task"),
    path("drift/", views.drift, name="drift"),
]
