"""The endpoint guard: where a subscription may send (server-side request forgery defence).

An endpoint must be ``http`` or ``https`` with a host name and no user name or password. Its
host is resolved, and every address it resolves to must be public: loopback, private
(RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10, so also the cloud metadata address),
multicast, unspecified, reserved, shared (CGNAT, 100.64/10) and IPv4 inside IPv6 forms of those
are refused, unless an admin of the organisation allowed that exact host
(``subscriptions.AllowedHost``). The check runs when the subscription is saved and again at
every send, and the sender connects to the address that was checked (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_EXTRA_V4 = (
    _CGNAT,
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("255.255.255.255/32"),
)
_EXTRA_V6 = (
    ipaddress.ip_network("fc00::/7"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 reaches IPv4 addresses
    ipaddress.ip_network("2002::/16"),  # 6to4
    ipaddress.ip_network("2001::/32"),  # Teredo
)


class Refused(ValueError):
    """The endpoint may not be used; the message says why (user-facing)."""


@dataclass(frozen=True)
class Target:
    """A checked endpoint: where to connect and what to ask for."""

    scheme: str
    host: str  # as in the URL (the Host header, and the TLS server name)
    port: int
    path: str  # path and query
    address: str  # the checked IP address to connect to
    allowed: bool  # the host is on the organisation's allow-list


def blocked(address: str) -> bool:
    """Whether an IP address is internal (may not be reached without an allow-list entry)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return blocked(str(embedded))
        if any(ip in net for net in _EXTRA_V6):
            return True
    elif any(ip in net for net in _EXTRA_V4):
        return True
    return bool(
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or not ip.is_global
    )


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an endpoint URL; Refused if it is not a plain http(s) URL."""
    if not isinstance(url, str) or not url or len(url) > 1000:
        raise Refused(_("The endpoint must be an http or https URL."))
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        raise Refused(_("The endpoint contains spaces, control characters or backslashes."))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused(_("The endpoint is not a valid URL.")) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused(_("Only http and https endpoints are allowed."))
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise Refused(_("The endpoint may not contain a user name or password."))
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused(_("The endpoint has no host."))
    if parts.fragment:
        raise Refused(_("The endpoint may not contain a fragment."))
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port or (443 if scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(_("The endpoint host cannot be resolved.")) from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise Refused(_("The endpoint host cannot be resolved."))
    return addresses


def check(url: str, allowed_hosts: set[str] | frozenset[str]) -> Target:
    """The endpoint, resolved and checked; Refused with the reason otherwise."""
    scheme, host, port, path = parse(url)
    addresses = _resolve(host, port)
    allowed = host in allowed_hosts
    if not allowed:
        for address in addresses:
            if blocked(address):
                raise Refused(
                    _(
                        "The endpoint resolves to an internal address (%(address)s); ask an "
                        "organisation admin to allow this host if it is meant."
                    )
                    % {"address": address}
                )
    return Target(scheme, host, port, path, addresses[0], allowed)
