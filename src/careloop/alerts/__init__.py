"""Alerts and the staff worklist: tasks for the responsible nurse or doctor."""
