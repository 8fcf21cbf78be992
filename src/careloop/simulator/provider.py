"""The simulation's delivery providers: SMS, WeChat and voice that never leave the process.

They exist only while a simulation runs (``install()`` adds them to the channel registry of
that process) and only the simulated organisation's channel settings name them. A worker of a
real deployment that meets one of those settings knows no such provider and dead-letters the
reminder with a configuration error: nothing simulated is ever sent to a real patient.
"""

from __future__ import annotations

import itertools

from careloop.channels import registry
from careloop.channels.base import BaseAdapter
from careloop.channels.port import (
    ChannelKind,
    Message,
    PermanentError,
    PermanentReason,
    Reconciled,
    SendResult,
)

PROVIDERS = {
    ChannelKind.SMS: "simulation_sms",
    ChannelKind.WECHAT: "simulation_wechat",
    ChannelKind.VOICE: "simulation_voice",
}
_counter = itertools.count(1)


class SimulationAdapter(BaseAdapter):
    """Accepts every message with an address at once; the simulated patient reads it later."""

    batch_size = 500

    def send(self, message: Message) -> SendResult:
        if not message.to:
            raise PermanentError(
                f"{self.provider}: no address",
                code="no_address",
                reason=PermanentReason.NO_ADDRESS,
            )
        return SendResult(provider_message_id=f"sim-{next(_counter)}")

    def reconcile(self, message: Message) -> Reconciled:
        return Reconciled.ACCEPTED  # nothing is in doubt inside one process


class SimulationSms(SimulationAdapter):
    kind = ChannelKind.SMS
    provider = PROVIDERS[ChannelKind.SMS]


class SimulationWeChat(SimulationAdapter):
    kind = ChannelKind.WECHAT
    provider = PROVIDERS[ChannelKind.WECHAT]


class SimulationVoice(SimulationAdapter):
    kind = ChannelKind.VOICE
    provider = PROVIDERS[ChannelKind.VOICE]


_ADAPTERS: dict[ChannelKind, type[SimulationAdapter]] = {
    ChannelKind.SMS: SimulationSms,
    ChannelKind.WECHAT: SimulationWeChat,
    ChannelKind.VOICE: SimulationVoice,
}


def install() -> None:
    """Make the simulation providers known to this process's channel registry (idempotent)."""
    for kind, adapter in _ADAPTERS.items():
        name = PROVIDERS[kind]
        registry._INFO[name] = registry.ProviderInfo(kind, adapter, (), ())


def uninstall() -> None:
    for kind in _ADAPTERS:
        registry._INFO.pop(PROVIDERS[kind], None)
