"""The API tokens page (careloop.accounts.views)."""

from django.urls import path

from careloop.accounts import views

app_name = "tokens"

urlpatterns = [
    path("", views.tokens, name="list"),
    path("revoke/", views.revoke, name="revoke"),
]
