"""Database dependency: unit of work, transactional outbox, idempotent inbox.

* ``with self.db.unit_of_work() as uow:`` opens one transaction; ``uow.emit()``
  writes an event row into the ``outbox`` table *in that transaction*. Commit
  or rollback decides both together: an event is published if and only if its
  change commits.
* A relay green thread in every instance publishes unpublished outbox rows with
  publisher confirms (rows claimed with ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, so several instances share the work), marks them published, and
  retries with backoff while the broker is down. A unit of work claims its events
  for its own process's relay (a short lease, ``EMIT_CLAIM_LEASE``) and its commit
  hands them over, so they leave within milliseconds without a claim transaction;
  a poll covers the rest (crashes between commit and publish: after the lease).
* ``self.db.handle_once(event, fn)`` runs ``fn(uow, data)`` in a transaction
  that also records ``(consumer, event id)`` in the ``inbox`` table: a consumer
  that sees an event twice does its work once.
* An exception leaving a unit of work rolls it back, except one marked with
  ``after_commit(error)``: that unit of work commits, then the error reaches the
  caller (a failed login attempt is recorded *and* the login fails).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, TypeVar

import eventlet
from eventlet.queue import Empty, LightQueue
from nameko.extensions import DependencyProvider
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from kc_common import metrics
from kc_common.bulk import bulk_insert
from kc_common.clock import (  # noqa: F401 (the services import them from here)
    as_utc,
    utcnow,
)
from kc_common.context import CORRELATION_ID, DEADLINE, current_correlation_id
from kc_common.engines import (  # noqa: F401 (the services and tests import them from here)
    SqliteWriteGate,
    make_engine,
    normalise_url,
)
from kc_common.errors import ServiceUnavailable
from kc_common.outbox import (  # noqa: F401 (tests import OutboxRelay from here)
    EMIT_CLAIM_LEASE,
    ClaimedEvent,
    OutboxRelay,
)
from kc_common.txguard import (  # noqa: F401
    NetworkIOInTransaction,
    assert_no_transaction,
    in_transaction,
    transaction_marker,
)

log = logging.getLogger(__name__)

OUTBOX = "outbox"
INBOX = "inbox"


def add_messaging_tables(metadata: MetaData) -> None:
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
        Column("claimed_until", DateTime(timezone=True), nullable=True),
    )
    Table(
        INBOX, metadata,
        Column("consumer", String(200), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox"),
    )


def json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_safe(data: dict[str, Any]) -> Any:
    """Decimals become strings, datetimes ISO 8601: what goes on the bus is plain JSON."""
    return json.loads(json.dumps(data, default=json_default))


def dialect_insert(session: Session) -> Callable[..., Any]:
    """The INSERT construct of the session's database (for ON CONFLICT DO NOTHING / UPDATE):
    PostgreSQL in production and tests, SQLite by default for `make run`."""
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]  # a bound session
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert


def next_in_series(session: Session, counters: Table, series: str, first: int, count: int = 1) -> int:
    """Next number of a dense series (invoice numbers, customer numbers).

    ``counters`` is the service's table of ``(name, value)`` rows. The UPDATE takes
    the row lock until commit, so concurrent issuers queue up; the number moves in
    the transaction that uses it, so a rollback gives it back and the series has
    no gaps. The first issuer creates the row; a concurrent first one conflicts
    harmlessly and then bumps it. ``count`` > 1 takes a block of numbers at once and
    returns the last: the block is ``value - count + 1 .. value``.
    """
    bump = update(counters).where(counters.c.name == series).values(
        value=counters.c.value + count).returning(counters.c.value)
    value = session.execute(bump).scalar()
    if value is None:
        insert = dialect_insert(session)
        session.execute(insert(counters).values(name=series, value=first - 1).on_conflict_do_nothing())
        value = session.execute(bump).scalar_one()
    return value


_E = TypeVar("_E", bound=BaseException)
_COMMIT_FIRST = "_kc_commit_first"


def after_commit(error: _E) -> _E:
    """Mark ``error`` to be raised only after the unit of work it leaves has committed.

    For a failure that must leave a trace: ``raise after_commit(Unauthenticated(...))``
    anywhere inside ``with db.unit_of_work():`` keeps what the transaction wrote (the failed
    attempt, recorded so that it counts for the throttle) and then lets the same error, with
    its traceback, reach the caller. Any unmarked exception rolls the unit of work back.

    Only the innermost unit of work the error leaves commits (the mark is used up there).
    When the commit itself fails (the caller's deadline passed, a database error), that
    failure is raised instead. In ``handle_once`` the event then counts as handled.
    Returns ``error``.
    """
    setattr(error, _COMMIT_FIRST, True)
    return error


class UnitOfWork:
    """One transaction; ``emit`` adds events that commit (or not) with it.

    Leaving it normally commits, leaving it with an exception rolls back, unless the
    exception is marked with :func:`after_commit` (commit, then raise).

    While it is open the green thread may do no network I/O (``assert_no_transaction``).
    Inside an RPC worker it carries the caller's deadline: a transaction that would
    commit after the caller has given up (and answered its client 503) rolls back
    instead, so nothing a caller was told failed happens later.
    """

    def __init__(self, database: Any, correlation_id: str | None = None,
                 deadline: float | None = None) -> None:
        self._database = database
        self._correlation_id = correlation_id
        self._deadline = deadline
        self._marker = transaction_marker()
        self.session: Session = None  # type: ignore[assignment]  # opened by __enter__
        self.emitted: list[dict[str, Any]] = []
        self._claimed: list[ClaimedEvent] = []

    def __enter__(self) -> UnitOfWork:
        self._check_deadline()
        self.session = self._database.Session()
        self._marker.__enter__()
        try:
            self.session.begin()
        except BaseException:
            self._marker.__exit__()
            self.session.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        commit = exc_type is None or getattr(exc, _COMMIT_FIRST, False)
        try:
            if commit:
                try:
                    self._check_deadline()
                except ServiceUnavailable:
                    self.session.rollback()
                    raise
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()
            self._marker.__exit__()
        if exc is not None and commit:
            setattr(exc, _COMMIT_FIRST, False)  # an enclosing unit of work rolls back as usual
        if commit and self.emitted:
            self._database.kick_relay(self._claimed)
        return False  # an exception (marked or not) goes on to the caller

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.time() > self._deadline:
            raise ServiceUnavailable(
                "Die Anfrage hat zu lange gedauert und wurde nicht ausgeführt.",
                {"reason": "deadline_exceeded"})

    def emit(self, event_type: str, data: dict[str, Any]) -> str:
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
        # Claimed at once by this process's relay when it runs (published right after the
        # commit, without a claim transaction of its own); else left for any relay.
        lease = getattr(self._database, "claim_lease", lambda: None)()
        claimed_until = now + dt.timedelta(seconds=lease) if lease else None
        row_id = self.session.connection().execute(self._database.outbox.insert().values(
            event_id=event_id, event_type=event_type, payload=envelope,
            headers=headers, created_at=now, claimed_until=claimed_until)
            .returning(self._database.outbox.c.id)).scalar_one()
        if claimed_until is not None:
            self._claimed.append(ClaimedEvent(row_id, event_type, envelope, headers))
        self.emitted.append(envelope)
        return event_id

    def emit_many(self, event_type: str, datas: Iterable[dict[str, Any]], json_safe: bool = False) -> list[str]:
        """:meth:`emit` of one event per item of ``datas`` in one bulk insert; their ids.

        ``json_safe``: the datas are plain JSON already (as :func:`to_json_safe` makes them)."""
        now = utcnow()
        headers = {}
        correlation_id = self._correlation_id or current_correlation_id()
        if correlation_id:
            headers[f"nameko.{CORRELATION_ID}"] = correlation_id
        rows, envelopes = [], []
        for data in datas:
            event_id = str(uuid.uuid4())
            envelope = {"id": event_id, "type": event_type, "source": self._database.service_name,
                        "occurred_at": now.isoformat(), "data": data if json_safe else to_json_safe(data)}
            envelopes.append(envelope)
            rows.append({"event_id": event_id, "event_type": event_type, "payload": envelope,
                         "headers": headers, "created_at": now})
        bulk_insert(self.session, self._database.outbox, rows)
        self.emitted.extend(envelopes)
        return [envelope["id"] for envelope in envelopes]

    def first_time(self, consumer: str | None, event_id: str) -> bool:
        """Record ``(consumer, event_id)``; False when it was recorded before."""
        insert = dialect_insert(self.session)
        stmt = insert(self._database.inbox).values(
            consumer=consumer, event_id=event_id, processed_at=utcnow()
        ).on_conflict_do_nothing()
        return self.session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]  # a CursorResult

    def seen(self, consumer: str | None, event_id: str) -> bool:
        """Whether ``(consumer, event_id)`` was recorded (without recording it)."""
        inbox = self._database.inbox
        return self.session.execute(select(inbox.c.event_id).where(
            inbox.c.consumer == consumer, inbox.c.event_id == event_id)).first() is not None


class Database(DependencyProvider):
    """A service's own database (``DATABASE_URL``) with outbox relay and inbox."""

    def __init__(self, metadata: MetaData, relay: bool = True) -> None:
        self.metadata = metadata
        self.relay_enabled = relay
        self.engine: Engine = None  # type: ignore[assignment]  # made in setup
        self.Session: sessionmaker[Session] = None  # type: ignore[assignment]
        self._kick = LightQueue()
        self._running = False
        self._ready: list[ClaimedEvent] = []  # ClaimedEvent rows committed here, for the relay to publish at once

    @property
    def outbox(self) -> Table:
        return self.metadata.tables[OUTBOX]

    @property
    def inbox(self) -> Table:
        return self.metadata.tables[INBOX]

    def setup(self) -> None:
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
        self._backlog = metrics.CachedReading(self._read_backlog)
        metrics.add_gauge_source(f"db-{id(self)}", self.service_name, self._gauges)

    def _read_backlog(self) -> dict[str, float]:
        count, age = self.relay.backlog()
        return {"kc_outbox_backlog": count, "kc_outbox_oldest_age_seconds": age}

    def _gauges(self) -> dict[str, float]:
        """Scraped: the pool's use now, the outbox backlog at most every GAUGE_TTL s."""
        values = dict(self._backlog.read())
        checkedout = getattr(self.engine.pool, "checkedout", None)
        if checkedout is not None:
            values["kc_db_pool_in_use"] = checkedout()
        return values

    def start(self) -> None:
        if self.relay_enabled:
            self._running = True
            self._relay_thread = self.container.spawn_managed_thread(self._relay_loop)

    def stop(self) -> None:
        """Graceful: the relay finishes the batch in hand (never killed inside a database
        call, which would leave a half-used connection behind), then the pool closes."""
        self._running = False
        self._kick.put_nowait(None)
        thread = getattr(self, "_relay_thread", None)
        if thread is not None and not thread.dead:
            with eventlet.Timeout(10, False):
                thread.wait()
        self._give_back_ready()
        metrics.remove_gauge_source(f"db-{id(self)}")
        if self.engine is not None:
            self.engine.dispose()

    def kill(self) -> None:
        metrics.remove_gauge_source(f"db-{id(self)}")
        self._running = False
        self._kick.put_nowait(None)
        thread = getattr(self, "_relay_thread", None)
        if thread is not None and not thread.dead:
            with eventlet.Timeout(2, False):
                thread.wait()

    def _give_back_ready(self) -> None:
        """Events committed after the relay's last round: any relay's next poll takes them
        (not only after the lease)."""
        ready, self._ready = self._ready, []
        if ready and self.engine is not None:
            try:
                self.relay._settle([], [r.id for r in ready])
            except Exception:  # noqa: BLE001 - then the lease runs out first
                log.warning("%s: could not give back %d claimed event(s); they go out after "
                            "the lease", self.service_name, len(ready), exc_info=True)

    def claim_lease(self) -> float | None:
        """Seconds a unit of work claims its events for this process's relay (None: no relay
        runs here, the events wait for any relay's poll)."""
        return EMIT_CLAIM_LEASE if self.relay_enabled and self._running else None

    def kick_relay(self, claimed: Iterable[ClaimedEvent] = ()) -> None:
        """After a commit: publish the events the unit of work claimed, at once."""
        self._ready.extend(claimed)
        self._kick.put_nowait(1)

    def _relay_loop(self) -> None:
        backoff = self.poll_interval
        next_prune = next_poll = 0.0
        while self._running:
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 3600
                try:
                    self.relay.prune(self.inbox, self.outbox_retention_days, self.inbox_retention_days)
                except Exception:  # noqa: BLE001 - housekeeping must never stop the relay
                    log.warning("pruning outbox/inbox of %s failed", self.service_name, exc_info=True)
            try:
                # Events committed here go out at once (claimed at emit: no claim transaction
                # on the way); the poll for everything else (given back after a failure,
                # emitted outside a container, another relay's expired lease) runs at least
                # every poll interval.
                ready, self._ready = self._ready, []
                if ready:
                    self.relay.publish(ready)
                published = 0
                if not ready or time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_interval
                    published = self.relay.flush()
                backoff = self.poll_interval
                if published == self.relay.batch or self._ready:
                    continue
            except Exception:  # broker or database down: keep the rows, try again later
                log.warning("outbox relay of %s failed; retrying in %.1fs", self.service_name,
                            backoff, exc_info=True)
                deadline = time.monotonic() + backoff
                while self._running and deadline > time.monotonic():  # stop() ends the wait
                    try:
                        self._kick.get(timeout=deadline - time.monotonic())
                    except Empty:
                        break
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                self._kick.get(timeout=self.poll_interval)
                while True:  # coalesce kicks
                    self._kick.get_nowait()
            except Empty:
                pass
        self.relay.close()

    def get_dependency(self, worker_ctx: Any) -> _Db:
        return _Db(self, worker_ctx)


class _Db:
    def __init__(self, database: Any, worker_ctx: Any) -> None:
        self._database = database
        self._worker_ctx = worker_ctx

    @property
    def engine(self) -> Engine:
        return self._database.engine

    def unit_of_work(self) -> UnitOfWork:
        deadline = self._worker_ctx.data.get(DEADLINE)
        return UnitOfWork(self._database, self._worker_ctx.data.get(CORRELATION_ID),
                          float(deadline) if deadline else None)

    def _consumer(self, consumer: str | None) -> str:
        return consumer or (f"{self._worker_ctx.service_name}."
                            f"{self._worker_ctx.entrypoint.method_name}")

    def handle_once(self, event: dict[str, Any], fn: Callable[..., Any], consumer: str | None = None) -> Any:
        """Run ``fn(uow, event['data'])`` once per event id and consumer.

        ``fn`` runs inside the transaction: it may read, write and emit, but not talk
        to the network (use :meth:`deliver_once` for mail, RPC or HTTP).
        Returns ``fn``'s result, or None for a duplicate delivery.
        """
        consumer = self._consumer(consumer)
        with self.unit_of_work() as uow:
            if not uow.first_time(consumer, event["id"]):
                log.info("duplicate event %s for %s ignored", event["id"], consumer)
                return None
            return fn(uow, event["data"])

    def deliver_once(self, event: dict[str, Any], prepare: Callable[..., Any], deliver: Callable[..., Any],
                     consumer: str | None = None, lease: float = 300.0) -> Any:
        """A side effect outside the database (mail, RPC, HTTP) once per event and consumer.

        ``prepare(uow, data)`` reads what the effect needs in a short transaction that
        also claims the delivery, and returns it (None: nothing to do);
        ``deliver(prepared)`` then runs with no transaction open; a second short
        transaction records the event as done. A duplicate delivered meanwhile finds the
        claim and is retried later (it then finds the event done). A failed delivery
        gives the claim back and is retried by the event handler; a crash between the
        delivery and the record repeats it after the claim's lease (at least once: mails
        carry a Message-ID stable per event for that case).
        """
        consumer = self._consumer(consumer)
        claim = f"{consumer}~delivering"
        inbox = self._database.inbox
        event_id = event["id"]
        with self.unit_of_work() as uow:
            if uow.seen(consumer, event_id):
                log.info("duplicate event %s for %s ignored", event_id, consumer)
                return None
            if not uow.first_time(claim, event_id):
                claimed_at = uow.session.execute(select(inbox.c.processed_at).where(
                    inbox.c.consumer == claim, inbox.c.event_id == event_id)).scalar()
                if claimed_at is not None and utcnow() - as_utc(claimed_at) < dt.timedelta(seconds=lease):
                    raise ServiceUnavailable("Dieses Ereignis wird gerade zugestellt.",
                                             {"reason": "delivery_in_progress"})
                uow.session.execute(update(inbox).where(
                    inbox.c.consumer == claim, inbox.c.event_id == event_id).values(processed_at=utcnow()))
            prepared = prepare(uow, event["data"])

        def release() -> None:
            with self.unit_of_work() as uow:
                uow.session.execute(inbox.delete().where(
                    inbox.c.consumer == claim, inbox.c.event_id == event_id))

        try:
            result = deliver(prepared) if prepared is not None else None
        except BaseException:
            release()
            raise
        with self.unit_of_work() as uow:
            uow.first_time(consumer, event_id)
            uow.session.execute(inbox.delete().where(
                inbox.c.consumer == claim, inbox.c.event_id == event_id))
        return result


class StandaloneDatabase:
    """The same unit of work outside a nameko container (manage commands, seeds).

    Events it emits stay in the outbox until the service's relay publishes them.
    """

    def __init__(self, metadata: MetaData, url: str, service_name: str) -> None:
        self.metadata = metadata
        self.service_name = service_name
        self.engine = make_engine(url)
        self.Session = sessionmaker(bind=self.engine, expire_on_commit=False, autobegin=False)

    outbox = Database.outbox
    inbox = Database.inbox

    def kick_relay(self, claimed: Iterable[ClaimedEvent] = ()) -> None:
        pass

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self)
