"""/analytics/reports/: the monthly department report (PDF) and its e-mail schedule."""

from django.urls import path, register_converter

from careloop.analytics.reports import views


class MonthConverter:
    """A month as YYYY-MM (the view turns it into a date and refuses impossible ones)."""

    regex = "[0-9]{4}-[0-9]{2}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return str(value)


register_converter(MonthConverter, "yyyymm")

app_name = "reports"
urlpatterns = [
    path("<int:department_id>/<yyyymm:month>.pdf", views.monthly, name="monthly"),
    path("schedules/", views.schedules, name="schedules"),
    path("schedules/<int:department_id>/", views.schedule_edit, name="schedule_edit"),
    path("schedules/<int:department_id>/send/", views.send_test, name="send_test"),
]
