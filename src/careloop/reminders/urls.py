from django.urls import path

from careloop.reminders import views

app_name = "reminders"

urlpatterns = [
    path("<str:token>", views.link, name="link"),
]
