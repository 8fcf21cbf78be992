"""Run one fake provider in its own process.

    python -m careloop.channels.fakes aliyun_sms --port 8765 --log /tmp/sent.jsonl

The first line on standard output is JSON: ``{"provider", "url", "config"}``, where ``config``
is the adapter configuration pointing at this fake. The fake runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from careloop.channels.fakes import FAKES, start_fake


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m careloop.channels.fakes")
    parser.add_argument("provider", choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", default="", help="append one JSON line per accepted message")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each reply")
    args = parser.parse_args(argv)

    fake: Any = start_fake(
        args.provider,
        host=args.host,
        port=args.port,
        log_path=args.log or None,
        latency=args.latency,
    )
    url = getattr(fake, "url", f"smtp://{args.host}:{getattr(fake, 'port', 0)}")
    print(json.dumps({"provider": args.provider, "url": url, "config": fake.config()}), flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
