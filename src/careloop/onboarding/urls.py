"""Staff pages of patient-list onboarding."""

from django.urls import path

from careloop.onboarding import views

app_name = "onboarding"

urlpatterns = [
    path("", views.job_list, name="list"),
    path("upload/", views.upload, name="upload"),
    path("<int:job_id>/", views.detail, name="detail"),
    path("<int:job_id>/mapping/", views.mapping, name="mapping"),
    path("<int:job_id>/run/", views.run, name="run"),
    path("<int:job_id>/report.<str:fmt>", views.report, name="report"),
]
