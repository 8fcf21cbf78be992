"""The project's URLs plus one page nobody gave an access rule (for test_access_matrix)."""

from django.http import HttpResponse
from django.urls import path

from careloop import urls as project


def _export_everything(request):  # type: ignore[no-untyped-def]
    return HttpResponse("everything")


urlpatterns = [
    path("patients/export/", _export_everything, name="export_everything"),
    *project.urlpatterns,
]
