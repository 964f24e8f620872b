"""Flows across services, every process real (the SPEC's "Across the system").

* An address change reaches billing (customer_updated) and the next invoice carries it;
  the invoice is rendered by documents (invoice_issued) as a PDF/A-3 with the EN 16931
  XML, and billing mails it to the invoice address with that very PDF attached
  (document_stored) — through the real SMTP server of the system.
* A signed data-processing agreement (av_agreement_signed) becomes a PDF in the
  customer's documents.
"""
import hashlib
import io
import uuid

import requests
from pypdf import PdfReader

from kc_common.testing import wait_for

ADDRESS = {"street": "Lister Meile 17", "zip": "30161", "city": "Hannover", "country": "DE",
           "phone": "0511 1234567"}


FIELDS = ("company", "last_name", "first_name", "email", "street", "zip", "city", "country",
          "phone", "fax", "mobile", "vat_id", "version")


def change_address(system, headers, **changes):
    """PUT the whole address (the form sends every field) with ``changes`` applied."""
    me = requests.get(system.url + "/api/v1/me/address", headers=headers).json()
    body = {k: v for k, v in me.items() if k in FIELDS and v is not None}
    return requests.put(system.url + "/api/v1/me/address", headers=headers, json={**body, **changes})


def handled(system, service, event_type):
    return system.log(service).count(f"handled {event_type} event ")


def pdf_text(data):
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_invoice_carries_the_new_address_is_rendered_and_mailed_with_its_pdf(system, make_customer):
    email = f"flow-{uuid.uuid4().hex[:8]}@example.org"
    _, headers = make_customer(email=email, first_name="Frieda", last_name="Fluss")
    before = handled(system, "billing", "customer_updated")
    resp = change_address(system, headers, **ADDRESS)
    assert resp.status_code == 200, resp.text
    wait_for(lambda: handled(system, "billing", "customer_updated") > before, timeout=20,
             message="billing took the new address")

    domain = f"fluss-{uuid.uuid4().hex[:6]}.de"
    order = requests.post(system.url + "/api/v1/me/orders", headers=headers,
                          json={"items": [{"product_id": "domain-de", "domain": domain}]})
    assert order.status_code == 201, order.text

    def invoice_number():
        items = requests.get(system.url + "/api/v1/me/account", headers=headers).json()["bookings"]["items"]
        return next((b["invoice_number"] for b in items if b["type"] == "RE"), None)
    number = wait_for(invoice_number, timeout=20, message="the invoice booking")

    def pdf():
        resp = requests.get(f"{system.url}/api/v1/me/documents/invoices/{number}", headers=headers)
        return resp.status_code == 200 and resp.content
    data = wait_for(pdf, timeout=30, message="the rendered invoice PDF")
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    assert str(number) in text and "Lister Meile 17" in text and "30161 Hannover" in text
    assert domain in text and "11,78" in text  # 9,90 € net + 19 % VAT, German format
    reader = PdfReader(io.BytesIO(data))
    assert "factur-x.xml" in reader.attachments  # the EN 16931 e-invoice travels inside

    def mailed():
        return [m for m in system.mails(to=email) if str(number) in str(m["Subject"])]
    mail = wait_for(mailed, timeout=30, message="the invoice mail")[0]
    attachment = next(mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert hashlib.sha256(attachment.get_content()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_signed_av_agreement_becomes_a_pdf_in_my_documents(system, make_customer):
    _, headers = make_customer(first_name="Anton", last_name="Auftrag")
    assert change_address(system, headers, **ADDRESS).status_code == 200
    current = requests.get(system.url + "/api/v1/me/av-agreement", headers=headers).json()["current"]
    resp = requests.post(system.url + "/api/v1/me/av-agreement/signatures", headers=headers, json={
        "version": current["version"], "signer_name": "Anton Auftrag",
        "signer_position": "Geschäftsführer", "accept": True})
    assert resp.status_code == 201, resp.text

    def av_document():
        docs = requests.get(system.url + "/api/v1/me/documents", headers=headers).json()["items"]
        return next((d for d in docs if d["kind"] == "av_agreement"), None)
    doc = wait_for(av_document, timeout=30, message="the AV agreement PDF")
    data = requests.get(f"{system.url}/api/v1/me/documents/{doc['id']}", headers=headers).content
    text = pdf_text(data)
    assert "Anton Auftrag" in text and "Geschäftsführer" in text
