"""billing on the real bus: order_placed is invoiced exactly once."""
from kombu import Connection
from nameko.testing.services import entrypoint_hook

from kc_billing.service import BillingService
from kc_common.events import declare_topology
from kc_common.testing import wait_for

ORDER_PLACED = {
    "id": "6c1f1d9e-0000-4000-8000-000000000001", "type": "order_placed", "source": "catalog",
    "occurred_at": "2026-11-26T10:00:00+00:00",
    "data": {"order_id": 1, "customer_id": 100001, "items": [{
        "contract_id": 7, "product_id": "domain-de", "product_name": "Domain .de", "kind": "domain",
        "domain": "beispiel.de", "period_months": 12, "price_net": "9.90", "vat_rate": "19.00",
        "period_start": "2026-11-26", "period_end": "2027-11-25"}]},
}


def test_order_placed_twice_is_invoiced_once(container_factory, config, capture_events):
    declare_topology(config["AMQP_URI"], [BillingService])
    issued = capture_events("billing", "invoice_issued")
    container = container_factory(BillingService, config)
    container.start()
    with Connection(config["AMQP_URI"]) as conn:
        producer = conn.Producer(serializer="json")
        for _ in range(2):
            producer.publish(ORDER_PLACED, exchange="catalog.events", routing_key="order_placed")

    def account():
        with entrypoint_hook(container, "get_account", context_data={"customer_id": 100001}) as get:
            return get()
    wait_for(lambda: account()["bookings"]["total"] == 1)
    assert len(issued.drain(settle=1.0)) == 1
    acc = account()
    assert acc["balance"] == "-11.78" and acc["balance_text"] == "-11.78€ offener Betrag"
    booking = acc["bookings"]["items"][0]
    assert booking["type"] == "RE" and booking["invoice_number"] == 1000001
    assert booking["text"] == "Domain beispiel.de 26.11.2026-25.11.2027"


def test_account_standing_of_a_new_customer(container_factory, config):
    container = container_factory(BillingService, config)
    container.start()
    with entrypoint_hook(container, "account_standing", context_data={"customer_id": 100001}) as standing:
        assert standing() == {"in_arrears": False, "open_amount": "0.00"}
