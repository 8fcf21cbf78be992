"""Local fakes of every provider API, for tests, the demo and benchmarks.

Each fake listens on 127.0.0.1 (port 0 picks a free port), checks request signatures the way
the provider does and answers with the provider's own error shapes, records every accepted
message with its caller reference (in memory, and as JSON lines when given ``log_path``),
answers the lookups ``reconcile`` uses, and can be told to fail (``fail_next``,
``fail_numbers``) or to be slow (``latency``). ``fake.config()`` is an adapter configuration
pointing at the fake. ``python -m careloop.channels.fakes NAME`` runs one in its own process.
"""

from __future__ import annotations

from typing import Any

from careloop.channels.fakes.aliyun import FakeAliyun
from careloop.channels.fakes.base import FakeRequest, FakeResponse, FakeServer, Recorder, Sent
from careloop.channels.fakes.smtp import FakeSmtp
from careloop.channels.fakes.tencent import FakeTencent
from careloop.channels.fakes.twilio import FakeTwilio
from careloop.channels.fakes.webpush import FakePushService
from careloop.channels.fakes.wechat import FakeWeChat

# provider name -> fake that serves it
FAKES: dict[str, type[Recorder]] = {
    "aliyun_sms": FakeAliyun,
    "aliyun_voice": FakeAliyun,
    "tencent_sms": FakeTencent,
    "tencent_voice": FakeTencent,
    "twilio_sms": FakeTwilio,
    "wechat": FakeWeChat,
    "webpush": FakePushService,
    "smtp": FakeSmtp,
}


def start_fake(provider: str, **kwargs: Any) -> Any:
    """Start the fake for ``provider``; stop it with ``.stop()``. Its settings: ``.config()``."""
    fake = FAKES[provider](**kwargs)
    return fake.start()  # type: ignore[attr-defined]


__all__ = [
    "FAKES",
    "FakeAliyun",
    "FakePushService",
    "FakeRequest",
    "FakeResponse",
    "FakeServer",
    "FakeSmtp",
    "FakeTencent",
    "FakeTwilio",
    "FakeWeChat",
    "Recorder",
    "Sent",
    "start_fake",
]
