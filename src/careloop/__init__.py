"""CareLoop: post-visit patient management for clinics and hospitals."""

__version__ = "0.1.0"
