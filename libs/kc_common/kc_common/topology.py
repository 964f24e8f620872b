"""Declare every queue before anything publishes: ``python -m kc_common.topology``.

Takes the service classes from :mod:`kc_common.services` (or ``--services FILE``,
``module:Class`` per line), finds their event handlers and declares each handler's queue,
bound to its source's event exchange, with its retry and dead-letter queues, and each
service's RPC queue. All are quorum queues (:data:`kc_common.events.QUORUM`), or
classic ones with ``--queue-type classic`` (see ``QUEUE_TYPE`` in :mod:`kc_common.events`).

Upgrade path: a queue that exists with other arguments (a classic queue of an
older version, in a developer's long-lived vhost) cannot be re-declared
(``PRECONDITION_FAILED``). When nobody consumes it, it is migrated: its
messages are moved (with publisher confirms) to ``<queue>.migrating``, the old
queue is deleted and declared anew, and the messages are moved back. A run that
was interrupted finishes the move on the next run. A queue that still has
consumers (services of the older version running) is refused with a message
saying to stop them and run this command again.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection, Queue
from nameko.constants import RPC_EXCHANGE_CONFIG_KEY
from nameko.rpc import RPC_QUEUE_TEMPLATE, get_rpc_exchange

from kc_common.events import (
    DEFAULT_QUEUE_TYPE,
    QUEUE_TYPES,
    QUORUM,
    handler_queues,
    queue_type,
    service_event_handlers,
)
from kc_common.services import service_classes

log = logging.getLogger(__name__)


class TopologyConflict(RuntimeError):
    """A queue that must be migrated is still in use."""


def load_services(path: str | None = None) -> list[Any]:
    """The service classes listed in ``path``; without one, every service of kc_common.services."""
    if path is None:
        return service_classes()
    classes = []
    with open(path) as fh:
        for line in fh:
            line = line.split("#")[0].strip()
            if line:
                module, cls = line.split(":")
                classes.append(getattr(importlib.import_module(module), cls))
    return classes


def rpc_queue(service_name: str, rpc_exchange: Any = "nameko-rpc", kind: str = DEFAULT_QUEUE_TYPE) -> Queue:
    """``rpc-<service>`` as :class:`kc_common.rpc.KcRpcConsumer` declares it."""
    from kc_common.rpc import rpc_queue_arguments
    exchange = get_rpc_exchange({RPC_EXCHANGE_CONFIG_KEY: rpc_exchange})
    return Queue(RPC_QUEUE_TEMPLATE.format(service_name), exchange=exchange,
                 routing_key=f"{service_name}.*", durable=True,
                 queue_arguments=rpc_queue_arguments(kind))


def _stats(conn: Any, name: str) -> tuple[int, int] | None:
    """(messages, consumers) of an existing queue, or None."""
    channel = conn.channel()
    try:
        ok = channel.queue_declare(queue=name, passive=True)
        return ok.message_count, ok.consumer_count
    except NotFound:
        return None
    finally:
        if channel.is_open:
            channel.close()


def _move(conn: Any, source: str, target: str) -> int:
    """Move every message of queue ``source`` to queue ``target``: publish with confirms,
    then ack. Returns the number moved."""
    channel = conn.channel()
    moved = 0
    try:
        channel.confirm_select()
        while True:
            message = channel.basic_get(source, no_ack=False)
            if message is None:
                return moved
            channel.basic_publish_confirm(message, exchange="", routing_key=target)
            channel.basic_ack(message.delivery_tag)
            moved += 1
    finally:
        if channel.is_open:
            channel.close()


def _move_and_delete(conn: Any, source: str, target: str) -> int:
    """Empty ``source`` into ``target``, then delete it (once it is seen empty: quorum
    queues have no ``if-empty`` delete)."""
    moved = 0
    while True:
        moved += _move(conn, source, target)
        if _stats(conn, source)[0] == 0:  # type: ignore[index]  # source exists: moved from above
            break
    channel = conn.channel()
    try:
        channel.queue_delete(source)
    finally:
        if channel.is_open:
            channel.close()
    return moved


def _declare(conn: Any, queue: Any) -> None:
    channel = conn.channel()
    try:
        queue(channel).declare()
    finally:
        if channel.is_open:
            channel.close()


def ensure_queue(conn: Any, queue: Any) -> str:
    """Declare ``queue``, migrating an existing queue of the same name declared with other
    arguments. Returns "declared" or "migrated (n messages)"."""
    parking = Queue(f"{queue.name}.migrating", durable=True, auto_delete=False,
                    queue_arguments=dict(QUORUM))
    try:
        _declare(conn, queue)
        outcome = "declared"
    except PreconditionFailed as exc:
        messages, consumers = _stats(conn, queue.name)  # type: ignore[misc]  # it exists: its arguments differ
        if consumers:
            raise TopologyConflict(
                f"queue {queue.name!r} exists with other arguments ({exc.reply_text}) and has "
                f"{consumers} consumer(s): stop the services of the older version, then run "
                f"`python -m kc_common.topology` again") from exc
        log.warning("migrating queue %s (%d messages): %s", queue.name, messages, exc.reply_text)
        _declare(conn, parking)
        _move_and_delete(conn, queue.name, parking.name)
        _declare(conn, queue)
        outcome = "migrated"
    # Also finishes a migration that an earlier run left half done.
    if outcome == "migrated" or _stats(conn, parking.name) is not None:
        moved = _move_and_delete(conn, parking.name, queue.name)
        outcome = f"migrated ({moved} messages)"
    return outcome


def declare(amqp_uri: str, service_classes: Sequence[Any], rpc_exchange: Any = "nameko-rpc",
            kind: str = DEFAULT_QUEUE_TYPE) -> list[str]:
    """Declare (or migrate) every queue of ``service_classes``; returns their names."""
    declared = []
    with Connection(amqp_uri) as conn:
        conn.connect()
        raw = conn.connection  # the py-amqp connection: one channel per step
        for service_cls in service_classes:
            queues = [rpc_queue(service_cls.name, rpc_exchange, kind)]
            for source, event_type, method in service_event_handlers(service_cls):
                queues.extend(handler_queues(source, event_type, service_cls.name, method, kind))
            for queue in queues:
                outcome = ensure_queue(raw, queue)
                if outcome != "declared":
                    print(f"{queue.name}: {outcome}")
                declared.append(queue.name)
    return declared


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kc_common.topology")
    parser.add_argument("--services", default=None, help="a file of module:Class lines "
                        "(default: every service of kc_common.services)")
    parser.add_argument("--amqp-uri", default=os.environ.get(
        "AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--queue-type", choices=QUEUE_TYPES,
                        default=queue_type(),
                        help="as the services' QUEUE_TYPE (environment QUEUE_TYPE, default quorum)")
    args = parser.parse_args(argv)
    try:
        queues = declare(args.amqp_uri, load_services(args.services), kind=args.queue_type)
    except TopologyConflict as exc:
        print(f"kc_common.topology: {exc}", file=sys.stderr)
        return 2
    print(f"declared {len(queues)} queues")
    return 0


if __name__ == "__main__":
    sys.exit(main())
