"""Each module registers its metrics with `careloop.analytics.registry` when imported."""

from careloop.analytics.metrics import (  # noqa: F401
    adherence,
    cascade,
    china,
    engagement,
    operations,
    outcomes,
    overdue,
)
