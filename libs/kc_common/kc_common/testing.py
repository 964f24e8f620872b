"""pytest plugin shared by every test suite (loaded from the root conftest).

* ``database_factory(package)``: a fresh PostgreSQL database for a service,
  migrated to head, created once per test run and dropped at its end
  (``KC_TEST_PG_ADMIN_URL``, default the local trust-auth server).
* ``service_config_factory(package)``: nameko config for an interface test:
  the run's database (emptied before each test) and the test's own vhost
  (nameko's ``rabbit_config``: every test gets a fresh vhost, so runs and
  tests never collide).
* ``wait_for(predicate)``: poll until true (for asynchronous event flows).
* ``rabbit_config`` / ``rabbit_manager``: replace nameko's fixtures of the same
  names. Nameko creates the test vhosts in a background greenlet and waits on a
  queue for them: when the management API refused one (a broker still starting,
  an alarm), that greenlet died and the test waited forever, and CI with it.
  Here every call to the broker's management API is bounded and a refusal
  fails the test with the API's answer.
* Markers, set here from the fixtures a test requests (so they cannot go stale):
  ``unit`` for a test that needs neither broker nor database (no fixture of
  :data:`INFRASTRUCTURE_FIXTURES`, directly or through another fixture); ``make
  test-unit`` runs ``pytest -m "unit and not slow"``. A test that reaches a broker
  or database on its own is marked ``@pytest.mark.infrastructure`` by hand; one that
  starts processes for seconds ``@pytest.mark.slow``.
* Every test's setup, call and teardown is bounded (``KC_TEST_TIMEOUT``, default
  900 s): a test blocked past it fails with the stacks of all greenlets printed,
  and the run goes on.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlparse

import eventlet
import greenlet
import psycopg2
import pytest
import requests
from alembic import command
from sqlalchemy import text

from kc_common.db import make_engine
from kc_common.migrations import alembic_config

PG_ADMIN_URL = os.environ.get("KC_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN_ID = uuid.uuid4().hex[:8]


TEST_TIMEOUT = float(os.environ.get("KC_TEST_TIMEOUT", "900"))


# A test that requests any of these (directly or through another fixture) needs a
# RabbitMQ or PostgreSQL: it is not a unit test.
INFRASTRUCTURE_FIXTURES = frozenset({
    "rabbit_config", "rabbit_manager", "container_factory", "runner_factory", "web_session",
    "database_factory", "service_config_factory", "empty_database", "capture_events",
    "system", "supervised_system"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: needs neither broker nor database (set automatically "
                                       "from the fixtures a test requests; `make test-unit`)")
    config.addinivalue_line("markers", "infrastructure: reaches a broker or database without one of "
                                       "the infrastructure fixtures (never a unit test)")
    config.addinivalue_line("markers", "slow: starts processes or renders for seconds; left out of "
                                       "`make test-unit` (pytest -m 'unit and not slow')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if (INFRASTRUCTURE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("infrastructure") is None):
            item.add_marker(pytest.mark.unit)


class PhaseBlocked(Exception):
    """A test's phase ran past KC_TEST_TIMEOUT."""


def _greenlet_stacks() -> str:
    out = []
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            out.append(f"--- greenlet {obj!r}\n" + "".join(traceback.format_stack(obj.gr_frame)))
    return "\n".join(out)


@contextmanager
def _bounded(item: pytest.Item, phase: str) -> Iterator[None]:
    """eventlet.Timeout raises in the blocked greenlet (a queue, a socket): the test fails, the run goes on."""
    timeout = eventlet.Timeout(TEST_TIMEOUT, PhaseBlocked(
        f"{item.nodeid} {phase} blocked for more than {TEST_TIMEOUT:.0f} s (KC_TEST_TIMEOUT)"))

    def report() -> None:
        sys.stderr.write(f"\n=== {item.nodeid} {phase}: blocked, stacks of all greenlets ===\n"
                         + _greenlet_stacks() + "\n")
    dump = eventlet.spawn_after(max(TEST_TIMEOUT - 1, 0.1), report)
    try:
        yield
    finally:
        dump.cancel()
        timeout.cancel()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _bounded(item, "setup"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _bounded(item, "call"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _bounded(item, "teardown"):
        yield


class RabbitAdmin:
    """The broker's management HTTP API, every call bounded.

    Each request has a socket timeout; connection errors and 5xx answers are
    retried for up to ``patience`` seconds (a broker that is still starting its
    plugins), anything else raises with the API's answer.
    """

    def __init__(self, uri: str, timeout: float = 15.0, patience: float = 60.0) -> None:
        parts = urlparse(uri)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api"
        self.auth = (parts.username or "guest", parts.password or "guest")
        self.timeout, self.patience = timeout, patience
        self.session = requests.Session()

    def request(self, method: str, *path: str, json: Any = None, ok_statuses: Collection[int] = ()) -> Any:
        url = "/".join([self.base, *(quote(p, safe="") for p in path)])
        deadline = time.monotonic() + self.patience
        while True:
            try:
                answer = self.session.request(method, url, json=json, auth=self.auth, timeout=self.timeout)
                if answer.status_code < 500:
                    if answer.status_code in ok_statuses:
                        return None
                    if answer.status_code >= 400:
                        raise RuntimeError(f"RabbitMQ management API {method} {url}: "
                                           f"{answer.status_code} {answer.text[:300]}")
                    return answer.json() if answer.content else None
                reason = f"{answer.status_code} {answer.text[:300]}"
            except requests.RequestException as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ management API {method} {url} did not answer within "
                                   f"{self.patience:.0f} s ({reason}); is the management plugin enabled?")
            time.sleep(1)

    def create_vhost(self, vhost: str) -> Any:
        return self.request("PUT", "vhosts", vhost)

    def delete_vhost(self, vhost: str) -> Any:
        return self.request("DELETE", "vhosts", vhost, ok_statuses=(404,))

    def set_vhost_permissions(self, vhost: str, username: str, configure: str, read: str, write: str) -> Any:
        return self.request("PUT", "permissions", vhost, username,
                            json={"configure": configure, "read": read, "write": write})

    def get_queues(self, vhost: str) -> Any:
        return self.request("GET", "queues", vhost)

    def get_queue(self, vhost: str, name: str) -> Any:
        return self.request("GET", "queues", vhost, name)

    def get_messages(self, vhost: str, name: str, count: int = 1, requeue: bool = False) -> Any:
        return self.request("POST", "queues", vhost, name, "get",
                            json={"count": count, "encoding": "auto", "requeue": requeue,
                                  "ackmode": "ack_requeue_true" if requeue else "ack_requeue_false"})


@pytest.fixture(scope="session")
def rabbit_manager(request: Any) -> RabbitAdmin:
    """Replaces nameko's fixture: the same calls, bounded."""
    admin = RabbitAdmin(request.config.getoption("RABBIT_API_URI"))
    admin.request("GET", "overview")
    return admin


@pytest.fixture
def rabbit_config(request: Any, rabbit_manager: RabbitAdmin) -> Iterator[dict[str, Any]]:
    """Replaces nameko's fixture: a fresh vhost per test, created and deleted in the test's own greenlet."""
    from kombu.pools import connections

    uri = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    username = uri.username or "guest"
    vhost = f"nameko_test_{uuid.uuid4().hex[:10]}"
    rabbit_manager.create_vhost(vhost)
    try:
        rabbit_manager.set_vhost_permissions(vhost, username, ".*", ".*", ".*")
        yield {"AMQP_URI": f"{uri.scheme}://{uri.netloc}/{vhost}", "username": username, "vhost": vhost}
    finally:
        rabbit_manager.delete_vhost(vhost)
        # kombu's pooled connections to the deleted vhost are dead: close them (as nameko's fixture does)
        for key, pool in list(connections.items()):
            if isinstance(key, tuple) and len(key) > 4 and key[4] == vhost:
                pool.force_close_all()


def pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def _admin(sql: str) -> None:
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = '120s'")
            cur.execute(sql)
    finally:
        conn.close()


def create_database(name: str) -> str:
    _admin(f'CREATE DATABASE "{name}"')
    return pg_url(name)


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename<>'alembic_version'"))]
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    engine.dispose()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def database_factory() -> Iterator[Callable[..., str]]:
    created = {}

    def make(package: str, fresh: bool = False) -> str:
        key = package if not fresh else f"{package}_{uuid.uuid4().hex[:6]}"
        if key not in created:
            name = f"kct_{RUN_ID}_{key.removeprefix('kc_')}"
            url = create_database(name)
            created[key] = (name, url)
            command.upgrade(alembic_config(package, url), "head")
        return created[key][1]

    yield make
    if not os.environ.get("KC_TEST_KEEP_DATABASES"):
        for name, _ in created.values():
            drop_database(name)


def service_config(package: str, amqp_config: dict[str, Any], database_url: str,
                   **extra: Any) -> dict[str, Any]:
    config = dict(amqp_config)
    config.update({
        "SERVICE_PACKAGE": package,
        "DATABASE_URL": database_url,
        "RPC_TIMEOUT": 5,
        "OUTBOX_POLL_INTERVAL": 0.2,
        "EVENT_MAX_ATTEMPTS": 3,
        "EVENT_RETRY_BACKOFF": 0.05,
    })
    config.update(extra)
    return config


@pytest.fixture
def service_config_factory(rabbit_config: dict[str, Any],
                           database_factory: Callable[..., str]) -> Callable[..., dict[str, Any]]:
    """Config for one service; its database is emptied first."""
    def make(package: str, **extra: Any) -> dict[str, Any]:
        url = database_factory(package)
        truncate_all(url)
        return service_config(package, rabbit_config, url, **extra)
    return make


@pytest.fixture(scope="session")
def empty_database() -> Iterator[Callable[[], str]]:
    """Factory of empty PostgreSQL databases (for tests with their own tables)."""
    created: list[str] = []

    def make() -> str:
        name = f"kct_{RUN_ID}_tmp{len(created)}"
        created.append(name)
        return create_database(name)

    yield make
    for name in created:
        drop_database(name)


def call(container: Any, method: str, *args: Any, context: dict[str, Any] | None = None,
         **kwargs: Any) -> Any:
    """Call entrypoint ``method`` of a running service container, with ``context`` as the call
    context (``{"customer_id": ...}``, ``{"staff_id": ..., "staff_roles": [...]}``, ...).
    A suite with a usual caller binds it: ``call = functools.partial(call, context=CUSTOMER)``."""
    from nameko.testing.services import entrypoint_hook
    with entrypoint_hook(container, method, context_data=context) as fn:
        return fn(*args, **kwargs)


def envelope(source: str, event_type: str | None, data: dict[str, Any] | None, event_id: str | None = None,
             occurred_at: str | None = None) -> dict[str, Any]:
    """An event as the services publish it (docs/architecture.md, "Event catalogue")."""
    import datetime as dt
    return {"id": event_id or str(uuid.uuid4()), "type": event_type, "source": source,
            "occurred_at": occurred_at or dt.datetime.now(dt.UTC).isoformat(), "data": data}


def publish(config: Mapping[str, Any] | str, source: str | dict[str, Any], event_type: str | None = None,
            data: dict[str, Any] | None = None, event_id: str | None = None) -> dict[str, Any]:
    """Publish an event as a service's outbox relay does (to ``<source>.events``, routing key its
    type, persistent): ``publish(config, envelope)``, or ``publish(config, source, event_type,
    data, event_id=None)`` to have the envelope made. ``config``: a nameko config or an AMQP URI.
    Returns the envelope."""
    from kombu import Connection, Producer

    from kc_common.events import event_exchange
    event = source if isinstance(source, dict) else envelope(source, event_type, data, event_id)
    exchange = event_exchange(event["source"])
    with Connection(config["AMQP_URI"] if isinstance(config, dict) else config) as conn:
        Producer(conn.default_channel, serializer="json").publish(
            event, exchange=exchange, routing_key=event["type"], declare=[exchange], delivery_mode=2)
    return event


def _quiet(conn: Any, container: Any) -> bool:
    """No worker of ``container`` runs and none of its event handler queues holds a ready message."""
    from kc_common.events import handler_queues, service_event_handlers
    if container._worker_threads:
        return False
    channel = conn.default_channel
    for source, event_type, method in service_event_handlers(container.service_cls):
        name = handler_queues(source, event_type, container.service_name, method)[0].name
        if channel.queue_declare(queue=name, passive=True).message_count:
            return False
    return not container._worker_threads


def _outbox_backlog(url: str) -> int:
    from kc_common.db import OUTBOX
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {OUTBOX} WHERE published_at IS NULL")).scalar_one()
    finally:
        engine.dispose()


class EventCapture:
    """Events of one source exchange, received on a private queue of the test."""

    def __init__(self, amqp_uri: str, source: str, routing_key: str = "#") -> None:
        from kombu import Connection, Queue

        from kc_common.events import event_exchange
        self._conn = Connection(amqp_uri)
        self._queue = Queue(f"test-capture-{uuid.uuid4().hex[:8]}", exchange=event_exchange(source),
                            routing_key=routing_key, exclusive=True, auto_delete=True)
        self._bound = self._queue(self._conn.default_channel)
        self._bound.declare()
        self.received: list[dict[str, Any]] = []

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events arrived; returns all received so far."""
        def enough() -> bool:
            while True:
                message = self._bound.get(no_ack=True)
                if message is None:
                    break
                self.received.append(message.decode())
            return len(self.received) >= count
        wait_for(enough, timeout=timeout, message=f"{count} event(s)")
        return self.received

    def drain(self, outbox: str | Sequence[str] | None = None, containers: Any = (),
              timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every event that has arrived once what was published has (to assert that nothing more came).

        No fixed sleep. ``containers``: service containers to let go quiet first (their event
        handler queues hold no ready message and no worker runs: an event published twice has been
        handled twice). ``outbox``: a service's database URL (or several): wait until its outbox
        holds no unpublished event (the relay has handed everything committed to the broker). Then a
        sentinel goes straight into this capture's queue and everything up to it is read: the queue
        is FIFO, so every event routed to it before the sentinel has been received.
        """
        from kombu import Producer
        for container in containers:
            wait_for(lambda: _quiet(self._conn, container), timeout=timeout,  # noqa: B023 - called before the loop moves on
                     message=f"{container.service_name} to have handled every event")
        for url in [outbox] if isinstance(outbox, str) else (outbox or ()):
            wait_for(lambda: _outbox_backlog(url) == 0, timeout=timeout,  # noqa: B023 - called before the loop moves on
                     message=f"an empty outbox ({url})")
        marker = f"sentinel-{uuid.uuid4().hex}"
        Producer(self._conn.default_channel, serializer="json").publish(
            {"sentinel": marker}, exchange="", routing_key=self._queue.name)

        def sentinel_seen() -> bool:
            while True:
                message = self._bound.get(no_ack=True)
                if message is None:
                    return False
                body = message.decode()
                if isinstance(body, dict) and body.get("sentinel") == marker:
                    return True
                self.received.append(body)
        wait_for(sentinel_seen, timeout=timeout, message="the capture's sentinel")
        return self.received

    def close(self) -> None:
        self._conn.release()


@pytest.fixture
def capture_events(rabbit_config: dict[str, Any]) -> Iterator[Callable[..., EventCapture]]:
    """``capture_events("catalog", "order_placed")`` -> :class:`EventCapture`; declare before acting."""
    captures = []

    def make(source: str, routing_key: str = "#") -> EventCapture:
        capture = EventCapture(rabbit_config["AMQP_URI"], source, routing_key)
        captures.append(capture)
        return capture

    yield make
    for capture in captures:
        capture.close()


class SmtpServer:
    """A real SMTP server on a free local port; ``messages()`` parses what arrived."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from kc_common.mailsink import Collector
        self.collector = Collector()
        sock = __import__("socket").socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self._controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)

    @property
    def config(self) -> dict[str, Any]:
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.port, "SMTP_TLS": "none"}

    def messages(self, to: str | None = None) -> list[Any]:
        from email import message_from_bytes, policy
        parsed = [message_from_bytes(raw, policy=policy.default)
                  for _, rcpts, raw in self.collector.messages if to is None or to in rcpts]
        return parsed

    def wait(self, count: int = 1, to: str | None = None, timeout: float = 10.0) -> list[Any]:
        return wait_for(lambda: len(self.messages(to)) >= count and self.messages(to),
                        timeout=timeout, message=f"{count} mail(s)")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real local SMTP server for one test; merge ``smtp_server.config`` into the service config."""
    server = SmtpServer()
    server._controller.start()
    yield server
    server._controller.stop()


class TcpProxy:
    """A TCP proxy on a free local port in front of a real server (broker, database).

    ``cut()`` is an outage as clients see it: the proxy process is killed, so every
    open connection is reset and new ones are refused; ``restore()`` starts it again on
    the same port. A separate process (:mod:`kc_common.tcpproxy`), so that the sockets
    it closes never disturb the test process's own event loop.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        import socket
        self.target = (target_host, int(target_port))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self._proc: Any = None

    def url_for(self, url: str) -> str:
        """``url`` with its host:port replaced by the proxy's."""
        from urllib.parse import urlsplit, urlunsplit
        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = (auth + "@" if auth else "") + f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> TcpProxy:
        import subprocess
        import sys
        if self.running:
            return self
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "kc_common.tcpproxy", str(self.port), *map(str, self.target)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self._proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError("the TCP proxy did not start")
        return self

    restore = start

    def cut(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc.stdout.close()
            self._proc = None

    stop = cut
