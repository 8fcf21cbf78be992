"""The audit trail: an append-only, hash-chained record of every access to patient data."""
