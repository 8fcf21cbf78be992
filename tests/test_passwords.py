"""Staff passwords are stored with Argon2 and checked against the policy."""

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from careloop.accounts import services as accounts


@pytest.mark.argon2
class TestPasswordStorage:
    def test_new_accounts_are_hashed_with_argon2(self, db):
        staff = accounts.create_staff(
            organisation_id=None, username="x", password="Tr1cky-Pass", role="nurse"
        )
        assert staff.password.startswith("argon2$")
        assert staff.check_password("Tr1cky-Pass")
        assert not staff.check_password("tr1cky-pass")

    @pytest.mark.parametrize("weak", ["short1", "password123", "12345678901"])
    def test_weak_passwords_are_refused(self, db, weak):
        with pytest.raises(ValidationError):
            validate_password(weak)
