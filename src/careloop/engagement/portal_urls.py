"""Portal routes (see careloop.portal.urls)."""

from django.urls import path

from careloop.engagement import portal_views as v

urlpatterns = [
    path("rewards/", v.rewards, name="rewards"),
    path("rewards/check-in/", v.check_in, name="check_in"),
    path("rewards/<int:reward_id>/redeem/", v.redeem, name="redeem"),
    path("redemptions/<int:redemption_id>/", v.redemption, name="redemption"),
    path("redemptions/<int:redemption_id>/cancel/", v.redemption_cancel, name="redemption_cancel"),
    path("leaderboard/", v.leaderboard, name="leaderboard"),
    path("community/", v.community, name="community"),
    path("community/<int:community_id>/", v.community_detail, name="community_detail"),
    path("community/<int:community_id>/join/", v.community_join, name="community_join"),
    path("community/<int:community_id>/leave/", v.community_leave, name="community_leave"),
    path("community/<int:community_id>/post/", v.post_create, name="post_create"),
    path("posts/<int:post_id>/", v.post, name="post"),
    path("posts/<int:post_id>/reply/", v.post_reply, name="post_reply"),
    path("posts/<int:post_id>/edit/", v.post_edit, name="post_edit"),
    path("posts/<int:post_id>/report/", v.post_report, name="post_report"),
    path("sessions/<int:session_id>/", v.expert_session, name="expert_session"),
]
