"""Delivery channels: one port, an adapter per provider (SMS, WeChat, voice, push, e-mail)."""
