"""The inbox count in the staff navigation."""

from __future__ import annotations

from typing import Any

from django import template

from careloop.accounts.actor import Actor

register = template.Library()


@register.simple_tag(takes_context=True)
def inbox_unassigned(context: dict[str, Any]) -> int:
    """Open, unassigned conversations of the signed-in staff member's departments."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    from careloop.messaging import selectors

    return selectors.waiting_count(Actor(user=user))


@register.filter
def in_language(department: Any) -> str:
    """A department's name in the page's language."""
    from django.utils.translation import get_language

    return str(department.label(get_language())) if department is not None else ""
