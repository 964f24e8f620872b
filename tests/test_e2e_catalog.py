"""Meine Produkte and Bestellen through the gateway's HTTP, every service a real process."""
import uuid
from datetime import date
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from kc_common.testing import wait_for


@pytest.fixture(scope="module")
def api(system, demo_headers):
    def call(method, path, headers=demo_headers, **kwargs):
        return requests.request(method, system.url + path, headers=headers, timeout=15, **kwargs)
    return call


@pytest.fixture(scope="module")
def stranger(make_customer):
    return make_customer()[1]


def test_demo_customer_sees_the_guides_three_tables(api):
    web = api("GET", "/api/v1/me/products/webhosting", params={"per_page": 50}).json()
    rows = {(r["name"], r["package"]): r for r in web["items"]}
    assert rows[("partnercenter.de", "businesshosting")]["access"]["label"] == "Login"
    assert rows[("profihost-demo.de", "shophosting")]["status_text"] == "Aktiv"
    assert rows[("profihost-demo.com", "Domainaufschaltung")]["access"]["available"] is False
    assert rows[("profihost-demo.de", "Domain .de")]["period_months"] == 12
    servers = api("GET", "/api/v1/me/products/servers").json()["items"]
    levels = {s["service_level"]: s for s in servers}
    assert levels["Managed"]["ip_addresses"] == ["178.250.9.79"]
    assert levels["Managed"]["access"]["label"] == "Admin Reseller"
    assert levels["Root"]["traffic_included_gb"] == 300
    assert levels["Root"]["access"]["label"] == "Cloud Platform Login"
    other = api("GET", "/api/v1/me/products/other", params={"q": "ssl"}).json()
    assert other["total"] == 1 and other["items"][0]["label"] == "www.profihost-demo.de"
    # dns made the zone of the demo domain from the seed's order_placed
    wait_for(lambda: api("GET", "/api/v1/me/zones/profihost-demo.com").status_code == 200,
             message="the demo zone")
    traffic = api("GET", "/api/v1/me/traffic").json()
    assert traffic["total"] == 2 and int(traffic["items"][0]["previous"]["days_reported"]) > 25


def test_order_hosting_log_in_once_upgrade_and_cancel(api, stranger, demo_headers):
    domain = f"e2e-{uuid.uuid4().hex[:6]}.de"
    key = str(uuid.uuid4())
    body = {"items": [{"product_id": "hosting-business", "period_months": 12, "domain": domain},
                      {"product_id": "domain-de", "domain": domain}]}
    resp = api("POST", "/api/v1/me/orders", headers={**demo_headers, "Idempotency-Key": key}, json=body)
    assert resp.status_code == 201, resp.text
    hosting, registration = resp.json()["contracts"]
    assert hosting["status"] == "active" and hosting["price_net"] == "154.80"
    again = api("POST", "/api/v1/me/orders", headers={**demo_headers, "Idempotency-Key": key}, json=body)
    assert again.json() == resp.json()

    # Zugang: a single-use link into ServerCon, redeemed by the panel
    link = api("POST", f"/api/v1/me/contracts/{hosting['id']}/login-link")
    assert link.status_code == 201, link.text
    token = parse_qs(urlparse(link.json()["url"]).query)["token"][0]
    first = api("POST", "/api/v1/panel-logins", headers={}, json={"token": token})
    assert first.status_code == 200 and first.json()["account"] == domain
    assert api("POST", "/api/v1/panel-logins", headers={}, json={"token": token}).status_code == 409
    assert api("POST", f"/api/v1/me/contracts/{hosting['id']}/login-link", headers=stranger).status_code == 404
    assert api("POST", f"/api/v1/me/contracts/{registration['id']}/login-link").status_code == 422

    # Tarifwechsel: upgrade at once
    tariffs = api("GET", f"/api/v1/me/contracts/{hosting['id']}/tariffs").json()["items"]
    assert {"hosting-business-pro", "hosting-business-start"} == {t["product_id"] for t in tariffs}
    up = api("POST", f"/api/v1/me/contracts/{hosting['id']}/tariff-change",
             json={"product_id": "hosting-business-pro"})
    assert up.status_code == 200 and up.json()["product_name"] == "businesshosting Pro"
    bad = api("POST", f"/api/v1/me/contracts/{hosting['id']}/tariff-change", json={"product_id": "hosting-shop"})
    assert bad.status_code == 422

    # Kündigung: end date shown before, then cancelled until then; a second one is refused
    preview = api("GET", f"/api/v1/me/contracts/{registration['id']}/cancellation").json()
    cancelled = api("POST", f"/api/v1/me/contracts/{registration['id']}/cancellation")
    assert cancelled.status_code == 200 and cancelled.json()["end_date"] == preview["end_date"]
    assert cancelled.json()["status"] == "cancelled"
    again = api("POST", f"/api/v1/me/contracts/{registration['id']}/cancellation")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert api("POST", f"/api/v1/me/contracts/{registration['id']}/cancellation",
               headers=stranger).status_code == 404
    assert api("GET", f"/api/v1/me/contracts/{hosting['id']}", headers=stranger).status_code == 404


@pytest.mark.parametrize("item, status, field", [
    ({"product_id": "gibt-es-nicht"}, 422, "items.0.product_id"),        # not in the catalogue
    ({"product_id": "hosting-shop", "period_months": 2}, 400, "items.0.period_months"),  # no period (schema)
    ({"product_id": "ssl-dv", "period_months": 1}, 422, "items.0.period_months"),  # not this product's
    ({"product_id": "domain-com", "domain": "bad_domain.com"}, 422, "items.0.domain"),
    ({"product_id": "domain-de", "domain": "profihost-demo.de"}, 409, None),   # taken (demo data)
])
def test_bad_orders_are_refused_clearly(api, item, status, field):
    resp = api("POST", "/api/v1/me/orders", json={"items": [item]})
    assert resp.status_code == status, resp.text
    if field:
        assert field in resp.json()["fields"]


def test_operators_feed_traffic_and_the_customer_sees_it(api, system, staff_headers):
    server = api("POST", "/api/v1/me/orders", json={"items": [{"product_id": "root-s", "period_months": 1}]}
                 ).json()["contracts"][0]
    report = {"items": [{"contract_id": server["id"], "day": str(date.today()), "gb": "400"}]}
    assert api("POST", "/api/v1/staff/traffic", json=report).status_code == 401   # customer token
    assert api("POST", "/api/v1/staff/traffic", headers=staff_headers("support"), json=report).status_code == 403
    resp = api("POST", "/api/v1/staff/traffic", headers=staff_headers("admin"), json=report)
    assert resp.status_code == 200 and resp.json() == {"stored": 1}
    usage = api("GET", f"/api/v1/me/contracts/{server['id']}/traffic").json()
    assert usage["months"][0]["used_gb"] == "400.00" and usage["months"][0]["over_use"] is True
    assert api("GET", "/api/v1/me/contracts/999999/traffic").status_code == 404
    assert api("GET", "/api/v1/me/contracts/abc/traffic").status_code == 404


def test_staff_manage_the_catalog_prices_apply_to_new_bookings(api, staff_headers):
    admin = staff_headers("admin")
    before = api("POST", "/api/v1/me/orders", json={"items": [{"product_id": "licence-mssql", "period_months": 1}]}
                 ).json()["contracts"][0]
    resp = api("PATCH", "/api/v1/staff/products/licence-mssql", headers=admin, json={"price_net": "21.00"})
    assert resp.status_code == 200 and resp.json()["price_net"] == "21.00"
    products = {p["id"]: p for p in api("GET", "/api/v1/products", headers={}).json()["items"]}
    assert products["licence-mssql"]["price_net"] == "21.00"
    assert api("GET", f"/api/v1/me/contracts/{before['id']}").json()["price_net"] == "18.00"
    assert api("PATCH", "/api/v1/staff/products/licence-mssql", headers=staff_headers("billing"),
               json={"price_net": "1.00"}).status_code == 403
    bad = api("PATCH", "/api/v1/staff/products/licence-mssql", headers=admin, json={"periods": [2]})
    assert bad.status_code == 400 and "periods.0" in bad.json()["fields"]
