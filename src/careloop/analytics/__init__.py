"""Metrics of docs/metrics.md, dashboards, exports and monthly reports (R12)."""
