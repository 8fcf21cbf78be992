from django.urls import path

from careloop.subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("", views.subscription_list, name="list"),
    path("<int:subscription_id>/retry", views.retry, name="retry"),
    path("<int:subscription_id>/off", views.turn_off, name="off"),
    path("hosts/", views.allow_host, name="allow_host"),
    path("hosts/<int:host_id>/remove", views.remove_host, name="remove_host"),
]
