"""Portal routes (see careloop.portal.urls): sign-in, sign-out, the installable shell, Me."""

from django.urls import path

from careloop.portal import views

urlpatterns = [
    path("sign-in", views.sign_in, name="sign_in"),
    path("sign-in/code", views.sign_in_code, name="sign_in_code"),
    path("sign-in/choose", views.sign_in_choose, name="sign_in_choose"),
    path("invite/<str:token>", views.invitation, name="invitation"),
    path("sign-out", views.sign_out, name="sign_out"),
    path("manifest.webmanifest", views.manifest, name="manifest"),
    path("sw.js", views.service_worker, name="service_worker"),
    path("me", views.me, name="me"),
    path("me/elder", views.elder_mode, name="elder_mode"),
    path("me/family/grant", views.family_grant, name="family_grant"),
    path("me/family/<int:proxy_id>/revoke", views.family_revoke, name="family_revoke"),
    path("me/family/<int:proxy_id>/notify", views.family_notify, name="family_notify"),
    path("push/subscribe", views.push_subscribe, name="push_subscribe"),
    path("push/unsubscribe", views.push_unsubscribe, name="push_unsubscribe"),
]
