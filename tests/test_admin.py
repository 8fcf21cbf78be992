"""Organisation set-up in the Django admin stays inside the admin's own organisation."""

import pytest
from django.test import Client

from careloop.accounts.models import Department, Staff
from careloop.audit.models import AuditEvent
from careloop.kit.clock import utc_now


@pytest.fixture
def admin_client(world):
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(world.staff["admin"])
    return client


class TestOrgAdminScope:
    def test_staff_list_shows_only_own_organisation(self, world, admin_client):
        page = admin_client.get("/admin/accounts/staff/").content.decode()
        assert "nurse.cardiology" in page
        assert "nurse.other" not in page

    def test_other_organisations_staff_cannot_be_opened(self, world, admin_client):
        other = world.staff["nurse.other"]
        response = admin_client.get(f"/admin/accounts/staff/{other.pk}/change/")
        assert response.status_code in (302, 404)
        assert "nurse.other" not in response.content.decode()

    def test_new_department_belongs_to_the_admins_organisation(self, world, admin_client):
        response = admin_client.post(
            "/admin/accounts/department/add/",
            {
                "code": "surgery",
                "name": "普外科",
                "name_en": "Surgery",
                "organisation": world.other_org.pk,
            },
        )
        assert response.status_code == 302
        assert Department.objects.get(code="surgery").organisation_id == world.org.pk

    def test_department_drop_down_offers_only_own_departments(self, world, admin_client):
        nurse = world.staff["nurse.cardiology"]
        page = admin_client.get(f"/admin/accounts/staff/{nurse.pk}/change/").content.decode()
        assert f'<option value="{world.cardio.pk}"' in page
        assert f'<option value="{world.other_dept.pk}"' not in page

    def test_role_change_is_audited_and_disabling_revokes_tokens(self, world, admin_client, token):
        nurse = world.staff["nurse.cardiology"]
        raw = token("nurse.cardiology")
        page = admin_client.get(f"/admin/accounts/staff/{nurse.pk}/change/")
        form = page.context["adminform"].form
        data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
        data.update(
            {
                "username": nurse.username,
                "role": "doctor",
                "is_active": "",
                "date_joined_0": "2026-01-01",
                "date_joined_1": "00:00:00",
                "memberships-TOTAL_FORMS": "0",
                "memberships-INITIAL_FORMS": "0",
            }
        )
        response = admin_client.post(f"/admin/accounts/staff/{nurse.pk}/change/", data)
        assert response.status_code == 302, response.content.decode()[:2000]
        nurse.refresh_from_db()
        assert nurse.role == "doctor" and not nurse.is_active
        event = AuditEvent.objects.filter(action="staff.update").latest("id")
        assert event.detail["role"] == "doctor"
        api = Client(HTTP_HOST="127.0.0.1")
        assert api.get("/api/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401

    def test_nurse_cannot_enter_the_admin(self, world):
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(Staff.objects.get(username="nurse.cardiology"))
        assert client.get("/admin/accounts/staff/").status_code == 302


class TestSecondFactorReset:
    def test_the_staff_list_action_resets_a_lost_factor_and_audits_it(self, world, admin_client):
        from careloop.accounts.models import SecondFactor

        nurse = world.staff["nurse.cardiology"]
        SecondFactor.objects.create(staff=nurse, secret="JBSWY3DPEHPK3PXP", confirmed_at=utc_now())
        response = admin_client.post(
            "/admin/accounts/staff/",
            {"action": "reset_second_factor", "_selected_action": [nurse.pk]},
            follow=True,
        )
        assert response.status_code == 200
        assert not SecondFactor.objects.filter(staff=nurse).exists()
        assert AuditEvent.objects.filter(
            action="auth.second_factor_reset", object_id=str(nurse.pk)
        ).exists()

    def test_another_organisations_staff_cannot_be_reset(self, world, admin_client):
        from careloop.accounts.models import SecondFactor

        other = world.staff["admin.other"]
        SecondFactor.objects.create(staff=other, secret="JBSWY3DPEHPK3PXP", confirmed_at=utc_now())
        admin_client.post(
            "/admin/accounts/staff/",
            {"action": "reset_second_factor", "_selected_action": [other.pk]},
        )
        assert SecondFactor.objects.filter(staff=other).exists()
