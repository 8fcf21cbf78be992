"""Portal routes (see careloop.portal.urls)."""

from django.urls import path

from careloop.education import portal_views as v

urlpatterns = [
    path("learn/", v.learn, name="learn"),
    path("learn/<int:item_id>/", v.learn_item, name="learn_item"),
    path("learn/<int:item_id>/read", v.learn_progress, name="learn_progress"),
    path("learn/<int:item_id>/video", v.learn_video, name="learn_video"),
    path("learn/summaries/<int:summary_id>/", v.learn_summary, name="learn_summary"),
]
