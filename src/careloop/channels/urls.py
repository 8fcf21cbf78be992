from django.urls import path

from careloop.channels import views

app_name = "channels"

urlpatterns = [
    path("<slug:organisation>/<slug:provider>", views.callback, name="callback"),
]
