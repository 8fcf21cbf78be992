"""Synthetic, reproducible demo data: an organisation, its staff and its patients."""
