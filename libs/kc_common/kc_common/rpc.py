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

import inspect
import logging
import os
import time
from typing import Any

import eventlet
from eventlet.semaphore import Semaphore
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import IncorrectSignature, UnknownService
from nameko.rpc import (
    MethodProxy,
    ReplyListener,
    Responder,
    Rpc,
    RpcConsumer,
    RpcProxy,
    ServiceProxy,
    get_rpc_exchange,
)

from kc_common.context import DEADLINE
from kc_common.errors import KcError, ServiceUnavailable
from kc_common.events import (
    DEFAULT_QUEUE_TYPE,
    QUORUM,
    connect_once,
    is_transient,
    queue_type,
)
from kc_common.metrics import MetricsServer, observe_rpc
from kc_common.txguard import assert_no_transaction

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0

# A request that cannot be published at once (broker down) fails fast: the caller gets a
# 503 within a second or two instead of waiting out kombu's default retries.
CONNECT_TIMEOUT = 2.0
RETRY_DELAY = 0.2
# Kept connections per process and broker address (kombu's pool limit, as before).
KEPT_CONNECTIONS = 10


class KeptProducers:
    """Every RPC request and reply of a process goes out through kept broker connections.

    nameko 2.14 builds a ``Publisher``, a kombu ``Connection`` and a pooled ``Producer``
    (acquired, revived on a channel, released) for every publish; the TCP connection is
    pooled, the rest is rebuilt each time. Here each kept connection keeps its confirm
    channel and producer; a publish borrows one (at most ``KEPT_CONNECTIONS`` are open, the
    others wait) and gives it back. Every publish waits for the broker's confirm
    (``mandatory`` returns are seen, as nameko's ``UndeliverableMessage``).

    A connection that fails is dropped (the next publish opens a new one): a kept connection
    that died with a broker restart is retried once at once on a fresh one; a fresh one that
    fails is retried once after ``RETRY_DELAY``, then the error goes to the caller (the RPC's
    fast ``ServiceUnavailable``). A confirm that does not come in time is not retried (the
    request may have been routed).
    """

    def __init__(self, amqp_uri: str, ssl: Any = None, login_method: Any = None,
                 limit: int = KEPT_CONNECTIONS) -> None:
        self.amqp_uri = amqp_uri
        self.ssl = ssl
        self.login_method = login_method
        self._idle: list[Any] = []
        self._free = Semaphore(limit)

    def _connect(self) -> Any:
        from kombu import Connection, Producer
        connection = Connection(self.amqp_uri, ssl=self.ssl, login_method=self.login_method,
                                connect_timeout=CONNECT_TIMEOUT,
                                transport_options={"confirm_publish": True})
        try:
            # One attempt per broker: kombu's connect() retries a refused connection after 2 s.
            connect_once(connection)
            return connection, Producer(connection.default_channel)
        except BaseException:
            self._drop((connection, None))
            raise

    @staticmethod
    def _drop(slot: Any) -> None:
        try:
            slot[0].release()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close
            pass

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for slot in idle:
            self._drop(slot)

    def publish(self, payload: Any, *, timeout: float | None = None, **kwargs: Any) -> None:
        from kombu.exceptions import ChannelError, OperationalError
        with self._free:
            for attempt in (1, 2):
                # The second attempt on a fresh connection: the other kept ones may have
                # died with the same broker restart.
                slot = self._idle.pop() if self._idle and attempt == 1 else None
                kept = slot is not None
                try:
                    if slot is None:
                        slot = self._connect()
                    slot[1].publish(payload, retry=False, timeout=timeout, **kwargs)
                except BaseException as exc:
                    if slot is not None:
                        self._drop(slot)
                    if isinstance(exc, ChannelError) and "NO_ROUTE" in str(exc):
                        raise UndeliverableMessage() from None
                    lost = isinstance(exc, Exception) and not isinstance(exc, TimeoutError) and (
                        is_transient(exc) or isinstance(exc, _connection_errors()))
                    if not lost or attempt == 2:
                        if lost and not is_transient(exc):  # e.g. "Server unexpectedly closed"
                            raise OperationalError(f"broker connection lost: {exc!r}") from exc
                        raise
                    if not kept:
                        eventlet.sleep(RETRY_DELAY)
                    continue
                self._idle.append(slot)
                return


def _connection_errors() -> tuple[type[BaseException], ...]:
    """What py-amqp raises when the connection is lost (a bare ``OSError`` among them)."""
    from kombu.transport.pyamqp import Transport
    return Transport.connection_errors + Transport.recoverable_connection_errors


_kept: dict[tuple[Any, ...], KeptProducers] = {}


def kept_producers(amqp_uri: str, ssl: Any = None, login_method: Any = None) -> KeptProducers:
    """This process's :class:`KeptProducers` for a broker address."""
    key = (os.getpid(), amqp_uri, repr(ssl), login_method)
    producers = _kept.get(key)
    if producers is None:
        producers = _kept[key] = KeptProducers(amqp_uri, ssl, login_method)
    return producers


class KeptPublisher(Publisher):
    """nameko's ``Publisher`` (same options and arguments) publishing through the process's
    :class:`KeptProducers`, always with confirms; ``confirm_timeout`` (seconds, None: wait)
    bounds the wait for the confirm. kombu's retry options are not used (see
    :class:`KeptProducers` for what is retried)."""

    confirm_timeout: float | None = None

    def publish(self, payload: Any, **kwargs: Any) -> None:
        publish_kwargs = self.publish_kwargs.copy()
        headers = publish_kwargs.pop("headers", {}).copy()
        headers.update(kwargs.pop("headers", {}))
        headers.update(kwargs.pop("extra_headers", {}))
        for ignored in ("use_confirms", "transport_options", "retry", "retry_policy"):
            kwargs.pop(ignored, None)
        options = {"delivery_mode": self.delivery_mode, "mandatory": self.mandatory,
                   "priority": self.priority, "expiration": self.expiration,
                   "serializer": self.serializer, "compression": self.compression}
        for name in options:
            if name in kwargs:
                options[name] = kwargs.pop(name)
        declare = self.declare[:]
        declare.extend(kwargs.pop("declare", ()))
        publish_kwargs.update(kwargs)
        kept_producers(self.amqp_uri, self.ssl, self.login_method).publish(
            payload, headers=headers, declare=declare, timeout=self.confirm_timeout,
            **options, **publish_kwargs)


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
                # One attempt per broker: kombu's connect() retries a refused connection
                # after 2 s, which every caller would wait out while the broker is down.
                connect_once(connection)
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

    publisher_cls = KeptPublisher

    def __init__(self, worker_ctx: Any, service_name: str, method_name: str, reply_listener: Any,
                 timeout: float, **options: Any) -> None:
        self.timeout = timeout
        options.setdefault("expiration", timeout)
        super().__init__(worker_ctx, service_name, method_name, reply_listener, **options)
        # A half-open connection does not hold the caller past its timeout.
        self.publisher.confirm_timeout = timeout

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


class _ReplyPublisher(KeptPublisher):
    confirm_timeout = DEFAULT_TIMEOUT  # a half-open connection does not hold the worker


class KcResponder(Responder):
    """nameko's reply, sent through the process's kept connections."""

    publisher_cls = _ReplyPublisher


class KcRpcConsumer(RpcConsumer):
    """nameko's shared RPC consumer, declaring ``rpc-<service>`` as ``QUEUE_TYPE`` says and
    replying through the process's kept connections (:class:`KeptProducers`)."""

    def setup(self) -> None:
        super().setup()
        self.queue.queue_arguments = rpc_queue_arguments(queue_type(self.container.config))
        config = self.container.config
        self._reply_args = (config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER))
        self._reply_kwargs = {"ssl": config.get(AMQP_SSL_CONFIG_KEY),
                              "login_method": config.get(LOGIN_METHOD_CONFIG_KEY)}

    def handle_result(self, message: Any, result: Any, exc_info: Any) -> Any:
        # nameko's RpcConsumer.handle_result with the kept-connection responder (and the
        # exchange built once).
        responder = KcResponder(*self._reply_args, message, **self._reply_kwargs)
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class KcRpc(Rpc):
    """``@rpc`` whose typed errors are logged as expected, not as crashes, that drops requests
    whose caller has already given up, and that survives a broker outage while replying.

    Counts every call and its duration (``kc_rpc_requests_total``, ``kc_rpc_duration_seconds``)."""

    metrics_server = MetricsServer()

    rpc_consumer = KcRpcConsumer()

    _signature: inspect.Signature | None = None

    def check_signature(self, args: Any, kwargs: Any) -> None:
        # nameko's check with inspect.getcallargs builds the method's signature on every call
        # (up to a sixth of a service's CPU in a profile); the signature is built once here.
        signature = self._signature
        if signature is None:
            fn = getattr(self.container.service_cls, self.method_name)
            signature = self._signature = inspect.signature(fn)
        try:
            signature.bind(None, *args, **kwargs)  # None: the unbound method's self
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None

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
