"""careloop keys rotate: re-encrypt every protected field under the newest key."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from careloop.kit.crypto import EncryptedTextField


class Command(BaseCommand):
    help = (
        "Key tools. `rotate`: put the new key first in CARELOOP_FIELD_KEYS (keep the old "
        "ones after it), run this, then drop the old keys."
    )

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("rotate", help="re-encrypt all encrypted fields with the first key")

    def handle(self, *args: Any, action: str, **opts: Any) -> None:
        total = 0
        for model in apps.get_models():
            names = [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
            if not names:
                continue
            pks = list(model._default_manager.values_list("pk", flat=True))
            for start in range(0, len(pks), 500):
                with transaction.atomic():
                    for row in model._default_manager.select_for_update().filter(
                        pk__in=pks[start : start + 500]
                    ):
                        # Reading decrypts with any configured key; saving encrypts with the first.
                        model._default_manager.filter(pk=row.pk).update(
                            **{n: getattr(row, n) for n in names}
                        )
                        total += 1
        self.stdout.write(f"re-encrypted {total} row(s)")
