"""The staff worklist at /worklist/ ("my work today")."""

from django.urls import path

from careloop.alerts import views

app_name = "worklist"

urlpatterns = [
    path("", views.worklist_view, name="index"),
    path("assign/", views.worklist_assign, name="assign"),
    path("overdue/<int:patient_id>/result/", views.worklist_call_result, name="call_result"),
]
