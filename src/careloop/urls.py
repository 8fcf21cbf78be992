"""URL configuration. Every route is listed in careloop.web.access (tests enforce it)."""

from django.contrib import admin
from django.urls import include, path

from careloop.api import api
from careloop.web import views as web

urlpatterns = [
    path("", web.home, name="home"),
    path("healthz", web.healthz, name="healthz"),
    path("readyz", web.readyz, name="readyz"),
    path("login/", web.login_view, name="login"),
    path("logout/", web.logout_view, name="logout"),
    path("language/", web.language_view, name="language"),
    path("patients/", include("careloop.patients.urls")),
    path("audit/", include("careloop.audit.urls")),
    path("plans/", include("careloop.careplans.urls")),
    path("tasks/", include("careloop.alerts.urls")),
    path("r/", include("careloop.reminders.urls")),
    path("appointments/", include("careloop.appointments.urls")),
    path("operations/", include("careloop.reminders.ops_urls")),
    path("hooks/", include("careloop.channels.urls")),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]

handler403 = "careloop.web.views.error_403"
handler404 = "careloop.web.views.error_404"
handler500 = "careloop.web.views.error_500"
