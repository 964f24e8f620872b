"""catalog on the real bus and PostgreSQL: orders, idempotency, the duplicate-domain race."""
import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook

from kc_common.errors import Conflict, Unauthenticated, Unprocessable, ValidationFailed

CUSTOMER = {"customer_id": 100001}
DOMAIN_ORDER = {"items": [{"product_id": "domain-de", "domain": "beispiel.de"}]}


def test_order_creates_contract_and_publishes_order_placed(catalog, capture_events):
    events = capture_events("catalog", "order_placed")
    with entrypoint_hook(catalog, "place_order", context_data=CUSTOMER) as place_order:
        order = place_order(DOMAIN_ORDER)
    contract = order["contracts"][0]
    assert contract["domain"] == "beispiel.de" and contract["status"] == "active"
    assert contract["price_net"] == "9.90" and contract["price_gross"] == "11.78"
    event = events.wait(1)[0]
    assert event["data"]["customer_id"] == 100001
    assert event["data"]["items"][0]["contract_id"] == contract["id"]
    assert event["data"]["items"][0]["price_net"] == "9.90"


def test_same_idempotency_key_creates_the_order_once(catalog, config, capture_events):
    events = capture_events("catalog", "order_placed")
    with entrypoint_hook(catalog, "place_order", context_data=CUSTOMER) as place_order:
        first = place_order(DOMAIN_ORDER, idempotency_key="abc")
        second = place_order(DOMAIN_ORDER, idempotency_key="abc")
        with pytest.raises(Unprocessable):
            place_order({"items": [{"product_id": "domain-com", "domain": "x.com"}]}, idempotency_key="abc")
    assert first == second
    assert len(events.drain(config["DATABASE_URL"])) == 1


@pytest.mark.parametrize("items, field", [
    ([{"product_id": "nope"}], "items.1.product_id"),
    ([{"product_id": "domain-de", "domain": "-x.de"}], "items.1.domain"),
    ([{"product_id": "domain-de", "domain": "beispiel.com"}], "items.1.domain"),
    ([{"product_id": "domain-de", "domain": "a.de", "period_months": 1}], "items.1.period_months"),
    ([{"product_id": "hosting-business", "period_months": 5}], "items.1.period_months"),
])
def test_bad_items_are_refused_naming_the_field_and_nothing_is_saved(catalog, items, field):
    with entrypoint_hook(catalog, "place_order", context_data=CUSTOMER) as place_order:
        with pytest.raises(ValidationFailed) as err:
            place_order({"items": [{"product_id": "hosting-shop"}] + items})
    assert list(err.value.fields) == [field]  # the valid first item is not blamed
    with entrypoint_hook(catalog, "list_contracts", context_data=CUSTOMER) as list_contracts:
        assert list_contracts()["total"] == 0


def test_concurrent_orders_for_one_domain_exactly_one_wins(catalog, config):
    # Through real RPC, one proxy per caller (entrypoint_hook would hand every caller
    # the result of whichever worker finished first).
    results = []

    def order(customer_id):
        with ServiceRpcProxy("catalog", config, context_data={"customer_id": customer_id}) as proxy:
            try:
                results.append(proxy.place_order(DOMAIN_ORDER)["contracts"][0]["domain"])
            except Conflict:
                results.append("conflict")

    pool = eventlet.GreenPool()
    for cid in range(100001, 100007):
        pool.spawn(order, cid)
    pool.waitall()
    assert sorted(results) == ["beispiel.de"] + ["conflict"] * 5, results


def test_contracts_are_the_customers_own_and_searchable(catalog):
    with entrypoint_hook(catalog, "place_order", context_data=CUSTOMER) as place_order:
        place_order(DOMAIN_ORDER)
        place_order({"items": [{"product_id": "hosting-business", "period_months": 12}]})
    with entrypoint_hook(catalog, "list_contracts", context_data=CUSTOMER) as list_contracts:
        assert list_contracts()["total"] == 2
        assert [c["domain"] for c in list_contracts({"q": "beispiel"})["items"]] == ["beispiel.de"]
    with entrypoint_hook(catalog, "list_contracts", context_data={"customer_id": 100002}) as other:
        assert other()["total"] == 0
    with entrypoint_hook(catalog, "list_contracts") as anonymous:
        with pytest.raises(Unauthenticated):
            anonymous()
