"""Checking an experiment's design: arms, weights, the one control arm, each arm's parameters.

``check_arms`` returns the arms in a clean form (codes, names, integer weights, the control flag
and the factor's parameters) or raises ``ValidationFailed`` with one message per problem, so a
form can show them all at once.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Any

from django.utils.translation import gettext as _

from careloop.careplans import domain
from careloop.channels.port import ChannelKind
from careloop.experiments.models import Factor
from careloop.kit.errors import ValidationFailed
from careloop.reminders import rendering

ARM_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_ARMS = 6
MAX_WEIGHT = 10
MAX_EVERY = 7
LANGUAGES = ("zh-hans", "en")
CHANNELS = tuple(c.value for c in ChannelKind)


def example_arms(factor: str) -> list[dict[str, Any]]:
    """A starting point for the arms of a new experiment of a factor."""
    examples: dict[str, dict[str, Any]] = {
        Factor.WORDING.value: {
            "wording": {
                "zh-hans": "{name}，您的健康由您掌控：{link}",
                "en": "{name}, you are in charge of your health: {link}",
            }
        },
        Factor.CHANNEL.value: {"channel": "wechat"},
        Factor.TIME.value: {"hour": 19},
        Factor.CADENCE.value: {"every": 2},
    }
    params = examples.get(str(factor), {})
    return [
        {"code": "control", "name": "Control", "weight": 1, "control": True, "params": {}},
        {"code": "b", "name": "B", "weight": 1, "control": False, "params": params},
    ]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _params(
    factor: str,
    params: Any,
    label: str,
    errors: list[str],
    quiet: tuple[time | None, time | None],
) -> dict[str, Any]:
    if not isinstance(params, dict):
        errors.append(_("Arm {arm}: the parameters must be an object.").format(arm=label))
        return {}
    if factor == Factor.WORDING:
        wording = params.get("wording")
        if not isinstance(wording, dict) or not any(
            isinstance(wording.get(lang), str) and wording[lang].strip() for lang in LANGUAGES
        ):
            errors.append(
                _('Arm {arm}: give the text in "wording", for "zh-hans" and/or "en".').format(
                    arm=label
                )
            )
            return {}
        clean: dict[str, str] = {}
        for lang, text in wording.items():
            if lang not in LANGUAGES:
                errors.append(
                    _("Arm {arm}: unknown language {lang}; use zh-hans or en.").format(
                        arm=label, lang=lang
                    )
                )
                continue
            if not isinstance(text, str) or not text.strip():
                continue
            if len(text) > 500:
                errors.append(
                    _("Arm {arm}: a text is longer than 500 characters.").format(arm=label)
                )
            unknown = rendering.unknown_placeholders(text)
            if unknown:
                errors.append(
                    _(
                        "Arm {arm}: unknown placeholders {names}; only {known} are filled in."
                    ).format(
                        arm=label,
                        names=", ".join("{" + u + "}" for u in unknown),
                        known=", ".join("{" + p + "}" for p in rendering.PLACEHOLDERS),
                    )
                )
            if "{link}" not in text:
                errors.append(
                    _("Arm {arm}: the text must contain {link} so the patient can answer.").format(
                        arm=label, link="{link}"
                    )
                )
            clean[lang] = text.strip()
        return {"wording": clean}
    if factor == Factor.CHANNEL:
        channel = params.get("channel")
        if channel not in CHANNELS:
            errors.append(
                _("Arm {arm}: choose a channel among {channels}.").format(
                    arm=label, channels=", ".join(CHANNELS)
                )
            )
            return {}
        return {"channel": channel}
    if factor == Factor.TIME:
        hour = _int(params.get("hour"))
        minute = _int(params.get("minute", 0))
        if hour is None or not 0 <= hour <= 23 or minute is None or not 0 <= minute <= 59:
            errors.append(
                _("Arm {arm}: give the local hour (0–23) and optionally the minute.").format(
                    arm=label
                )
            )
            return {}
        if domain.in_quiet_hours(time(hour, minute), *quiet):
            errors.append(
                _("Arm {arm}: {hour} falls in the organisation's quiet hours.").format(
                    arm=label, hour=f"{hour:02d}:{minute:02d}"
                )
            )
        return {"hour": hour, "minute": minute}
    if factor == Factor.CADENCE:
        every = _int(params.get("every"))
        if every is None or not 2 <= every <= MAX_EVERY:
            errors.append(
                _('Arm {arm}: "every" must be a whole number from 2 to {most}.').format(
                    arm=label, most=MAX_EVERY
                )
            )
            return {}
        return {"every": every}
    return {}


def check_arms(
    factor: str, arms: Any, quiet: tuple[time | None, time | None] = (None, None)
) -> list[dict[str, Any]]:
    """The arms cleaned, or ValidationFailed({"arms": [messages]})."""
    errors: list[str] = []
    if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
        raise ValidationFailed(
            details={"arms": [_("Give from 2 to {most} arms.").format(most=MAX_ARMS)]}
        )
    clean: list[dict[str, Any]] = []
    codes: set[str] = set()
    for n, arm in enumerate(arms, start=1):
        if not isinstance(arm, dict):
            errors.append(_("Arm {arm} must be an object.").format(arm=n))
            continue
        code = str(arm.get("code") or "").strip()
        label = code or str(n)
        if not ARM_CODE.match(code):
            errors.append(
                _("Arm {arm}: the code must be lower-case letters, digits, - or _.").format(
                    arm=label
                )
            )
        elif code in codes:
            errors.append(_("Arm {arm}: two arms have this code.").format(arm=label))
        codes.add(code)
        name = str(arm.get("name") or code).strip()[:100]
        weight = _int(arm.get("weight", 1))
        if weight is None or not 1 <= weight <= MAX_WEIGHT:
            errors.append(
                _("Arm {arm}: the weight must be a whole number from 1 to {most}.").format(
                    arm=label, most=MAX_WEIGHT
                )
            )
            weight = 1
        control = arm.get("control") is True
        params = arm.get("params") or {}
        if control:
            if params:
                errors.append(
                    _(
                        "Arm {arm}: the control arm changes nothing; leave its parameters empty."
                    ).format(arm=label)
                )
            params = {}
        else:
            params = _params(factor, params, label, errors, quiet)
        clean.append(
            {"code": code, "name": name, "weight": weight, "control": control, "params": params}
        )
    controls = sum(1 for a in clean if a["control"])
    if controls != 1:
        errors.append(_("Mark exactly one arm as the control arm (found {n}).").format(n=controls))
    if errors:
        raise ValidationFailed(details={"arms": errors})
    return clean
