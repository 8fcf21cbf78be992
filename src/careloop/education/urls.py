"""Staff routes."""

from django.urls import path

from careloop.education import views as v

app_name = "education"

urlpatterns = [
    path("", v.item_list, name="list"),
    path("new/", v.item_create, name="create"),
    path("<int:item_id>/", v.item_detail, name="detail"),
    path("<int:item_id>/edit/", v.item_edit, name="edit"),
    path("<int:item_id>/publish/", v.item_publish, name="publish"),
    path("<int:item_id>/unpublish/", v.item_unpublish, name="unpublish"),
    path("<int:item_id>/video", v.item_video, name="video"),
    path("patients/<int:patient_id>/summaries/", v.summaries, name="summaries"),
    path("patients/<int:patient_id>/summaries/<int:summary_id>/", v.summary, name="summary"),
    path(
        "patients/<int:patient_id>/visits/<int:encounter_id>/summary",
        v.summary_generate,
        name="summary_generate",
    ),
]
