"""Metrics on the real bus: after an RPC call and handled events, the service's metrics
endpoint (scraped over HTTP, parsed with prometheus_client's parser) shows the counters
with the right labels, and the gauges of its outbox, pool and dead-letter queues."""
import socket

import pytest
import requests
from kombu import Connection
from nameko.standalone.rpc import ServiceRpcProxy
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from kc_common import metrics
from kc_common.errors import NotFound
from kc_common.events import declare_topology
from kc_common.testing import wait_for
from kc_dns.service import DnsService

ORDER_PLACED = {
    "id": "6c1f1d9e-0000-4000-8000-000000000002", "type": "order_placed", "source": "catalog",
    "occurred_at": "2026-11-26T10:00:00+00:00",
    "data": {"order_id": 1, "customer_id": 100001, "items": [
        {"contract_id": 7, "kind": "domain", "domain": "xn--mller-kva.de"}]},
}
DEFAULTS = {"nameservers": ["ns1.example.net."], "hostmaster": "hm.example.net.",
            "web_ipv4": "192.0.2.10", "web_ipv6": "2001:db8::10", "mx": "mx.example.net.", "ttl": 3600}
POISON = {"id": "6c1f1d9e-0000-4000-8000-0000000000ff", "type": "order_placed",
          "source": "catalog", "occurred_at": "2026-11-26T10:00:00+00:00",
          "data": {"order_id": 2, "customer_id": 100001}}  # no items: the handler fails


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url):
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def before(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_endpoint_counts_rpc_and_events(container_factory, config, monkeypatch):
    monkeypatch.setattr(metrics, "GAUGE_TTL", 0.0)  # gauges read fresh at each scrape
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    config.update(DNS_DEFAULTS=DEFAULTS, METRICS_ADDRESS=f"127.0.0.1:{port}")
    declare_topology(config["AMQP_URI"], [DnsService])
    rpc_ok = dict(service="dns", method="get_zone", outcome="ok")
    rpc_404 = dict(service="dns", method="get_zone", outcome="not_found")
    handler = dict(service="dns", handler="on_order_placed")
    base = {key: before(name, **labels) for key, name, labels in [
        ("ok", "kc_rpc_requests_total", rpc_ok), ("404", "kc_rpc_requests_total", rpc_404),
        ("count", "kc_rpc_duration_seconds_count", dict(service="dns", method="get_zone")),
        ("handled", "kc_event_handler_total", dict(handler, outcome="ok")),
        ("retried", "kc_event_handler_total", dict(handler, outcome="retried")),
        ("dead", "kc_event_handler_total", dict(handler, outcome="dead_lettered"))]}

    container = container_factory(DnsService, config)
    container.start()
    with Connection(config["AMQP_URI"], connect_timeout=30) as conn:  # a loaded broker
        producer = conn.Producer(serializer="json")
        for event in (ORDER_PLACED, POISON):
            producer.publish(event, exchange="catalog.events", routing_key="order_placed")
    # The zone exists once the order_placed event is handled (on a loaded machine, later than
    # the first RPC could ask: asking earlier would count an extra 404).
    wait_for(lambda: value(scrape(url), "kc_event_handler_total", **handler, outcome="ok") > base["handled"],
             timeout=30, message="order_placed handled")
    with ServiceRpcProxy("dns", config, context_data={"customer_id": 100001}) as dns:
        assert dns.get_zone("müller.de")
    with ServiceRpcProxy("dns", config, context_data={"customer_id": 100002}) as dns:
        with pytest.raises(NotFound):
            dns.get_zone("müller.de")

    # The poison event: attempts 1 and 2 retried, the third parked in the dead-letter queue.
    def parked(s):
        return (value(s, "kc_dead_letter_messages", service="dns") == 1 and value(
            s, "kc_event_handler_total", **handler, outcome="dead_lettered") > base["dead"])

    samples = wait_for(lambda: (lambda s: s if parked(s) else None)(scrape(url)),
                       message="a dead letter")
    assert value(samples, "kc_rpc_requests_total", **rpc_ok) - base["ok"] >= 1
    assert value(samples, "kc_rpc_requests_total", **rpc_404) - base["404"] == 1
    assert value(samples, "kc_rpc_duration_seconds_count", service="dns",
                 method="get_zone") - base["count"] >= 2
    assert value(samples, "kc_event_handler_total", **handler, outcome="ok") - base["handled"] == 1
    assert value(samples, "kc_event_handler_total", **handler,
                 outcome="retried") - base["retried"] == 2
    assert value(samples, "kc_event_handler_total", **handler,
                 outcome="dead_lettered") - base["dead"] == 1
    # The zone_changed event of the order went out: the outbox is empty again.
    samples = wait_for(lambda: (lambda s: s if ("kc_outbox_backlog", (("service", "dns"),)) in s
                                and value(s, "kc_outbox_backlog", service="dns") == 0
                                else None)(scrape(url)), message="an empty outbox")
    assert value(samples, "kc_outbox_oldest_age_seconds", service="dns") == 0
    assert ("kc_db_pool_in_use", (("service", "dns"),)) in samples

    container.stop()
    with pytest.raises(requests.ConnectionError):  # the last user of the port stopped it
        requests.get(url, timeout=2)


def json_log_handler(monkeypatch, stream):
    """The console handler exactly as services/dns/config.yaml builds it with LOG_FORMAT=json
    (its formatter and correlation filter), writing to ``stream``."""
    import logging.config
    from pathlib import Path

    import yaml
    from nameko.cli.main import setup_yaml_parser

    monkeypatch.setenv("LOG_FORMAT", "json")
    setup_yaml_parser()
    path = Path(__file__).resolve().parents[1] / "config.yaml"
    cfg = yaml.safe_load(path.read_text())["LOGGING"]
    console = cfg["handlers"]["console"]
    assert console["formatter"] == "json"
    configurator = logging.config.DictConfigurator(cfg)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(dict(cfg["formatters"]["json"])))
    for name in console["filters"]:
        handler.addFilter(configurator.configure_filter(dict(cfg["filters"][name])))
    return handler


def test_json_log_lines_carry_service_correlation_and_customer(container_factory, config,
                                                               monkeypatch, caplog):
    import io
    import json
    import logging

    stream = io.StringIO()
    handler = json_log_handler(monkeypatch, stream)
    root = logging.getLogger()
    caplog.set_level(logging.INFO)  # root at INFO (setLevel: the loggers' caches are cleared)
    for name in ("kc_common.events", "nameko.containers"):  # whatever earlier tests did
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    root.addHandler(handler)
    try:
        config.update(DNS_DEFAULTS=DEFAULTS)
        declare_topology(config["AMQP_URI"], [DnsService])
        container = container_factory(DnsService, config)
        container.start()
        with Connection(config["AMQP_URI"], connect_timeout=30) as conn:  # a loaded broker
            conn.Producer(serializer="json").publish(
                ORDER_PLACED, exchange="catalog.events", routing_key="order_placed",
                headers={"nameko.correlation_id": "evt-corr-0001"})
        wait_for(lambda: "evt-corr-0001" in stream.getvalue(), timeout=30,
                 message=f"the handler's log line in {stream.getvalue()!r}")
        context = {"customer_id": 100002, "correlation_id": "req-corr-0002"}
        with ServiceRpcProxy("dns", config, context_data=context) as dns:
            with pytest.raises(NotFound):
                dns.get_zone("müller.de")
        wait_for(lambda: "req-corr-0002" in stream.getvalue(), timeout=30,
                 message=f"the RPC's log line in {stream.getvalue()!r}")
    finally:
        root.removeHandler(handler)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line parses
    assert lines and all(line["service"] == "dns" and line["level"] and line["timestamp"]
                         for line in lines)
    handled = [line for line in lines if line.get("correlation_id") == "evt-corr-0001"]
    assert any("handled order_placed event" in line["message"] for line in handled)
    assert all("customer_id" not in line for line in handled)  # an event: no caller known
    refused = [line for line in lines if line.get("correlation_id") == "req-corr-0002"]
    assert refused and all(line["customer_id"] == 100002 for line in refused)
    assert any(line["level"] == "WARNING" and "get_zone" in line["message"] for line in refused)
    outside = [line for line in lines if "correlation_id" not in line]
    assert all("customer_id" not in line for line in outside)
