"""The bus done right, on a real RabbitMQ and PostgreSQL.

A tiny service with its own table exercises the shared machinery: outbox
(event iff commit, also when the broker was down at commit), idempotent
inbox, retry with backoff then dead letter and replay, RPC timeouts.
"""
import eventlet
import pytest
from kombu import Connection
from nameko.testing.services import entrypoint_hook
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from kc_common import dlq
from kc_common.db import Database, StandaloneDatabase, add_messaging_tables, make_engine
from kc_common.errors import Conflict, ServiceUnavailable
from kc_common.events import declare_topology, event_handler, handler_queues
from kc_common.rpc import PingMixin, TimedRpcProxy, rpc
from kc_common.testing import service_config, wait_for

metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True),
              Column("text", String(100), nullable=False))
counters = Table("counters", metadata, Column("name", String(50), primary_key=True),
                 Column("value", Integer, nullable=False))
add_messaging_tables(metadata)

FAILURES = {"left": 0}
SERVED_BY = []  # id of the container whose worker ran ``write``


class Writer(PingMixin):
    name = "writer"
    db = Database(metadata)

    @rpc
    def write(self, text, fail=False):
        SERVED_BY.append(id(self.db.engine))
        with self.db.unit_of_work() as uow:
            uow.session.execute(notes.insert().values(text=text))
            uow.emit("note_written", {"text": text})
            if fail:
                raise Conflict("rolled back on purpose")

    @rpc
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return "done"


class Reader:
    name = "reader"
    db = Database(metadata)

    @event_handler("writer", "note_written")
    def on_note(self, event):
        if FAILURES["left"] > 0:
            FAILURES["left"] -= 1
            raise RuntimeError("transient failure")
        self.db.handle_once(event, lambda uow, data: uow.session.execute(
            notes.insert().values(text="seen:" + data["text"])))


class Caller:
    name = "caller"
    writer = TimedRpcProxy("writer", timeout=0.5)
    nobody = TimedRpcProxy("nobody", timeout=0.5)

    @rpc
    def call_slow(self):
        return self.writer.slow(2)

    @rpc
    def call_nobody(self):
        return self.nobody.ping()


@pytest.fixture
def db_url(empty_database):
    url = empty_database()
    engine = make_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def config(rabbit_config, db_url):
    FAILURES["left"] = 0
    declare_topology(rabbit_config["AMQP_URI"], [Reader])
    return service_config(None, rabbit_config, db_url, EVENT_RETRY_BACKOFF=0.05, EVENT_MAX_ATTEMPTS=3)


def count(db_url, text=None):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        query = select(func.count()).select_from(notes)
        if text:
            query = query.where(notes.c.text == text)
        n = conn.execute(query).scalar_one()
    engine.dispose()
    return n


def test_event_is_published_iff_the_change_commits(container_factory, config, capture_events):
    events = capture_events("writer")
    writer = container_factory(Writer, config)
    writer.start()
    with entrypoint_hook(writer, "write") as write:
        write("kept")
        with pytest.raises(Conflict):
            write("dropped", fail=True)
    received = events.wait(1)
    assert [e["data"]["text"] for e in events.drain(config["DATABASE_URL"])] == ["kept"]
    assert received[0]["type"] == "note_written" and received[0]["source"] == "writer"
    assert count(config["DATABASE_URL"]) == 1


def test_event_committed_while_broker_unreachable_is_published_later(
        container_factory, config, capture_events):
    # Commit with no service (and so no relay) running: the event waits in the outbox.
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "writer")
    with db.unit_of_work() as uow:
        uow.emit("note_written", {"text": "offline"})
    db.engine.dispose()
    events = capture_events("writer")
    container_factory(Writer, config).start()
    assert events.wait(1)[0]["data"] == {"text": "offline"}


def test_consumer_does_the_work_once_for_a_duplicate_delivery(container_factory, config):
    reader = container_factory(Reader, config)
    reader.start()
    body = {"id": "2f4b0a52-0000-4000-8000-000000000001", "type": "note_written",
            "source": "writer", "occurred_at": "2026-01-01T00:00:00+00:00", "data": {"text": "x"}}
    with Connection(config["AMQP_URI"]) as conn:
        producer = conn.Producer(serializer="json")
        for _ in range(2):
            producer.publish(body, exchange="writer.events", routing_key="note_written")
    wait_for(lambda: count(config["DATABASE_URL"], "seen:x") == 1)
    eventlet.sleep(0.5)
    assert count(config["DATABASE_URL"], "seen:x") == 1


def test_failing_handler_is_retried_then_succeeds(container_factory, config):
    FAILURES["left"] = 2  # fails twice, third attempt (the last allowed) works
    writer = container_factory(Writer, config)
    writer.start()
    container_factory(Reader, config).start()
    with entrypoint_hook(writer, "write") as write:
        write("flaky")
    wait_for(lambda: count(config["DATABASE_URL"], "seen:flaky") == 1)


def test_handler_failing_every_time_is_dead_lettered_and_replayable(container_factory, config):
    FAILURES["left"] = 100
    writer = container_factory(Writer, config)
    writer.start()
    reader = container_factory(Reader, config)
    reader.start()
    with entrypoint_hook(writer, "write") as write:
        write("poison")
    _, _, dead = handler_queues("writer", "note_written", "reader", "on_note")

    def parked():
        with Connection(config["AMQP_URI"]) as conn:
            return dead(conn.default_channel).queue_declare(passive=True).message_count == 1
    wait_for(parked, message="the message in the dead-letter queue")
    assert count(config["DATABASE_URL"], "seen:poison") == 0

    FAILURES["left"] = 0
    queue = handler_queues("writer", "note_written", "reader", "on_note")[0].name
    assert dlq.main(["replay", "--amqp-uri", config["AMQP_URI"], queue]) == 0
    wait_for(lambda: count(config["DATABASE_URL"], "seen:poison") == 1)


def test_a_failed_republish_keeps_the_attempt_count_and_never_ends_the_service(container_factory,
                                                                               config):
    """Regression (issue 11): a failure while re-publishing a failed event escaped into nameko
    and ended the container, and the message came back as a first attempt again, so a poison
    message looped for ever. Here the broker refuses every re-publication to the retry queue
    (it nacks: ``reject-publish`` with no room), so each failed attempt goes back to the queue."""
    FAILURES["left"] = 100
    writer = container_factory(Writer, config)
    writer.start()
    reader = container_factory(Reader, config)
    reader.start()
    _, retry, dead = handler_queues("writer", "note_written", "reader", "on_note")
    with Connection(config["AMQP_URI"]) as conn:
        channel = conn.channel()
        channel.queue_delete(retry.name)
        channel.queue_declare(retry.name, durable=True,
                              arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with entrypoint_hook(writer, "write") as write:
        write("poison")

    def parked():
        with Connection(config["AMQP_URI"]) as conn:
            return dead(conn.default_channel).get(no_ack=True)
    message = wait_for(parked, timeout=30, message="the message in the dead-letter queue")
    # Exactly EVENT_MAX_ATTEMPTS (3) attempts, none of them counted as a first one again.
    assert message.headers["x-kc-attempt"] == 3
    assert 100 - FAILURES["left"] == 3
    assert message.headers["x-kc-error"].startswith("RuntimeError")
    eventlet.sleep(1.5)
    assert 100 - FAILURES["left"] == 3  # parked, not looping
    assert not reader._died.ready() and not writer._died.ready()  # no service ended
    FAILURES["left"] = 0  # the reader still serves
    with entrypoint_hook(writer, "write") as write:
        write("after")
    wait_for(lambda: count(config["DATABASE_URL"], "seen:after") == 1, timeout=15)


def test_rpc_times_out_and_unknown_service_is_unavailable(container_factory, config):
    container_factory(Writer, config).start()
    caller = container_factory(Caller, config)
    caller.start()
    with entrypoint_hook(caller, "call_slow") as call_slow:
        with pytest.raises(ServiceUnavailable):
            call_slow()
    with entrypoint_hook(caller, "call_nobody") as call_nobody:
        with pytest.raises(ServiceUnavailable):
            call_nobody()


def test_two_instances_share_calls_and_publish_each_event_once(container_factory, config,
                                                               capture_events):
    from nameko.standalone.rpc import ServiceRpcProxy
    events = capture_events("writer")
    for _ in range(2):
        container_factory(Writer, config).start()
    SERVED_BY.clear()
    pool = eventlet.GreenPool(10)

    def write(i):
        with ServiceRpcProxy("writer", config) as writer:
            writer.write(f"n{i}")
    list(pool.imap(write, range(40)))
    received = events.wait(40)
    assert len(set(SERVED_BY)) == 2  # both instances took calls from the shared queue
    assert sorted(e["data"]["text"] for e in events.drain(config["DATABASE_URL"])) == sorted(f"n{i}" for i in range(40))
    assert len({e["id"] for e in received}) == 40  # no event published twice by the two relays


def test_old_published_outbox_and_inbox_rows_are_pruned(config):
    import datetime as dt
    db = StandaloneDatabase(metadata, config["DATABASE_URL"], "writer")
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    with db.unit_of_work() as uow:
        uow.emit("note_written", {"text": "old"})
        uow.emit("note_written", {"text": "unpublished"})
        uow.session.execute(db.outbox.update().where(db.outbox.c.id == 1).values(published_at=old))
        uow.session.execute(db.inbox.insert().values(consumer="x", event_id="e", processed_at=old))
    from kc_common.db import OutboxRelay
    OutboxRelay(db.engine, db.outbox, "writer", config["AMQP_URI"]).prune(db.inbox, 7, 30)
    with db.engine.connect() as conn:
        assert [r.id for r in conn.execute(select(db.outbox.c.id))] == [2]
        assert conn.execute(select(func.count()).select_from(db.inbox)).scalar_one() == 0
    db.engine.dispose()


def test_series_numbers_are_dense_and_unique_under_concurrency_from_the_first_one(db_url):
    """Many issuers at once on an empty counter: no error, numbers first..first+n-1, no gaps."""
    from kc_common.db import next_in_series
    db = StandaloneDatabase(metadata, db_url, "t")
    taken = []

    def issue(i):
        with db.unit_of_work() as uow:
            number = next_in_series(uow.session, counters, "invoice", 1000001)
            if i % 5 == 4:
                raise RuntimeError("rolled back")  # its number goes back to the series
            taken.append(number)

    pool = eventlet.GreenPool(20)
    for i in range(40):
        pool.spawn(lambda i=i: pytest.raises(RuntimeError, issue, i) if i % 5 == 4 else issue(i))
    pool.waitall()
    db.engine.dispose()
    assert sorted(taken) == list(range(1000001, 1000001 + 32))
