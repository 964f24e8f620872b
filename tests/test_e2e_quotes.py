"""Quotes end to end: what POST /me/orders/quote and GET /me/contracts/{id}/tariff-change/quote
announce is exactly what billing then books (lines, VAT per rate, gross), also with reverse
charge and postage; GET /me/traffic?months is bounded; a payment's return_url is restricted to
the allowed origins (never an open redirect)."""
import uuid
from decimal import Decimal
from urllib.parse import urlsplit

import requests

from kc_common.testing import wait_for


def _get(system, headers, path, **params):
    return requests.get(system.url + path, headers=headers, params=params)


def invoices(system, headers):
    items = _get(system, headers, "/api/v1/me/account", per_page=100).json()["bookings"]["items"]
    return [b["invoice_number"] for b in items if b["type"] in ("RE", "GU")]


def wait_for_new_invoice(system, headers, known):
    found = []

    def arrived():
        found[:] = [n for n in invoices(system, headers) if n not in known]
        return bool(found)
    wait_for(arrived, message="the invoice")
    assert len(found) == 1, found
    return _get(system, headers, f"/api/v1/me/invoices/{found[0]}").json()


def assert_quote_is_invoice(quote, invoice):
    """Every amount of the quote is the invoice's, line by line and per VAT rate."""
    assert (quote["net"], quote["vat"], quote["gross"]) == (invoice["net"], invoice["vat"], invoice["gross"])
    assert quote["reverse_charge"] == invoice["reverse_charge"]
    assert [(q["net"], q["vat_rate"], q["vat"]) for q in quote["lines"]] == \
        [(line["net"], line["vat_rate"], line["vat"]) for line in invoice["lines"]]
    assert [(q["period_start"], q["period_end"]) for q in quote["lines"]] == \
        [(line["period_start"], line["period_end"]) for line in invoice["lines"]]
    def rates(breakdown):
        return [tuple(Decimal(str(b[k])) for k in ("rate", "base", "amount")) for b in breakdown]
    assert rates(quote["vat_breakdown"]) == rates(invoice["vat_breakdown"])


def test_order_quote_is_what_billing_books(system, make_customer):
    _, me = make_customer()
    name = f"angebot-{uuid.uuid4().hex[:6]}"
    items = [{"product_id": "domain-de", "domain": f"{name}.de"},
             {"product_id": "hosting-business", "domain": f"{name}.de", "period_months": 1}]
    resp = requests.post(system.url + "/api/v1/me/orders/quote", headers=me, json={"items": items})
    assert resp.status_code == 200, resp.text
    quote = resp.json()
    assert quote["issued"] is True and quote["reverse_charge"] is False
    assert [i["product_id"] for i in quote["items"]] == ["domain-de", "hosting-business"]
    assert quote["items"][1]["period_months"] == 1 and quote["items"][1]["period_start"]
    # 9.90 + 12.90 net at 19 %: VAT once on the sum (4.332 -> 4.33), not per line (1.88 + 2.45)
    assert (quote["net"], quote["vat"], quote["gross"]) == ("22.80", "4.33", "27.13")
    assert invoices(system, me) == []  # a quote books nothing

    resp = requests.post(system.url + "/api/v1/me/orders", headers=me, json={"items": items})
    assert resp.status_code == 201, resp.text
    assert_quote_is_invoice(quote, wait_for_new_invoice(system, me, []))


def test_order_quote_with_reverse_charge_and_postage(system, make_customer):
    _, me = make_customer(company="Beispiel Handels GmbH")
    current = _get(system, me, "/api/v1/me").json()
    moved = requests.put(system.url + "/api/v1/me/address", headers=me, json={
        "company": current["company"], "first_name": "Erika", "last_name": "Musterfrau",
        "email": current["email"], "street": "Kärntner Straße 1", "zip": "1010", "city": "Wien", "country": "AT",
        "phone": "+43 1 234567", "vat_id": "ATU13585627", "version": current["version"]})
    assert moved.status_code == 200, moved.text
    details = requests.put(system.url + "/api/v1/me/payment-details", headers=me, json={
        "by_post": True, "with_contact_person": False, "method": "transfer"})
    assert details.status_code == 200, details.text
    items = [{"product_id": "domain-com", "domain": f"rc-{uuid.uuid4().hex[:6]}.com"}]

    def quoted():
        resp = requests.post(system.url + "/api/v1/me/orders/quote", headers=me, json={"items": items})
        assert resp.status_code == 200, resp.text
        return resp.json() if resp.json()["reverse_charge"] else None
    quote = wait_for(quoted, message="billing learning the Austrian address")
    assert quote["vat"] == "0.00" and quote["reverse_charge_note"]
    assert [line["text"] for line in quote["lines"]][-1] == "Porto Rechnungsversand per Post"
    assert quote["net"] == "16.90" and quote["gross"] == "16.90"  # 14.90 + 2.00 postage, no VAT

    resp = requests.post(system.url + "/api/v1/me/orders", headers=me, json={"items": items})
    assert resp.status_code == 201, resp.text
    assert_quote_is_invoice(quote, wait_for_new_invoice(system, me, []))


def test_tariff_change_quote_is_the_booked_proration(system, make_customer):
    _, me = make_customer()
    resp = requests.post(system.url + "/api/v1/me/orders", headers=me, json={"items": [
        {"product_id": "hosting-business", "domain": f"tarif-{uuid.uuid4().hex[:6]}.de", "period_months": 12}]})
    assert resp.status_code == 201, resp.text
    contract_id = resp.json()["contracts"][0]["id"]
    wait_for(lambda: len(invoices(system, me)) == 1, message="the first invoice")
    known = invoices(system, me)
    base = f"/api/v1/me/contracts/{contract_id}/tariff-change/quote"

    down = _get(system, me, base, product_id="hosting-business-start")
    assert down.status_code == 200, down.text
    assert down.json()["change"] == "downgrade" and down.json()["issued"] is False
    assert down.json()["lines"] == [] and down.json()["gross"] == "0.00"

    resp = _get(system, me, base, product_id="hosting-business-pro")
    assert resp.status_code == 200, resp.text
    quote = resp.json()
    assert quote["change"] == "upgrade" and quote["issued"] is True
    assert quote["old"]["product_id"] == "hosting-business" and quote["new"]["product_id"] == "hosting-business-pro"
    assert [line["text"].split(" ")[0] for line in quote["lines"]] == ["Gutschrift", "Tarifwechsel"]
    assert float(quote["lines"][0]["net"]) < 0 < float(quote["gross"])
    assert invoices(system, me) == known  # a quote books nothing

    changed = requests.post(f"{system.url}/api/v1/me/contracts/{contract_id}/tariff-change", headers=me,
                            json={"product_id": "hosting-business-pro"})
    assert changed.status_code == 200, changed.text
    assert_quote_is_invoice(quote, wait_for_new_invoice(system, me, known))


def test_quote_errors_name_the_field(system, make_customer, demo_headers):
    _, me = make_customer()
    resp = requests.post(system.url + "/api/v1/me/orders/quote", headers=me,
                         json={"items": [{"product_id": "gibt-es-nicht"}]})
    assert resp.status_code == 422 and "items.0.product_id" in resp.json()["fields"], resp.text
    resp = requests.post(system.url + "/api/v1/me/orders/quote", headers=me, json={"items": []})
    assert resp.status_code == 400 and "items" in resp.json()["fields"], resp.text
    # another customer's contract is unknown
    other_contract = _get(system, demo_headers, "/api/v1/me/contracts").json()["items"][0]["id"]
    resp = _get(system, me, f"/api/v1/me/contracts/{other_contract}/tariff-change/quote",
                product_id="hosting-business-pro")
    assert resp.status_code == 404, resp.text
    resp = _get(system, me, "/api/v1/me/contracts/1/tariff-change/quote")
    assert resp.status_code in (400, 404) and resp.status_code != 500, resp.text


def test_traffic_history_in_one_call_is_bounded(system, demo_headers):
    resp = _get(system, demo_headers, "/api/v1/me/traffic", months=12)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert items and all(len(item["months"]) == 12 for item in items)
    assert all(item["months"][0] == item["current"] and item["months"][1] == item["previous"]
               for item in items)
    assert len(_get(system, demo_headers, "/api/v1/me/traffic").json()["items"][0]["months"]) == 2
    for bad in ("0", "37", "viele"):
        resp = _get(system, demo_headers, "/api/v1/me/traffic", months=bad)
        assert resp.status_code == 400 and "months" in resp.json()["fields"], resp.text


def test_payment_return_url_only_to_allowed_origins(system, make_customer):
    _, me = make_customer()
    requests.post(system.url + "/api/v1/me/orders", headers=me, json={"items": [
        {"product_id": "domain-de", "domain": f"zurueck-{uuid.uuid4().hex[:6]}.de"}]})
    wait_for(lambda: invoices(system, me), message="the invoice")
    allowed = system.env["PSP_RETURN_URL"]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(allowed))
    for bad in ("https://evil.example/zahlung", "javascript:alert(1)", "//evil.example/x",
                f"{origin}@evil.example/", origin + "/" + "x" * 600, "ftp://127.0.0.1/x",
                origin + "/zahlung#frag"):
        resp = requests.post(system.url + "/api/v1/me/payments", headers=me,
                             json={"method": "card", "return_url": bad})
        # longer than the document allows: 400 (schema); a URL of another origin: 422 (a rule)
        status = 400 if len(bad) > 500 else 422
        assert resp.status_code == status and "return_url" in resp.json()["fields"], (bad, resp.text)

    back = origin + "/konto?von=zahlung"
    resp = requests.post(system.url + "/api/v1/me/payments", headers=me,
                         json={"method": "card", "return_url": back})
    assert resp.status_code == 201, resp.text
    payment = resp.json()
    confirmed = requests.post(payment["redirect_url"], data={"action": "pay"}, allow_redirects=False)
    assert confirmed.status_code == 303
    location = confirmed.headers["Location"]
    assert location.startswith(back + "&payment_id=" + payment["payment_id"]), location
