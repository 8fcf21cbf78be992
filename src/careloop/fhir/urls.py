"""FHIR R4 REST routes (listed in careloop.web.access under the FHIR requirement)."""

from django.urls import path

from careloop.fhir import bulk, views

app_name = "fhir"

urlpatterns = [
    path("", views.root, name="root"),
    path("metadata", views.metadata, name="metadata"),
    # Bulk Data $export (careloop.fhir.bulk): before the generic routes, which would take them.
    path("$export", bulk.system_export, name="export"),
    path("$export-status/<str:key>", bulk.export_status, name="export_status"),
    path("$export-file/<str:key>/<str:file_name>", bulk.export_file, name="export_file"),
    path("Patient/$export", bulk.patient_export, name="patient_export"),
    path("Group/<str:group_id>/$export", bulk.group_export, name="group_export"),
    path("<str:resource_type>", views.type_level, name="type"),
    path("<str:resource_type>/_search", views.search_post, name="search"),
    path("<str:resource_type>/<str:resource_id>", views.instance, name="instance"),
    path("<str:resource_type>/<str:resource_id>/_history", views.history, name="history"),
    path(
        "<str:resource_type>/<str:resource_id>/_history/<str:version_id>",
        views.vread,
        name="vread",
    ),
]
