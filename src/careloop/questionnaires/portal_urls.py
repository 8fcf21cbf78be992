"""Portal routes (see careloop.portal.urls)."""

from django.urls import URLPattern, path

from careloop.questionnaires import portal_views as views

urlpatterns: list[URLPattern] = [
    path("questionnaires/", views.questionnaire_list, name="questionnaires"),
    path("questionnaires/<int:assignment_id>", views.answer, name="questionnaire_answer"),
    path("questionnaires/results/<int:response_id>", views.result, name="questionnaire_result"),
]
