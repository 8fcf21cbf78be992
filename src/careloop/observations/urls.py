"""Staff pages of a patient's readings: the vitals tab's parts and its forms."""

from django.urls import path

from careloop.observations import views

app_name = "vitals"

urlpatterns = [
    path("<int:patient_id>/charts/", views.charts, name="charts"),
    path("<int:patient_id>/readings/", views.reading_list, name="readings"),
    path("<int:patient_id>/readings/new/", views.reading_create, name="reading_create"),
    path("<int:patient_id>/symptoms/new/", views.symptom_create, name="symptom_create"),
    path("<int:patient_id>/reactions/new/", views.reaction_create, name="reaction_create"),
    path("<int:patient_id>/thresholds/", views.thresholds, name="thresholds"),
    path("<int:patient_id>/alerts/", views.alert_history, name="alerts"),
]
