"""Shared staff-UI pieces: base layout, login, language switch, health, error pages."""
