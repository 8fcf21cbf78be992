"""Run fake providers for channels configured on loopback, so a demo sends real requests."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from careloop.channels.fakes.aliyun import FakeAliyun

_running: dict[int, FakeAliyun] = {}


def start_loopback_fakes() -> list[str]:
    """Start a fake Aliyun API for each Aliyun channel whose endpoint is 127.0.0.1:<port>."""
    from careloop.channels.models import ChannelConfig

    if settings.PRODUCTION:
        raise ImproperlyConfigured("fake providers are refused in production mode")
    lines = []
    for cfg in ChannelConfig.objects.filter(provider__in=["aliyun_sms", "aliyun_voice"]):
        conf = cfg.config
        parts = urlsplit(str(conf.get("endpoint", "")))
        if parts.hostname != "127.0.0.1" or not parts.port or parts.port in _running:
            continue
        fake = FakeAliyun(
            port=parts.port,
            access_key_id=str(conf["access_key_id"]),
            access_key_secret=str(conf["access_key_secret"]),
            callback_token=str(conf.get("callback_token", "")),
            log_path=settings.VAR_DIR / "fake-sms.jsonl",
        )
        fake.start()
        _running[parts.port] = fake
        lines.append(f"fake SMS/voice provider (Aliyun API) on {fake.url}, log var/fake-sms.jsonl")
    return lines
