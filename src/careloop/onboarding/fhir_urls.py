"""Staff pages of the FHIR file import, beside patient-list onboarding."""

from django.urls import path

from careloop.onboarding import fhir_views

app_name = "fhirimport"

urlpatterns = [
    path("", fhir_views.fhir_list, name="list"),
    path("upload/", fhir_views.fhir_upload, name="upload"),
    path("<int:job_id>/", fhir_views.fhir_detail, name="detail"),
]
