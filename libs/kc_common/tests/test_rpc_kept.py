"""RPC requests and replies go out through kept connections (issue 17), on a real RabbitMQ.

Each process keeps its broker connections and producers for RPC publishes
(:class:`kc_common.rpc.KeptProducers`) instead of nameko's publisher, connection and pooled
producer rebuilt per publish; the guarantees stay: confirms, mandatory (an unknown service),
a fresh connection after the kept one died, a fast error while the broker is away.
"""
import eventlet
import pytest
from nameko.amqp.publish import UndeliverableMessage
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook

from kc_common.rpc import KeptProducers, TimedRpcProxy, kept_producers, rpc
from kc_common.testing import service_config


class Echo:
    name = "kept_echo"

    @rpc
    def echo(self, value):
        return value


class Asker:
    name = "kept_asker"
    echo = TimedRpcProxy("kept_echo", timeout=5)

    @rpc
    def ask(self, value):
        return self.echo.echo(value)


@pytest.fixture
def config(rabbit_config):
    return service_config(None, rabbit_config, "sqlite://")


def _producers(config):
    return kept_producers(config["AMQP_URI"])


def test_requests_and_replies_reuse_the_kept_connection(container_factory, config):
    container_factory(Echo, config).start()
    asker = container_factory(Asker, config)
    asker.start()
    with entrypoint_hook(asker, "ask") as ask:
        assert ask(1) == 1
    kept = {id(producer) for _, producer in _producers(config)._idle}
    assert kept  # the request's and the reply's producers were given back, not thrown away
    pool = eventlet.GreenPool(20)

    def ask_alone(value):
        with ServiceRpcProxy("kept_asker", config) as asker_proxy:
            return asker_proxy.ask(value)
    assert list(pool.imap(ask_alone, range(40))) == list(range(40))
    with entrypoint_hook(asker, "ask") as ask:
        for value in range(20):  # one at a time: the same producers every time
            assert ask(value) == value
    idle = _producers(config)._idle
    assert kept <= {id(producer) for _, producer in idle}
    assert len(idle) <= 10  # the limit holds under concurrency


def test_a_kept_connection_that_died_is_replaced_at_once(container_factory, config):
    container_factory(Echo, config).start()
    asker = container_factory(Asker, config)
    asker.start()
    with entrypoint_hook(asker, "ask") as ask:
        assert ask("before") == "before"
        for connection, _ in _producers(config)._idle:  # as after a broker restart
            connection.connection.sock.close()
        assert ask("after") == "after"  # no error reaches the caller, no wait


def test_an_unroutable_request_is_refused_and_the_connection_replaced(config):
    producers = KeptProducers(config["AMQP_URI"])
    try:
        with pytest.raises(UndeliverableMessage):  # mandatory, seen through the confirm
            producers.publish({}, exchange="amq.topic", routing_key="nobody.listens",
                              mandatory=True, serializer="json", timeout=5)
        producers.publish({}, exchange="amq.topic", routing_key="nobody.listens",
                          serializer="json", timeout=5)  # not mandatory: fine, and next one
        assert len(producers._idle) == 1
    finally:
        producers.close()


def test_a_request_while_the_broker_refuses_connections_fails_fast():
    producers = KeptProducers("pyamqp://guest:guest@127.0.0.1:1/")
    started = eventlet.hubs.get_hub().clock()
    with pytest.raises(Exception) as raised:
        producers.publish({}, exchange="", routing_key="x", serializer="json", timeout=5)
    from kc_common.events import is_transient
    assert is_transient(raised.value)  # the RPC's ServiceUnavailable (tests/test_resilience.py)
    assert eventlet.hubs.get_hub().clock() - started < 1.5


def test_a_stopped_first_broker_of_a_cluster_uri_is_passed_over(config):
    """A cluster's AMQP_URI lists its nodes (``amqp://a;amqp://b``): with the first node
    stopped, a fresh connection goes to the next one at once (tests/test_cluster.py stops the
    first node), and a URI of stopped nodes only still fails fast."""
    uri = "pyamqp://guest:guest@127.0.0.1:1/;" + config["AMQP_URI"]
    producers = KeptProducers(uri)
    try:
        started = eventlet.hubs.get_hub().clock()
        producers.publish({}, exchange="amq.topic", routing_key="nobody.listens", serializer="json",
                          timeout=5)
        assert eventlet.hubs.get_hub().clock() - started < 1.0
        (connection, _), = producers._idle
        assert connection.connected and connection.connection.sock.getpeername()[1] != 1
    finally:
        producers.close()
    dead = KeptProducers("pyamqp://guest:guest@127.0.0.1:1/;pyamqp://guest:guest@127.0.0.1:2/")
    with pytest.raises(Exception) as raised:  # noqa: B017 - which one is kombu's; transient
        dead.publish({}, exchange="", routing_key="x", serializer="json", timeout=5)
    from kc_common.events import is_transient
    assert is_transient(raised.value)


def test_a_call_with_wrong_arguments_is_refused_by_the_signature_check(container_factory, config):
    """KcRpc checks the arguments against a signature built once (nameko's getcallargs built
    it on every call): a wrong call still fails with nameko's IncorrectSignature."""
    from nameko.exceptions import IncorrectSignature
    container_factory(Echo, config).start()
    with ServiceRpcProxy("kept_echo", config) as echo:
        assert echo.echo(value=3) == 3
        for args, kwargs in (((), {}), ((1, 2), {}), ((1,), {"other": 2})):
            with pytest.raises(IncorrectSignature):
                echo.echo(*args, **kwargs)
