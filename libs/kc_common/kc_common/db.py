"""Database dependency: unit of work, transactional outbox, idempotent inbox.

* ``with self.db.unit_of_work() as uow:`` opens one transaction; ``uow.emit()``
  writes an event row into the ``outbox`` table *in that transaction*. Commit
  or rollback decides both together: an event is published if and only if its
  change commits.
* A relay green thread in every instance publishes unpublished outbox rows with
  publisher confirms (rows claimed with ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, so several instances share the work), marks them published, and
  retries with backoff while the broker is down. A commit kicks the relay, so
  events leave within milliseconds; a poll covers crashes between commit and
  publish.
* ``self.db.handle_once(event, fn)`` runs ``fn(uow, data)`` in a transaction
  that also records ``(consumer, event id)`` in the ``inbox`` table: a consumer
  that sees an event twice does its work once.
"""
import datetime as dt
import json
import logging
import os
import time
import uuid
from decimal import Decimal

import eventlet
from eventlet.queue import Empty, LightQueue
from kombu import Connection, Producer
from nameko.extensions import DependencyProvider
from sqlalchemy import (JSON, BigInteger, Column, DateTime, Integer, MetaData,
                        PrimaryKeyConstraint, String, Table, create_engine, event,
                        select, update)
from sqlalchemy.orm import sessionmaker

from kc_common.context import CORRELATION_ID, current_correlation_id
from kc_common.events import event_exchange

log = logging.getLogger(__name__)

OUTBOX = "outbox"
INBOX = "inbox"


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value):
    """Stored instants are UTC; SQLite hands them back naive."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def add_messaging_tables(metadata: MetaData):
    """Add the outbox and inbox tables to a service's metadata (and so its migrations)."""
    Table(
        OUTBOX, metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    )
    Table(
        INBOX, metadata,
        Column("consumer", String(200), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )


def json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_safe(data):
    """Decimals become strings, datetimes ISO 8601: what goes on the bus is plain JSON."""
    return json.loads(json.dumps(data, default=json_default))


def normalise_url(url):
    """``postgresql://`` means psycopg2 here: SQLAlchemy 2.1 would pick psycopg 3,
    which does not cooperate with eventlet."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def make_engine(url, **kwargs):
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def dialect_insert(session):
    """The INSERT construct of the session's database (for ON CONFLICT DO NOTHING / UPDATE):
    PostgreSQL in production and tests, SQLite by default for `make run`."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def next_in_series(session, counters, series, first):
    """Next number of a dense series (invoice numbers, customer numbers).

    ``counters`` is the service's table of ``(name, value)`` rows. The UPDATE takes
    the row lock until commit, so concurrent issuers queue up; the number moves in
    the transaction that uses it, so a rollback gives it back and the series has
    no gaps. The first issuer creates the row; a concurrent first one conflicts
    harmlessly and then bumps it.
    """
    bump = update(counters).where(counters.c.name == series).values(
        value=counters.c.value + 1).returning(counters.c.value)
    value = session.execute(bump).scalar()
    if value is None:
        insert = dialect_insert(session)
        session.execute(insert(counters).values(name=series, value=first - 1).on_conflict_do_nothing())
        value = session.execute(bump).scalar_one()
    return value


class UnitOfWork:
    """One transaction; ``emit`` adds events that commit (or not) with it."""

    def __init__(self, database, correlation_id=None):
        self._database = database
        self._correlation_id = correlation_id
        self.session = None
        self.emitted = []

    def __enter__(self):
        self.session = self._database.Session()
        self.session.begin()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()
        if exc_type is None and self.emitted:
            self._database.kick_relay()
        return False

    def emit(self, event_type, data):
        """Record an event for publication after commit; returns its id."""
        event_id = str(uuid.uuid4())
        now = utcnow()
        envelope = {
            "id": event_id,
            "type": event_type,
            "source": self._database.service_name,
            "occurred_at": now.isoformat(),
            "data": to_json_safe(data),
        }
        headers = {}
        correlation_id = self._correlation_id or current_correlation_id()
        if correlation_id:
            headers[f"nameko.{CORRELATION_ID}"] = correlation_id
        self.session.execute(self._database.outbox.insert().values(
            event_id=event_id, event_type=event_type, payload=envelope,
            headers=headers, created_at=now))
        self.emitted.append(envelope)
        return event_id

    def first_time(self, consumer, event_id):
        """Record ``(consumer, event_id)``; False when it was recorded before."""
        insert = dialect_insert(self.session)
        stmt = insert(self._database.inbox).values(
            consumer=consumer, event_id=event_id, processed_at=utcnow()
        ).on_conflict_do_nothing()
        return self.session.execute(stmt).rowcount == 1


class OutboxRelay:
    """Publishes committed outbox rows to the services' event exchanges."""

    def __init__(self, engine, outbox, service_name, amqp_uri, batch=200):
        self.engine = engine
        self.outbox = outbox
        self.service_name = service_name
        self.amqp_uri = amqp_uri
        self.batch = batch
        self._connection = None

    def _producer(self):
        if self._connection is None:
            self._connection = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
        return Producer(self._connection.default_channel, serializer="json")

    def prune(self, inbox, outbox_days, inbox_days):
        """Forget published outbox rows and inbox entries older than the retention."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(self.outbox.delete().where(
                self.outbox.c.published_at < now - dt.timedelta(days=outbox_days)))
            conn.execute(inbox.delete().where(inbox.c.processed_at < now - dt.timedelta(days=inbox_days)))

    def close(self):
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    def flush(self):
        """Publish one batch; returns how many rows were published."""
        t = self.outbox
        with self.engine.connect() as conn, conn.begin():
            rows = conn.execute(
                select(t.c.id, t.c.event_type, t.c.payload, t.c.headers)
                .where(t.c.published_at.is_(None)).order_by(t.c.id).limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            try:
                producer = self._producer()
                exchanges = {}
                for row in rows:
                    # The envelope names its source: the exchange never depends on who relays it.
                    source = row.payload.get("source", self.service_name)
                    if source not in exchanges:
                        exchanges[source] = event_exchange(source)
                        exchanges[source](producer.channel).declare()
                    producer.publish(row.payload, exchange=exchanges[source],
                                     routing_key=row.event_type, headers=row.headers,
                                     delivery_mode=2, retry=False)
            except Exception:
                self.close()
                raise
            conn.execute(update(t).where(t.c.id.in_([r.id for r in rows])).values(published_at=utcnow()))
        log.debug("outbox relay of %s published %d event(s)", self.service_name, len(rows))
        return len(rows)


class Database(DependencyProvider):
    """A service's own database (``DATABASE_URL``) with outbox relay and inbox."""

    def __init__(self, metadata: MetaData, relay=True):
        self.metadata = metadata
        self.relay_enabled = relay
        self.engine = None
        self.Session = None
        self._kick = LightQueue()
        self._running = False

    @property
    def outbox(self):
        return self.metadata.tables[OUTBOX]

    @property
    def inbox(self):
        return self.metadata.tables[INBOX]

    def setup(self):
        self.service_name = self.container.service_name
        url = self.container.config.get("DATABASE_URL")
        if not url:
            raise RuntimeError(f"{self.service_name}: DATABASE_URL is not configured")
        package = self.container.config.get("SERVICE_PACKAGE")
        if package and self.container.config.get("CHECK_MIGRATIONS", True):
            from kc_common.migrations import current_and_head
            current, head = current_and_head(package, url)
            if current != head:  # fail fast: never run against a schema the code does not know
                raise RuntimeError(f"{self.service_name}: database at revision {current}, "
                                   f"code expects {head}; run the migrations first")
        self.engine = make_engine(url)
        self.Session = sessionmaker(bind=self.engine, expire_on_commit=False, autobegin=False)
        self.poll_interval = float(self.container.config.get("OUTBOX_POLL_INTERVAL", 1.0))
        # Published events are kept a week for inspection; inbox entries a month (a duplicate
        # delivery later than that is not a realistic failure mode).
        self.outbox_retention_days = float(self.container.config.get("OUTBOX_RETENTION_DAYS", 7))
        self.inbox_retention_days = float(self.container.config.get("INBOX_RETENTION_DAYS", 30))
        self.relay = OutboxRelay(self.engine, self.outbox, self.service_name,
                                 self.container.config["AMQP_URI"])

    def start(self):
        if self.relay_enabled:
            self._running = True
            self.container.spawn_managed_thread(self._relay_loop)

    def stop(self):
        self._running = False
        self._kick.put_nowait(None)

    def kill(self):
        self.stop()

    def kick_relay(self):
        self._kick.put_nowait(1)

    def _relay_loop(self):
        backoff = self.poll_interval
        next_prune = 0.0
        while self._running:
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 3600
                try:
                    self.relay.prune(self.inbox, self.outbox_retention_days, self.inbox_retention_days)
                except Exception:  # noqa: BLE001 - housekeeping must never stop the relay
                    log.warning("pruning outbox/inbox of %s failed", self.service_name, exc_info=True)
            try:
                published = self.relay.flush()
                backoff = self.poll_interval
                if published == self.relay.batch:
                    continue
            except Exception:  # broker or database down: keep the rows, try again later
                log.warning("outbox relay of %s failed; retrying in %.1fs", self.service_name,
                            backoff, exc_info=True)
                eventlet.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            try:
                self._kick.get(timeout=self.poll_interval)
                while True:  # coalesce kicks
                    self._kick.get_nowait()
            except Empty:
                pass
        self.relay.close()

    def get_dependency(self, worker_ctx):
        return _Db(self, worker_ctx)


class _Db:
    def __init__(self, database, worker_ctx):
        self._database = database
        self._worker_ctx = worker_ctx

    @property
    def engine(self):
        return self._database.engine

    def unit_of_work(self):
        return UnitOfWork(self._database, self._worker_ctx.data.get(CORRELATION_ID))

    def handle_once(self, event, fn, consumer=None):
        """Run ``fn(uow, event['data'])`` once per event id and consumer.

        Returns ``fn``'s result, or None for a duplicate delivery.
        """
        consumer = consumer or (f"{self._worker_ctx.service_name}."
                                f"{self._worker_ctx.entrypoint.method_name}")
        with self.unit_of_work() as uow:
            if not uow.first_time(consumer, event["id"]):
                log.info("duplicate event %s for %s ignored", event["id"], consumer)
                return None
            return fn(uow, event["data"])


class StandaloneDatabase:
    """The same unit of work outside a nameko container (manage commands, seeds).

    Events it emits stay in the outbox until the service's relay publishes them.
    """

    def __init__(self, metadata, url, service_name):
        self.metadata = metadata
        self.service_name = service_name
        self.engine = make_engine(url)
        self.Session = sessionmaker(bind=self.engine, expire_on_commit=False, autobegin=False)

    outbox = Database.outbox
    inbox = Database.inbox

    def kick_relay(self):
        pass

    def unit_of_work(self):
        return UnitOfWork(self)
