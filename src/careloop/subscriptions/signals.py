"""Changes that queue deliveries.

Rows saved through the ORM queue their deliveries from ``post_save``, inside the transaction
of the change: the delivery rows commit (or roll back) with it, so a worker restart loses
nothing. Readings and newly raised alerts are written in bulk (raw inserts, ``bulk_create``)
without model signals; the worker's catch-up scan (``scan``) finds those by their time and the
UNIQUE event key keeps a change from being queued twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db import transaction
from django.db.models.signals import post_save

from careloop.kit.clock import utc_now
from careloop.subscriptions import models as sm
from careloop.subscriptions import services

log = logging.getLogger("careloop.subscriptions")

# The watched tables and the field that says when a row was written or last changed.
WATCHED = {
    "observations.Observation": "created_at",
    "alerts.Alert": "raised_at",
    "alerts.Task": "created_at",
    "appointments.Appointment": "updated_at",
}
# How far back each scan looks again: a transaction that wrote rows with earlier times may
# commit after the previous scan.
OVERLAP = timedelta(minutes=10)
BATCH = 500


def _changed(sender: Any, instance: Any, raw: bool = False, **_kw: Any) -> None:
    if raw:
        return  # fixtures
    try:
        with transaction.atomic():
            services.queue(sender, [instance.pk], getattr(instance, "organisation_id", None))
    except Exception:
        # The change itself must not fail because of a subscription; the scan catches up.
        log.exception("queuing subscription deliveries failed for %s %s", sender, instance.pk)


def connect() -> None:
    for label in WATCHED:
        model = apps.get_model(label)
        post_save.connect(_changed, sender=model, dispatch_uid=f"subscriptions:{label}")


def scan(now: Any = None) -> int:
    """Queue deliveries for rows written since the last scan (minus the overlap)."""
    now = now or utc_now()
    active = set(
        sm.Subscription.objects.filter(status__in=services.COLLECTING)
        .values_list("resource_type", "organisation_id")
        .distinct()
    )
    queued = 0
    for label, field in WATCHED.items():
        model = apps.get_model(label)
        types = {m.resource_type for m in services.mappers_for_model(model)}
        orgs = sorted({org for rt, org in active if rt in types})
        with transaction.atomic():
            first = (
                sm.Subscription.objects.filter(status__in=services.COLLECTING)
                .order_by("created_at")
                .values_list("created_at", flat=True)
                .first()
            )
            mark, created = sm.ScanMark.objects.select_for_update().get_or_create(
                name=label, defaults={"scanned_until": min(first or now, now)}
            )
            if not orgs:
                sm.ScanMark.objects.filter(pk=mark.pk).update(scanned_until=now)
                continue
            since = min(mark.scanned_until, now) - OVERLAP
            for org in orgs:
                rows = model._default_manager.filter(
                    organisation_id=org, **{f"{field}__gte": since, f"{field}__lte": now}
                ).order_by("pk")
                ids = list(rows.values_list("pk", flat=True))
                for start in range(0, len(ids), BATCH):
                    queued += services.queue(
                        model, ids[start : start + BATCH], org, time_field=field
                    )
            sm.ScanMark.objects.filter(pk=mark.pk).update(scanned_until=now)
    return queued
