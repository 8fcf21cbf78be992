"""The reward catalogue and redemptions: balance and stock under concurrency, refunds, codes."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from careloop.engagement import domain, services
from careloop.engagement import models as em
from careloop.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.engagement.conftest import actor_of, give_points, race
from tests.portal.client import portal_client

pytestmark = pytest.mark.django_db


def reward(world: Any, **overrides: Any) -> em.Reward:
    data = {"name": "血压计", "description": "上臂式电子血压计", "cost": 100, "stock": 3,
            "active": "on"}  # fmt: skip
    data.update(overrides)
    return services.save_reward(world.actor("admin"), data)


class TestCatalogue:
    def test_admins_keep_the_catalogue_per_organisation(self, world: Any) -> None:
        r = reward(world)
        assert (r.organisation_id, r.cost, r.stock, r.active) == (world.org.pk, 100, 3, True)
        with pytest.raises(Forbidden):
            services.save_reward(
                world.actor("nurse.cardiology"), {"name": "x", "cost": 1, "stock": 1}
            )
        with pytest.raises(NotFound):
            services.save_reward(
                world.actor("admin.other"), {"name": "x", "cost": 1, "stock": 1}, r.pk
            )

    def test_invalid_input_saves_nothing(self, world: Any) -> None:
        with pytest.raises(ValidationFailed) as caught:
            reward(world, cost=0, stock=-1)
        assert set(caught.value.details) == {"cost", "stock"}
        assert not em.Reward.objects.exists()

    def test_the_staff_page_adds_and_edits(self, world: Any, client: Any) -> None:
        client.force_login(world.staff["admin"])
        response = client.post(
            reverse("engagement:rewards"),
            {"name": "计步器", "cost": 300, "stock": 5, "active": "on"},
        )
        assert response.status_code == 302
        r = em.Reward.objects.get()
        client.post(
            reverse("engagement:reward_edit", args=[r.pk]),
            {"name": "计步器", "cost": 250, "stock": 4},
        )
        r.refresh_from_db()
        assert (r.cost, r.stock, r.active) == (250, 4, False)
        page = client.get(reverse("engagement:rewards"))
        assert "计步器" in page.content.decode()


class TestRedeem:
    def test_redeeming_spends_points_takes_stock_and_gives_a_code(
        self, world: Any, patient: Any
    ) -> None:
        r = reward(world)
        give_points(patient, 150)
        redemption = services.redeem(actor_of(patient), r.pk)
        r.refresh_from_db()
        assert r.stock == 2
        assert services.balance(patient.pk) == 50
        assert len(redemption.code) == 8 and redemption.status == "pending"
        entry = em.PointEntry.objects.get(patient=patient, kind=domain.REDEMPTION)
        assert (entry.ref, entry.points) == (f"redemption:{redemption.pk}", -100)

    def test_insufficient_points_are_refused_and_nothing_changes(
        self, world: Any, patient: Any
    ) -> None:
        r = reward(world)
        give_points(patient, 99)
        with pytest.raises(ValidationFailed) as caught:
            services.redeem(actor_of(patient), r.pk)
        assert caught.value.code == "insufficient_points"
        r.refresh_from_db()
        assert r.stock == 3 and services.balance(patient.pk) == 99
        assert not em.Redemption.objects.exists()

    def test_the_last_item_goes_to_one_patient_only(
        self, world: Any, patient: Any, other: Any
    ) -> None:
        r = reward(world, stock=1)
        give_points(patient, 100)
        give_points(other, 100)
        services.redeem(actor_of(patient), r.pk)
        with pytest.raises(Conflict):
            services.redeem(actor_of(other), r.pk)
        assert services.balance(other.pk) == 100
        r.refresh_from_db()
        assert r.stock == 0

    def test_an_inactive_or_foreign_reward_is_not_found(self, world: Any, patient: Any) -> None:
        r = reward(world, active="")
        give_points(patient, 1000)
        with pytest.raises(NotFound):
            services.redeem(actor_of(patient), r.pk)
        foreign = em.Reward.objects.create(organisation=world.other_org, name="x", cost=1, stock=9)
        with pytest.raises(NotFound):
            services.redeem(actor_of(patient), foreign.pk)


class TestCancelAndFulfil:
    def test_cancel_refunds_with_a_reversing_entry_and_returns_the_stock(
        self, world: Any, patient: Any
    ) -> None:
        r = reward(world)
        give_points(patient, 100)
        redemption = services.redeem(actor_of(patient), r.pk)
        services.cancel_by_patient(actor_of(patient), redemption.pk)
        assert services.balance(patient.pk) == 100
        refund = em.PointEntry.objects.get(patient=patient, kind=domain.REFUND)
        assert refund.points == 100
        r.refresh_from_db()
        assert r.stock == 3
        with pytest.raises(Conflict):
            services.cancel_by_patient(actor_of(patient), redemption.pk)
        assert services.balance(patient.pk) == 100  # refunded once

    def test_staff_mark_collected_and_a_collected_one_cannot_be_cancelled(
        self, world: Any, patient: Any
    ) -> None:
        r = reward(world)
        give_points(patient, 100)
        redemption = services.redeem(actor_of(patient), r.pk)
        done = services.fulfil(world.actor("admin"), redemption.pk)
        assert done.status == "fulfilled" and done.closed_by == "admin"
        with pytest.raises(Conflict):
            services.cancel_by_patient(actor_of(patient), redemption.pk)
        with pytest.raises(NotFound):
            services.fulfil(world.actor("admin.other"), redemption.pk)

    def test_staff_cancel_refunds_too(self, world: Any, patient: Any, client: Any) -> None:
        r = reward(world)
        give_points(patient, 100)
        redemption = services.redeem(actor_of(patient), r.pk)
        client.force_login(world.staff["admin"])
        page = client.get(reverse("engagement:redemptions") + f"?code={redemption.code.lower()}")
        assert redemption.code in page.content.decode()
        assert patient.name not in page.content.decode()
        client.post(reverse("engagement:redemption_cancel", args=[redemption.pk]))
        redemption.refresh_from_db()
        assert redemption.status == "cancelled"
        assert services.balance(patient.pk) == 100


class TestPortal:
    def test_redeem_through_the_confirmation_page(self, world: Any, patient: Any) -> None:
        r = reward(world)
        give_points(patient, 120)
        client = portal_client(patient)
        confirm = client.get(reverse("portal:redeem", args=[r.pk]))
        assert confirm.status_code == 200
        assert em.Redemption.objects.count() == 0  # looking is not redeeming
        response = client.post(reverse("portal:redeem", args=[r.pk]), follow=True)
        redemption = em.Redemption.objects.get()
        assert redemption.code in response.content.decode()
        assert services.balance(patient.pk) == 20

    def test_not_enough_points_shows_why(self, world: Any, patient: Any) -> None:
        r = reward(world)
        give_points(patient, 10)
        response = portal_client(patient).post(reverse("portal:redeem", args=[r.pk]))
        assert response.status_code == 422
        assert "You need 100 points" in response.content.decode()

    def test_another_patients_redemption_is_not_found(
        self, world: Any, patient: Any, other: Any
    ) -> None:
        r = reward(world)
        give_points(patient, 100)
        redemption = services.redeem(actor_of(patient), r.pk)
        intruder = portal_client(other)
        assert intruder.get(reverse("portal:redemption", args=[redemption.pk])).status_code == 404
        response = intruder.post(reverse("portal:redemption_cancel", args=[redemption.pk]))
        assert response.status_code == 404
        redemption.refresh_from_db()
        assert redemption.status == "pending"

    def test_cancel_from_the_portal(self, world: Any, patient: Any) -> None:
        r = reward(world)
        give_points(patient, 100)
        redemption = services.redeem(actor_of(patient), r.pk)
        client = portal_client(patient)
        client.post(reverse("portal:redemption_cancel", args=[redemption.pk]))
        redemption.refresh_from_db()
        assert redemption.status == "cancelled"
        assert services.balance(patient.pk) == 100


@pytest.mark.django_db(transaction=True)
class TestRaces:
    def test_two_patients_race_for_the_last_item(
        self, racing_db: Any, world: Any, make_patient: Any
    ) -> None:
        r = reward(world, stock=1)
        racers = [make_patient() for _ in range(2)]
        for p in racers:
            give_points(p, 100)
        results = race(lambda i: services.redeem(actor_of(racers[i]), r.pk), 2)
        won = [x for x in results if isinstance(x, em.Redemption)]
        lost = [x for x in results if not isinstance(x, em.Redemption)]
        assert len(won) == 1, results
        assert len(lost) == 1 and isinstance(lost[0], Conflict), lost
        r.refresh_from_db()
        assert r.stock == 0
        assert sorted(services.balance(p.pk) for p in racers) == [0, 100]

    def test_one_patient_cannot_spend_the_same_points_twice(
        self, racing_db: Any, world: Any, make_patient: Any
    ) -> None:
        r = reward(world, stock=10)
        p = make_patient()
        give_points(p, 150)
        results = race(lambda i: services.redeem(actor_of(p), r.pk), 4)
        won = [x for x in results if isinstance(x, em.Redemption)]
        assert len(won) == 1, results
        assert all(isinstance(x, ValidationFailed) for x in results if x not in won), results
        assert services.balance(p.pk) == 50
        r.refresh_from_db()
        assert r.stock == 9
