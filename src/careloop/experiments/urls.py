"""Routes of the experiments pages, at /experiments/."""

from django.urls import path

from careloop.experiments import views as v

app_name = "experiments"

urlpatterns = [
    path("", v.experiment_list, name="list"),
    path("new/", v.experiment_create, name="create"),
    path("<int:experiment_id>/", v.experiment_detail, name="detail"),
    path("<int:experiment_id>/edit/", v.experiment_edit, name="edit"),
    path("<int:experiment_id>/start/", v.experiment_start, name="start"),
    path("<int:experiment_id>/stop/", v.experiment_stop, name="stop"),
    path("<int:experiment_id>/export/", v.experiment_export, name="export"),
]
