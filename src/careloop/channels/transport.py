"""HTTP for adapters: timeouts always set, no redirects, errors that never carry a URL or body.

Provider URLs can hold credentials (WeChat puts the app secret and access token in the query
string) and request bodies hold phone numbers and message text, so nothing raised or logged
here repeats either: an exception says which provider, what kind of failure and the status.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from careloop.channels.port import PermanentError, PermanentReason, TransientError

logger = logging.getLogger("careloop.channels")

DEFAULT_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 1 << 20


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self, provider: str) -> Any:
        """The body as JSON; an unreadable body is the provider's fault, so worth a retry."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise TransientError(
                f"{provider}: unreadable response (HTTP {self.status})", code="bad_response"
            ) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Provider APIs never redirect; following one could send credentials elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def request(
    provider: str,
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> HttpResponse:
    """One HTTP exchange. Network failures and timeouts raise ``TransientError``."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise PermanentError(
            f"{provider}: endpoint must be an http(s) URL",
            code="bad_endpoint",
            reason=PermanentReason.CONFIGURATION,
        )
    # The scheme was checked above: only http(s) reaches urllib.
    req = urllib.request.Request(  # noqa: S310
        url, data=body, method=method, headers=dict(headers or {})
    )
    try:
        with _opener.open(req, timeout=timeout) as resp:
            data = resp.read(MAX_RESPONSE_BYTES)
            return HttpResponse(resp.status, data, _lower(resp.headers.items()))
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read(MAX_RESPONSE_BYTES) if exc.fp is not None else b""
        except (OSError, http.client.HTTPException):
            data = b""
        status = exc.code
        hdrs = _lower(exc.headers.items()) if exc.headers is not None else {}
        exc.close()
        return HttpResponse(status, data, hdrs)
    except TimeoutError:
        raise TransientError(f"{provider}: request timed out", code="timeout") from None
    except urllib.error.URLError as exc:
        kind = type(exc.reason).__name__ if isinstance(exc.reason, BaseException) else "error"
        if isinstance(exc.reason, TimeoutError):
            raise TransientError(f"{provider}: request timed out", code="timeout") from None
        raise TransientError(f"{provider}: connection failed ({kind})", code="network") from None
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(
            f"{provider}: connection failed ({type(exc).__name__})", code="network"
        ) from None
    except ValueError:
        raise PermanentError(
            f"{provider}: endpoint is not a valid URL",
            code="bad_endpoint",
            reason=PermanentReason.CONFIGURATION,
        ) from None


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def timeout_of(config: Mapping[str, Any]) -> float:
    """The ``timeout`` setting in seconds (default 10), bounded to something sane."""
    raw = config.get("timeout") or DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise PermanentError(
            "channel setting 'timeout' is not a number", reason=PermanentReason.CONFIGURATION
        ) from None
    return min(max(value, 0.1), 120.0)


def flag(config: Mapping[str, Any], name: str, default: bool = False) -> bool:
    """A boolean setting that may arrive as a string from a form or environment."""
    value = config.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def reference(dedupe_key: str, limit: int) -> str:
    """The dedupe key as a provider caller reference: unchanged when it fits, else a digest."""
    if len(dedupe_key.encode("utf-8")) <= limit:
        return dedupe_key
    return "h-" + hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[: max(limit - 2, 8)]


def digest(*parts: str, length: int = 32) -> str:
    """A stable short digest of some values, for event ids built from callback fields."""
    joined = "\x1f".join(parts).encode("utf-8")
    return hashlib.sha256(joined).hexdigest()[:length]


def log_result(provider: str, action: str, dedupe_key: str, outcome: str, code: str = "") -> None:
    """One line per provider call: provider, action, our key, outcome; never address or body."""
    logger.info(
        "channel %s %s key=%s outcome=%s code=%s", provider, action, dedupe_key, outcome, code
    )
