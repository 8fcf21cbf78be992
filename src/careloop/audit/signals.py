"""Logins, logouts and failed logins go on the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from careloop.accounts.actor import client_address
from careloop.audit import services
from careloop.audit.models import Outcome


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.append(
        action="auth.login",
        actor_id=user.pk,
        actor_name=user.get_username(),
        organisation_id=user.organisation_id,
        source=client_address(request) if request else "",
    )


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    services.append(
        action="auth.logout",
        actor_id=user.pk,
        actor_name=user.get_username(),
        organisation_id=user.organisation_id,
        source=client_address(request) if request else "",
    )


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any) -> None:
    # The attempted username is kept (it is what an investigator needs); never the password.
    services.append(
        action="auth.login",
        outcome=Outcome.FAILURE,
        actor_name=str(credentials.get("username", ""))[:150],
        source=client_address(request) if request else "",
        detail={"reason": kw.get("reason", "bad_credentials")},
    )
