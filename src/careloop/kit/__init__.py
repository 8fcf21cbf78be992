"""Domain-agnostic helpers shared by every app."""
