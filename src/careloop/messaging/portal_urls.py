"""Portal routes (see careloop.portal.urls)."""

from django.urls import path

from careloop.messaging import portal_views as views

urlpatterns = [
    path("messages/", views.messages, name="messages"),
    path("messages/<int:thread_id>/", views.thread, name="thread"),
    path("messages/<int:thread_id>/send/", views.message_send, name="message_send"),
    path("attachments/<int:attachment_id>/", views.attachment, name="attachment"),
]
