"""Request and callback signatures of the providers, shared by the adapters and the fakes.

Each function follows the provider's published algorithm; tests pin them to the worked examples
in the providers' own documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison that also accepts non-ASCII text."""
    left = a.encode("utf-8") if isinstance(a, str) else a
    right = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


# --- Alibaba Cloud RPC style, signature version 1.0 (HMAC-SHA1) ---------------------------------


def aliyun_percent_encode(value: str) -> str:
    """Percent-encoding of UTF-8 as Alibaba Cloud canonicalises: only A-Za-z0-9-_.~ stay."""
    return quote(value, safe="-_.~")


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    return f"{method.upper()}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(canonical)}"


def aliyun_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """Base64(HMAC-SHA1(secret + "&", StringToSign)) over every parameter but ``Signature``."""
    key = (secret + "&").encode("utf-8")
    mac = hmac.new(key, aliyun_string_to_sign(method, params).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


# --- Tencent Cloud API 3.0, TC3-HMAC-SHA256 ----------------------------------------------------

TC3_ALGORITHM = "TC3-HMAC-SHA256"


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_date(timestamp: int) -> str:
    """The credential-scope date is the UTC date of the request timestamp."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def tc3_canonical_request(
    *, method: str, headers: Mapping[str, str], signed_headers: Iterable[str], payload: bytes
) -> str:
    names = sorted(h.lower() for h in signed_headers)
    lowered = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{n}:{lowered.get(n, '').strip().lower()}\n" for n in names)
    return "\n".join(
        [
            method.upper(),
            "/",
            "",
            canonical_headers,
            ";".join(names),
            hashlib.sha256(payload).hexdigest(),
        ]
    )


def tc3_signature(*, secret_key: str, service: str, timestamp: int, canonical_request: str) -> str:
    date = tc3_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    hashed = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = f"{TC3_ALGORITHM}\n{timestamp}\n{scope}\n{hashed}"
    secret_date = _hmac256(("TC3" + secret_key).encode("utf-8"), date)
    secret_service = _hmac256(secret_date, service)
    secret_signing = _hmac256(secret_service, "tc3_request")
    return hmac.new(secret_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def tc3_authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    content_type: str,
    payload: bytes,
    timestamp: int,
) -> str:
    """The ``Authorization`` header for a POST signing ``content-type`` and ``host``."""
    canonical = tc3_canonical_request(
        method="POST",
        headers={"content-type": content_type, "host": host},
        signed_headers=("content-type", "host"),
        payload=payload,
    )
    signature = tc3_signature(
        secret_key=secret_key, service=service, timestamp=timestamp, canonical_request=canonical
    )
    scope = f"{tc3_date(timestamp)}/{service}/tc3_request"
    return (
        f"{TC3_ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


def parse_tc3_authorization(header: str) -> dict[str, str]:
    """An ``Authorization`` header as secret_id, date, service, signed_headers, signature."""
    algorithm, _, rest = header.partition(" ")
    if algorithm != TC3_ALGORITHM:
        return {}
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 4 or scope[3] != "tc3_request":
        return {}
    return {
        "secret_id": scope[0],
        "date": scope[1],
        "service": scope[2],
        "signed_headers": fields.get("SignedHeaders", ""),
        "signature": fields.get("Signature", ""),
    }


# --- Twilio webhooks ---------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Base64(HMAC-SHA1(token, url + each POST parameter name and value, sorted by name))."""
    data = url + "".join(k + v for k, v in sorted(params))
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


# --- WeChat Official Account server messages ---------------------------------------------------


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """SHA1 hex of the token, timestamp and nonce sorted and concatenated."""
    joined = "".join(sorted([token, timestamp, nonce]))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's scheme
