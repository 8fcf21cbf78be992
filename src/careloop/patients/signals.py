"""Signals other apps listen to, sent inside the writing transaction (so reactions are atomic).

``record_changed``: a clinical row was created, updated or deleted (kwargs: actor, patient,
kind, row, change). ``patient_changed``: demographics or contact preferences changed.
"""

from __future__ import annotations

from django.dispatch import Signal

record_changed = Signal()
patient_changed = Signal()
