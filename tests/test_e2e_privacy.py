"""DS-GVO data export (Art. 15/20) through the gateway's HTTP, every service a real process:
each service contributes its part through events, documents assembles the ZIP (one JSON per
service plus the PDFs) in Meine Dokumente, and the customer is told by a real mail."""
import io
import json
import uuid
import zipfile

import requests

from kc_common.testing import wait_for

SERVICES = {"identity", "catalog", "billing", "dns", "documents", "support"}


def api(system, method, path, headers, **kwargs):
    return requests.request(method, system.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)


def order_domain(system, headers, domain):
    resp = api(system, "POST", "/me/orders", {**headers, "Idempotency-Key": str(uuid.uuid4())},
               json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert resp.status_code == 201, resp.text


def open_request(system, headers, subject, name):
    form = {"name": name, "subject": subject, "message": "Bitte prüfen.", "category": "email"}
    resp = requests.post(system.url + "/api/v1/me/support/requests", headers=headers,
                         files=[(k, (None, v)) for k, v in form.items()], timeout=30)
    assert resp.status_code == 201, resp.text


def invoice_pdf_ready(system, headers):
    resp = api(system, "GET", "/me/documents", headers, params={"kind": "invoice"})
    return resp.status_code == 200 and resp.json()["total"] >= 1  # (a 503 while busy: ask again)


def test_data_export_holds_every_service_part_of_that_customer_only(system, make_customer):
    tag = uuid.uuid4().hex[:6]
    mine_email, other_email = f"export-{tag}@example.org", f"fremd-{tag}@example.org"
    me_id, me = make_customer(email=mine_email, last_name="Exportkundin")
    other_id, other = make_customer(email=other_email, last_name="Fremdkunde")
    mine_domain, other_domain = f"export-{tag}.de", f"fremd-{tag}.de"
    order_domain(system, me, mine_domain)
    order_domain(system, other, other_domain)
    open_request(system, me, f"Export-Anfrage {tag}", "Erika Exportkundin")
    open_request(system, other, f"Fremde Anfrage {tag}", "Erika Fremdkunde")
    wait_for(lambda: invoice_pdf_ready(system, me), timeout=60, message="the invoice PDF")
    wait_for(lambda: api(system, "GET", "/me/zones", me).json().get("total", 0) >= 1, timeout=60,
             message="the zone")

    assert api(system, "GET", "/me/data-export", me).status_code == 404
    resp = api(system, "POST", "/me/data-export", me)
    assert resp.status_code == 202, resp.text
    export = resp.json()
    assert export["state"] in ("pending", "ready") and set(export["parts_expected"]) == SERVICES
    again = api(system, "POST", "/me/data-export", me)
    if again.json()["state"] == "pending":  # one export at a time: the same one again
        assert again.json()["export_id"] == export["export_id"]

    def ready():
        state = api(system, "GET", "/me/data-export", me).json()
        return state if state["state"] == "ready" else None
    state = wait_for(ready, timeout=90, message="the data export")
    assert state["export_id"] == export["export_id"] and set(state["parts_received"]) == SERVICES

    # Another customer sees neither the export nor its file.
    assert api(system, "GET", "/me/data-export", other).status_code == 404
    assert api(system, "GET", f"/me/documents/{state['document_id']}", other).status_code == 404

    listed = api(system, "GET", "/me/documents", me, params={"kind": "data_export"}).json()
    assert [d["id"] for d in listed["items"]] == [state["document_id"]]
    resp = api(system, "GET", state["download_path"].removeprefix("/api/v1"), me)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/zip"), resp.text
    archive = zipfile.ZipFile(io.BytesIO(resp.content))
    names = set(archive.namelist())
    assert {f"{s}.json" for s in SERVICES} <= names
    pdfs = [n for n in names if n.startswith("dokumente/") and n.endswith(".pdf")]
    assert pdfs and all(archive.read(n).startswith(b"%PDF") for n in pdfs)
    parts = {s: json.loads(archive.read(f"{s}.json")) for s in SERVICES}
    for service, part in parts.items():
        assert part["customer_id"] == me_id, service
    text = {s: json.dumps(p, ensure_ascii=False) for s, p in parts.items()}
    assert mine_email in text["identity"] and "Exportkundin" in text["identity"]
    assert "password_hash" not in text["identity"] and "totp_secret_enc" not in text["identity"]
    assert mine_domain in text["catalog"] and mine_domain in text["dns"]
    assert parts["billing"]["data"]["invoices"]["rows"], "the invoice"
    assert f"Export-Anfrage {tag}" in text["support"]
    assert parts["documents"]["data"]["documents"]["rows"]
    # Nothing of the other customer, anywhere in the archive.
    everything = b"".join(archive.read(n) for n in names)
    for foreign in (other_email.encode(), other_domain.encode(), f"Fremde Anfrage {tag}".encode(),
                    b"Fremdkunde"):
        assert foreign not in everything
    for part in parts.values():
        for table in part["data"].values():
            for row in table["rows"]:
                assert row.get("customer_id") in (None, me_id)

    # The mail (German, through the real SMTP sink) names the archive.
    mail = wait_for(lambda: [m for m in system.mails(mine_email) if m["Subject"] == "Ihr Datenexport ist bereit"],
                    timeout=30, message="the export mail")
    assert len(mail) == 1 and "Meine Dokumente" in mail[0].get_content()
    assert not [m for m in system.mails(other_email) if m["Subject"] == "Ihr Datenexport ist bereit"]

    # A new request after the ready one is a new export.
    assert api(system, "POST", "/me/data-export", me).json()["export_id"] != export["export_id"]


def _catalog_db(system):
    from kc_catalog.models import metadata
    from kc_common.db import StandaloneDatabase
    return StandaloneDatabase(metadata, system.database_urls["catalog"], "catalog")


def test_closure_waits_for_contract_end_and_balance_then_pseudonymises_everywhere(
        system, make_customer, staff_headers):
    import datetime as dt

    from sqlalchemy import update

    from kc_catalog.models import contracts

    tag = uuid.uuid4().hex[:6]
    email, password = f"schluss-{tag}@example.org", "Kunden-Passwort-2026"
    me_id, me = make_customer(email=email, last_name="Schlussmann", password=password)
    _, other = make_customer(last_name="Bleibtreu")
    domain = f"schluss-{tag}.de"
    order_domain(system, me, domain)
    open_request(system, me, f"Schluss-Anfrage {tag}", "Erika Schlussmann")
    wait_for(lambda: invoice_pdf_ready(system, me), timeout=60, message="the invoice PDF")
    number = api(system, "GET", "/me/account", me).json()["bookings"]["items"][0]["invoice_number"]
    request_number = api(system, "GET", "/me/support/requests", me).json()["items"][0]["number"]

    assert api(system, "POST", "/me/data-export", me).status_code == 202  # a copy of everything, erased later
    wait_for(lambda: api(system, "GET", "/me/data-export", me).json()["state"] == "ready", timeout=90,
             message="the export")
    assert api(system, "GET", "/me/closure", me).json()["state"] == "none"
    wrong = api(system, "POST", "/me/closure", me, json={"password": "falsch-falsch-falsch"})
    assert wrong.status_code == 422 and list(wrong.json()["fields"]) == ["password"]  # not the password
    resp = api(system, "POST", "/me/closure", me, json={"password": password})
    assert resp.status_code == 202 and resp.json()["state"] == "requested", resp.text
    assert api(system, "POST", "/me/closure", me, json={"password": password}).json()["state"] == "requested"
    refused = api(system, "POST", "/me/orders", {**me, "Idempotency-Key": str(uuid.uuid4())},
                  json={"items": [{"product_id": "domain-de", "domain": f"nochmal-{tag}.de"}]})
    assert refused.status_code == 403 and refused.json()["reason"] == "account_closing", refused.text

    # catalog cancels the contract by its notice period (it runs on until its end date).
    def cancelled():
        items = api(system, "GET", "/me/contracts", me).json()["items"]
        return items if items and all(c["status"] == "cancelled" and c["end_date"] for c in items) else None
    wait_for(cancelled, timeout=30, message="the contract cancelled")

    # Settle the balance (a transfer booked by staff): still a contract running → not erased.
    details = api(system, "GET", "/me/payments/transfer-details", me).json()
    booked = api(system, "POST", "/staff/billing/transfers", staff_headers("billing"), json={
        "transaction_id": f"stmt-{uuid.uuid4().hex}", "amount": details["amount"],
        "reference": f"Zahlung {details['reference']}"})
    assert booked.status_code == 201, booked.text
    wait_for(lambda: api(system, "GET", "/me/account", me).json()["balance"] == "0.00", message="settled")
    assert api(system, "GET", "/me/closure", me).json()["state"] == "requested"

    # The term ends (as if its end date had passed) and catalog's job terminates it.
    db = _catalog_db(system)
    with db.unit_of_work() as uow:
        uow.session.execute(update(contracts).where(contracts.c.customer_id == me_id)
                            .values(end_date=dt.date.today() - dt.timedelta(days=2)))
    db.engine.dispose()
    jobs = api(system, "POST", "/staff/catalog/jobs", staff_headers("admin"))
    assert jobs.status_code == 200, jobs.text  # (or the job's own timer got there first)

    # identity erases; every service pseudonymises its part.
    admin = staff_headers("admin")

    def erased():
        customer = api(system, "GET", f"/staff/customers/{me_id}", admin).json()
        return customer if customer.get("last_name") == "Gelöscht" else None
    customer = wait_for(erased, timeout=60, message="the erasure")
    assert email not in json.dumps(customer) and not customer["street"] and not customer["phone"]
    assert customer["email"].endswith(".invalid")
    login = requests.post(system.url + "/api/v1/session", json={"login": email, "password": password}, timeout=30)
    assert login.status_code == 401
    login = requests.post(system.url + "/api/v1/session", json={"login": str(me_id), "password": password},
                          timeout=30)
    assert login.status_code == 401
    assert api(system, "GET", "/me/contracts", me).status_code == 401  # sessions ended

    def support_pseudonymised():
        req = api(system, "GET", f"/staff/support/requests/{request_number}", staff_headers("support")).json()
        return req if req.get("author_name") == "Gelöscht" else None
    req = wait_for(support_pseudonymised, timeout=30, message="support pseudonymised")
    assert f"Schluss-Anfrage {tag}" not in json.dumps(req, ensure_ascii=False) and req["state"] == "closed"

    # billing's address replica and bank details, documents' export archive: gone too.
    from sqlalchemy import select

    from kc_billing.models import customers as replica
    from kc_billing.models import metadata as billing_metadata
    from kc_common.db import StandaloneDatabase
    from kc_documents.models import documents
    from kc_documents.models import metadata as documents_metadata

    def rows(metadata, service, query):
        db = StandaloneDatabase(metadata, system.database_urls[service], service)
        try:
            with db.unit_of_work() as uow:
                return uow.session.execute(query).all()
        finally:
            db.engine.dispose()
    wait_for(lambda: rows(billing_metadata, "billing", select(replica.c.last_name, replica.c.street).where(
        replica.c.customer_id == me_id)) == [("Gelöscht", None)], timeout=30, message="billing's replica")
    wait_for(lambda: not rows(documents_metadata, "documents", select(documents.c.id).where(
        documents.c.customer_id == me_id, documents.c.kind == "data_export")), timeout=30,
        message="the export archive deleted")
    assert rows(documents_metadata, "documents", select(documents.c.id).where(
        documents.c.customer_id == me_id, documents.c.kind == "invoice"))

    # The invoice stays retrievable for staff (§ 147 AO): data and PDF.
    billing = staff_headers("billing")
    invoice = api(system, "GET", f"/staff/billing/invoices/{number}", billing)
    assert invoice.status_code == 200, invoice.text
    # the issued invoice is the kept document: unchanged, its buyer as issued
    assert str(invoice.json()["number"]) == str(number) and invoice.json()["buyer"]["name"] == "Erika Schlussmann"
    pdf = api(system, "GET", f"/staff/documents/invoices/{number}", billing)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert api(system, "GET", f"/staff/billing/invoices/{number}", other).status_code == 401

    # The other customer is untouched.
    assert api(system, "GET", "/me", other).json()["last_name"] == "Bleibtreu"
