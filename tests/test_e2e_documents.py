"""Meine Dokumente end to end: the library, invoice PDFs from invoice_issued, staff versions.

Every process is real (tests/conftest.py). billing is rebuilt in parallel and today emits a
minimal invoice_issued; this test publishes the contract's full payload itself.
"""
import io
import uuid

import facturx
import pytest
import requests
from kombu import Connection, Producer
from pypdf import PdfReader

from kc_common.events import event_exchange
from kc_common.testing import wait_for
from kc_documents import invoice


def text_of(pdf):
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).replace("\u00a0", " ")


@pytest.fixture(scope="module")
def demo(demo_headers):
    return demo_headers


@pytest.fixture(scope="module")
def other(make_customer):
    return make_customer()[1]


def publish_invoice_issued(system, data):
    envelope = {"id": str(uuid.uuid4()), "type": "invoice_issued", "source": "billing",
                "occurred_at": "2026-11-26T10:15:00+00:00", "data": data}
    with Connection(system.env["AMQP_URI"]) as conn:
        Producer(conn.default_channel, serializer="json").publish(
            envelope, exchange=event_exchange("billing"), routing_key="invoice_issued",
            declare=[event_exchange("billing")], delivery_mode=2)


def test_library_is_listed_and_downloaded_through_the_gateway(system, demo):
    resp = requests.get(system.url + "/api/v1/library", headers=demo)
    assert resp.status_code == 200, resp.text
    items = {i["name"]: i for i in resp.json()["items"]}
    assert list(items) == ["Unternehmer AGB", "Inhaberwechsel", "Preisliste", "Kündigung", "SSL Zertifikat",
                           "Managed Service", "Technik Informationen", "ServerCon Onlinehandbuch"]
    assert items["Inhaberwechsel"]["description"] == "Vertragsinhaber ändern"
    assert items["ServerCon Onlinehandbuch"]["url"] and items["SSL Zertifikat"]["action"] == "Zur Übersicht"

    agb = requests.get(system.url + items["Unternehmer AGB"]["download_path"], headers=demo)
    assert agb.status_code == 200 and agb.headers["Content-Type"] == "application/pdf", system.log("documents")[-3000:] + system.log("gateway")[-2000:]
    assert "Unternehmer-AGB_v1.0.pdf" in agb.headers["Content-Disposition"]
    assert "Allgemeine Geschäftsbedingungen für Unternehmer" in text_of(agb.content)

    prices = requests.get(system.url + "/api/v1/library/preisliste", headers=demo)
    assert prices.status_code == 200 and "Domain .de" in text_of(prices.content)  # the live catalog

    assert requests.get(system.url + "/api/v1/library").status_code == 401
    missing = requests.get(system.url + "/api/v1/library/gibt-es-nicht", headers=demo)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_invoice_pdf_from_invoice_issued_only_for_its_customer(system, demo, other):
    number = f"RE-E2E-{uuid.uuid4().hex[:6]}"
    data = invoice.sample_invoice(number=number, customer_id=100001)
    for line in data["lines"]:
        line["contract_id"] = None  # not one of catalog's contracts
    publish_invoice_issued(system, data)
    publish_invoice_issued(system, data)  # billing re-sends: still one document

    def listed():
        items = requests.get(system.url + "/api/v1/me/documents", headers=demo,
                             params={"kind": "invoice"}).json()["items"]
        return [i for i in items if i["ref"] == number]
    docs = wait_for(listed, timeout=60, message="the invoice document")
    assert len(docs) == 1
    doc = docs[0]

    by_id = requests.get(system.url + doc["download_path"], headers=demo)
    by_number = requests.get(f"{system.url}/api/v1/me/documents/invoices/{number}", headers=demo)
    assert by_id.status_code == by_number.status_code == 200
    assert by_id.content == by_number.content and by_id.headers["ETag"] == f'"{doc["sha256"]}"'
    text = text_of(by_id.content)
    for expected in [f"Rechnung {number}", "Rechnungsdatum: 26.11.2026", "15,35 €", "2,45 €",
                     "Zahlungsart: Überweisung", "Leistungszeitraum 01.11.2026 – 30.11.2026"]:
        assert expected in text, expected
    _, xml = facturx.get_xml_from_pdf(by_id.content, check_xsd=False)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931") and number.encode() in xml

    for path in (doc["download_path"], f"/api/v1/me/documents/invoices/{number}"):
        resp = requests.get(system.url + path, headers=other)
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    assert not [i for i in requests.get(system.url + "/api/v1/me/documents", headers=other).json()["items"]
                if i["ref"] == number]


def test_staff_publish_a_new_version_old_one_stays(system, demo, staff_headers):
    old = requests.get(system.url + "/api/v1/library/technik-informationen", headers=demo)
    assert old.status_code == 200
    new_pdf = old.content.replace(b"Rechenzentrum", b"Rechenzentren", 1)
    form = {"version": "2026.2", "valid_from": "2026-02-01", "note": "Neuer Standort"}
    files = {"file": ("technik.pdf", new_pdf, "application/pdf")}
    url = system.url + "/api/v1/staff/library/technik-informationen/versions"
    assert requests.post(url, headers=demo, data=form, files=files).status_code == 401
    assert requests.post(url, headers=staff_headers("support"), data=form, files=files).status_code == 403
    resp = requests.post(url, headers=staff_headers("admin"), data=form, files=files)
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"] == "2026.2"
    again = requests.post(url, headers=staff_headers("admin"), data=form, files=files)
    assert again.status_code == 409

    current = requests.get(system.url + "/api/v1/library/technik-informationen", headers=demo)
    assert current.content == new_pdf
    versions = requests.get(system.url + "/api/v1/library/technik-informationen/versions", headers=demo).json()
    assert [v["version"] for v in versions["items"]] == ["2026.2", "1.0"]
    first = requests.get(system.url + versions["items"][1]["download_path"], headers=demo)
    assert first.content == old.content


def test_openapi_describes_the_document_operations(system):
    paths = requests.get(system.url + "/api/openapi.json").json()["paths"]
    assert "application/pdf" in paths["/api/v1/me/documents/invoices/{number}"]["get"]["responses"]["200"]["content"]
    assert "multipart/form-data" in paths["/api/v1/staff/library/{slug}/versions"]["post"]["requestBody"]["content"]
    assert {"/api/v1/library", "/api/v1/me/documents", "/api/v1/library/{slug}/versions/{version}"} <= set(paths)
