"""No double booking under concurrency: ten bookings race for the last place of a slot."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from careloop.appointments import models as am
from careloop.appointments import services
from careloop.kit.errors import CareLoopError
from tests.appointments.conftest import TUE, race

RACERS = 10


@pytest.mark.django_db(transaction=True)
class TestLastPlace:
    def test_exactly_one_of_ten_concurrent_bookings_wins(
        self, racing_db: Any, clinic: Any, make_patient: Any
    ) -> None:
        clinic.schedule(capacity=2)
        slot = clinic.slot(TUE, 9)
        first = make_patient()
        services.book(clinic.nurse, first.pk, slot.pk)
        patients = [make_patient() for _ in range(RACERS)]

        results = race(lambda i: services.book(clinic.nurse, patients[i].pk, slot.pk), RACERS)

        won = [r for r in results if isinstance(r, services.Booking)]
        lost = [r for r in results if not isinstance(r, services.Booking)]
        assert len(won) == 1, results
        assert all(isinstance(r, services.SlotFull) for r in lost), lost
        assert all(isinstance(r, CareLoopError) and r.status == 409 for r in lost)
        slot.refresh_from_db()
        assert (slot.booked, slot.capacity) == (2, 2)
        assert am.Appointment.objects.filter(slot=slot, status="booked").count() == 2
        assert connection.vendor in ("sqlite", "postgresql")
