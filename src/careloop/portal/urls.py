"""Routes of the patient portal, at /portal/. Each feature keeps its routes in its own module."""

from careloop.education import portal_urls as education
from careloop.engagement import portal_urls as engagement
from careloop.messaging import portal_urls as messaging
from careloop.portal import auth_urls, today_urls
from careloop.questionnaires import portal_urls as questionnaires

app_name = "portal"

urlpatterns = [
    *auth_urls.urlpatterns,
    *today_urls.urlpatterns,
    *messaging.urlpatterns,
    *questionnaires.urlpatterns,
    *education.urlpatterns,
    *engagement.urlpatterns,
]
