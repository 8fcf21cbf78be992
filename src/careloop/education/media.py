"""Serving an uploaded video with single-range support (seeking in phone browsers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

from careloop.education import domain
from careloop.education import models as em
from careloop.kit.errors import NotFound

_CHUNK = 64 * 1024


def _chunks(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        left = length
        while left > 0:
            data = handle.read(min(_CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        handle.close()


def serve(
    request: HttpRequest, item: em.ContentItem
) -> HttpResponse | FileResponse | StreamingHttpResponse:
    if not item.video_file:
        raise NotFound()
    handle = item.video_file.open("rb")
    size = item.video_file.size
    content_type = item.video_type or "application/octet-stream"
    wanted = request.headers.get("Range", "")
    span = domain.byte_range(wanted, size) if wanted else None
    response: HttpResponse | FileResponse | StreamingHttpResponse
    if wanted and span is None:
        handle.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    elif span is not None:
        start, end = span
        response = StreamingHttpResponse(
            _chunks(handle, start, end - start + 1), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        response = FileResponse(handle, content_type=content_type)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
