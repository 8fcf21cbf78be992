"""FHIR R4 REST routes (listed in careloop.web.access under the FHIR requirement)."""

from django.urls import path

from careloop.fhir import views

app_name = "fhir"

urlpatterns = [
    path("", views.root, name="root"),
    path("metadata", views.metadata, name="metadata"),
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
