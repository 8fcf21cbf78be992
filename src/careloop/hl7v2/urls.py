from django.urls import path

from careloop.hl7v2 import views

app_name = "hl7v2"

urlpatterns = [
    path("", views.message_list, name="list"),
    path("<int:message_id>/replay", views.replay, name="replay"),
]
