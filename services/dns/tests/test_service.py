"""dns on the real bus: a domain order creates its zone; only the owner sees it."""
import pytest
from kombu import Connection
from nameko.testing.services import entrypoint_hook

from kc_common.errors import NotFound
from kc_common.events import declare_topology
from kc_common.testing import wait_for
from kc_dns.service import DnsService

ORDER_PLACED = {
    "id": "6c1f1d9e-0000-4000-8000-000000000002", "type": "order_placed", "source": "catalog",
    "occurred_at": "2026-11-26T10:00:00+00:00",
    "data": {"order_id": 1, "customer_id": 100001, "items": [
        {"contract_id": 7, "kind": "domain", "domain": "xn--mller-kva.de"},
        {"contract_id": 8, "kind": "hosting", "domain": None}]},
}
DEFAULTS = {"nameservers": ["ns1.example.net.", "ns2.example.net."], "hostmaster": "hm.example.net.",
            "web_ipv4": "192.0.2.10", "web_ipv6": "2001:db8::10", "mx": "mx.example.net.", "ttl": 3600}


def test_domain_order_creates_zone_with_defaults_once(container_factory, config, capture_events):
    config["DNS_DEFAULTS"] = DEFAULTS
    declare_topology(config["AMQP_URI"], [DnsService])
    changed = capture_events("dns", "zone_changed")
    container = container_factory(DnsService, config)
    container.start()
    with Connection(config["AMQP_URI"]) as conn:
        for _ in range(2):
            conn.Producer(serializer="json").publish(ORDER_PLACED, exchange="catalog.events",
                                                     routing_key="order_placed")
    assert changed.wait(1)[0]["data"]["zone"] == "xn--mller-kva.de"
    with entrypoint_hook(container, "get_zone", context_data={"customer_id": 100001}) as get_zone:
        zone = wait_for(lambda: get_zone("müller.de"))
    types = sorted(r["type"] for r in zone["records"])
    assert types == ["A", "A", "AAAA", "AAAA", "MX", "NS", "NS", "SOA"]
    assert len(changed.drain(config["DATABASE_URL"], containers=[container])) == 1
    with entrypoint_hook(container, "get_zone", context_data={"customer_id": 100002}) as other:
        with pytest.raises(NotFound):
            other("müller.de")
