"""Helpers of the messaging tests: files by content, a sent reminder, a staff client."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime, timedelta
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from careloop.kit.clock import utc_now
from careloop.reminders import models as rm
from tests.security.scenario import client_for


def _png(width: int = 48, height: int = 32) -> bytes:
    """A real (viewable) PNG: a blue rectangle."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x1f\x6f\xeb" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# Files of each kind the portal accepts (checked by their first bytes).
PNG = _png()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def upload(name: str, content: bytes, content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def big_jpeg(megabytes: float = 6) -> SimpleUploadedFile:
    size = int(megabytes * 1024 * 1024)
    return upload("big.jpg", JPEG[:4] + b"\x00" * (size - 4))


def english(world: Any, username: str) -> Client:
    user = world.staff[username]
    user.language = "en"
    user.save(update_fields=["language"])
    return client_for(username)


def sent_reminder(
    patient: Any, *, kind: str = "medication", at: datetime | None = None, title: str = "阿司匹林"
) -> rm.Occurrence:
    """A reminder the dispatcher has sent to the patient (occurrence + accepted attempt)."""
    when = at or utc_now()
    occ = rm.Occurrence.objects.create(
        organisation_id=patient.organisation_id,
        patient=patient,
        kind=kind,
        source_key=f"test:{patient.pk}:{kind}:{when.timestamp()}",
        local_due=f"{when:%Y-%m-%dT%H:%M}",
        time_zone="Asia/Shanghai",
        due_at=when,
        status=rm.Status.SENT,
        link_digest="x" * 64,
        payload={"title": title, "title_en": "Aspirin"},
    )
    rm.Attempt.objects.create(
        occurrence=occ,
        organisation_id=patient.organisation_id,
        patient=patient,
        dedupe_key=f"{occ.source_key}:0:sms",
        channel="sms",
        outcome=rm.Attempt.Outcome.ACCEPTED,
        started_at=when + timedelta(seconds=5),
    )
    return occ


def html_file() -> SimpleUploadedFile:
    return upload("photo.jpg", b"<html><script>alert(1)</script></html>")
