"""Organisations (tenants), departments, care teams, staff and their roles."""
