"""Routes of the area estimates page, at /analytics/estimates/."""

from django.urls import path

from careloop.analytics import estimates as v

app_name = "analytics_estimates"

urlpatterns = [
    path("", v.estimates, name="list"),
    path("<int:estimate_id>/delete/", v.estimate_delete, name="delete"),
]
