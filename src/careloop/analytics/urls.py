"""The analytics pages (included at /analytics/; access rules in careloop.web.access)."""

from django.urls import path

from careloop.analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    # Fixed first segments before the metric's own addresses (no metric is called so).
    path("card/<str:metric>/", views.card, name="card"),
    path("export/<str:metric>/", views.metric_export, name="metric_export"),
    path("export/<str:metric>/<str:part>/", views.drilldown_export, name="drilldown_export"),
    path("<str:metric>/", views.metric_detail, name="metric"),
    path("<str:metric>/<str:part>/", views.drilldown, name="drilldown"),
]
