"""Staff routes, at /inbox/."""

from django.urls import path

from careloop.messaging import views

app_name = "messaging"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("<int:thread_id>/", views.thread, name="thread"),
    path("<int:thread_id>/reply/", views.reply, name="reply"),
    path("<int:thread_id>/assign/", views.assign, name="assign"),
    path("<int:thread_id>/close/", views.close, name="close"),
    path("<int:thread_id>/reopen/", views.reopen, name="reopen"),
    path("attachments/<int:attachment_id>/", views.attachment, name="attachment"),
    path("patients/<int:patient_id>/", views.patient, name="patient"),
]
