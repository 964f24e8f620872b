"""Quorum queues and the upgrade path from the classic queues of older versions."""
import pytest
from kombu import Connection, Exchange, Producer, Queue

from kc_common import topology
from kc_common.events import event_handler, handler_queues
from kc_common.rpc import PingMixin, rpc
from kc_common.testing import wait_for


class Listener(PingMixin):
    name = "listener"

    @rpc
    def echo(self, x):
        return x

    @event_handler("talker", "said")
    def on_said(self, payload):
        pass


def queue_type(manager, vhost, name):
    return manager.get_queue(vhost, name)["arguments"].get("x-queue-type", "classic")


def old_classic_topology(amqp_uri):
    """What the previous version declared: classic queues, no arguments."""
    main, retry, dead = handler_queues("talker", "said", "listener", "on_said")
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        Queue(main.name, exchange=Exchange("talker.events", type="topic", durable=True),
              routing_key="said", durable=True)(channel).declare()
        Queue(retry.name, durable=True, queue_arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": main.name})(channel).declare()
        Queue(dead.name, durable=True)(channel).declare()
        Queue("rpc-listener", exchange=Exchange("nameko-rpc", type="topic", durable=True),
              routing_key="listener.*", durable=True)(channel).declare()
        producer = Producer(channel)
        for i in range(3):  # events waiting in the old queue survive the migration
            producer.publish({"i": i}, exchange="talker.events", routing_key="said",
                             delivery_mode=2)
        producer.publish({"parked": 1}, exchange="", routing_key=dead.name, delivery_mode=2)
    return main, retry, dead


def test_fresh_vhost_gets_quorum_queues_with_delivery_limit(rabbit_config, rabbit_manager):
    vhost = rabbit_config["vhost"]
    names = topology.declare(rabbit_config["AMQP_URI"], [Listener])
    assert set(names) == {"rpc-listener", "evt-talker-said--listener.on_said",
                          "evt-talker-said--listener.on_said.retry",
                          "evt-talker-said--listener.on_said.dead"}
    for name in names:
        assert queue_type(rabbit_manager, vhost, name) == "quorum"
    args = rabbit_manager.get_queue(vhost, "evt-talker-said--listener.on_said")["arguments"]
    assert args["x-delivery-limit"] > 0
    assert args["x-dead-letter-routing-key"] == "evt-talker-said--listener.on_said.dead"
    assert "x-delivery-limit" in rabbit_manager.get_queue(vhost, "rpc-listener")["arguments"]
    # Idempotent: a second run declares the same queues without complaint.
    assert topology.declare(rabbit_config["AMQP_URI"], [Listener]) == names


def test_classic_queues_of_an_older_version_are_migrated_with_their_messages(
        rabbit_config, rabbit_manager, capsys):
    vhost, uri = rabbit_config["vhost"], rabbit_config["AMQP_URI"]
    main, retry, dead = old_classic_topology(uri)
    assert queue_type(rabbit_manager, vhost, main.name) == "classic"

    assert topology.main(["--amqp-uri", uri, "--services", "/dev/null"]) == 0  # nothing listed
    topology.declare(uri, [Listener])

    out = capsys.readouterr().out
    assert f"{main.name}: migrated (3 messages)" in out
    for name in (main.name, retry.name, dead.name, "rpc-listener"):
        assert queue_type(rabbit_manager, vhost, name) == "quorum"
        assert not any(q["name"] == f"{name}.migrating" for q in rabbit_manager.get_queues(vhost))
    with Connection(uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.default_channel
        assert main(channel).queue_declare(passive=True).message_count == 3
        assert dead(channel).queue_declare(passive=True).message_count == 1
        # The binding came back: a new event reaches the migrated queue.
        Producer(channel).publish({"i": 9}, exchange="talker.events", routing_key="said")
        wait_for(lambda: main(channel).queue_declare(passive=True).message_count == 4, timeout=5)
        bodies = sorted(main(channel).get(no_ack=True).payload["i"] for _ in range(4))
    assert bodies == [0, 1, 2, 9]


def test_a_classic_queue_still_consumed_is_refused_naming_the_command(rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    main, _, _ = old_classic_topology(uri)
    with Connection(uri) as conn:
        channel = conn.channel()
        channel.basic_consume(main.name, callback=lambda m: None)
        with pytest.raises(topology.TopologyConflict, match="python -m kc_common.topology"):
            topology.declare(uri, [Listener])


def test_queue_type_classic_declares_classic_queues_that_services_of_that_type_consume(
        rabbit_config, rabbit_manager, container_factory):
    """``QUEUE_TYPE: classic`` (the test suite's systems): same names, bindings and retry path."""
    vhost, uri = rabbit_config["vhost"], rabbit_config["AMQP_URI"]
    assert topology.main(["--amqp-uri", uri, "--services", "/dev/null", "--queue-type", "classic"]) == 0
    names = topology.declare(uri, [Listener], kind="classic")
    for name in names:
        assert queue_type(rabbit_manager, vhost, name) == "classic"
        assert "x-delivery-limit" not in rabbit_manager.get_queue(vhost, name)["arguments"]
    retry = rabbit_manager.get_queue(vhost, "evt-talker-said--listener.on_said.retry")["arguments"]
    assert retry["x-dead-letter-routing-key"] == "evt-talker-said--listener.on_said"
    # A service configured the same way starts on them (a mismatch would be PRECONDITION_FAILED).
    container = container_factory(Listener, dict(rabbit_config, QUEUE_TYPE="classic"))
    container.start()
    from nameko.standalone.rpc import ServiceRpcProxy
    with ServiceRpcProxy("listener", rabbit_config) as listener:
        assert listener.echo(7) == 7


def test_an_unknown_queue_type_is_refused(monkeypatch):
    from kc_common.events import queue_type as configured
    monkeypatch.delenv("QUEUE_TYPE", raising=False)
    assert configured({}) == "quorum"  # the default: make run, Kubernetes
    monkeypatch.setenv("QUEUE_TYPE", "classic")  # the test suite's (root conftest)
    assert configured({}) == "classic"
    assert configured({"QUEUE_TYPE": "quorum"}) == "quorum"  # the config wins
    assert configured({"QUEUE_TYPE": "Classic"}) == "classic"
    with pytest.raises(ValueError, match="QUEUE_TYPE must be one of quorum, classic"):
        configured({"QUEUE_TYPE": "stream"})
    with pytest.raises(SystemExit):
        topology.main(["--queue-type", "stream"])
