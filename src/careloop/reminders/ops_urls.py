from django.urls import path

from careloop.reminders import ops_views

app_name = "operations"

urlpatterns = [
    path("", ops_views.dashboard, name="dashboard"),
    path("dead-letters/<int:occurrence_id>/retry/", ops_views.retry, name="retry"),
    path("dispatch/", ops_views.dispatch, name="dispatch"),
]
