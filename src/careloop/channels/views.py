"""The public endpoint providers call back: delivery reports and patients' SMS replies."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from careloop.channels import services
from careloop.channels.port import InvalidCallback
from careloop.kit.errors import NotFound

MAX_CALLBACK_BYTES = 256 * 1024


@csrf_exempt  # providers cannot send a CSRF token; each callback is signed or token-checked
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest, organisation: str, provider: str) -> HttpResponse:
    length = int(request.headers.get("Content-Length") or 0)
    if length > MAX_CALLBACK_BYTES:
        return HttpResponse("payload too large", status=413, content_type="text/plain")
    try:
        content_type, answer, _results = services.handle_callback(
            organisation,
            provider,
            method=request.method or "POST",
            headers={k: v for k, v in request.headers.items()},
            body=request.body,
            query={k: str(v) for k, v in request.GET.items()},
            url=request.build_absolute_uri(),
        )
    except NotFound:
        return HttpResponse("not found", status=404, content_type="text/plain")
    except InvalidCallback:
        return HttpResponse("forbidden", status=403, content_type="text/plain")
    return HttpResponse(answer, content_type=content_type)
