from django.urls import path

from careloop.careplans import views

app_name = "careplans"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:enrolment_id>/", views.enrolment_page, name="enrolment"),
    path("<int:enrolment_id>/end/", views.end, name="end"),
    path("<int:enrolment_id>/adjust/", views.adjust, name="adjust"),
    path("patients/<int:patient_id>/enrol/", views.enrol, name="enrol"),
    path("patients/<int:patient_id>/enrol/preview/", views.preview, name="preview"),
    path("patients/<int:patient_id>/calendar/", views.calendar, name="calendar"),
    path("patients/<int:patient_id>/preferences/", views.preferences, name="preferences"),
]
