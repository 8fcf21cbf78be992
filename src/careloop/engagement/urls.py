"""Staff routes of engagement, at /engagement/."""

from django.urls import path

from careloop.engagement import views as v

app_name = "engagement"

urlpatterns = [
    path("community/", v.community, name="community"),
    path("community/new/", v.community_create, name="community_create"),
    path("community/<int:community_id>/edit/", v.community_edit, name="community_edit"),
    path("posts/<int:post_id>/moderate/", v.post_moderate, name="post_moderate"),
    path("reports/<int:report_id>/dismiss/", v.report_dismiss, name="report_dismiss"),
    path("sessions/new/", v.session_create, name="session_create"),
    path("sessions/<int:session_id>/", v.session, name="session"),
    path("questions/<int:question_id>/answer/", v.answer, name="answer"),
    path("rewards/", v.rewards, name="rewards"),
    path("rewards/<int:reward_id>/", v.reward_edit, name="reward_edit"),
    path("rules/", v.rules, name="rules"),
    path("redemptions/", v.redemptions, name="redemptions"),
    path("redemptions/<int:redemption_id>/fulfil/", v.redemption_fulfil, name="redemption_fulfil"),
    path("redemptions/<int:redemption_id>/cancel/", v.redemption_cancel, name="redemption_cancel"),
]
