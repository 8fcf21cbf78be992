"""URL configuration. Every route is listed in careloop.web.access (tests enforce it)."""

from django.contrib import admin
from django.urls import include, path

from careloop.api import api
from careloop.fhir import views as fhir_views
from careloop.web import second_factor_views
from careloop.web import views as web

urlpatterns = [
    path("", web.home, name="home"),
    path("healthz", web.healthz, name="healthz"),
    path("readyz", web.readyz, name="readyz"),
    path("login/", web.login_view, name="login"),
    path("login/code/", second_factor_views.code_view, name="login_code"),
    path("login/setup/", second_factor_views.setup_view, name="login_setup"),
    path("logout/", web.logout_view, name="logout"),
    path("language/", web.language_view, name="language"),
    path("patients/", include("careloop.patients.urls")),
    path("vitals/", include("careloop.observations.urls")),
    path("observations/imports/", include("careloop.observations.import_urls")),
    path("onboarding/", include("careloop.onboarding.urls")),
    path("onboarding/fhir/", include("careloop.onboarding.fhir_urls")),
    path("audit/", include("careloop.audit.urls")),
    path("plans/", include("careloop.careplans.urls")),
    path("tasks/", include("careloop.alerts.urls")),
    path("worklist/", include("careloop.alerts.worklist_urls")),
    path("alerts/", include("careloop.alerts.alert_urls")),
    path("r/", include("careloop.reminders.urls")),
    path("appointments/", include("careloop.appointments.urls")),
    path("operations/", include("careloop.reminders.ops_urls")),
    path("hooks/", include("careloop.channels.urls")),
    path("portal/", include("careloop.portal.urls")),
    path("portal-access/", include("careloop.portal.staff_urls")),
    path("inbox/", include("careloop.messaging.urls")),
    path("questionnaires/", include("careloop.questionnaires.urls")),
    path("education/", include("careloop.education.urls")),
    path("engagement/", include("careloop.engagement.urls")),
    # The FHIR base answers as /fhir and /fhir/ alike: clients POST Bundles to it.
    path("fhir", fhir_views.root, name="fhir_base"),
    path("fhir/", include("careloop.fhir.urls")),
    path("tokens/", include("careloop.accounts.urls")),
    path("hl7/", include("careloop.hl7v2.urls")),
    path("subscriptions/", include("careloop.subscriptions.urls")),
    path("analytics/reports/", include("careloop.analytics.reports.urls")),
    path("analytics/estimates/", include("careloop.analytics.estimate_urls")),
    path("analytics/", include("careloop.analytics.urls")),
    path("segments/", include("careloop.segments.urls")),
    path("risk/", include("careloop.risk.urls")),
    path("sendtime/", include("careloop.sendtime.urls")),
    path("experiments/", include("careloop.experiments.urls")),
    path("insights/", include("careloop.insights.urls")),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]

handler403 = "careloop.web.views.error_403"
handler404 = "careloop.web.views.error_404"
handler500 = "careloop.web.views.error_500"
