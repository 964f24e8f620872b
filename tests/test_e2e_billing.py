"""Billing end to end: order -> invoice -> card payment through the PSP simulator (its
confirmation page, its signed webhooks delivered twice through the gateway) -> booked once."""
import uuid

import requests

from kc_common.testing import wait_for


def order(system, headers, domain):
    resp = requests.post(system.url + "/api/v1/me/orders", headers=headers,
                         json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert resp.status_code == 201, resp.text


def account(system, headers, **params):
    return requests.get(system.url + "/api/v1/me/account", headers=headers, params=params).json()


def test_card_payment_through_the_psp_is_booked_exactly_once(system, make_customer):
    customer_id, me = make_customer()
    order(system, me, f"bezahlt-{uuid.uuid4().hex[:6]}.de")
    wait_for(lambda: account(system, me)["balance"] == "-11.78", message="the invoice")
    key = str(uuid.uuid4())
    created = requests.post(system.url + "/api/v1/me/payments", json={"method": "card"},
                            headers={**me, "Idempotency-Key": key})
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["amount"] == "11.78" and payment["status"] == "pending"
    again = requests.post(system.url + "/api/v1/me/payments", json={"method": "card"},
                          headers={**me, "Idempotency-Key": key})
    assert again.json()["payment_id"] == payment["payment_id"]

    page = requests.get(payment["redirect_url"])  # the PSP's confirmation page
    assert page.status_code == 200 and "11.78" in page.text
    confirmed = requests.post(payment["redirect_url"], data={"action": "pay"}, allow_redirects=False)
    assert confirmed.status_code == 303 and payment["payment_id"] in confirmed.headers["Location"]

    wait_for(lambda: account(system, me)["balance"] == "0.00", message="the payment booking")
    # the simulator delivers every webhook twice: wait for the duplicate, then count
    wait_for(lambda: system.log("billing").count(f"for payment {payment['payment_id']}") >= 2,
             message="the duplicate webhook")
    acc = account(system, me)
    assert [b["type"] for b in acc["bookings"]["items"]] == ["ZAHLUNG", "RE"]
    assert acc["balance_text"] == "0,00\u00a0€ Guthaben"
    status = requests.get(f"{system.url}/api/v1/me/payments/{payment['payment_id']}", headers=me).json()
    assert status["status"] == "succeeded"


def test_forged_webhook_is_refused(system):
    resp = requests.post(system.url + "/api/v1/psp/webhook", data='{"id": "x"}',
                         headers={"X-PSP-Signature": "t=1,v1=00"})
    assert resp.status_code == 401 and resp.json()["error"] == "unauthenticated"


def test_invoices_payment_details_transfers_and_other_customers(system, make_customer, staff_headers):
    customer_id, me = make_customer()
    _, other = make_customer()
    order(system, me, f"rechnung-{uuid.uuid4().hex[:6]}.de")
    wait_for(lambda: account(system, me)["bookings"]["total"] == 1, message="the invoice")
    number = account(system, me)["bookings"]["items"][0]["invoice_number"]
    invoice = requests.get(f"{system.url}/api/v1/me/invoices/{number}", headers=me)
    assert invoice.status_code == 200 and invoice.json()["seller"]["vat_id"]
    assert invoice.json()["buyer"]["name"] == "Erika Musterfrau"
    resp = requests.get(f"{system.url}/api/v1/me/invoices/{number}", headers=other)
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"

    bad = requests.put(system.url + "/api/v1/me/payment-details", headers=me, json={
        "by_post": False, "with_contact_person": False, "method": "sepa",
        "iban": "DE89370400440532013001", "account_holder": "Erika", "sepa_mandate_accepted": True})
    assert bad.status_code == 422 and "iban" in bad.json()["fields"]  # the checksum fails
    good = requests.put(system.url + "/api/v1/me/payment-details", headers=me, json={
        "by_post": True, "with_contact_person": False, "method": "transfer"})
    assert good.status_code == 200 and good.json()["by_post"] is True

    details = requests.get(system.url + "/api/v1/me/payments/transfer-details", headers=me).json()
    assert details["reference"] == f"KC{customer_id}" and details["amount"] == "11.78"
    booked = requests.post(system.url + "/api/v1/staff/billing/transfers", headers=staff_headers("billing"),
                           json={"transaction_id": f"stmt-{uuid.uuid4().hex}", "amount": "20.00",
                                 "reference": f"Zahlung {details['reference']}"})
    assert booked.status_code == 201, booked.text
    acc = account(system, me, type="ZAHLUNG")
    assert acc["balance_text"] == "8,22\u00a0€ Guthaben" and acc["bookings"]["total"] == 1
    assert acc["bookings"]["items"][0]["payment_method"] == "U"
    assert requests.post(system.url + "/api/v1/staff/billing/transfers", headers=me, json={}).status_code == 401


def test_openapi_lists_the_billing_operations(system):
    paths = requests.get(system.url + "/api/openapi.json").json()["paths"]
    assert {"/api/v1/me/payments", "/api/v1/me/payment-details", "/api/v1/psp/webhook",
            "/api/v1/me/invoices/{number}", "/api/v1/staff/billing/transfers"} <= set(paths)


def test_staff_import_a_camt053_statement(system, make_customer, staff_headers):
    customer_id, me = make_customer()
    order(system, me, f"auszug-{uuid.uuid4().hex[:6]}.de")
    wait_for(lambda: account(system, me)["balance"] == "-11.78", message="the invoice")
    ref = f"BANK-{uuid.uuid4().hex[:10]}"
    # a minimal camt.053.001.02 statement of the seller's account, valid against the ISO XSD
    xml = (f'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
           f'<BkToCstmrStmt><GrpHdr><MsgId>M-{ref}</MsgId><CreDtTm>2026-11-26T22:00:00</CreDtTm></GrpHdr>'
           f'<Stmt><Id>S-{ref}</Id><CreDtTm>2026-11-26T22:00:00</CreDtTm>'
           f'<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>'
           f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">11.78</Amt>'
           f'<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-26</Dt></Dt></Bal>'
           f'<Ntry><Amt Ccy="EUR">11.78</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
           f'<AcctSvcrRef>{ref}</AcctSvcrRef><BkTxCd><Prtry><Cd>NTRF+166</Cd><Issr>DK</Issr></Prtry>'
           f'</BkTxCd><NtryDtls><TxDtls><RmtInf><Ustrd>KC{customer_id}</Ustrd></RmtInf></TxDtls>'
           f'</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>')
    staff = staff_headers("billing")
    for expected in ((1, 0), (0, 1)):  # the same statement twice: booked once
        resp = requests.post(system.url + "/api/v1/staff/billing/statements", headers=staff,
                             files={"file": ("auszug.xml", xml.encode(), "application/xml")})
        assert resp.status_code == 200, resp.text
        assert (resp.json()["booked"], resp.json()["already_booked"]) == expected
    assert account(system, me)["balance_text"] == "0,00\u00a0€ Guthaben"
    cases = requests.get(system.url + "/api/v1/staff/billing/clarifications?status=open", headers=staff)
    assert cases.status_code == 200 and "items" in cases.json(), cases.text
    missing = requests.post(system.url + "/api/v1/staff/billing/clarifications/999999999/assign",
                            headers=staff, json={"customer_id": customer_id})
    assert missing.status_code == 404, missing.text
    collection = requests.post(system.url + "/api/v1/staff/billing/sepa-collections", headers=staff, json={})
    assert collection.status_code == 201 and collection.json()["pain008_version"] == "pain.008.001.02", \
        collection.text
    again = requests.post(system.url + "/api/v1/staff/billing/sepa-collections", headers=staff, json={})
    assert again.json()["collection_id"] == collection.json()["collection_id"]  # once per due date
    far = requests.post(system.url + "/api/v1/staff/billing/sepa-collections", headers=staff,
                        json={"due_date": "2999-01-01"})
    assert far.status_code == 422 and "due_date" in far.json()["fields"], far.text  # a date, too far


def test_a_staff_billing_run_is_bounded_started_in_the_background_and_polled(system, demo_headers,
                                                                              staff_headers):
    staff = staff_headers("billing")
    runs_url = system.url + "/api/v1/staff/billing/runs"
    # as of 4454-04-01 it once billed 172,336 periods into one invoice: now a 422 naming the field
    # (a valid date; the rule is relative to today)
    far = requests.post(runs_url, headers=staff, json={"as_of": "4454-04-01"})
    assert far.status_code == 422, far.text
    assert far.json()["error"] == "validation_failed" and "Stichtag" in far.json()["fields"]["as_of"][0]
    assert requests.post(runs_url, headers=demo_headers, json={}).status_code == 401

    started = requests.post(runs_url, headers=staff, json={})
    assert started.status_code == 202, started.text  # accepted: the run goes on in the background
    run = started.json()
    assert run["state"] in ("running", "finished") and run["run_id"]

    def poll():
        resp = requests.get(f"{runs_url}/{run['run_id']}", headers=staff)
        assert resp.status_code == 200, resp.text
        return resp.json()["state"] == "finished" and resp.json()
    done = wait_for(poll, timeout=60, message="the billing run to finish")
    assert done["finished_at"] and done["errors"] == 0 and done["invoices"] >= 0
    assert {"customers", "invoices", "contracts", "gross", "resumed_runs"} <= set(done)
    listed = requests.get(runs_url, headers=staff, params={"per_page": 100}).json()
    assert run["run_id"] in [r["run_id"] for r in listed["items"]]
    assert requests.get(f"{runs_url}/99999999", headers=staff).status_code == 404
    paths = requests.get(system.url + "/api/openapi.json").json()["paths"]
    assert "202" in paths["/api/v1/staff/billing/runs"]["post"]["responses"]
    assert "/api/v1/staff/billing/runs/{run_id}" in paths

def test_the_demo_account_tells_the_guides_story(system, demo_headers):
    """make run's demo customer: a year of paid invoices, a KONTOAUSGLEICH, one small open amount;
    the invoices' PDFs rendered by documents from billing's seeded events; catalog's next invoice
    dates those of the guide. (Other tests order with the demo customer too: their bookings are newer.)"""
    items = account(system, demo_headers, per_page=100)["bookings"]["items"]
    small = next(i for i, b in enumerate(items) if b["text"].startswith("Zusätzliche IPv4-Adresse "))
    assert (items[small]["type"], items[small]["amount"], items[small]["open_amount"]) == ("RE", "-2.38", "2.38")
    settlement = items[small + 1]
    assert settlement["type"] == "KONTOAUSGLEICH" and settlement["amount"] == "0.00"
    assert settlement["text"].startswith("Überweisungen/Gutschriften bis zum ")
    history = items[small + 2:]
    invoices = [b for b in history if b["type"] == "RE"]
    transfers = {b["text"].rsplit("-", 1)[1]: b["amount"] for b in history if b["type"] == "ZAHLUNG"}
    assert len(history) == 34 and len(invoices) == 17
    assert transfers == {str(b["invoice_number"]): b["amount"].lstrip("-") for b in invoices}
    assert {(b["payment_method"], b["open_amount"]) for b in invoices} == {("U", "0.00")}
    domain = next(b for b in invoices if b["text"].startswith("Domain profihost-demo.de 24.05."))

    def pdf():
        resp = requests.get(f"{system.url}/api/v1/me/documents/invoices/{domain['invoice_number']}",
                            headers=demo_headers)
        return resp.status_code == 200 and resp.content[:5] == b"%PDF-"
    wait_for(pdf, timeout=60, message="the PDF of a seeded invoice")

    rows = requests.get(system.url + "/api/v1/me/products/webhosting", headers=demo_headers,
                        params={"q": "profihost-demo", "per_page": 50}).json()["items"]
    rows += requests.get(system.url + "/api/v1/me/products/webhosting", headers=demo_headers,
                         params={"q": "partnercenter", "per_page": 50}).json()["items"]
    next_days = {(r["name"], r["package"]): r["next_invoice_date"][5:] for r in rows}
    assert {k: v for k, v in next_days.items() if k in GUIDE_NEXT_INVOICE} == GUIDE_NEXT_INVOICE


GUIDE_NEXT_INVOICE = {("partnercenter.de", "businesshosting"): "04-07", ("profihost-demo.de", "shophosting"): "11-30",
                      ("profihost-demo.com", "Domainaufschaltung"): "03-13", ("profihost-demo.de", "Domain .de"): "05-24"}
