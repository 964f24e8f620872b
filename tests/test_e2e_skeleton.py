"""The walking skeleton through the gateway's HTTP, with every service a real process."""
import uuid

import pytest
import requests
from openapi_spec_validator import validate

from kc_common.testing import wait_for
from tests.conftest import login


@pytest.fixture(scope="module")
def demo(demo_headers):
    return demo_headers


@pytest.fixture(scope="module")
def other_customer(make_customer):
    return make_customer()[1]


def test_health_reports_every_service(system):
    body = requests.get(system.url + "/health").json()
    assert body["status"] == "ok"
    assert set(body["services"]) == {"identity", "catalog", "billing", "dns", "documents", "support"}


def test_openapi_document_is_valid(system):
    doc = requests.get(system.url + "/api/openapi.json").json()
    validate(doc)
    assert "/api/v1/me/account" in doc["paths"]


def test_order_a_domain_flows_to_contract_invoice_and_zone(system, demo):
    domain = f"skelett-{uuid.uuid4().hex[:6]}.de"
    key = str(uuid.uuid4())
    order = requests.post(system.url + "/api/v1/me/orders", headers={**demo, "Idempotency-Key": key},
                          json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert order.status_code == 201, order.text
    correlation_id = order.headers["X-Correlation-ID"]
    again = requests.post(system.url + "/api/v1/me/orders", headers={**demo, "Idempotency-Key": key},
                          json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert again.json() == order.json()

    contracts = requests.get(system.url + "/api/v1/me/contracts", headers=demo,
                             params={"q": domain}).json()
    assert contracts["total"] == 1 and contracts["items"][0]["status"] == "active"

    def booked():
        account = requests.get(system.url + "/api/v1/me/account", headers=demo).json()
        return [b for b in account["bookings"]["items"] if domain in b["text"]] and account
    account = wait_for(booked, message="the invoice booking")
    booking = [b for b in account["bookings"]["items"] if domain in b["text"]][0]
    assert booking["type"] == "RE" and booking["amount"] == "-11.78"
    assert account["balance_text"].endswith("offener Betrag")

    def zone():
        resp = requests.get(f"{system.url}/api/v1/me/zones/{domain}", headers=demo)
        return resp.status_code == 200 and resp.json()
    assert {"SOA", "NS", "A", "AAAA", "MX"} <= {r["type"] for r in wait_for(zone)["records"]}

    # The gateway's correlation id reached billing's and dns's log lines through RPC and events.
    assert correlation_id in system.log("billing") and correlation_id in system.log("dns")


def test_another_customers_data_is_not_found(system, demo, other_customer):
    domain = f"fremd-{uuid.uuid4().hex[:6]}.de"
    resp = requests.post(system.url + "/api/v1/me/orders", headers=demo,
                         json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert resp.status_code == 201
    wait_for(lambda: requests.get(f"{system.url}/api/v1/me/zones/{domain}", headers=demo).ok)
    resp = requests.get(f"{system.url}/api/v1/me/zones/{domain}", headers=other_customer)
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    assert requests.get(system.url + "/api/v1/me/contracts", headers=other_customer).json()["total"] == 0


@pytest.mark.parametrize("method, path, kwargs, status, error", [
    ("get", "/api/v1/me/contracts", {}, 401, "unauthenticated"),
    ("get", "/api/v1/me/contracts", {"headers": {"Authorization": "Bearer kcc_nonsense"}}, 401, "unauthenticated"),
    ("post", "/api/v1/session", {"json": {"login": "100001", "password": "falsch"}}, 401, "unauthenticated"),
    ("post", "/api/v1/session", {"data": "{not json", "headers": {"Content-Type": "application/json"}},
     400, "validation_failed"),
    # no Content-Type: eventlet's server takes it as text/plain, which is not JSON
    ("post", "/api/v1/session", {"data": '{"login": "100001"}'}, 415, "unsupported_media_type"),
    ("get", "/api/v1/nowhere", {}, 404, "not_found"),
    ("put", "/api/v1/products", {}, 405, "method_not_allowed"),
])
def test_errors_have_one_body_shape(system, method, path, kwargs, status, error):
    resp = getattr(requests, method)(system.url + path, **kwargs)
    assert resp.status_code == status and resp.json()["error"] == error
    assert resp.json()["message"]


def test_bad_order_names_the_field_and_duplicate_domain_conflicts(system, demo):
    resp = requests.post(system.url + "/api/v1/me/orders", headers=demo,
                         json={"items": [{"product_id": "domain-de", "domain": "-kaputt.de"}]})
    assert resp.status_code == 422 and "items.0.domain" in resp.json()["fields"]  # not a valid name
    domain = f"doppelt-{uuid.uuid4().hex[:6]}.de"
    body = {"items": [{"product_id": "domain-de", "domain": domain}]}
    assert requests.post(system.url + "/api/v1/me/orders", headers=demo, json=body).status_code == 201
    resp = requests.post(system.url + "/api/v1/me/orders", headers=demo, json=body)
    assert resp.status_code == 409 and resp.json()["error"] == "conflict"


def test_logout_ends_the_session(system):
    headers = login(system)
    assert requests.delete(system.url + "/api/v1/session", headers=headers).status_code == 204
    assert requests.get(system.url + "/api/v1/me", headers=headers).status_code == 401


def test_staff_and_customer_tokens_are_never_mistaken(system, demo, staff_headers):
    staff = staff_headers("support")
    assert requests.get(system.url + "/api/v1/me", headers=staff).status_code == 401
    assert requests.delete(system.url + "/api/v1/staff/session", headers=demo).status_code == 401
    assert requests.delete(system.url + "/api/v1/staff/session", headers=staff).status_code == 204
