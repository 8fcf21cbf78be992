from django.urls import path

from careloop.patients import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_create, name="create"),
    path("<int:patient_id>/", views.patient_detail, name="detail"),
    path("<int:patient_id>/edit/", views.patient_edit, name="edit"),
    path("<int:patient_id>/merge/", views.patient_merge, name="merge"),
    path("<int:patient_id>/tab/<slug:tab>/", views.patient_tab, name="tab"),
    path("<int:patient_id>/reports/<int:record_id>/file", views.report_file, name="report_file"),
    path("<int:patient_id>/<slug:kind>/new/", views.record_create, name="record_create"),
    path(
        "<int:patient_id>/<slug:kind>/<int:record_id>/edit/", views.record_edit, name="record_edit"
    ),
    path(
        "<int:patient_id>/<slug:kind>/<int:record_id>/delete/",
        views.record_delete,
        name="record_delete",
    ),
]
