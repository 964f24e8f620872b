"""Operator tool for parked (dead-lettered) events.

    python -m kc_common.dlq list   [--amqp-uri URI] QUEUE...
    python -m kc_common.dlq replay [--amqp-uri URI] QUEUE...

QUEUE is a handler queue name (``evt-catalog-order_placed--billing.on_order_placed``)
or ``all``, meaning every handler of every service (kc_common.services).
``list`` shows each parked message's event id, type, attempts and error;
``replay`` moves them back to the handler's queue with a fresh attempt count.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from kombu import Connection, Producer

from kc_common.events import (
    ATTEMPT_HEADER,
    dead_queue,
    handler_queues,
    service_event_handlers,
)
from kc_common.topology import load_services


def _all_queues(services_file: str | None) -> list[str]:
    return [handler_queues(source, event_type, service_cls.name, method)[0].name
            for service_cls in load_services(services_file)
            for source, event_type, method in service_event_handlers(service_cls)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kc_common.dlq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("queues", nargs="+")
    parser.add_argument("--amqp-uri", default=os.environ.get(
        "AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--services", default=None)
    args = parser.parse_args(argv)
    queues = _all_queues(args.services) if args.queues == ["all"] else args.queues
    total = 0  # listed messages stay unacked and return to their queue on disconnect
    with Connection(args.amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.default_channel
        for name in queues:
            dead = dead_queue(name)(channel)
            while True:
                message = dead.get(no_ack=False)
                if message is None:
                    break
                total += 1
                headers = message.headers or {}
                if args.command == "list":
                    body = message.decode()
                    print(f"{name}\t{body.get('id')}\t{body.get('type')}\t"
                          f"attempts={headers.get(ATTEMPT_HEADER)}\t{headers.get('x-kc-error')}")
                    continue
                headers = {k: v for k, v in headers.items() if not k.startswith("x-kc-")}
                Producer(channel).publish(message.body, exchange="", routing_key=name,
                                          headers=headers, content_type=message.content_type,
                                          content_encoding=message.content_encoding, delivery_mode=2)
                message.ack()
    print(f"{total} message(s) {'listed' if args.command == 'list' else 'replayed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
