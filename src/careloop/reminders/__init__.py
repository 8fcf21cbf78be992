"""Reminder occurrences, the dispatcher and the escalation ladder."""
