"""Staff routes of the portal-access panel, at /portal-access/."""

from django.urls import path

from careloop.portal import staff_views

app_name = "portal_staff"

urlpatterns = [
    path("<int:patient_id>/", staff_views.panel, name="panel"),
    path("<int:patient_id>/invite/", staff_views.invite, name="invite"),
    path("<int:patient_id>/sessions/revoke/", staff_views.revoke_sessions, name="revoke_sessions"),
    path("<int:patient_id>/family/", staff_views.proxy_grant, name="proxy_grant"),
    path(
        "<int:patient_id>/family/<int:proxy_id>/revoke/",
        staff_views.proxy_revoke,
        name="proxy_revoke",
    ),
]
