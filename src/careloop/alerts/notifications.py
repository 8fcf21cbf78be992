"""Telling the person on call about urgent alerts, through the organisation's channels.

`queue_urgent` runs in the transaction that raised the alerts and writes one Notification row
per alert, person and channel (a unique dedupe key, so a retry or a replay never queues twice);
the worker sends pending rows after commit and records each try.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from careloop.accounts.models import Staff
from careloop.alerts import models as am
from careloop.kit.clock import utc_now


def recipients(
    alert: am.Alert, shifts: dict[int, list[am.OnCall]] | None = None, step: str = "raised"
) -> list[tuple[int, str, str]]:
    """(staff, channel, address) to tell about an urgent alert: whoever is on call for the
    department now (by SMS and e-mail when the rota gives them), else the alert's owner in the
    app's own inbox. An escalated alert goes to the person it was escalated to."""
    if step == "escalated" and alert.escalated_to_id is not None:
        return reach(alert.escalated_to_id)
    if shifts is None:
        shifts = current_shifts([alert.department_id] if alert.department_id else [])
    found: list[tuple[int, str, str]] = []
    for shift in shifts.get(alert.department_id or 0, []):
        if shift.phone:
            found.append((shift.staff_id, "sms", shift.phone))
        if shift.email:
            found.append((shift.staff_id, "email", shift.email))
        if not shift.phone and not shift.email:
            found.append((shift.staff_id, "inbox", ""))
    if not found and alert.owner_id is not None:
        found.append((alert.owner_id, "inbox", ""))
    return found


def reach(staff_id: int) -> list[tuple[int, str, str]]:
    """How to reach one person: the phone and e-mail of their current rota shift, else of
    their latest one, else their account's e-mail; the app's inbox when none is known."""
    now = utc_now()
    shifts = am.OnCall.objects.filter(staff_id=staff_id)
    shift = (
        shifts.filter(starts_at__lte=now, ends_at__gt=now).order_by("-starts_at").first()
        or shifts.order_by("-ends_at").first()
    )
    phone = shift.phone if shift else ""
    email = (shift.email if shift else "") or (
        Staff.objects.filter(pk=staff_id).values_list("email", flat=True).first() or ""
    )
    pairs = (("sms", phone), ("email", email))
    found = [(staff_id, channel, address) for channel, address in pairs if address]
    return found or [(staff_id, "inbox", "")]


def current_shifts(department_ids: Iterable[int]) -> dict[int, list[am.OnCall]]:
    now = utc_now()
    found: dict[int, list[am.OnCall]] = {}
    for shift in am.OnCall.objects.filter(
        department_id__in=list(set(department_ids)), starts_at__lte=now, ends_at__gt=now
    ).order_by("starts_at"):
        found.setdefault(shift.department_id, []).append(shift)
    return found


def queue_urgent(alert_ids: Iterable[int], *, step: str = "raised") -> int:
    """Queue notifications for urgent alerts (idempotent per alert, step, person and channel)."""
    queued = pending = 0
    alerts = list(am.Alert.objects.filter(pk__in=list(alert_ids)))
    shifts = current_shifts(a.department_id for a in alerts if a.department_id)
    wanted: dict[str, am.Notification] = {}
    now = utc_now()
    for alert in alerts:
        for staff_id, channel, address in recipients(alert, shifts, step):
            key = f"alert:{alert.pk}:{step}:{staff_id}:{channel}"
            wanted[key] = am.Notification(
                alert=alert,
                staff_id=staff_id,
                channel=channel,
                address=address,
                dedupe_key=key,
                status="sent" if channel == "inbox" else "pending",
                sent_at=now if channel == "inbox" else None,
            )
    if wanted:
        existing = set(
            am.Notification.objects.filter(dedupe_key__in=list(wanted)).values_list(
                "dedupe_key", flat=True
            )
        )
        fresh = [n for key, n in wanted.items() if key not in existing]
        # The dedupe key is unique: a concurrent queue of the same alert inserts nothing twice.
        am.Notification.objects.bulk_create(fresh, ignore_conflicts=True)
        queued = len(fresh)
        pending = sum(1 for n in fresh if n.channel != "inbox")
    if pending:
        from careloop.alerts import sending

        transaction.on_commit(sending.wake)
    return queued
