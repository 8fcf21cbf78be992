"""Outbox: the message is kept in CareLoop for the patient portal and staff; nothing leaves.

The dispatcher stores the message row itself; this adapter only hands back an id. Because no
outside system is involved, an in-doubt outbox send is always safe to repeat (``NOT_FOUND``).

Settings: none.
"""

from __future__ import annotations

import uuid

from careloop.channels.base import BaseAdapter, no_address
from careloop.channels.port import (
    ChannelKind,
    Message,
    Reconciled,
    SendResult,
)

CONFIG_KEYS: tuple[str, ...] = ()
SECRET_KEYS: tuple[str, ...] = ()


class OutboxAdapter(BaseAdapter):
    kind = ChannelKind.OUTBOX
    provider = "outbox"
    batch_size = 500

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise no_address(self.provider)
        return SendResult(provider_message_id=f"outbox-{uuid.uuid4().hex}")

    def reconcile(self, message: Message) -> Reconciled:
        return Reconciled.NOT_FOUND
