from django.urls import path

from careloop.alerts import views

app_name = "tasks"

urlpatterns = [
    path("", views.task_list, name="list"),
    path("<int:task_id>/close/", views.task_close, name="close"),
]
