"""The segment pages (included at /segments/; access rules in careloop.web.access)."""

from django.urls import path

from careloop.segments import views

app_name = "segments"

urlpatterns = [
    path("", views.segment_list, name="list"),
    path("new/", views.segment_create, name="create"),
    path("recompute/", views.recompute_now, name="recompute"),
    path("<int:segment_id>/", views.segment_detail, name="detail"),
    path("<int:segment_id>/export/", views.segment_export, name="export"),
    path("<int:segment_id>/edit/", views.segment_edit, name="edit"),
    path("<int:segment_id>/deactivate/", views.segment_deactivate, name="deactivate"),
]
