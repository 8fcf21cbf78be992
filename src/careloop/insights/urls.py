from django.urls import path

from careloop.insights import views

app_name = "insights"

urlpatterns = [
    path("patients/<int:patient_id>/", views.patient_panel, name="patient_panel"),
    path("patients/<int:patient_id>/call-task/", views.call_task, name="call_task"),
]
