"""Reliable event consumption on top of nameko's ``EventHandler``.

nameko acks the message of a failing handler and never redelivers it. Our
``event_handler``:

* retries a failing handler with exponential backoff: the message goes to a
  per-queue ``<queue>.retry`` queue with a per-message TTL, whose dead-letter
  route brings it back to the handler's queue;
* after ``EVENT_MAX_ATTEMPTS`` attempts (config, default 5) parks it in
  ``<queue>.dead`` with the error, where an operator sees and replays it
  (``python -m kc_common.dlq``);
* republishes (with publisher confirms) *before* it acks, so a crash in
  between causes a redelivery, never a loss.

Handlers must be idempotent (``db.handle_once``), because at-least-once is
what a bus can promise. Queue names are those of nameko, so
:func:`declare_topology` can create every queue before anyone publishes.
"""
import logging

from kombu import Connection, Exchange, Producer, Queue
from nameko.events import EventHandler

from kc_common.errors import KcError

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-kc-attempt"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF = 1.0  # seconds; doubled each attempt


def event_exchange(source_service):
    return Exchange(f"{source_service}.events", type="topic", durable=True, delivery_mode=2)


def queue_name(source_service, event_type, service_name, method_name):
    """nameko's SERVICE_POOL queue name: one queue per handler, shared by instances."""
    return f"evt-{source_service}-{event_type}--{service_name}.{method_name}"


def handler_queues(source_service, event_type, service_name, method_name):
    """The handler's queue and its retry and dead-letter queues."""
    name = queue_name(source_service, event_type, service_name, method_name)
    main = Queue(name, exchange=event_exchange(source_service), routing_key=event_type,
                 durable=True, auto_delete=False)
    retry = Queue(f"{name}.retry", durable=True, auto_delete=False, queue_arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": name})
    dead = Queue(f"{name}.dead", durable=True, auto_delete=False)
    return main, retry, dead


class ReliableEventHandler(EventHandler):
    def __init__(self, source_service, event_type, **kwargs):
        kwargs.setdefault("expected_exceptions", KcError)
        super().__init__(source_service, event_type, **kwargs)

    def setup(self):
        super().setup()
        config = self.container.config
        self.max_attempts = int(config.get("EVENT_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
        self.backoff = float(config.get("EVENT_RETRY_BACKOFF", DEFAULT_BACKOFF))
        _, self.retry_queue, self.dead_queue = handler_queues(
            self.source_service, self.event_type, self.container.service_name, self.method_name)
        with Connection(config["AMQP_URI"]) as conn:
            channel = conn.default_channel
            for queue in (self.retry_queue, self.dead_queue):
                queue.bind(channel).declare()

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            body = message.payload if isinstance(message.payload, dict) else {}
            log.info("handled %s event %s (%s)", self.event_type, body.get("id"), self.queue.name)
            self.queue_consumer.ack_message(message)
            return
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 1))
        exc = exc_info[1]
        try:
            if attempt < self.max_attempts:
                delay = self.backoff * (2 ** (attempt - 1))
                log.warning("handler %s failed (attempt %d/%d), retrying in %.1fs: %r",
                            self.queue.name, attempt, self.max_attempts, delay, exc)
                self._republish(message, self.retry_queue.name, attempt + 1,
                                expiration=delay)
            else:
                log.error("handler %s failed %d times; message parked in %s",
                          self.queue.name, attempt, self.dead_queue.name)
                self._republish(message, self.dead_queue.name, attempt, extra={
                    "x-kc-error": f"{type(exc).__name__}: {exc}"[:1000],
                    "x-kc-queue": self.queue.name})
        except Exception:
            log.exception("could not republish a failed message; it goes back to the queue")
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _republish(self, message, routing_key, attempt, expiration=None, extra=None):
        headers = dict(message.headers or {})
        headers[ATTEMPT_HEADER] = attempt
        headers.update(extra or {})
        with Connection(self.container.config["AMQP_URI"],
                        transport_options={"confirm_publish": True}) as conn:
            producer = Producer(conn.default_channel)
            producer.publish(message.body, exchange="", routing_key=routing_key,
                             headers=headers, content_type=message.content_type,
                             content_encoding=message.content_encoding,
                             delivery_mode=2, expiration=expiration, retry=True,
                             retry_policy={"max_retries": 3})


event_handler = ReliableEventHandler.decorator


def service_event_handlers(service_cls):
    """(source, event_type, method) of every event handler of a service class."""
    found = []
    for attr in dir(service_cls):
        fn = getattr(service_cls, attr)
        for ep in getattr(fn, "nameko_entrypoints", ()):
            if isinstance(ep, EventHandler):
                found.append((ep.source_service, ep.event_type, attr))
    return found


def declare_topology(amqp_uri, service_classes):
    """Declare every event exchange and handler queue (with retry and dead queues).

    Run before any service publishes (``make run``, the tests), because an
    event published to an exchange with no bound queue is dropped.
    """
    declared = []
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        for service_cls in service_classes:
            for source, event_type, method in service_event_handlers(service_cls):
                for queue in handler_queues(source, event_type, service_cls.name, method):
                    queue.bind(channel).declare()
                    declared.append(queue.name)
    return declared
