"""Prometheus metrics of every process (``prometheus-client``), served on its own port.

Every service gets them the same way, with no code of its own: kc_common's extensions
(``@rpc``, ``@event_handler``, ``Database``, the gateway's routes) count what they do and
declare :class:`MetricsServer`, which serves the process's metrics on ``METRICS_ADDRESS``
(config; ``host:port``, a bare port means all interfaces, empty or ``0`` = off).

The server is eventlet's WSGI server in a green thread (never an OS thread: it must not
block the hub), started once per process and address however many containers share it.
Counters cost a dictionary look-up and a lock per request; the gauges that need a query
(outbox backlog, dead-letter depth) are read only when Prometheus scrapes, and at most
every ``GAUGE_TTL`` seconds, outside any transaction of a worker.

Metric names and labels are listed in docs/metrics.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import eventlet
from eventlet import wsgi
from eventlet.semaphore import Semaphore
from nameko.extensions import SharedExtension
from prometheus_client import REGISTRY, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Latency buckets (seconds): RPC and HTTP requests take milliseconds to a few seconds; the
# RPC timeout (10 s) ends the last bucket.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
GAUGE_TTL = 10.0  # seconds a gauge that costs a query is reused for

RPC_REQUESTS = Counter(
    "kc_rpc_requests", "RPC requests served, by outcome: ok, unavailable (an outage; 503), "
    "the typed error's code (e.g. not_found, validation_failed) or error (unexpected)",
    ["service", "method", "outcome"])
RPC_DURATION = Histogram(
    "kc_rpc_duration_seconds", "Time an RPC took in the service (worker start to reply)",
    ["service", "method"], buckets=BUCKETS)
EVENT_HANDLER = Counter(
    "kc_event_handler", "Events handled, by outcome: ok, retried (failed, another attempt "
    "later), waited (outage, waited out without using up attempts), dead_lettered",
    ["service", "handler", "outcome"])
EVENT_HANDLER_DURATION = Histogram(
    "kc_event_handler_duration_seconds", "Time an event handler took (one attempt)",
    ["service", "handler"], buckets=BUCKETS)
HTTP_REQUESTS = Counter(
    "kc_http_requests", "HTTP requests answered, by route template and status",
    ["app", "route", "method", "status"])
HTTP_DURATION = Histogram(
    "kc_http_request_duration_seconds", "Time to answer an HTTP request, by route template",
    ["app", "route", "method"], buckets=BUCKETS)

UNMATCHED_ROUTE = "(unmatched)"  # the route label of a path no route knows (never the raw path)
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def http_method_label(method: str) -> str:
    """The request's method, or ``other`` (a client must not create label values at will)."""
    return method if method in _METHODS else "other"


def outcome_of(exc: BaseException | None) -> str:
    """The ``outcome`` label of a finished call: ``ok`` or a bounded name for its error."""
    if exc is None:
        return "ok"
    from kc_common.errors import KcError, ServiceUnavailable
    if isinstance(exc, ServiceUnavailable):
        return "unavailable"
    if isinstance(exc, KcError):
        return exc.code
    return "error"


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, remembered: the library validates the labels on every
    call, which is most of a counter's cost (the label sets are few and bounded)."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe_rpc(service: str, method: str, started: float | None, exc: BaseException | None) -> None:
    _child(RPC_REQUESTS, service, method, outcome_of(exc)).inc()
    if started is not None:
        _child(RPC_DURATION, service, method).observe(time.perf_counter() - started)


def observe_event(service: str, handler: str, outcome: Any, started: float | None = None) -> None:
    _child(EVENT_HANDLER, service, handler, outcome).inc()
    if started is not None:
        _child(EVENT_HANDLER_DURATION, service, handler).observe(time.perf_counter() - started)


def observe_http(app: str, route: str, method: str, status: str, started: float) -> None:
    _child(HTTP_REQUESTS, app, route, method, str(status)).inc()
    _child(HTTP_DURATION, app, route, method).observe(time.perf_counter() - started)


# ---------------------------------------------------------------- gauges read at scrape time

GAUGES = {
    "kc_outbox_backlog": "Outbox rows not yet published to the broker",
    "kc_outbox_oldest_age_seconds": "Age of the oldest unpublished outbox row (0 when none)",
    "kc_dead_letter_messages": "Messages parked in the service's dead-letter queues",
    "kc_db_pool_in_use": "Database connections checked out of the pool",
}


class CachedReading:
    """``read()`` -> ``{gauge name: value}``, computed at most every ``ttl`` seconds; a
    reading that fails (database or broker down) is left out of the scrape, never raised."""

    def __init__(self, fn: Callable[..., Any], ttl: int | None = None) -> None:
        self.fn, self.ttl = fn, ttl
        self._value: Any = {}
        self._until = 0.0
        self._lock = Semaphore(1)

    def read(self) -> Any:
        with self._lock:
            if time.monotonic() >= self._until:
                try:
                    self._value = self.fn()
                except Exception as exc:  # noqa: BLE001 - a scrape never fails on an outage
                    log.debug("metrics reading failed: %r", exc)
                    self._value = {}
                self._until = time.monotonic() + (GAUGE_TTL if self.ttl is None else self.ttl)
            return self._value


class _ServiceGauges(Collector):
    """The gauges of every service container in this process, by ``service`` label."""

    def __init__(self) -> None:
        self._sources: dict[str, tuple[str, Callable[[], Mapping[str, float]]]] = {}  # key -> (service, callable returning {gauge: value})

    def add(self, key: str, service: str, read: Callable[[], Mapping[str, float]]) -> None:
        self._sources[key] = (service, read)

    def remove(self, key: str) -> None:
        self._sources.pop(key, None)

    def collect(self) -> list[Any]:
        families = {name: GaugeMetricFamily(name, doc, labels=["service"])
                    for name, doc in GAUGES.items()}
        totals: dict[tuple[str, str], float] = {}
        for service, read in list(self._sources.values()):
            for name, value in read().items():
                totals[(name, service)] = totals.get((name, service), 0) + value
        for (name, service), value in sorted(totals.items()):
            families[name].add_metric([service], value)
        return [f for f in families.values() if f.samples]

    def describe(self) -> list[Any]:
        return []  # collected lazily: nothing to query at registration


SERVICE_GAUGES = _ServiceGauges()
REGISTRY.register(SERVICE_GAUGES)


def add_gauge_source(key: str, service: str, read: Callable[[], Mapping[str, float]]) -> None:
    """Register ``read() -> {gauge name: value}`` (a :class:`CachedReading`'s ``read`` or a
    cheap function) for ``service``; ``remove_gauge_source(key)`` when it stops."""
    SERVICE_GAUGES.add(key, service, read)


def remove_gauge_source(key: str) -> None:
    SERVICE_GAUGES.remove(key)


# ---------------------------------------------------------------- the metrics HTTP server

def parse_address(value: Any) -> tuple[str, int] | None:
    """``(host, port)`` of a ``METRICS_ADDRESS`` value, or None when metrics are off."""
    if value is None:
        return None
    text = str(value).strip()
    if text in ("", "0"):
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = ""
    port = int(port_text)
    if port == 0:
        return None
    return (host.strip("[]") or "0.0.0.0", port)


_servers: dict[tuple[str, int], list[Any]] = {}  # (host, port) -> [references, green thread, socket]
_servers_lock = Semaphore(1)


def serve(address: Any) -> tuple[str, int] | None:
    """Serve this process's metrics on ``address`` (see :func:`parse_address`); returns a key
    for :func:`release`, or None when off or when the port is taken (logged: a service runs
    on without metrics rather than refuse to start)."""
    key = parse_address(address)
    if key is None:
        return None
    with _servers_lock:
        entry = _servers.get(key)
        if entry is None:
            try:
                sock = eventlet.listen(key)
            except OSError as exc:
                log.error("metrics: cannot listen on %s:%s (%s); no metrics from this process",
                          key[0], key[1], exc)
                return None
            thread = eventlet.spawn(wsgi.server, sock, make_wsgi_app(REGISTRY), log_output=False,
                                    log=logging.getLogger("kc_common.metrics.access"))
            entry = _servers[key] = [0, thread, sock]
            log.info("metrics on http://%s:%s/metrics", key[0], key[1])
        entry[0] += 1
    return key


def release(key: tuple[str, int] | None) -> None:
    """One user of the server at ``key`` is done; the last one stops it."""
    if key is None:
        return
    with _servers_lock:
        entry = _servers.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] > 0:
            return
        del _servers[key]
    _, thread, sock = entry
    thread.kill()
    try:
        sock.close()
    except OSError:
        pass


class MetricsServer(SharedExtension):
    """Serves the process's metrics on the container's ``METRICS_ADDRESS`` while it runs.

    Declared by kc_common's entrypoints and providers, so every service (and the gateway)
    has it without a line of its own.
    """

    _key: tuple[str, int] | None = None

    def setup(self) -> None:
        self._key = serve(self.container.config.get("METRICS_ADDRESS"))

    def stop(self) -> None:
        key, self._key = self._key, None
        release(key)

    def kill(self) -> None:
        self.stop()
