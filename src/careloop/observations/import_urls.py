"""Staff pages of reading imports: upload a file, follow its progress, read its report."""

from django.urls import path

from careloop.observations import import_views

app_name = "imports"

urlpatterns = [
    path("", import_views.import_list, name="list"),
    path("upload/", import_views.upload, name="upload"),
    path("<int:import_id>/", import_views.import_detail, name="detail"),
    path("<int:import_id>/problems.csv", import_views.problems_csv, name="problems"),
]
