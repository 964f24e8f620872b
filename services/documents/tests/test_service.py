"""documents on the real bus and PostgreSQL: invoice and AV events, own documents, the library."""
import base64
import uuid

import facturx
import pytest
from kombu import Connection
from nameko.rpc import rpc as nameko_rpc
from nameko.testing.services import entrypoint_hook

from kc_common.errors import Conflict, Forbidden, NotFound, Unauthenticated, Unprocessable, ValidationFailed
from kc_common.events import declare_topology
from kc_common.testing import wait_for
from kc_documents import invoice
from kc_documents.rendering import pdf_text
from kc_documents.service import DocumentsService

CUSTOMER = {"customer_id": 100001}
OTHER = {"customer_id": 100002}
STAFF = {"staff_id": "1", "staff_roles": ["admin"]}


def envelope(source, event_type, data, event_id=None):
    return {"id": event_id or str(uuid.uuid4()), "type": event_type, "source": source,
            "occurred_at": "2026-11-26T10:15:00+00:00", "data": data}


def publish(config, source, event_type, payload):
    from kc_common.events import event_exchange
    from kombu import Producer
    with Connection(config["AMQP_URI"]) as conn:
        producer = Producer(conn.default_channel, serializer="json")
        producer.publish(payload, exchange=event_exchange(source), routing_key=event_type,
                         declare=[event_exchange(source)], delivery_mode=2)


@pytest.fixture
def documents(container_factory, config):
    declare_topology(config["AMQP_URI"], [DocumentsService])
    container = container_factory(DocumentsService, config)
    container.start()
    return container


def call(container, method, *args, context=CUSTOMER, **kwargs):
    with entrypoint_hook(container, method, context_data=context) as fn:
        return fn(*args, **kwargs)


def test_invoice_event_twice_gives_one_document_only_its_owner_fetches(documents, config, capture_events):
    stored = capture_events("documents", "document_stored")
    data = invoice.sample_invoice(number=f"RE-{uuid.uuid4().hex[:8]}")
    first = envelope("billing", "invoice_issued", data)
    publish(config, "billing", "invoice_issued", first)
    publish(config, "billing", "invoice_issued", first)                       # redelivered
    publish(config, "billing", "invoice_issued", envelope("billing", "invoice_issued", data))  # re-sent
    event = stored.wait(1, timeout=60)[0]["data"]
    assert event["kind"] == "invoice" and event["ref"] == data["number"]
    assert event["customer_id"] == 100001 and len(event["sha256"]) == 64

    def listed():
        page = call(documents, "list_my_documents")
        return page["total"] and page
    page = wait_for(listed, timeout=30)
    assert page["total"] == 1
    doc = page["items"][0]
    assert doc["id"] == event["document_id"] and doc["filename"] == f"Rechnung_{data['number']}.pdf"
    assert doc["document_date"] == "2026-11-26" and doc["kind"] == "invoice"

    file = call(documents, "download_my_document", doc["id"])
    pdf = base64.b64decode(file["content_b64"])
    assert file["content_type"] == "application/pdf" and file["sha256"] == event["sha256"]
    assert data["number"] in pdf_text(pdf)
    _, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert call(documents, "download_invoice", data["number"])["sha256"] == event["sha256"]
    # billing fetches it without a customer context (to attach it to the invoice mail)
    assert call(documents, "get_document", doc["id"], context={})["sha256"] == event["sha256"]

    for method, arg in [("download_my_document", doc["id"]), ("download_invoice", data["number"]),
                        ("get_document", doc["id"]), ("download_my_document", "kein-uuid")]:
        with pytest.raises(NotFound):
            call(documents, method, arg, context=OTHER)
    assert call(documents, "list_my_documents", context=OTHER)["total"] == 0
    with pytest.raises(Unauthenticated):
        call(documents, "list_my_documents", context={})
    assert len(stored.drain(0.5)) == 1  # one document, one event


def test_incomplete_invoice_event_is_parked_not_rendered(documents, config):
    minimal = {"invoice_id": 9, "number": "RE-MINIMAL-1", "customer_id": 100001, "net": "9.90",
               "vat": "1.88", "gross": "11.78", "issued_at": "2026-11-26T10:00:00+00:00"}
    publish(config, "billing", "invoice_issued", envelope("billing", "invoice_issued", minimal))
    dead = "evt-billing-invoice_issued--documents.on_invoice_issued.dead"

    def parked():
        with Connection(config["AMQP_URI"]) as conn:
            return conn.default_channel.queue_declare(dead, passive=True).message_count
    wait_for(parked, timeout=20, message="the event in the dead-letter queue")
    assert call(documents, "list_my_documents")["total"] == 0


def test_av_agreement_event_renders_the_signed_agreement(documents, config):
    data = {"agreement_id": 42, "customer_id": 100001, "version": "2026-01",
            "title": "Vereinbarung zur Auftragsverarbeitung", "text": "§ 1 Gegenstand\n\nText.",
            "signed_at": "2026-11-26T13:05:00Z", "signer_name": "Max Mustermann",
            "signer_position": "Geschäftsführer", "client_ip": "203.0.113.7",
            "customer": {"company": "Beispiel GmbH", "first_name": "Max", "last_name": "Mustermann",
                         "street": "Musterweg 5", "zip": "10115", "city": "Berlin", "country": "DE"}}
    publish(config, "identity", "av_agreement_signed", envelope("identity", "av_agreement_signed", data))
    page = wait_for(lambda: call(documents, "list_my_documents", {"kind": "av_agreement"})["items"],
                    timeout=30)
    file = call(documents, "download_my_document", page[0]["id"])
    text = pdf_text(base64.b64decode(file["content_b64"]))
    assert "Max Mustermann (Geschäftsführer)" in text and "26.11.2026, 14:05 Uhr" in text
    with pytest.raises(ValidationFailed):
        call(documents, "list_my_documents", {"kind": "nonsense"})


class CatalogStub:
    """catalog's list_products as the contract has it (the real catalog is rebuilt in parallel)."""
    name = "catalog"

    @nameko_rpc
    def list_products(self):
        return {"items": [
            {"id": "domain-de", "kind": "domain", "name": "Domain .de", "tld": "de", "price_net": "9.90",
             "vat_rate": "19.00", "periods": [12]},
            {"id": "hosting-shop", "kind": "hosting", "name": "shophosting", "tld": None,
             "price_net": "24.90", "vat_rate": "19.00", "periods": [1, 3, 6, 12]}]}


def _pdf(file):
    assert file["content_type"] == "application/pdf"
    return base64.b64decode(file["content_b64"])


def test_library_lists_downloads_and_versions(documents, container_factory, config):
    container_factory(CatalogStub, config).start()
    listing = call(documents, "list_library")["items"]
    assert [i["name"] for i in listing] == [
        "Unternehmer AGB", "Inhaberwechsel", "Preisliste", "Kündigung", "SSL Zertifikat",
        "Managed Service", "Technik Informationen", "ServerCon Onlinehandbuch"]
    agb = listing[0]
    assert agb["version"] == "1.0" and agb["date"] == "2026-01-01" and agb["action"] == "Download"
    manual = listing[-1]
    assert manual["kind"] == "link" and manual["url"].startswith("https://")
    assert manual["action"] == "Zum Onlinehandbuch"

    first = _pdf(call(documents, "download_library", "unternehmer-agb"))
    assert "Allgemeine Geschäftsbedingungen für Unternehmer" in pdf_text(first)
    assert _pdf(call(documents, "download_library", "unternehmer-agb")) == first  # rendered once, kept
    assert "Kündigungsformular" not in pdf_text(_pdf(call(documents, "download_library", "kuendigung")))
    assert "Unterschrift des Vertragsinhabers" in pdf_text(_pdf(call(documents, "download_library", "kuendigung")))

    prices = pdf_text(_pdf(call(documents, "download_library", "preisliste")))
    assert "Domain .de" in prices and "11,78 €" in prices and "shophosting" in prices

    new_pdf = first.replace(b"Unternehmer", b"Unternehmen", 1)
    upload = {"version": "2.0", "valid_from": "2026-02-01", "note": "Neue Haftungsregeln",
              "files": [{"field": "file", "filename": "agb.pdf", "content_type": "application/pdf",
                         "content_b64": base64.b64encode(new_pdf).decode()}]}
    with pytest.raises(Unauthenticated):
        call(documents, "publish_library_version", "unternehmer-agb", upload)
    with pytest.raises(Forbidden):
        call(documents, "publish_library_version", "unternehmer-agb", upload,
             context={"staff_id": "2", "staff_roles": ["support"]})
    published = call(documents, "publish_library_version", "unternehmer-agb", upload, context=STAFF)
    assert published["version"] == "2.0" and published["download_path"].endswith("/versions/2.0")
    with pytest.raises(Conflict):
        call(documents, "publish_library_version", "unternehmer-agb", upload, context=STAFF)
    bad = dict(upload, version="3.0", files=[dict(upload["files"][0], content_b64=base64.b64encode(b"MZ..").decode())])
    with pytest.raises(ValidationFailed) as err:
        call(documents, "publish_library_version", "unternehmer-agb", bad, context=STAFF)
    assert "file" in err.value.fields
    with pytest.raises(Unprocessable):
        call(documents, "publish_library_version", "preisliste", dict(upload, version="9"), context=STAFF)

    assert _pdf(call(documents, "download_library", "unternehmer-agb")) == new_pdf
    versions = call(documents, "list_library_versions", "unternehmer-agb")["items"]
    assert [v["version"] for v in versions] == ["2.0", "1.0"]
    assert _pdf(call(documents, "download_library", "unternehmer-agb", "1.0")) == first
    assert call(documents, "list_library")["items"][0]["version"] == "2.0"
    with pytest.raises(NotFound):
        call(documents, "download_library", "unternehmer-agb", "7.7")
    with pytest.raises(NotFound):
        call(documents, "download_library", "gibt-es-nicht")
    with pytest.raises(Unprocessable):
        call(documents, "download_library", "servercon-onlinehandbuch")
