"""The text of outbound reminders: sandboxed templates, no diagnosis, a link to the portal.

A template is plain text with placeholders in braces. Only the names in ``PLACEHOLDERS`` are
replaced; anything else in braces is left as written. There is no attribute access, no
expression and no code: an admin-edited template cannot reach data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.utils import translation
from django.utils.translation import gettext as _

PLACEHOLDERS = ("name", "time", "link", "clinic")
_FIELD = re.compile(r"\{(\w+)\}")
_BRACED = re.compile(r"\{([^{}]*)\}")


def fill(template: str, values: Mapping[str, str]) -> str:
    return _FIELD.sub(
        lambda m: values.get(m.group(1), m.group(0)) if m.group(1) in PLACEHOLDERS else m.group(0),
        template,
    )


def unknown_placeholders(template: str) -> list[str]:
    """Every brace expression that is not one of ``PLACEHOLDERS`` ({patient.name}, {0}, {x!r})."""
    return sorted({m for m in _BRACED.findall(template) if m not in PLACEHOLDERS})


def default_body(kind: str, language: str) -> str:
    with translation.override(language):
        bodies = {
            "medication": _(
                "{clinic}: {name}, it is time for your medicine ({time}). Tap to confirm: {link}"
            ),
            "measurement": _(
                "{clinic}: {name}, please take your measurement ({time}) and log it: {link}"
            ),
            "revisit": _("{clinic}: {name}, you have a revisit due ({time}). Details: {link}"),
            "call": _("{clinic}: {name}, our care team will phone you today. Details: {link}"),
            "questionnaire": _(
                "{clinic}: {name}, please fill in your follow-up questionnaire: {link}"
            ),
            "education": _("{clinic}: {name}, new health reading for you: {link}"),
            "appointment": _(
                "{clinic}: {name}, reminder of your appointment at {time}. Details: {link}"
            ),
            "queue": _(
                "{clinic}: {name}, your turn is near. Please come to the consulting room: {link}"
            ),
            "message": _("{clinic}: {name}, you have a new message from your care team: {link}"),
        }
        return bodies.get(kind) or _("{clinic}: {name}, you have a new reminder: {link}")


def default_subject(kind: str, language: str) -> str:
    with translation.override(language):
        return _("A reminder from your care team")
