"""Portal routes of the patient's day: Today, doses and readings, appointments, History, My plan
and My care team (see careloop.portal.urls; views in careloop.portal.today_views)."""

from django.urls import URLPattern, path

from careloop.portal import today_views as views

urlpatterns: list[URLPattern] = [
    path("", views.today_page, name="today"),
    path("doses/<int:occurrence_id>", views.dose, name="dose"),
    path("readings", views.reading, name="reading"),
    path("appointments", views.appointments, name="appointments"),
    path("appointments/book", views.appointment_book, name="appointment_book"),
    path(
        "appointments/<int:appointment_id>/reschedule",
        views.appointment_reschedule,
        name="appointment_reschedule",
    ),
    path(
        "appointments/<int:appointment_id>/cancel",
        views.appointment_cancel,
        name="appointment_cancel",
    ),
    path("history", views.history, name="history"),
    path("plan", views.plan, name="plan"),
    path("team", views.team, name="team"),
]
