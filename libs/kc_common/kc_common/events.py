"""Reliable event consumption on top of nameko's ``EventHandler``.

nameko acks the message of a failing handler and never redelivers it. Our
``event_handler``:

* retries a failing handler with exponential backoff: the message goes to a
  per-queue ``<queue>.retry`` queue with a per-message TTL, whose dead-letter
  route brings it back to the handler's queue;
* after ``EVENT_MAX_ATTEMPTS`` attempts (config, default 5), or at once when
  it refused the event by a rule (``Unprocessable``, ``ValidationFailed``), parks it in
  ``<queue>.dead`` with the error, where an operator sees and replays it
  (``python -m kc_common.dlq``);
* republishes (with publisher confirms, through one kept connection) *before*
  it acks, so a crash in between causes a redelivery, never a loss; when the
  re-publication fails the message goes back to the queue and the failure is
  still counted, so a poison message cannot loop as a first attempt for ever;
* waits out outages: a handler that fails because the broker, a database,
  another service or the mail server is down (:func:`is_transient`) is retried
  with growing delays (up to ``EVENT_OUTAGE_MAX_DELAY``) for
  ``EVENT_OUTAGE_PATIENCE`` seconds (default 600) without using up its
  attempts; only handlers that fail on their own logic reach the dead letter.

Handlers must be idempotent (``db.handle_once``), because at-least-once is
what a bus can promise. Queue names are those of nameko, so
:func:`declare_topology` can create every queue before anyone publishes.
"""

from __future__ import annotations

import errno
import logging
import os
import smtplib
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import eventlet
from eventlet.semaphore import Semaphore
from kombu import Connection, Exchange, Producer, Queue
from nameko.events import BROADCAST, EventHandler
from nameko.extensions import SharedExtension

from kc_common import metrics
from kc_common.errors import (
    KcError,
    ServiceUnavailable,
    Unprocessable,
    ValidationFailed,
)
from kc_common.txguard import assert_no_transaction

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-kc-attempt"
OUTAGE_SINCE_HEADER = "x-kc-outage-since"
OUTAGE_TRIES_HEADER = "x-kc-outage-tries"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF = 1.0  # seconds; doubled each attempt
DEFAULT_OUTAGE_PATIENCE = 600.0  # seconds an outage is waited out before attempts count
DEFAULT_OUTAGE_MAX_DELAY = 30.0
# A handler refusing an event by a business rule or for malformed data will refuse it
# again: parked at once with its reason instead of being retried.
PERMANENT = (Unprocessable, ValidationFailed)


def event_exchange(source_service: str) -> Exchange:
    return Exchange(f"{source_service}.events", type="topic", durable=True, delivery_mode=2)


def queue_name(source_service: str, event_type: str, service_name: str, method_name: str) -> str:
    """nameko's SERVICE_POOL queue name: one queue per handler, shared by instances."""
    return f"evt-{source_service}-{event_type}--{service_name}.{method_name}"


# Every queue the system declares is a quorum queue (replicated on the broker cluster,
# durable, never exclusive): losing a node loses no message. Only nameko's RPC reply
# queues stay classic (one per caller, expiring: nothing to keep).
#
# ``QUEUE_TYPE`` (config, and the topology command's ``--queue-type``) chooses it:
# ``quorum`` (the default: make run and the Kubernetes deployment) or ``classic`` (the
# test suite's many short-lived systems, each in its own vhost: a quorum queue is a Raft
# group of its own, and ~180 of them per test system made a 2-core machine time out).
# Both kinds have the same names, bindings and retry/dead-letter path; a broker keeps
# one kind per queue (changing it is the topology command's migration).
QUORUM = {"x-queue-type": "quorum"}
QUEUE_TYPES = ("quorum", "classic")
DEFAULT_QUEUE_TYPE = "quorum"
# A message delivered (and returned unsettled: crash, lost connection, requeue) this many
# times goes to the queue's ``.dead`` queue through the dead-letter exchange instead of
# looping for ever. Our handlers settle by re-publication, so only crashes count here.
DELIVERY_LIMIT = 20


def queue_type(config: Mapping[str, Any] | None = None) -> str:
    """``QUEUE_TYPE`` of the config, else of the environment (the topology command, and
    the test suite, whose root conftest sets ``classic``), else ``quorum``; refuses
    anything else."""
    value = (config or {}).get("QUEUE_TYPE") or os.environ.get("QUEUE_TYPE") or DEFAULT_QUEUE_TYPE
    value = str(value).strip().lower()
    if value not in QUEUE_TYPES:
        raise ValueError(f"QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, not {value!r}")
    return value


def quorum_arguments(name: str, dead_letter: bool = True, kind: str = DEFAULT_QUEUE_TYPE) -> dict[str, Any]:
    """Arguments of the handler queue ``name``. Quorum: delivery limit, dead letters to
    ``<name>.dead`` (via the default exchange, the dead-letter exchange of the whole
    system). Classic: none (a classic queue has no delivery limit)."""
    if kind == "classic":
        return {}
    if not dead_letter:
        return dict(QUORUM)
    return dict(QUORUM, **{"x-delivery-limit": DELIVERY_LIMIT, "x-dead-letter-exchange": "",
                           "x-dead-letter-routing-key": f"{name}.dead"})


def dead_queue(name: str, kind: str = DEFAULT_QUEUE_TYPE) -> Queue:
    """The parking queue of ``name``: no delivery limit (listing it with
    ``kc_common.dlq`` returns its messages unacked, which must never drop them)."""
    return Queue(f"{name}.dead", durable=True, auto_delete=False,
                 queue_arguments=dict(QUORUM) if kind == "quorum" else {})


def handler_queues(source_service: str, event_type: str, service_name: str, method_name: str,
                   kind: str = DEFAULT_QUEUE_TYPE) -> tuple[Queue, Queue, Queue]:
    """The handler's queue and its retry and dead-letter queues (all of type ``kind``)."""
    name = queue_name(source_service, event_type, service_name, method_name)
    main = Queue(name, exchange=event_exchange(source_service), routing_key=event_type,
                 durable=True, auto_delete=False, queue_arguments=quorum_arguments(name, kind=kind))
    # Per-message TTL (quorum queues have it since RabbitMQ 3.10); expired messages go
    # back to the handler's queue. No delivery limit: nobody consumes it.
    retry = Queue(f"{name}.retry", durable=True, auto_delete=False, queue_arguments=dict(
        QUORUM if kind == "quorum" else {},
        **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name}))
    return main, retry, dead_queue(name, kind)


_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE,
                     errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENOTCONN}


def connect_once(connection: Any) -> Any:
    """Connect a kombu ``Connection`` at once, trying each broker of a failover URI
    (``amqp://a;amqp://b``) once, without kombu's back-off between them; raises the last
    error. (``ensure_connection(max_retries=0)`` would try only the first broker, so a process
    would never get past a stopped first node of a cluster.)"""
    return connection.ensure_connection(max_retries=max(0, len(connection.alt or ()) - 1))


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an outage of something the handler depends on (broker, database,
    another service, the mail server) rather than a failure of the handler's own logic.

    Outages are waited out without using up the handler's attempts; only logic failures
    lead to the dead-letter queue.
    """
    if isinstance(exc, KcError):
        return isinstance(exc, ServiceUnavailable)
    import sqlalchemy.exc as sa_exc
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError,
                        sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    from amqp.exceptions import ConnectionError as AmqpConnectionError
    from amqp.exceptions import RecoverableConnectionError
    from kombu.exceptions import OperationalError as KombuOperationalError
    if isinstance(exc, (KombuOperationalError, AmqpConnectionError, RecoverableConnectionError,
                        ConnectionError, socket.timeout, TimeoutError, socket.gaierror,
                        smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
        return True
    if isinstance(exc, smtplib.SMTPResponseException) and 400 <= exc.smtp_code < 500:
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return False


class KeptPublisher:
    """One kept broker connection for publishing with confirms, re-established on failure.

    ``publish`` retries a few times with a short green back-off (a new connection each
    time), then raises: the caller decides (the relay keeps its rows, an event handler
    leaves the message unacked). Safe for several green threads (one publish at a time).
    """

    def __init__(self, amqp_uri: str, attempts: int = 3, confirm_timeout: float = 10.0,
                 connect_timeout: float = 5.0) -> None:
        self.amqp_uri = amqp_uri
        self.attempts = attempts
        self.confirm_timeout = confirm_timeout
        self.connect_timeout = connect_timeout
        self._connection: Any = None
        self._producer: Any = None
        self._declared: set[str] = set()
        self._lock = Semaphore(1)

    def _ensure(self) -> Any:
        if self._producer is None:
            connection = Connection(self.amqp_uri, connect_timeout=self.connect_timeout,
                                    transport_options={"confirm_publish": True})
            connection.connect()
            self._connection = connection
            self._producer = Producer(connection.default_channel, serializer="json")
            self._declared = set()
        return self._producer

    def close(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass

    def publish(self, body: Any, *, exchange: Any = "", routing_key: str,
                headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
        assert_no_transaction("broker publish")
        with self._lock:
            for attempt in range(1, self.attempts + 1):
                try:
                    producer = self._ensure()
                    if isinstance(exchange, Exchange) and exchange.name not in self._declared:
                        exchange(producer.channel).declare()
                        self._declared.add(exchange.name)
                    producer.publish(body, exchange=exchange, routing_key=routing_key,
                                     headers=headers or {}, delivery_mode=2, retry=False,
                                     timeout=self.confirm_timeout, **kwargs)
                    return
                except Exception:
                    self.close()
                    if attempt == self.attempts:
                        raise
                    eventlet.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))


class DeadLetterDepth(SharedExtension):
    """``kc_dead_letter_messages{service}``: messages in the container's dead-letter queues.

    Read only when Prometheus scrapes (at most every ``metrics.GAUGE_TTL`` seconds), by a
    passive declare of each ``<queue>.dead`` on one kept connection, outside any transaction.
    """

    def __init__(self) -> None:
        self.queues: set[str] = set()
        self._key = f"dead-letters-{id(self)}"
        self._connection: Any = None
        self._reading = metrics.CachedReading(self._read)

    def register(self, queue_name: str) -> None:
        self.queues.add(queue_name)

    def setup(self) -> None:
        metrics.add_gauge_source(self._key, self.container.service_name, self._reading.read)

    def _read(self) -> dict[str, float]:
        total = 0
        try:
            if self._connection is None:
                self._connection = Connection(self.container.config["AMQP_URI"], connect_timeout=2)
                connect_once(self._connection)
            channel = self._connection.channel()
            try:
                for name in sorted(self.queues):
                    total += channel.queue_declare(queue=name, passive=True).message_count
            finally:
                channel.close()
        except Exception:
            self._close()
            raise
        return {"kc_dead_letter_messages": total}

    def stop(self) -> None:
        metrics.remove_gauge_source(self._key)
        self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass

    def kill(self) -> None:
        self.stop()


class ReliableEventHandler(EventHandler):
    """See the module's text. Counts every outcome (``kc_event_handler_total``)."""

    metrics_server = metrics.MetricsServer()
    dead_letters = DeadLetterDepth()

    def __init__(self, source_service: str, event_type: str, **kwargs: Any) -> None:
        kwargs.setdefault("expected_exceptions", KcError)
        super().__init__(source_service, event_type, **kwargs)

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        kind = queue_type(config)
        if not (self.queue.exclusive or self.queue.auto_delete):  # broadcast handlers stay classic
            self.queue.queue_arguments = quorum_arguments(self.queue.name, kind=kind)
        self.max_attempts = int(config.get("EVENT_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
        self.backoff = float(config.get("EVENT_RETRY_BACKOFF", DEFAULT_BACKOFF))
        self.outage_patience = float(config.get("EVENT_OUTAGE_PATIENCE", DEFAULT_OUTAGE_PATIENCE))
        self.outage_max_delay = float(config.get("EVENT_OUTAGE_MAX_DELAY", DEFAULT_OUTAGE_MAX_DELAY))
        _, self.retry_queue, self.dead_queue = handler_queues(
            self.source_service, self.event_type, self.container.service_name, self.method_name,
            kind)
        self.publisher = KeptPublisher(config["AMQP_URI"])
        self.dead_letters.register(self.dead_queue.name)
        # Failures whose re-publication failed (the message went back to the queue with its
        # old header): counted here, so a poison message cannot loop as a first attempt.
        self._unrecorded: OrderedDict[Any, int] = OrderedDict()
        self._declare_retry_and_dead_queues(config["AMQP_URI"])

    def _declare_retry_and_dead_queues(self, amqp_uri: str) -> None:
        """Declare this handler's retry and dead queues at start. A broker that is down, or
        resets the connection (a loaded broker at start-up), is waited out for the outage
        patience: a transient fault never ends a process, not even while it starts."""
        deadline = time.monotonic() + self.outage_patience
        delay = 0.5
        while True:
            try:
                with Connection(amqp_uri, connect_timeout=5) as conn:
                    channel = conn.default_channel
                    for queue in (self.retry_queue, self.dead_queue):
                        queue.bind(channel).declare()
                return
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("handler %s: cannot declare its retry and dead queues yet (%r); "
                            "again in %.1fs", self.retry_queue.name, exc, delay)
                eventlet.sleep(delay)
                delay = min(delay * 2, self.outage_max_delay)

    def stop(self) -> None:
        super().stop()
        self.publisher.close()

    def kill(self) -> None:
        super().kill()
        self.publisher.close()

    def handle_message(self, body: Any, message: Any) -> None:
        message._kc_started = time.perf_counter()
        super().handle_message(body, message)

    def _observe(self, message: Any, outcome: Any) -> None:
        metrics.observe_event(self.container.service_name, self.method_name, outcome,
                              getattr(message, "_kc_started", None))

    def handle_message_processed(self, message: Any, result: Any = None, exc_info: Any = None) -> None:
        # Whatever happens here must not escape: an exception would kill the container.
        try:
            self._settle(message, exc_info)
        except Exception:  # noqa: BLE001
            log.exception("handler %s: could not settle a message; it goes back to the queue",
                          self.queue.name)
            self._requeue(message)

    def _requeue(self, message: Any) -> None:
        try:
            self.queue_consumer.requeue_message(message)
        except Exception:  # noqa: BLE001 - the broker redelivers an unacked message anyway
            log.warning("requeue failed (connection lost); the broker redelivers the message")

    def _settle(self, message: Any, exc_info: Any) -> None:
        body = message.payload if isinstance(message.payload, dict) else {}
        key = body.get("id") or message.delivery_tag
        if exc_info is None:
            log.info("handled %s event %s (%s)", self.event_type, body.get("id"), self.queue.name)
            self._unrecorded.pop(key, None)
            self.queue_consumer.ack_message(message)
            self._observe(message, "ok")
            return
        headers = dict(message.headers or {})
        exc = exc_info[1]
        now = time.time()
        if is_transient(exc):
            since = float(headers.get(OUTAGE_SINCE_HEADER) or now)
            tries = int(headers.get(OUTAGE_TRIES_HEADER) or 0)
            if now - since < self.outage_patience:
                delay = min(self.backoff * (2 ** tries), self.outage_max_delay)
                log.warning("handler %s: outage (%r), waiting %.1fs (outage for %.0fs, attempts "
                            "not used up)", self.queue.name, exc, delay, now - since)
                headers.update({OUTAGE_SINCE_HEADER: since, OUTAGE_TRIES_HEADER: tries + 1})
                self._publish_or_requeue(message, self.retry_queue.name, headers, key,
                                         expiration=delay, counted=False)
                self._observe(message, "waited")
                return
        headers.pop(OUTAGE_SINCE_HEADER, None)
        headers.pop(OUTAGE_TRIES_HEADER, None)
        attempt = int(headers.get(ATTEMPT_HEADER, 1)) + self._unrecorded.get(key, 0)
        if attempt < self.max_attempts and not isinstance(exc, PERMANENT):
            delay = self.backoff * (2 ** (attempt - 1))
            log.warning("handler %s failed (attempt %d/%d), retrying in %.1fs: %r",
                        self.queue.name, attempt, self.max_attempts, delay, exc)
            headers[ATTEMPT_HEADER] = attempt + 1
            self._publish_or_requeue(message, self.retry_queue.name, headers, key,
                                     expiration=delay)
            self._observe(message, "retried")
        else:
            log.error("handler %s failed %d times; message parked in %s: %r",
                      self.queue.name, attempt, self.dead_queue.name, exc)
            headers.update({ATTEMPT_HEADER: attempt,
                            "x-kc-error": f"{type(exc).__name__}: {exc}"[:1000],
                            "x-kc-queue": self.queue.name})
            self._publish_or_requeue(message, self.dead_queue.name, headers, key)
            self._observe(message, "dead_lettered")

    def _publish_or_requeue(self, message: Any, routing_key: str, headers: dict[str, Any], key: str,
                            expiration: float | None = None, counted: bool = True) -> None:
        try:
            self.publisher.publish(message.body, exchange="", routing_key=routing_key,
                                   headers=headers, content_type=message.content_type,
                                   content_encoding=message.content_encoding,
                                   expiration=expiration)
        except Exception:  # noqa: BLE001 - broker trouble: the message goes back, count kept
            log.warning("handler %s: could not re-publish to %s; message goes back to the queue",
                        self.queue.name, routing_key, exc_info=True)
            if counted:
                self._unrecorded[key] = self._unrecorded.get(key, 0) + 1
                self._unrecorded.move_to_end(key)
                while len(self._unrecorded) > 10000:
                    self._unrecorded.popitem(last=False)
            eventlet.sleep(1.0)  # do not spin on a broken broker
            self._requeue(message)
            return
        self._unrecorded.pop(key, None)
        self.queue_consumer.ack_message(message)


event_handler = ReliableEventHandler.decorator


def service_event_handlers(service_cls: Any) -> list[Any]:
    """(source, event_type, method) of every event handler of a service class that shares a
    durable queue (a BROADCAST handler's queue is its instance's own, exclusive and temporary)."""
    found = []
    for attr in dir(service_cls):
        fn = getattr(service_cls, attr)
        for ep in getattr(fn, "nameko_entrypoints", ()):
            if isinstance(ep, EventHandler) and ep.handler_type != BROADCAST:
                found.append((ep.source_service, ep.event_type, attr))
    return found


def declare_topology(amqp_uri: str, service_classes: Sequence[Any], kind: str | None = None) -> Any:
    """Declare every event exchange and handler queue (with retry and dead queues) and each
    service's RPC queue, migrating queues declared differently by an older version
    (:func:`kc_common.topology.declare`).

    Run before any service publishes (``make run``, the tests), because an
    event published to an exchange with no bound queue is dropped.
    """
    from kc_common.topology import declare
    return declare(amqp_uri, service_classes, kind=queue_type({"QUEUE_TYPE": kind}))  # None: environment
