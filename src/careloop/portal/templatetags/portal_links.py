"""``{% portal_link "portal:rewards" _("Rewards") %}``: a link only when the page exists.

Portal features arrive separately; Me links to them once their URL names resolve, and shows
nothing (rather than failing) before that.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def portal_link(name: str, label: Any, icon: str = "") -> str:
    try:
        url = reverse(name)
    except NoReverseMatch:
        return ""
    testid = name.replace(":", "-")
    if icon:
        return format_html(
            '<li><a href="{}" data-testid="link-{}"><span aria-hidden="true">{}</span> {}</a></li>',
            url,
            testid,
            icon,
            label,
        )
    return format_html('<li><a href="{}" data-testid="link-{}">{}</a></li>', url, testid, label)
