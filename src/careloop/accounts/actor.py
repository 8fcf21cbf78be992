"""Who is acting: the staff member, their scope and where the request came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from careloop.accounts.roles import Action, Role, allowed

if TYPE_CHECKING:
    from django.http import HttpRequest

    from careloop.accounts.models import Staff


@dataclass
class Actor:
    """The authenticated context every service and selector is handed."""

    user: Staff
    source: str = ""
    channel: str = "web"
    _extra: dict[str, object] = field(default_factory=dict, repr=False)
    # Set for an API call allowed only by a token's patient/ scopes: the one patient it reaches
    # (0 when the token is bound to none, which reaches nobody).
    bound_patient_id: int | None = None

    @property
    def organisation_id(self) -> int | None:
        return self.user.organisation_id

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def is_org_wide(self) -> bool:
        """Org admins see every patient of their organisation; others see their departments'."""
        return self.user.role == Role.ORG_ADMIN

    @cached_property
    def department_ids(self) -> frozenset[int]:
        return frozenset(self.user.memberships.values_list("department_id", flat=True))

    def can(self, action: Action) -> bool:
        return (
            self.user.is_active
            and self.user.organisation_id is not None
            and allowed(self.user.role, action)
        )

    @classmethod
    def from_request(cls, request: HttpRequest, channel: str = "web") -> Actor:
        return cls(user=request.user, source=client_address(request), channel=channel)  # type: ignore[arg-type]

    @classmethod
    def from_api(cls, request: HttpRequest) -> Actor:
        """The bearer token's user, as authenticated by the API."""
        return cls(
            user=request.auth,  # type: ignore[attr-defined]
            source=client_address(request),
            channel="api",
            bound_patient_id=getattr(request, "auth_bound_patient_id", None),
        )


def client_address(request: HttpRequest) -> str:
    # Only the socket peer is trusted; a proxy's X-Forwarded-For is honoured by the proxy setup.
    return str(request.META.get("REMOTE_ADDR", ""))[:64]
