"""An SMTP server for end-to-end tests: saves each message it accepts as a file.

    python tests/queries/smtp_sink.py --port 2525 --dir /tmp/mail [--fail-first 1]
        [--refuse-rcpt-first 1] [--rcpt-delay 1.5]

Each accepted message becomes NNN.eml (the message) with NNN.json (envelope sender and
recipients). With --fail-first N the first N messages get "451 4.3.0" at the end of DATA,
as a busy or greylisting server would answer; with --refuse-rcpt-first N the first N
recipients get a 450 naming the address, as Postfix words it. --rcpt-delay makes every
RCPT wait that long, after printing "rcpt N" (a test can kill the sender meanwhile, before
anything is accepted). Prints "ready" once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(
        self, directory: Path, fail_first: int, refuse_rcpt_first: int = 0, rcpt_delay: float = 0
    ) -> None:
        self.directory = directory
        self.fail_first = fail_first
        self.refuse_rcpt_first = refuse_rcpt_first
        self.rcpt_delay = rcpt_delay
        self.seen = 0
        self.saved = 0
        self.rcpts = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        self.rcpts += 1
        if self.rcpt_delay:
            sys.stdout.write(f"rcpt {self.rcpts}\n")
            sys.stdout.flush()
            await asyncio.sleep(self.rcpt_delay)
        if self.rcpts <= self.refuse_rcpt_first:
            return f"450 4.2.1 <{address}>: Recipient address rejected: try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.seen += 1
        if self.seen <= self.fail_first:
            return "451 4.3.0 Try again later"
        self.saved += 1
        stem = self.directory / f"{self.saved:03d}"
        stem.with_suffix(".eml").write_bytes(envelope.original_content or envelope.content)
        stem.with_suffix(".json").write_text(
            json.dumps({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos})
        )
        return "250 2.0.0 Ok: queued"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--refuse-rcpt-first", type=int, default=0)
    parser.add_argument("--rcpt-delay", type=float, default=0)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sink = Sink(args.dir, args.fail_first, args.refuse_rcpt_first, args.rcpt_delay)
    controller = Controller(sink, hostname="127.0.0.1", port=args.port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
