from django.urls import path

from careloop.appointments import views

app_name = "appointments"

urlpatterns = [
    path("", views.day_view, name="day"),
    path("book/", views.book_view, name="book"),
    path("book/patients/", views.patient_search, name="patient_search"),
    path("queue/", views.queue_view, name="queue"),
    path("queue/call-next/", views.call_next_view, name="call_next"),
    path("overdue/", views.overdue_view, name="overdue"),
    path("overdue/<int:patient_id>/result/", views.call_result_view, name="call_result"),
    path("patient/<int:patient_id>/", views.patient_view, name="patient"),
    path("schedules/", views.schedules_view, name="schedules"),
    path("schedules/new/", views.schedule_create, name="schedule_create"),
    path("schedules/<int:schedule_id>/", views.schedule_edit, name="schedule_edit"),
    path("slots/<int:slot_id>/status/", views.slot_status_view, name="slot_status"),
    path("<int:appointment_id>/", views.detail, name="detail"),
    path("<int:appointment_id>/reschedule/", views.reschedule_view, name="reschedule"),
    path("<int:appointment_id>/cancel/", views.cancel_view, name="cancel"),
    path("<int:appointment_id>/check-in/", views.check_in_view, name="check_in"),
    path("<int:appointment_id>/no-show/", views.no_show_view, name="no_show"),
    path("<int:appointment_id>/complete/", views.complete_view, name="complete"),
]
