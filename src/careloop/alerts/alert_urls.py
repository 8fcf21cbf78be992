"""Alert pages at /alerts/: the list, one alert, and what staff do with it."""

from django.urls import path

from careloop.alerts import views

app_name = "alerts"

urlpatterns = [
    path("", views.alert_list, name="list"),
    path("<int:alert_id>/", views.alert_detail, name="detail"),
    path("<int:alert_id>/acknowledge/", views.alert_acknowledge, name="acknowledge"),
    path("<int:alert_id>/resolve/", views.alert_resolve, name="resolve"),
    path("<int:alert_id>/dismiss/", views.alert_dismiss, name="dismiss"),
]
