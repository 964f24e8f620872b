"""A local SMTP server for `make run` (and the tests): keeps what it receives.

    python -m kc_common.mailsink --port 8025 --dir var/mail

Each message is written to ``<dir>/<timestamp>-<n>.eml``: open them with any
mail client. It is a real SMTP server (aiosmtpd); nothing pretends to send.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

from aiosmtpd.controller import Controller


class Collector:
    """aiosmtpd handler: keeps messages in memory and, optionally, as .eml files."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self.messages: list[tuple[str, list[str], bytes]] = []  # (envelope sender, recipients, raw bytes)
        self._n = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if self.directory:
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._n)}.eml"
            with open(os.path.join(self.directory, name), "wb") as fh:
                fh.write(envelope.content)
        return "250 Message accepted"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kc_common.mailsink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default="var/mail")
    args = parser.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Collector(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"mail sink on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
