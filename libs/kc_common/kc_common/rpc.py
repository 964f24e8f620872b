"""RPC with a timeout, typed errors and a ``ping`` every service answers.

nameko's in-service ``RpcProxy`` waits forever for a reply; ours raises
:class:`ServiceUnavailable` after ``RPC_TIMEOUT`` seconds (config, default 10)
and forgets the pending reply. A call to a service that is not running fails
at once (nameko's mandatory publish) and becomes ``ServiceUnavailable`` too,
and so does a call that cannot be published because the broker is down (within
about a second). The request expires with the caller's timeout: nothing the
caller was told failed is carried out later (see :class:`_TimedMethodProxy`).
"""

from __future__ import annotations
import logging
import time

import eventlet
from eventlet.semaphore import Semaphore
from nameko.exceptions import UnknownService
from nameko.rpc import MethodProxy, ReplyListener, Rpc, RpcConsumer, RpcProxy, ServiceProxy

from kc_common.context import DEADLINE
from kc_common.errors import KcError, ServiceUnavailable
from kc_common.events import DEFAULT_QUEUE_TYPE, QUORUM, is_transient, queue_type
from kc_common.metrics import MetricsServer, observe_rpc
from kc_common.txguard import assert_no_transaction
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0

# A request that cannot be published at once (broker down) fails fast: the caller gets a
# 503 within a second or two instead of waiting out kombu's default retries.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.3,
                        "interval_max": 0.5}
PUBLISH_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.3,
                             "interval_max": 0.5}


class _Listeners:
    """How many instances consume a service's RPC queue, asked of the broker at most once a
    second per service and process (a passive declare on a kept connection).

    A durable ``rpc-<service>`` queue outlives its last instance, so the mandatory publish
    alone cannot tell that nobody will answer; with this a call to a service with no running
    instance fails at once instead of after the whole timeout.
    """

    TTL = 1.0

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[float, int | None]] = {}
        self._connections: dict[str, Any] = {}
        self._lock = Semaphore(1)

    def count(self, amqp_uri: str, service_name: str) -> int | None:
        key = (amqp_uri, service_name)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        with self._lock:
            # Those who waited for the lock take the answer the first one got.
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            count = self._ask(amqp_uri, f"rpc-{service_name}")
            self._cache[key] = (time.monotonic() + self.TTL, count)
        return count

    def _ask(self, amqp_uri: str, queue: Any) -> int | None:
        from amqp.exceptions import NotFound
        from kombu import Connection
        try:
            connection = self._connections.get(amqp_uri)
            if connection is None:
                connection = Connection(amqp_uri, connect_timeout=2)
                # One attempt: kombu's connect() retries a refused connection after 2 s,
                # which every caller would wait out while the broker is down.
                connection.ensure_connection(max_retries=0)
                self._connections[amqp_uri] = connection
            channel = connection.channel()
            try:
                return channel.queue_declare(queue=queue, passive=True).consumer_count
            except NotFound:
                return 0
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - a channel closed by the 404 is fine
                    pass
        except Exception:  # noqa: BLE001 - unknown: let the call itself find out
            stale = self._connections.pop(amqp_uri, None)
            if stale is not None:
                try:
                    stale.release()
                except Exception:  # noqa: BLE001
                    pass
            return None


_listeners = _Listeners()


def deadline_margin(timeout: float) -> float:
    """How long before the caller gives up the callee stops committing (reply travel time)."""
    return min(1.0, timeout * 0.1)


class _TimedMethodProxy(MethodProxy):
    """A call that the caller waits for at most ``timeout`` seconds.

    The request carries the caller's deadline: the broker drops it when it has waited
    in the queue longer than the timeout (per-message expiration), the callee drops it
    when it arrives late, and the callee's unit of work refuses to commit after it
    (:class:`kc_common.db.UnitOfWork`). So a call the caller reported as failed
    (503) is not carried out later.
    """

    def __init__(self, worker_ctx: Any, service_name: str, method_name: str, reply_listener: Any,
                 timeout: float, **options: Any) -> None:
        self.timeout = timeout
        options.setdefault("retry_policy", PUBLISH_RETRY_POLICY)
        options.setdefault("expiration", timeout)
        super().__init__(worker_ctx, service_name, method_name, reply_listener, **options)
        self.publisher.transport_options = dict(PUBLISH_TRANSPORT_OPTIONS)

    def get_message_headers(self, worker_ctx: Any) -> dict[str, Any]:
        headers = super().get_message_headers(worker_ctx)
        # Our own deadline, never the one our caller gave us (each hop has its own timeout).
        headers[f"nameko.{DEADLINE}"] = repr(
            time.time() + self.timeout - deadline_margin(self.timeout))
        return headers

    def _unavailable(self, message: str) -> ServiceUnavailable:
        return ServiceUnavailable(message, {"service": self.service_name})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        assert_no_transaction(f"RPC {self.service_name}.{self.method_name}")
        if _listeners.count(self.amqp_uri, self.service_name) == 0:
            raise self._unavailable(f"Der Dienst '{self.service_name}' ist nicht erreichbar.")
        try:
            reply = self._call(*args, **kwargs)
        except UnknownService:
            raise self._unavailable(f"Der Dienst '{self.service_name}' ist nicht erreichbar.") from None
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("RPC %s.%s could not be sent: %r", self.service_name, self.method_name, exc)
            raise self._unavailable("Der Nachrichtenbus ist nicht erreichbar; bitte später "
                                    "erneut versuchen.") from exc
        try:
            with eventlet.Timeout(self.timeout):
                return reply.result()
        except eventlet.Timeout:
            self._forget(reply)
            raise self._unavailable(f"Der Dienst '{self.service_name}' hat nicht rechtzeitig geantwortet.") from None

    def _forget(self, reply: Any) -> None:
        events = self.reply_listener._reply_events
        for key, event in list(events.items()):
            if event is reply.reply_event:
                events.pop(key, None)


class _TimedServiceProxy(ServiceProxy):
    def __getattr__(self, name: str) -> _TimedMethodProxy:
        if name.startswith("__"):
            raise AttributeError(name)
        options = dict(self.options)
        timeout = options.pop("timeout", None) or float(
            self.worker_ctx.container.config.get("RPC_TIMEOUT", DEFAULT_TIMEOUT))
        return _TimedMethodProxy(self.worker_ctx, self.service_name, name,
                                 self.reply_listener, timeout, **options)


class KcReplyListener(ReplyListener):
    """nameko's reply listener with a transient (non-durable) classic reply queue.

    nameko declares it durable: on a broker cluster, when the queue's node dies, every
    re-declaration of that durable queue fails (404, "home node ... is down") and the
    process never consumes again. A transient queue is removed with its node, so the
    reconnected consumer declares it afresh on a live node (replies in flight are lost:
    their callers time out with a 503, as for any broker fault).
    """

    def setup(self) -> None:
        super().setup()
        self.queue.durable = False


class TimedRpcProxy(RpcProxy):
    """Drop-in for ``nameko.rpc.RpcProxy`` with a timeout (seconds)."""

    rpc_reply_listener = KcReplyListener()

    def __init__(self, target_service: str, timeout: float | None = None, **options: Any) -> None:
        super().__init__(target_service, timeout=timeout, **options)

    def get_dependency(self, worker_ctx: Any) -> _TimedServiceProxy:
        return _TimedServiceProxy(worker_ctx, self.target_service,
                                  self.rpc_reply_listener, **self.options)


class Services(RpcProxy):
    """All services by name: ``self.services['catalog'].list_products()``.

    Used by the gateway, which talks to every service through one dependency.
    """

    rpc_reply_listener = KcReplyListener()

    def __init__(self, timeout: float | None = None, **options: Any) -> None:
        super().__init__("*", timeout=timeout, **options)

    def get_dependency(self, worker_ctx: Any) -> Any:
        listener, options = self.rpc_reply_listener, self.options

        class _All:
            def __getitem__(self, service_name: str) -> _TimedServiceProxy:
                return _TimedServiceProxy(worker_ctx, service_name, listener, **options)

        return _All()


# A request returned unanswered this many times (the instance crashed on it each time) is
# dropped: its caller has long given up (503), and a dead-letter copy would also collect
# every request that merely expired (per-message TTL), so RPC queues have none.
RPC_DELIVERY_LIMIT = 10


def rpc_queue_arguments(kind: str = DEFAULT_QUEUE_TYPE) -> dict[str, Any]:
    """``rpc-<service>``: a quorum queue (replicated) with a delivery limit, or a classic
    queue without one (``QUEUE_TYPE``, see :mod:`kc_common.events`)."""
    if kind == "classic":
        return {}
    return dict(QUORUM, **{"x-delivery-limit": RPC_DELIVERY_LIMIT})


class KcRpcConsumer(RpcConsumer):
    """nameko's shared RPC consumer, declaring ``rpc-<service>`` as ``QUEUE_TYPE`` says."""

    def setup(self) -> None:
        super().setup()
        self.queue.queue_arguments = rpc_queue_arguments(queue_type(self.container.config))


class KcRpc(Rpc):
    """``@rpc`` whose typed errors are logged as expected, not as crashes, that drops requests
    whose caller has already given up, and that survives a broker outage while replying.

    Counts every call and its duration (``kc_rpc_requests_total``, ``kc_rpc_duration_seconds``)."""

    metrics_server = MetricsServer()

    rpc_consumer = KcRpcConsumer()

    def __init__(self, expected_exceptions: Any = (), sensitive_arguments: Any = (), **kwargs: Any) -> None:
        expected = tuple(expected_exceptions) if isinstance(expected_exceptions, tuple) \
            else (expected_exceptions,) if expected_exceptions else ()
        super().__init__(expected_exceptions=expected + (KcError,),
                         sensitive_arguments=sensitive_arguments, **kwargs)

    def handle_message(self, body: Any, message: Any) -> None:
        deadline: Any = (message.headers or {}).get(f"nameko.{DEADLINE}")
        try:
            expired = deadline is not None and time.time() > float(deadline)
        except (TypeError, ValueError):
            expired = False
        if expired:
            log.warning("dropped %s: its caller gave up %.1fs ago", self.method_name,
                        time.time() - float(deadline))
            self.rpc_consumer.queue_consumer.ack_message(message)
            return
        message._kc_started = time.perf_counter()
        super().handle_message(body, message)

    def handle_result(self, message: Any, worker_ctx: Any, result: Any, exc_info: Any) -> Any:
        if exc_info is not None and not isinstance(exc_info[1], KcError) and is_transient(exc_info[1]):
            # A dependency's outage (its database, the broker, the mail server) is not a
            # failure of this service: the caller gets the typed 503 (retry later), not an
            # unexpected error that the gateway answers 500.
            log.warning("%s failed on an outage, answered as unavailable: %r",
                        self.method_name, exc_info[1])
            unavailable = ServiceUnavailable(
                "Ein benötigter Dienst ist vorübergehend nicht erreichbar; bitte später erneut "
                "versuchen.", {"reason": "dependency_unavailable"})
            exc_info = (ServiceUnavailable, unavailable, exc_info[2])
        observe_rpc(self.container.service_name, self.method_name,
                    getattr(message, "_kc_started", None),
                    exc_info[1] if exc_info is not None else None)
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except Exception as exc:  # noqa: BLE001 - never let a lost reply end the service
            if not is_transient(exc):
                log.exception("reply of %s could not be sent", self.method_name)
            else:
                log.warning("reply of %s could not be sent (%r); the caller times out",
                            self.method_name, exc)
            try:
                self.rpc_consumer.queue_consumer.ack_message(message)
            except Exception:  # noqa: BLE001
                pass
            return result, exc_info


rpc = KcRpc.decorator


class PingMixin:
    """Every service answers ``ping`` (used by the gateway's /health)."""

    name: str

    @rpc
    def ping(self) -> dict[str, str]:
        return {"service": self.name, "status": "ok"}
