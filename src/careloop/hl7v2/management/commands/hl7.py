"""careloop hl7: load HL7 v2 files, listen for MLLP connections, replay logged messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "HL7 v2 interface. `load FILE...` applies the messages in files; `listen --port 2575 "
        "[--host 127.0.0.1]` accepts MLLP connections; `replay ID|--failed` applies logged "
        "messages again. `--organisation CODE` names the organisation served (default: the "
        "only one)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["load", "listen", "replay"])
        parser.add_argument("targets", nargs="*")
        parser.add_argument("--organisation", default=None)
        parser.add_argument("--port", type=int, default=2575)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--failed", action="store_true")
        parser.add_argument("--max-bytes", type=int, default=None)

    def handle(self, *args: Any, action: str, targets: list[str], **opts: Any) -> None:
        from careloop.hl7v2 import services

        try:
            org = services.organisation_for(opts["organisation"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if action == "load":
            self._load(org, targets)
        elif action == "listen":
            self._listen(org, opts)
        else:
            self._replay(org, targets, opts["failed"])

    def _load(self, org: Any, targets: list[str]) -> None:
        from careloop.hl7v2 import services
        from careloop.hl7v2.parser import parse

        if not targets:
            raise CommandError("name at least one file")
        failed = 0
        for name in targets:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"{name}: no such file")
            for raw in services.load_file(path.read_bytes()):
                answer, log = services.receive(raw, org, channel="file", peer=path.name)
                msa = parse(answer).first("MSA")
                code = msa.component(1) if msa else "??"
                failed += code != "AA"
                self.stdout.write(
                    f"{path.name}: {log.message_type or '?'} {log.control_id or '-'} {code}"
                    + (f" {log.reason}" if log.reason else "")
                )
        if failed:
            self.stdout.write(f"{failed} message(s) not applied")

    def _listen(self, org: Any, opts: dict[str, Any]) -> None:
        from careloop.hl7v2 import ack, mllp, services

        limit = opts["max_bytes"] or services.MAX_MESSAGE_BYTES

        def handle(raw: bytes, peer: str) -> bytes:
            answer, _log = services.receive(raw, org, channel="mllp", peer=peer)
            return answer.encode("utf-8")

        def too_large() -> bytes:
            return ack.build("AR", f"the message is larger than {limit} bytes").encode()

        server = mllp.Listener((opts["host"], opts["port"]), handle, too_large, max_bytes=limit)
        self.stdout.write(f"listening for HL7 v2 (MLLP) on {opts['host']}:{opts['port']}")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    def _replay(self, org: Any, targets: list[str], failed: bool) -> None:
        from careloop.hl7v2 import models as hm
        from careloop.hl7v2 import services

        qs = hm.Message.objects.filter(organisation=org)
        if failed:
            rows = list(qs.exclude(status=hm.Status.APPLIED).order_by("received_at", "pk"))
        elif targets:
            try:
                ids = [int(t) for t in targets]
            except ValueError as exc:
                raise CommandError("message ids are numbers") from exc
            rows = list(qs.filter(pk__in=ids).order_by("received_at", "pk"))
            if len(rows) != len(set(ids)):
                raise CommandError("no such message in this organisation")
        else:
            raise CommandError("name message ids or --failed")
        for row in rows:
            services.replay(row)
            self.stdout.write(f"{row.pk}: {row.message_type} {row.control_id} {row.status}")
