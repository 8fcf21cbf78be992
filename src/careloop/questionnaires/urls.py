"""Staff routes, at /questionnaires/."""

from django.urls import URLPattern, path

from careloop.questionnaires import views as v

app_name = "questionnaires"

urlpatterns: list[URLPattern] = [
    path("", v.library, name="library"),
    path("import/", v.import_file, name="import"),
    path("<int:questionnaire_id>/", v.detail, name="detail"),
    path("<int:questionnaire_id>/status/", v.status, name="status"),
    path("patients/<int:patient_id>/", v.patient, name="patient"),
    path("patients/<int:patient_id>/section/", v.patient_section, name="patient_section"),
    path("patients/<int:patient_id>/send/", v.send, name="send"),
    path("responses/<int:response_id>/", v.response_detail, name="response"),
]
